"""Sandbox handler for the SageMaker model package group (the team's model registry)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from provisioner.engines.kept_data import delete_model_versions
from provisioner.engines.mocked import Registration
from provisioner.engines.sandbox.handlers.common import is_error, removed_tag_keys, tag_list
from provisioner.engines.sandbox.handlers.registry import Handler, SandboxContext, register
from provisioner.engines.sandbox.state import StoredResource
from provisioner.errors import EnvctlError


@register("aws:sagemaker/modelPackageGroup:ModelPackageGroup")
class ModelPackageGroup(Handler):
    """A SageMaker model package group: the versions a team's retraining job registers.

    A new name or description replaces it (AWS has no update but tags). The versions the team's
    job registered are its data, like the bucket's objects: a destroy with --delete-data deletes
    them first (both engines: kept_data.delete_model_versions), without it the group is not
    deleted while it holds any (AWS refuses DeleteModelPackageGroup then).
    Sandbox: moto lacks both deletes; the sandbox's server serves them (sagemaker_api.py).
    """

    replace_on = ("modelPackageGroupName", "modelPackageGroupDescription")
    delete_before_replace = True  # the name is fixed

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = reg.inputs["modelPackageGroupName"]
        created = ctx.client("sagemaker", region).create_model_package_group(
            ModelPackageGroupName=name, ModelPackageGroupDescription=reg.inputs.get("modelPackageGroupDescription") or "",
            Tags=tag_list(ctx.tags(reg)),
        )
        return name, self._outputs(ctx, reg, created["ModelPackageGroupArn"])

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        sagemaker = ctx.client("sagemaker", region)
        group_arn = old.outputs["arn"]
        old_tags, new_tags = ctx.tags(old), ctx.tags(reg)
        if removed := removed_tag_keys(old_tags, new_tags):
            sagemaker.delete_tags(ResourceArn=group_arn, TagKeys=removed)
        if new_tags and new_tags != old_tags:
            sagemaker.add_tags(ResourceArn=group_arn, Tags=tag_list(new_tags))
        return self._outputs(ctx, reg, group_arn)

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        if self._describe(ctx, old.id, region) is None:
            return
        sagemaker = ctx.client("sagemaker", region)
        if ctx.delete_data:
            delete_model_versions(sagemaker, old.id)
        try:
            sagemaker.delete_model_package_group(ModelPackageGroupName=old.id)
        except ClientError as error:
            if is_error(error, "ConflictException"):
                raise EnvctlError(f"model package group {old.id} holds the models the team's retraining job registered; "
                                  "they are the team's data and are not deleted",
                                  hint="destroy with --delete-data to delete them with the group") from None
            raise

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        return self._describe(ctx, old.id, region) is not None

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        name = reg.inputs["modelPackageGroupName"]
        group = self._describe(ctx, name, region)
        return (name, self._outputs(ctx, reg, group["ModelPackageGroupArn"])) if group else None

    @staticmethod
    def _describe(ctx: SandboxContext, name: str, region: str) -> dict[str, Any] | None:
        try:
            return ctx.client("sagemaker", region).describe_model_package_group(ModelPackageGroupName=name)
        except ClientError as error:
            if is_error(error, "ValidationException", "ResourceNotFound"):
                return None
            raise

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, group_arn: str) -> dict[str, Any]:
        return {**reg.inputs, "arn": group_arn, "tagsAll": ctx.tags(reg)}
