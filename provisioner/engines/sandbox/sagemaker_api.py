"""SageMaker operations moto 5.2.5 lacks, served by the sandbox's own moto server process.

moto raises NotImplementedError for UpdateEndpoint. envctl's sandbox handler (a new endpoint
configuration for the team's endpoint) and a team's retraining job (promoting a model) both make
that call, against AWS and against the sandbox alike, so the sandbox's server answers it.
`install()` adds it to moto's SageMaker response and backend classes in the server process
(server_process.py calls it before the server starts; the tests' in-process server does too).

UpdateEndpoint, as AWS documents it
(https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_UpdateEndpoint.html):
- the endpoint and the new endpoint configuration must exist (ValidationException otherwise:
  "Could not find endpoint ..." / "Could not find endpoint configuration ...");
- an endpoint that is not InService cannot be updated: "Cannot update in-progress endpoint"; a Failed one
  neither (DescribeEndpoint: "DeleteEndpoint is the only operation that can be performed on a failed endpoint");
- the endpoint then serves the new configuration's variants; with RetainAllVariantProperties
  a variant of the same name keeps its current instance count and weight;
- "If the update would change the instance type for any model that is a target for auto
  scaling, the update fails" (and so does removing such a variant): deregister the scalable
  target first (https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-scaling-update.html).
Sandbox: the update is done at once here (AWS goes Updating -> InService over minutes, shifting
traffic to a new fleet); with a Docker engine, endpoint_containers.py then keeps the endpoint
Updating until the new model's containers answer. Deployment configs (blue/green, rolling) are
accepted and not applied.
DeleteModelPackage and DeleteModelPackageGroup (the team's model registry: the sandbox handler
and a team's clean-up call them): a version is deleted by name or ARN; a group is deleted only
when it holds no versions (AWS refuses to delete a group with model versions: delete them first;
the error code ConflictException is taken from the operation's documented errors, not observed).
"""

from __future__ import annotations

from typing import Any


def install() -> None:
    """Add UpdateEndpoint to moto's SageMaker (idempotent; keeps moto's own if it ever has one)."""
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    if not hasattr(SageMakerResponse, "update_endpoint"):
        SageMakerResponse.update_endpoint = _response_update_endpoint  # type: ignore[attr-defined]
    if not hasattr(SageMakerModelBackend, "update_endpoint"):
        SageMakerModelBackend.update_endpoint = _backend_update_endpoint  # type: ignore[attr-defined]
    if not hasattr(SageMakerResponse, "delete_model_package"):
        SageMakerResponse.delete_model_package = _response_delete_model_package  # type: ignore[attr-defined]
    if not hasattr(SageMakerResponse, "delete_model_package_group"):
        SageMakerResponse.delete_model_package_group = _response_delete_model_package_group  # type: ignore[attr-defined]


def _response_delete_model_package(self: Any) -> Any:
    from moto.core.responses import ActionResult

    backend, name = self.sagemaker_backend, self._get_param("ModelPackageName")
    for arn, package in list(backend.model_packages.items()):
        if name in (arn, package.model_package_name):
            del backend.model_packages[arn]
    return ActionResult({})  # AWS answers a missing version without an error too


def _response_delete_model_package_group(self: Any) -> Any:
    from moto.core.responses import ActionResult
    from moto.sagemaker.exceptions import ConflictException, ValidationError

    backend, name = self.sagemaker_backend, self._get_param("ModelPackageGroupName")
    group = backend.model_package_groups.get(name)
    if group is None:
        raise ValidationError(message=f"ModelPackageGroup {name} does not exist.")
    versions = [package for package in backend.model_packages.values() if package.model_package_group_name == name]
    if versions:
        raise ConflictException(f"Model package group {name} has {len(versions)} model versions: delete them "
                                        "(DeleteModelPackage) before the group.")
    del backend.model_package_groups[name]
    return ActionResult({})


def _response_update_endpoint(self: Any) -> Any:
    from moto.core.responses import ActionResult

    arn = self.sagemaker_backend.update_endpoint(
        endpoint_name=self._get_param("EndpointName"),
        endpoint_config_name=self._get_param("EndpointConfigName"),
        retain_all_variant_properties=bool(self._get_param("RetainAllVariantProperties", False)),
    )
    return ActionResult({"EndpointArn": arn})


def _backend_update_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str,
                             retain_all_variant_properties: bool = False) -> str:
    from moto.core.utils import utcnow
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import FakeEndpoint

    endpoint = self.endpoints.get(endpoint_name)
    if endpoint is None:
        arn = FakeEndpoint.arn_formatter(endpoint_name, self.account_id, self.region_name)
        raise ValidationError(message=f"Could not find endpoint '{arn}'.")
    if endpoint.endpoint_status == "Failed":  # "DeleteEndpoint is the only operation that can be performed on a failed endpoint"
        raise ValidationError(message=f"Cannot update failed endpoint '{endpoint.arn}': delete it and create it again.")
    if endpoint.endpoint_status != "InService":
        raise ValidationError(message=f"Cannot update in-progress endpoint '{endpoint.arn}'.")
    config = self.describe_endpoint_config(endpoint_config_name)  # ValidationException when missing
    _refuse_changes_to_scaled_variants(self, endpoint, config["ProductionVariants"])
    previous = {variant["VariantName"]: variant for variant in endpoint.production_variants}
    variants = endpoint._process_production_variants(config["ProductionVariants"])
    if retain_all_variant_properties:
        for variant in variants:
            kept = previous.get(variant["VariantName"], {})
            for key in ("CurrentInstanceCount", "DesiredInstanceCount", "CurrentWeight", "DesiredWeight"):
                if key in kept:
                    variant[key] = kept[key]
    endpoint.endpoint_config_name = endpoint_config_name
    endpoint.production_variants = variants
    endpoint.data_capture_config = config.get("DataCaptureConfig")
    endpoint.endpoint_status = "InService"
    endpoint.last_modified_time = utcnow()
    return endpoint.arn


def _refuse_changes_to_scaled_variants(backend: Any, endpoint: Any, new_variants: list[dict[str, Any]]) -> None:
    """AWS fails an update that changes the instance type of (or removes) a variant that is an
    Application Auto Scaling target."""
    from moto.applicationautoscaling.models import applicationautoscaling_backends
    from moto.sagemaker.exceptions import ValidationError

    current = backend.endpoint_configs.get(endpoint.endpoint_config_name)
    if current is None:  # deleted while in use: AWS loses track of the instance type too
        return
    scaled = applicationautoscaling_backends[backend.account_id][backend.region_name].targets.get(
        "sagemaker:variant:DesiredInstanceCount", {})
    wanted = {variant["VariantName"]: variant.get("InstanceType") for variant in new_variants}
    for variant in current.production_variants:
        name = variant["VariantName"]
        if f"endpoint/{endpoint.endpoint_name}/variant/{name}" not in scaled:
            continue
        if name not in wanted or wanted[name] != variant.get("InstanceType"):
            raise ValidationError(message=(
                f"The variant {name} of endpoint {endpoint.endpoint_name} is a target for automatic scaling: "
                "deregister it as a scalable target before changing its instance type or removing it."))
