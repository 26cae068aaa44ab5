"""What the sandbox's EC2 handlers (network and compute) share: EC2's tags, ARNs and adoption by tag.

Resources EC2 names by itself (vpc-…, subnet-…) carry one extra tag in the sandbox,
`envctl:sandbox-urn` (a digest of the resource's URN), so that a create interrupted by a
killed process can be found by it and adopted instead of leaking.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from provisioner.engines.mocked import Registration
from provisioner.engines.sandbox.handlers.base import Handler, updated_outputs
from provisioner.engines.sandbox.handlers.common import tag_list
from provisioner.engines.sandbox.handlers.context import SandboxContext
from provisioner.engines.sandbox.state import StoredResource

URN_TAG = "envctl:sandbox-urn"


def urn_digest(urn: str) -> str:
    return hashlib.sha256(urn.encode()).hexdigest()[:20]


def filters(name: str, *values: str) -> list[dict[str, Any]]:
    """An EC2 describe filter: `name` is one of `values`."""
    return [{"Name": name, "Values": list(values)}]


class Ec2Handler(Handler):
    """Base of the EC2 handlers: a handler declares how EC2 lists its kind of resource; `find` adopts
    the one with the registration's URN tag, `exists` looks for the id (when `id_filter` is set), and
    `update` configures and retags in place."""

    service = "ec2"
    # The describe call that lists the kind, the key of its list in the answer, and the field with the id.
    listing: ClassVar[tuple[str, str, str]] = ("", "", "")
    # The describe filter by id (e.g. "vpc-id"); without one, `exists` cannot tell and says yes.
    id_filter: ClassVar[str] = ""
    # The kind in TagSpecifications and in the resource's ARN (e.g. "vpc").
    kind: ClassVar[str] = ""

    def configure(self, ec2: Any, resource_id: str, inputs: dict[str, Any]) -> None:
        """What create and update both set once the resource exists (attributes, rules, routes): nothing by default."""

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        self.configure(self.client(ctx, region), old.id, reg.inputs)
        self.sync_tags(ctx, reg, old, region)
        return updated_outputs(reg, old)

    def listed(self, ec2: Any, by: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The resources of this kind that match the filters `by` (and are not on their way out)."""
        call, key, _ = self.listing
        return getattr(ec2, call)(Filters=by)[key]

    def describe(self, ec2: Any, resource_id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        return next(iter(self.listed(ec2, filters(self.id_filter, resource_id))), None)

    @property
    def can_describe(self) -> bool:
        return bool(self.id_filter)

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        found = self.listed(self.client(ctx, region), filters(f"tag:{URN_TAG}", urn_digest(reg.urn)))
        if not found:
            return None
        return self.result(ctx, reg, region, found[0][self.listing[2]], found[0])

    @staticmethod
    def ec2_tags(ctx: SandboxContext, reg: Registration | StoredResource) -> dict[str, str]:
        return {**ctx.tags(reg), URN_TAG: urn_digest(reg.urn)}

    def tag_spec(self, ctx: SandboxContext, reg: Registration, kind: str = "") -> list[dict[str, Any]]:
        return [{"ResourceType": kind or self.kind, "Tags": tag_list(self.ec2_tags(ctx, reg))}]

    def sync_tags(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str,
                  resource: str | None = None) -> None:
        ec2 = self.client(ctx, region)
        new, before = self.ec2_tags(ctx, reg), self.ec2_tags(ctx, old)
        gone = [k for k in before if k not in new]
        if gone:
            ec2.delete_tags(Resources=[resource or old.id], Tags=[{"Key": k} for k in gone])
        if new != before:
            ec2.create_tags(Resources=[resource or old.id], Tags=tag_list(new))

    def arn(self, ctx: SandboxContext, region: str, resource_id: str) -> str:
        return f"arn:aws:ec2:{region}:{ctx.account_id}:{self.kind}/{resource_id}"
