"""Sandbox handlers for IAM: managed policies, roles, inline role policies, policy attachments,
instance profiles."""

from __future__ import annotations

import functools
import json
from typing import Any

from botocore.exceptions import ClientError

from provisioner.engines.mocked import Registration
from provisioner.engines.sandbox.handlers.base import Handler, TagApi
from provisioner.engines.sandbox.handlers.catalog import register
from provisioner.engines.sandbox.handlers.common import compact, input_changed, name_or_autoname, policy_text, tag_list
from provisioner.engines.sandbox.handlers.context import SandboxContext
from provisioner.engines.sandbox.state import StoredResource
from provisioner.errors import EnvctlError

# IAM keeps at most five versions of a managed policy.
MAX_POLICY_VERSIONS = 5
AWS_MANAGED_POLICY_PREFIX = "arn:aws:iam::aws:policy/"


class _IamHandler(Handler):
    """IAM's one not-found error."""

    service = "iam"
    not_found = ("NoSuchEntity",)


class _NamedIamHandler(_IamHandler):
    """An IAM entity whose name (and path) is its identity: a new name is a new entity, made once the old is gone."""

    replace_on = ("name", "namePrefix", "path")
    delete_before_replace = True


# --- managed policies ------------------------------------------------------------------------


@register("aws:iam/policy:Policy")
class PolicyHandler(_NamedIamHandler):
    """A customer managed IAM policy; a changed document becomes its new default version.

    Sandbox: same as AWS for what envctl uses (moto validates the document's grammar; it
    ignores conditions when it enforces the policy).
    """

    replace_on = _NamedIamHandler.replace_on + ("description",)
    tag_api = TagApi("tag_policy", "untag_policy", resource="PolicyArn")
    describe_call = ("get_policy", "PolicyArn", "Policy")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        policy = self.client(ctx, region).create_policy(**compact(
            PolicyName=name_or_autoname(reg.inputs, reg.name, max_length=128),
            Path=reg.inputs.get("path"),
            PolicyDocument=policy_text(reg.inputs["policy"]),
            Description=reg.inputs.get("description"),
            Tags=tag_list(ctx.tags(reg)),
        ))["Policy"]
        return policy["Arn"], self._outputs(ctx, reg, region, policy)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        iam = self.client(ctx, region)
        if input_changed(reg, old, "policy"):
            self._make_room_for_a_version(iam, old.id)
            iam.create_policy_version(PolicyArn=old.id, PolicyDocument=policy_text(reg.inputs["policy"]), SetAsDefault=True)
        self.sync_tags(ctx, reg, old, region)
        return self._outputs(ctx, reg, region, self.describe(iam, old.id, reg.inputs))

    def remove(self, iam: Any, old: StoredResource) -> None:
        for version in self._versions(iam, old.id):
            if not version["IsDefaultVersion"]:
                iam.delete_policy_version(PolicyArn=old.id, VersionId=version["VersionId"])
        iam.delete_policy(PolicyArn=old.id)

    def adoptable_id(self, ctx: SandboxContext, reg: Registration) -> str | None:
        if not reg.inputs.get("name"):
            return None
        return f"arn:aws:iam::{ctx.account_id}:policy{reg.inputs.get('path') or '/'}{reg.inputs['name']}"

    def result(self, ctx, reg, region, policy_arn, policy):
        return policy_arn, self._outputs(ctx, reg, region, policy)

    @staticmethod
    def _versions(iam: Any, policy_arn: str) -> list[dict[str, Any]]:
        return iam.list_policy_versions(PolicyArn=policy_arn)["Versions"]

    def _make_room_for_a_version(self, iam: Any, policy_arn: str) -> None:
        versions = self._versions(iam, policy_arn)
        if len(versions) < MAX_POLICY_VERSIONS:
            return
        oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
        iam.delete_policy_version(PolicyArn=policy_arn, VersionId=oldest["VersionId"])

    def _outputs(self, ctx: SandboxContext, reg: Registration, region: str, policy: dict[str, Any]) -> dict[str, Any]:
        return {**self.named_outputs(ctx, reg, region, policy["PolicyName"], policy["Arn"]), "policyId": policy["PolicyId"]}


# --- roles -----------------------------------------------------------------------------------


