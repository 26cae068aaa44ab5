"""Sandbox handlers for SNS: the owners' alerts topic and its e-mail subscriptions."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from provisioner.engines.mocked import Registration
from provisioner.engines.sandbox.fidelity.rules.sns import CONFIRMED_BY_RECIPIENT
from provisioner.engines.sandbox.handlers.base import Handler, TagApi
from provisioner.engines.sandbox.handlers.catalog import register
from provisioner.engines.sandbox.handlers.common import compact, input_changed, is_error, name_or_autoname, policy_text, tag_list
from provisioner.engines.sandbox.handlers.context import SandboxContext
from provisioner.engines.sandbox.state import StoredResource

# Topic attributes the program sets, by input key.
TOPIC_ATTRIBUTES = {"displayName": "DisplayName", "kmsMasterKeyId": "KmsMasterKeyId", "policy": "Policy"}


class _SnsHandler(Handler):
    """SNS's not-found error."""

    service = "sns"
    not_found = ("NotFound",)


@register("aws:sns/topic:Topic")
class TopicHandler(_SnsHandler):
    """An SNS topic with its display name, KMS key, access policy and tags.

    Sandbox: moto stores the KMS key and the policy but neither encrypts messages nor evaluates
    the policy, and it delivers no e-mail.
    """

    replace_on = ("name", "namePrefix", "fifoTopic")
    tag_api = TagApi("tag_resource", "untag_resource", resource="ResourceArn")
    describe_call = ("get_topic_attributes", "TopicArn", "Attributes")
    remove_call = ("delete_topic", "TopicArn")  # DeleteTopic deletes the subscriptions too, pending ones included

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = name_or_autoname(reg.inputs, reg.name, max_length=256)
        attributes = self._attributes(reg.inputs)
        if reg.inputs.get("fifoTopic"):
            attributes["FifoTopic"] = "true"
        topic_arn = self.client(ctx, region).create_topic(
            Name=name, Attributes=attributes, Tags=tag_list(ctx.tags(reg)))["TopicArn"]
        return topic_arn, self._outputs(ctx, reg, topic_arn, name)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        sns = self.client(ctx, region)
        for key, attribute in TOPIC_ATTRIBUTES.items():
            if input_changed(reg, old, key):
                value = reg.inputs.get(key)
                sns.set_topic_attributes(TopicArn=old.id, AttributeName=attribute,
                                         AttributeValue=policy_text(value) if key == "policy" and value else value or "")
        self.sync_tags(ctx, reg, old, region)
        return self._outputs(ctx, reg, old.id, old.outputs["name"])

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        name = reg.inputs.get("name")
        if not name:
            return None
        topic_arn = f"arn:aws:sns:{region}:{ctx.account_id}:{name}"
        if self.described(ctx, topic_arn, reg.inputs, region) is None:
            return None
        return topic_arn, self._outputs(ctx, reg, topic_arn, name)

    @staticmethod
    def _attributes(inputs: dict[str, Any]) -> dict[str, str]:
        values = {key: inputs.get(key) for key in TOPIC_ATTRIBUTES}
        if values["policy"]:
            values["policy"] = policy_text(values["policy"])
        return {TOPIC_ATTRIBUTES[key]: value for key, value in compact(**values).items()}

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, topic_arn: str, name: str) -> dict[str, Any]:
        return {**reg.inputs, "name": name, "arn": topic_arn, "owner": ctx.account_id, "tagsAll": ctx.tags(reg)}


@register("aws:sns/topicSubscription:TopicSubscription")
class TopicSubscriptionHandler(_SnsHandler):
    """A subscription of an endpoint (envctl: an owner's e-mail address) to a topic.

    An e-mail subscription is "pending confirmation" until the owner clicks the link AWS sends, and
    AWS refuses to Unsubscribe it while it is: the AWS provider then drops it from the stack and
    leaves it in AWS (which deletes it unconfirmed after 48 hours), and so does this handler.
    Sandbox: moto confirms every subscription at once; the sandbox's fidelity rule refuses the
    Unsubscribe of an e-mail subscription as AWS does (nothing can confirm one: no e-mail is sent),
    and the outputs say pendingConfirmation.
    """

    replace_on = ("topic", "protocol", "endpoint")
    describe_call = ("get_subscription_attributes", "SubscriptionArn", "Attributes")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        subscription_arn = ctx.client("sns", region).subscribe(
            TopicArn=reg.inputs["topic"], Protocol=reg.inputs["protocol"], Endpoint=reg.inputs["endpoint"],
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        return subscription_arn, self._outputs(ctx, reg, subscription_arn, region)

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        try:
            self.client(ctx, region).unsubscribe(SubscriptionArn=old.id)
        except ClientError as error:
            if self.is_not_found(error):
                return
            if is_error(error, "InvalidParameter") and "pending confirmation" in str(error):
                return  # what the provider does: forget it, AWS keeps it until it expires or the topic goes
            raise

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        sns = self.client(ctx, region)
        try:
            pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=reg.inputs["topic"])
            for page in pages:
                for subscription in page["Subscriptions"]:
                    if (subscription["Protocol"], subscription["Endpoint"]) == (reg.inputs["protocol"], reg.inputs["endpoint"]):
                        found = subscription["SubscriptionArn"]
                        return found, self._outputs(ctx, reg, found, region)
        except ClientError as error:
            if self.is_not_found(error):
                return None
            raise
        return None

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, subscription_arn: str, region: str) -> dict[str, Any]:
        attributes = ctx.client("sns", region).get_subscription_attributes(
            SubscriptionArn=subscription_arn)["Attributes"]
        # moto confirms every subscription; on AWS an e-mail one is pending until its recipient confirms.
        pending = attributes.get("PendingConfirmation") == "true" or reg.inputs["protocol"] in CONFIRMED_BY_RECIPIENT
        return {**reg.inputs, "arn": subscription_arn, "ownerId": ctx.account_id, "pendingConfirmation": pending,
                "confirmationWasAuthenticated": attributes.get("ConfirmationWasAuthenticated") == "true"}
