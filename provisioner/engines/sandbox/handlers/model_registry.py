"""Sandbox handler for the SageMaker model package group (the team's model registry)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from provisioner.engines.kept_data import delete_model_versions
from provisioner.engines.mocked import Registration
from provisioner.engines.sandbox.handlers.catalog import register
from provisioner.engines.sandbox.handlers.common import is_error, tag_list
from provisioner.engines.sandbox.handlers.context import SandboxContext
from provisioner.engines.sandbox.handlers.inference import _SageMakerHandler
from provisioner.engines.sandbox.state import StoredResource
from provisioner.errors import EnvctlError


@register("aws:sagemaker/modelPackageGroup:ModelPackageGroup")
class ModelPackageGroupHandler(_SageMakerHandler):
    """A SageMaker model package group: the versions a team's retraining job registers.

    A new name or description replaces it (AWS has no update but tags). The versions the team's
    job registered are its data, like the bucket's objects: a destroy with --delete-data deletes
    them first (both engines: kept_data.delete_model_versions), without it the group is not
    deleted while it holds any (AWS refuses DeleteModelPackageGroup then).
    Sandbox: moto lacks both deletes; the sandbox's server serves them (sagemaker_api.py).
    """

    replace_on = ("modelPackageGroupName", "modelPackageGroupDescription")
    delete_before_replace = True  # the name is fixed
    arn_field = "ModelPackageGroupArn"
    describe_call = ("describe_model_package_group", "ModelPackageGroupName", "")

    def is_not_found(self, error: ClientError) -> bool:
        return is_error(error, "ValidationException", "ResourceNotFound")

    def adoptable_id(self, ctx: SandboxContext, reg: Registration) -> str | None:
        return reg.inputs["modelPackageGroupName"]

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = reg.inputs["modelPackageGroupName"]
        created = self.client(ctx, region).create_model_package_group(
            ModelPackageGroupName=name, ModelPackageGroupDescription=reg.inputs.get("modelPackageGroupDescription") or "",
            Tags=tag_list(ctx.tags(reg)),
        )
        return name, self._outputs(ctx, reg, created["ModelPackageGroupArn"])

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        self.sync_tags(ctx, reg, old, region)
        return self._outputs(ctx, reg, old.outputs["arn"])

    def result(self, ctx: SandboxContext, reg: Registration, region: str, resource_id: str,
               described: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return resource_id, self._outputs(ctx, reg, described["ModelPackageGroupArn"])

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        if self.described(ctx, old.id, old.inputs, region) is None:
            return
        sagemaker = self.client(ctx, region)
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

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, group_arn: str) -> dict[str, Any]:
        return {**reg.inputs, "arn": group_arn, "tagsAll": ctx.tags(reg)}
