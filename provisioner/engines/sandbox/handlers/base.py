"""The base of every sandbox handler, declarative as moto's and cloud-custodian's resource classes are.

A handler declares its service, the error codes that mean "not found", its tag API and its describe
call; the base implements from those `exists`, `find` (name, or import id → describe → outputs),
tag sync and deletes that ignore what is already gone. A handler turns one resource of the program
into calls against the sandbox's moto server. Every handler's docstring must say where the sandbox
differs from AWS for that type (a meta-test checks it). Inputs arrive as the engine sees them:
camelCase keys, numbers as floats.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

from botocore.exceptions import ClientError

from provisioner.engines.sandbox.handlers.common import arn, is_error, removed_tag_keys, tag_list

if TYPE_CHECKING:
    from provisioner.engines.mocked import Registration
    from provisioner.engines.sandbox.handlers.context import SandboxContext
    from provisioner.engines.sandbox.state import StoredResource


@dataclass(frozen=True)
class TagApi:
    """How a service changes a resource's tags: its tag and untag calls and their parameter names."""

    tag: str                       # e.g. "tag_resource"
    untag: str                     # e.g. "untag_resource"
    resource: str                  # the parameter that names the resource, e.g. "KeyId"
    by_arn: bool = False           # the resource is named by its ARN (outputs["arn"]), not its id
    tags: str = "Tags"
    keys: str = "TagKeys"
    fields: tuple[str, str] | None = ("Key", "Value")  # a tag's field names; None: the tags go as a map
    fixed: tuple[tuple[str, str], ...] = ()            # parameters every call takes (SSM's ResourceType)

    def sync(self, client: Any, resource: str, old_tags: dict[str, str], new_tags: dict[str, str]) -> None:
        """Make the resource's tags `new_tags`, given that they were `old_tags`."""
        target = {self.resource: resource, **dict(self.fixed)}
        if removed := removed_tag_keys(old_tags, new_tags):
            getattr(client, self.untag)(**target, **{self.keys: removed})
        if new_tags and new_tags != old_tags:
            tags = tag_list(new_tags, *self.fields) if self.fields else new_tags
            getattr(client, self.tag)(**target, **{self.tags: tags})