def sandbox_trust_policy(assume_role_policy: Any, admin_arn: str) -> str:
    """The program's trust policy with the sandbox's admin added as an AWS principal of every statement.

    moto's AssumeRole works only when the trust policy names the caller's exact ARN, and it
    fails with HTTP 500 on any statement whose principal has no "AWS" entry (a Service-only
    trust), even when another statement would match: so the admin joins each statement, and each
    statement allows sts:AssumeRole too (a GitHub-OIDC trust allows only AssumeRoleWithWebIdentity,
    which moto accepts with any token: the tests act as that role by AssumeRole instead).
    """
    document = json.loads(policy_text(assume_role_policy))
    statements = document.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    adapted = []
    for statement in statements:
        principal = dict(statement.get("Principal") or {})
        existing = principal.get("AWS", [])
        principal["AWS"] = sorted({*([existing] if isinstance(existing, str) else existing), admin_arn})
        actions = statement.get("Action") or []
        actions = sorted({*([actions] if isinstance(actions, str) else actions), "sts:AssumeRole"})
        adapted.append({**statement, "Principal": principal, "Action": actions[0] if len(actions) == 1 else actions})
    return json.dumps({**document, "Statement": adapted})


@register("aws:iam/role:Role")
class RoleHandler(_NamedIamHandler):
    """An IAM role: trust policy, description, permissions boundary, session duration, tags.

    Sandbox: the trust policy sent to moto also names the sandbox's admin user (`ctx.admin_arn`)
    as an AWS principal of each statement — moto's AssumeRole works only when the trust names
    the caller's exact ARN (a Service-only statement gives HTTP 500), and the segregation tests
    act as a team's role by assuming it. The stored inputs stay the
    program's. moto stores the permissions boundary but ignores it when enforcing policies.
    """

    tag_api = TagApi("tag_role", "untag_role", resource="RoleName")
    describe_call = ("get_role", "RoleName", "Role")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = name_or_autoname(reg.inputs, reg.name, max_length=64)
        duration = reg.inputs.get("maxSessionDuration")
        role = self.client(ctx, region).create_role(**compact(
            RoleName=name,
            Path=reg.inputs.get("path"),
            AssumeRolePolicyDocument=sandbox_trust_policy(reg.inputs["assumeRolePolicy"], ctx.admin_arn),
            Description=reg.inputs.get("description"),
            MaxSessionDuration=int(duration) if duration else None,
            PermissionsBoundary=reg.inputs.get("permissionsBoundary") or None,
            Tags=tag_list(ctx.tags(reg)),
        ))["Role"]
        return self.result(ctx, reg, region, name, role)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        iam = self.client(ctx, region)
        if input_changed(reg, old, "assumeRolePolicy"):
            iam.update_assume_role_policy(
                RoleName=old.id, PolicyDocument=sandbox_trust_policy(reg.inputs["assumeRolePolicy"], ctx.admin_arn),
            )
        if input_changed(reg, old, "description") or input_changed(reg, old, "maxSessionDuration"):
            iam.update_role(RoleName=old.id, Description=reg.inputs.get("description") or "",
                            MaxSessionDuration=int(reg.inputs.get("maxSessionDuration") or 3600))
        if input_changed(reg, old, "permissionsBoundary"):
            self._set_boundary(iam, old.id, reg.inputs.get("permissionsBoundary"))
        self.sync_tags(ctx, reg, old, region)
        return self.result(ctx, reg, region, old.id, self.describe(iam, old.id, reg.inputs))[1]

    def remove(self, iam: Any, old: StoredResource) -> None:
        """What AWS requires before a role can go: no managed or inline policies, no profiles."""
        name = old.id
        for policy in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
        for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
        for profile in iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]:
            iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
        iam.delete_role(RoleName=name)

    def result(self, ctx, reg, region, name, role):
        return name, {**self.named_outputs(ctx, reg, region, role["RoleName"], role["Arn"]), "uniqueId": role["RoleId"]}

    @staticmethod
    def _set_boundary(iam: Any, name: str, boundary: str | None) -> None:
        if boundary:
            iam.put_role_permissions_boundary(RoleName=name, PermissionsBoundary=boundary)
        else:
            iam.delete_role_permissions_boundary(RoleName=name)


