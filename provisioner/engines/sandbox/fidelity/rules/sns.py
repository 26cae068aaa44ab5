"""SNS: an e-mail subscription stays pending until its recipient confirms it, and cannot be deleted then."""

from __future__ import annotations

from provisioner.engines.sandbox.fidelity.registry import Refusal, rule
from provisioner.engines.sandbox.fidelity.request import AwsRequest

# Protocols whose subscriptions only the recipient confirms (a link in a message); the sandbox
# delivers no message, so its subscriptions of these protocols stay pending.
CONFIRMED_BY_RECIPIENT = ("email", "email-json")


@rule("sns", "Unsubscribe")
def no_unsubscribe_while_pending(request: AwsRequest) -> Refusal | None:
    """Unsubscribe of a subscription that is pending confirmation fails with InvalidParameter
    ("Invalid parameter: SubscriptionArn Reason: Cannot unsubscribe a subscription that is pending
    confirmation"; Amazon SNS Developer Guide, "Deleting an Amazon SNS subscription and topic": SNS
    deletes it unconfirmed after 48 hours, or with its topic). moto confirms every subscription at
    once and deletes it on request.
    """
    subscription_arn = request.params.get("SubscriptionArn")
    if not subscription_arn:
        return None
    from moto.backends import get_backend

    subscription = get_backend("sns")[request.account][request.region].subscriptions.get(subscription_arn)
    if subscription is None or subscription.protocol not in CONFIRMED_BY_RECIPIENT:
        return None
    return Refusal("InvalidParameter",
                   "Invalid parameter: SubscriptionArn Reason: Cannot unsubscribe a subscription that is pending confirmation")