class Handler:
    """Base class. A handler declares its `service` (and `not_found`, `tag_api`, `arn_field` or
    `arn_resource`) and implements `create`; `update` when AWS can change the resource in place;
    `remove` (or declares `remove_call`) to delete it; `describe` (or declares `describe_call`) to
    be checked by `exists` and adopted by `find`."""

    type_token: ClassVar[str] = ""
    # Input keys whose change forces a new resource (AWS cannot change them in place).
    replace_on: ClassVar[tuple[str, ...]] = ()
    # The name is fixed by the program: the old resource must go before the new one can exist.
    delete_before_replace: ClassVar[bool] = False
    # The boto3 service the handler calls.
    service: ClassVar[str] = ""
    # The error codes with which the service says a resource is not there (describe and delete).
    not_found: ClassVar[tuple[str, ...]] = ()
    tag_api: ClassVar[TagApi | None] = None
    # The one call that deletes the resource and the parameter that takes its id, e.g. ("delete_vpc", "VpcId").
    remove_call: ClassVar[tuple[str, str] | None] = None
    # The call that describes the resource, the parameter that takes its id and the key of the answer
    # that holds the resource ("" for the whole answer), e.g. ("get_role", "RoleName", "Role").
    describe_call: ClassVar[tuple[str, str, str] | None] = None
    # Where the ARN is: `arn_field` of what describe returns, else built from the name with
    # `arn_resource` (e.g. "log-group:{name}" makes arn:aws:<service>:<region>:<account>:log-group:<name>).
    arn_field: ClassVar[str] = ""
    arn_resource: ClassVar[str] = ""

    # --- what a handler implements -------------------------------------------------------------

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        """Change in place; the default is to replace."""
        raise NotImplementedError

    def remove(self, client: Any, old: StoredResource) -> None:
        """The calls that delete the resource; a not-found error from them means it is gone already."""
        assert self.remove_call is not None, f"{type(self).__name__} neither declares remove_call nor implements remove"
        method, parameter = self.remove_call
        getattr(client, method)(**{parameter: old.id})

    def describe(self, client: Any, resource_id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        """The resource as the service describes it; None (or a not-found error) when it is not there."""
        assert self.describe_call is not None, f"{type(self).__name__} neither declares describe_call nor implements describe"
        method, parameter, key = self.describe_call
        answer = getattr(client, method)(**{parameter: resource_id})
        return answer[key] if key else answer

    def adoptable_id(self, ctx: SandboxContext, reg: Registration) -> str | None:
        """The id `find` looks for: the resource's `name` input by default (None: nothing to look for)."""
        return reg.inputs.get("name")

    def result(self, ctx: SandboxContext, reg: Registration, region: str, resource_id: str,
                described: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The physical id and outputs that create and `find` return for the resource (`described` is what
        `describe` returned for it); by default the id, and the `named_outputs` with the ARN at `arn_field`."""
        resource_arn = described.get(self.arn_field) if self.arn_field else None
        return resource_id, self.named_outputs(ctx, reg, region, resource_id, resource_arn)

    # --- what the base does with that ----------------------------------------------------------

    def named_outputs(self, ctx: SandboxContext, reg: Registration, region: str, name: str,
                      resource_arn: str | None = None) -> dict[str, Any]:
        """The outputs most resources have: the inputs, the name, the ARN and the merged tags (`tagsAll`)."""
        if resource_arn is None:
            resource_arn = arn(self.service, region, ctx.account_id, self.arn_resource.format(name=name))
        return {**reg.inputs, "name": name, "arn": resource_arn, "tagsAll": ctx.tags(reg)}

    def client(self, ctx: SandboxContext, region: str) -> Any:
        return ctx.client(self.service, region)

    def is_not_found(self, error: ClientError) -> bool:
        return is_error(error, *self.not_found)

    @contextmanager
    def missing_ok(self) -> Iterator[None]:
        """Deleting (or reading) what is already gone is not an error: a not-found error ends the block quietly."""
        try:
            yield
        except ClientError as error:
            if not self.is_not_found(error):
                raise

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        with self.missing_ok():
            self.remove(self.client(ctx, region), old)

    def described(self, ctx: SandboxContext, resource_id: str, inputs: dict[str, Any], region: str) -> dict[str, Any] | None:
        with self.missing_ok():
            return self.describe(self.client(ctx, region), resource_id, inputs)
        return None

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        """Whether the resource is still in the sandbox (to notice a restarted server); a handler
        without `describe` cannot tell, and says yes."""
        if not self.can_describe:
            return True
        return self.described(ctx, old.id, old.inputs, region) is not None

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        """After an interrupted create, or for an import: the resource if it exists."""
        resource_id = self.adoptable_id(ctx, reg) if self.can_describe else None
        described = self.described(ctx, resource_id, reg.inputs, region) if resource_id else None
        return None if described is None else self.result(ctx, reg, region, resource_id, described)

    def sync_tags(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str,
                  resource: str | None = None) -> None:
        """Tag the resource with the registration's tags (the provider's merged with its own)."""
        assert self.tag_api is not None, f"{type(self).__name__} declares no tag_api"
        if resource is None:
            resource = old.outputs["arn"] if self.tag_api.by_arn else old.id
        self.tag_api.sync(self.client(ctx, region), resource, ctx.tags(old), ctx.tags(reg))

    @property
    def can_update(self) -> bool:
        return type(self).update is not Handler.update

    @property
    def can_describe(self) -> bool:
        return self.describe_call is not None or type(self).describe is not Handler.describe


def updated_outputs(reg: Registration, old: StoredResource) -> dict[str, Any]:
    """An update's outputs where AWS computes nothing new: the old computed outputs with the new inputs."""
    return {**{key: value for key, value in old.outputs.items() if key not in old.inputs}, **reg.inputs}