@register("aws:iam/rolePolicy:RolePolicy")
class RolePolicyHandler(_IamHandler):
    """An inline policy of a role (id `<role>:<name>`); without a `name` input it is autonamed from the logical name.

    Sandbox: same as AWS for what envctl uses (moto ignores conditions when it enforces the policy).
    """

    replace_on = ("role", "name", "namePrefix")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        return self._put(ctx, reg, name_or_autoname(reg.inputs, reg.name, max_length=128), region)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        return self._put(ctx, reg, old.outputs["name"], region)[1]

    def remove(self, iam: Any, old: StoredResource) -> None:
        iam.delete_role_policy(RoleName=old.inputs["role"], PolicyName=old.outputs["name"])

    def describe(self, iam: Any, policy_id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        role, name = policy_id.split(":", 1)  # IAM names have no colon
        return iam.get_role_policy(RoleName=role, PolicyName=name)

    def adoptable_id(self, ctx: SandboxContext, reg: Registration) -> str | None:
        return f"{reg.inputs['role']}:{reg.inputs['name']}" if reg.inputs.get("name") else None

    def result(self, ctx, reg, region, policy_id, policy):
        return policy_id, {**reg.inputs, "name": reg.inputs["name"]}

    def _put(self, ctx: SandboxContext, reg: Registration, name: str, region: str) -> tuple[str, dict[str, Any]]:
        role = reg.inputs["role"]
        document = policy_text(reg.inputs["policy"])
        self.client(ctx, region).put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=document)
        return f"{role}:{name}", {**reg.inputs, "name": name}


@functools.cache
def _bundled_aws_managed_policies() -> dict[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return json.loads(aws_managed_policies_data)


def aws_managed_policy_document(policy_arn: str) -> str:
    """The document of an AWS managed policy from moto's bundled copy (moto is the sandbox's server)."""
    name = policy_arn.removeprefix(AWS_MANAGED_POLICY_PREFIX).rsplit("/", 1)[-1]
    policies = _bundled_aws_managed_policies()
    if name not in policies:
        raise EnvctlError(f"the sandbox does not know the AWS managed policy {policy_arn}")
    return json.dumps(policies[name]["Document"])


@register("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
class RolePolicyAttachmentHandler(_IamHandler):
    """A managed policy (customer or AWS managed) attached to a role.

    Sandbox: moto loads AWS managed policies (arn:aws:iam::aws:policy/...) only when its server
    runs with MOTO_IAM_LOAD_MANAGED_POLICIES=true. Without them, an AWS managed policy is put
    on the role as an inline stand-in policy named `aws-managed-<PolicyName>`, with the
    document from moto's bundled copy of the AWS policies, so the role gets the same
    permissions; the output `sandboxInlineStandIn` names it. AWS always attaches.
    """

    replace_on = ("role", "policyArn")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        role, policy_arn = reg.inputs["role"], reg.inputs["policyArn"]
        iam = self.client(ctx, region)
        try:
            iam.attach_role_policy(RoleName=role, PolicyArn=policy_arn)
        except ClientError as error:
            if not (self.is_not_found(error) and policy_arn.startswith(AWS_MANAGED_POLICY_PREFIX)
                    and self._role_exists(iam, role)):
                raise
            stand_in = "aws-managed-" + policy_arn.rsplit("/", 1)[-1]
            iam.put_role_policy(RoleName=role, PolicyName=stand_in, PolicyDocument=aws_managed_policy_document(policy_arn))
            return f"{role}/{policy_arn}", {**reg.inputs, "sandboxInlineStandIn": stand_in}
        return f"{role}/{policy_arn}", dict(reg.inputs)

    def remove(self, iam: Any, old: StoredResource) -> None:
        role = old.inputs["role"]
        if stand_in := old.outputs.get("sandboxInlineStandIn"):
            iam.delete_role_policy(RoleName=role, PolicyName=stand_in)
        else:
            iam.detach_role_policy(RoleName=role, PolicyArn=old.inputs["policyArn"])

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        iam = self.client(ctx, region)
        role = old.inputs["role"]
        with self.missing_ok():
            if stand_in := old.outputs.get("sandboxInlineStandIn"):
                return stand_in in iam.list_role_policies(RoleName=role)["PolicyNames"]
            attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
            return any(policy["PolicyArn"] == old.inputs["policyArn"] for policy in attached)
        return False

    def _role_exists(self, iam: Any, role: str) -> bool:
        with self.missing_ok():
            iam.get_role(RoleName=role)
            return True
        return False


@register("aws:iam/instanceProfile:InstanceProfile")
class InstanceProfileHandler(_NamedIamHandler):
    """An instance profile holding one role (the Airflow host's); the role can be swapped in place.

    Sandbox: same as AWS for what envctl uses.
    """

    tag_api = TagApi("tag_instance_profile", "untag_instance_profile", resource="InstanceProfileName")
    describe_call = ("get_instance_profile", "InstanceProfileName", "InstanceProfile")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = name_or_autoname(reg.inputs, reg.name, max_length=128)
        iam = self.client(ctx, region)
        profile = iam.create_instance_profile(**compact(
            InstanceProfileName=name, Path=reg.inputs.get("path"), Tags=tag_list(ctx.tags(reg)),
        ))["InstanceProfile"]
        if reg.inputs.get("role"):
            iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=reg.inputs["role"])
        return name, self._outputs(ctx, reg, region, profile)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        iam = self.client(ctx, region)
        if input_changed(reg, old, "role"):
            self._remove_roles(iam, old.id)
            if reg.inputs.get("role"):
                iam.add_role_to_instance_profile(InstanceProfileName=old.id, RoleName=reg.inputs["role"])
        self.sync_tags(ctx, reg, old, region)
        return self._outputs(ctx, reg, region, self.describe(iam, old.id, reg.inputs))

    def remove(self, iam: Any, old: StoredResource) -> None:
        self._remove_roles(iam, old.id)
        iam.delete_instance_profile(InstanceProfileName=old.id)

    def result(self, ctx, reg, region, name, profile):
        if reg.inputs.get("role") and not profile["Roles"]:
            # The create was interrupted between making the profile and adding its role.
            self.client(ctx, region).add_role_to_instance_profile(InstanceProfileName=name, RoleName=reg.inputs["role"])
        return name, self._outputs(ctx, reg, region, profile)

    @staticmethod
    def _remove_roles(iam: Any, name: str) -> None:
        for role in iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"]:
            iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=role["RoleName"])

    def _outputs(self, ctx: SandboxContext, reg: Registration, region: str, profile: dict[str, Any]) -> dict[str, Any]:
        return {**self.named_outputs(ctx, reg, region, profile["InstanceProfileName"], profile["Arn"]),
                "uniqueId": profile["InstanceProfileId"]}


@register("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
class OpenIdConnectProviderHandler(_IamHandler):
    """An IAM OIDC identity provider (GitHub Actions' for the teams' deploy roles); its ARN is its id.

    Sandbox: moto stores the provider and refuses a second one for the same URL, as AWS does; it
    never verifies a token against it (AssumeRoleWithWebIdentity accepts any token), so the
    segregation tests act as a deploy role by AssumeRole (the admin is in every trust policy).
    """

    replace_on = ("url",)
    delete_before_replace = True
    remove_call = ("delete_open_id_connect_provider", "OpenIDConnectProviderArn")
    describe_call = ("get_open_id_connect_provider", "OpenIDConnectProviderArn", "")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        provider = self.client(ctx, region).create_open_id_connect_provider(
            Url=reg.inputs["url"], ClientIDList=list(reg.inputs.get("clientIdLists") or []),
            ThumbprintList=list(reg.inputs.get("thumbprintLists") or []), Tags=tag_list(ctx.tags(reg)),
        )
        return provider["OpenIDConnectProviderArn"], self._outputs(ctx, reg, provider["OpenIDConnectProviderArn"])

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        iam = self.client(ctx, region)
        for client_id in set(old.inputs.get("clientIdLists") or []) - set(reg.inputs.get("clientIdLists") or []):
            iam.remove_client_id_from_open_id_connect_provider(OpenIDConnectProviderArn=old.id, ClientID=client_id)
        for client_id in set(reg.inputs.get("clientIdLists") or []) - set(old.inputs.get("clientIdLists") or []):
            iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=old.id, ClientID=client_id)
        if input_changed(reg, old, "thumbprintLists"):
            iam.update_open_id_connect_provider_thumbprint(OpenIDConnectProviderArn=old.id,
                                                           ThumbprintList=list(reg.inputs.get("thumbprintLists") or []))
        return self._outputs(ctx, reg, old.id)

    def adoptable_id(self, ctx: SandboxContext, reg: Registration) -> str | None:
        return f"arn:aws:iam::{ctx.account_id}:oidc-provider/{reg.inputs['url'].removeprefix('https://')}"

    def result(self, ctx: SandboxContext, reg: Registration, region: str, resource_id: str,
               described: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return resource_id, self._outputs(ctx, reg, resource_id)

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, provider_arn: str) -> dict[str, Any]:
        return {**reg.inputs, "arn": provider_arn, "tagsAll": ctx.tags(reg)}
