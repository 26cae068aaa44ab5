"""Sandbox handlers for SageMaker (model, endpoint config, endpoint, notebook) and the
Application Auto Scaling target and policy that scale an endpoint's variant."""

from __future__ import annotations

import re
import time
from typing import Any

from botocore.exceptions import ClientError

from provisioner.engines.mocked import Registration
from provisioner.engines.sandbox.handlers.base import Handler, TagApi
from provisioner.engines.sandbox.handlers.catalog import register
from provisioner.engines.sandbox.handlers.common import (api_shape, as_int, compact, input_changed, is_error, name_or_autoname,
                                                        tag_list)
from provisioner.engines.sandbox.handlers.context import SandboxContext
from provisioner.engines.sandbox.state import StoredResource
from provisioner.errors import EnvctlError

SAGEMAKER_NAME_MAX = 63
ENDPOINT_IN_PROGRESS = ("Creating", "Updating", "SystemUpdating")  # what the provider waits through
ENDPOINT_SETTLE_TIMEOUT_S = 20 * 60  # the sandbox's containers: an image pull and four minutes of /ping at most
ENDPOINT_POLL_S = 0.5

# The endpoint instance types moto 5.2.5 accepts (an old list; AWS has many more).
MOTO_ENDPOINT_INSTANCE_TYPES = frozenset({
    "ml.t2.medium", "ml.t2.large", "ml.t2.xlarge", "ml.t2.2xlarge",
    "ml.m4.xlarge", "ml.m4.2xlarge", "ml.m4.4xlarge", "ml.m4.10xlarge", "ml.m4.16xlarge",
    "ml.m5.large", "ml.m5.xlarge", "ml.m5.2xlarge", "ml.m5.4xlarge", "ml.m5.12xlarge", "ml.m5.24xlarge",
    "ml.m5d.large", "ml.m5d.xlarge", "ml.m5d.2xlarge", "ml.m5d.4xlarge", "ml.m5d.12xlarge", "ml.m5d.24xlarge",
    "ml.c4.large", "ml.c4.xlarge", "ml.c4.2xlarge", "ml.c4.4xlarge", "ml.c4.8xlarge",
    "ml.c5.large", "ml.c5.xlarge", "ml.c5.2xlarge", "ml.c5.4xlarge", "ml.c5.9xlarge", "ml.c5.18xlarge",
    "ml.c5d.large", "ml.c5d.xlarge", "ml.c5d.2xlarge", "ml.c5d.4xlarge", "ml.c5d.9xlarge", "ml.c5d.18xlarge",
    "ml.r5.large", "ml.r5.xlarge", "ml.r5.2xlarge", "ml.r5.4xlarge", "ml.r5.12xlarge", "ml.r5.24xlarge",
    "ml.r5d.large", "ml.r5d.xlarge", "ml.r5d.2xlarge", "ml.r5d.4xlarge", "ml.r5d.12xlarge", "ml.r5d.24xlarge",
    "ml.p2.xlarge", "ml.p2.8xlarge", "ml.p2.16xlarge", "ml.p3.2xlarge", "ml.p3.8xlarge", "ml.p3.16xlarge",
    "ml.g4dn.xlarge", "ml.g4dn.2xlarge", "ml.g4dn.4xlarge", "ml.g4dn.8xlarge", "ml.g4dn.12xlarge", "ml.g4dn.16xlarge",
    "ml.inf1.xlarge", "ml.inf1.2xlarge", "ml.inf1.6xlarge", "ml.inf1.24xlarge",
})

# Newer family (by prefix) -> the older family moto knows with the same kind of hardware.
_FAMILY_STAND_INS = (
    (re.compile(r"^g\d"), "g4dn"),    # NVIDIA GPUs: g5, g6, g6e ...
    (re.compile(r"^p\d"), "p3"),      # large NVIDIA GPUs: p4d, p5 ...
    (re.compile(r"^m\d"), "m5"),
    (re.compile(r"^c\d"), "c5"),
    (re.compile(r"^r\d"), "r5"),
    (re.compile(r"^t\d"), "t2"),
)
# Accelerators without a like-for-like type in moto's list (Inferentia 2, Trainium) and anything unknown.
_FALLBACK_INSTANCE_TYPE = "ml.m5.xlarge"
# What to use within a stand-in family when the size does not exist there.
_FAMILY_DEFAULT_SIZE = {"g4dn": "xlarge", "p3": "2xlarge", "m5": "xlarge", "c5": "xlarge", "r5": "xlarge", "t2": "medium"}


def sandbox_instance_type(instance_type: str) -> str:
    """The endpoint instance type moto accepts nearest to the requested one (itself when accepted)."""
    if instance_type in MOTO_ENDPOINT_INSTANCE_TYPES:
        return instance_type
    _, family, size = (instance_type.split(".", 2) + ["", ""])[:3]
    for pattern, stand_in in _FAMILY_STAND_INS:
        if pattern.match(family):
            same_size = f"ml.{stand_in}.{size}"
            return same_size if same_size in MOTO_ENDPOINT_INSTANCE_TYPES else f"ml.{stand_in}.{_FAMILY_DEFAULT_SIZE[stand_in]}"
    return _FALLBACK_INSTANCE_TYPE


# --- SageMaker -------------------------------------------------------------------------------


class _SageMakerHandler(Handler):
    """SageMaker's not-found errors and tag API."""

    service = "sagemaker"
    tag_api = TagApi("add_tags", "delete_tags", resource="ResourceArn", by_arn=True)

    def is_not_found(self, error: ClientError) -> bool:
        """SageMaker answers a missing resource with a ValidationException ('Could not find ...', 'RecordNotFound')."""
        message = error.response.get("Error", {}).get("Message", "")
        return is_error(error, "ValidationException", "ResourceNotFound") and any(
            marker in message for marker in ("Could not find", "does not exist", "RecordNotFound"))


@register("aws:sagemaker/model:Model")
class ModelHandler(_SageMakerHandler):
    """A SageMaker model: the inference image (and model data) run by the execution role.

    Autonamed `<logical name>-<7 random characters>` when the program gives no name; every
    change replaces it (AWS cannot change a model).
    Sandbox: moto's CreateModel silently overwrites a model of the same name where AWS
    refuses, so the handler checks first and refuses as AWS does; moto never pulls the image.
    """

    arn_field, describe_call = "ModelArn", ("describe_model", "ModelName", "")
    remove_call = ("delete_model", "ModelName")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = name_or_autoname(reg.inputs, reg.name, max_length=SAGEMAKER_NAME_MAX)
        if self.described(ctx, name, reg.inputs, region) is not None:
            raise EnvctlError(f"a SageMaker model named {name} already exists in the sandbox")
        inputs = reg.inputs
        model = self.client(ctx, region).create_model(**compact(
            ModelName=name,
            ExecutionRoleArn=inputs.get("executionRoleArn"),
            PrimaryContainer=self._container(inputs["primaryContainer"]) if inputs.get("primaryContainer") else None,
            Containers=[self._container(item) for item in inputs["containers"]] if inputs.get("containers") else None,
            VpcConfig=compact(SecurityGroupIds=inputs["vpcConfig"].get("securityGroupIds"),
                              Subnets=inputs["vpcConfig"].get("subnets")) if inputs.get("vpcConfig") else None,
            EnableNetworkIsolation=inputs.get("enableNetworkIsolation"),
            Tags=tag_list(ctx.tags(reg)),
        ))
        return name, self.named_outputs(ctx, reg, region, name, model["ModelArn"])


    @staticmethod
    def _container(container: dict[str, Any]) -> dict[str, Any]:
        return compact(
            Image=container.get("image"),
            Mode=container.get("mode"),
            ModelDataUrl=container.get("modelDataUrl"),
            Environment=container.get("environment"),  # a user map: keys stay as written
            ContainerHostname=container.get("containerHostname"),
            ModelPackageName=container.get("modelPackageName"),
            ImageConfig=api_shape(container["imageConfig"]) if container.get("imageConfig") else None,
        )


@register("aws:sagemaker/endpointConfiguration:EndpointConfiguration")
class EndpointConfigurationHandler(_SageMakerHandler):
    """A SageMaker endpoint configuration: production variants (instances or serverless), KMS key.

    Autonamed like a model; every change replaces it.
    Sandbox: moto accepts only an old list of instance types (ml.g5, g6, p4d, p5, inf2 ...
    are rejected), so a rejected type is sent
    as the nearest accepted one (ml.g5.* -> ml.g4dn.*, ml.p4d/p5 -> ml.p3.*, newer m/c/r/t ->
    m5/c5/r5/t2, ml.inf2.* and anything else -> ml.m5.xlarge); the output
    `sandboxInstanceTypes` maps each requested type to the one moto got. Serverless variants
    are sent as they are.
    """

    arn_field, describe_call = "EndpointConfigArn", ("describe_endpoint_config", "EndpointConfigName", "")
    remove_call = ("delete_endpoint_config", "EndpointConfigName")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = name_or_autoname(reg.inputs, reg.name, max_length=SAGEMAKER_NAME_MAX)
        variants = [self._variant(item) for item in reg.inputs["productionVariants"]]
        config = self.client(ctx, region).create_endpoint_config(**compact(
            EndpointConfigName=name,
            ProductionVariants=variants,
            KmsKeyId=reg.inputs.get("kmsKeyArn") or None,
            Tags=tag_list(ctx.tags(reg)),
        ))
        return name, self.named_outputs(ctx, reg, region, name, config["EndpointConfigArn"])

    def named_outputs(self, ctx, reg, region, name, resource_arn=None):
        mapped = {item["instanceType"]: sandbox_instance_type(item["instanceType"])
                  for item in reg.inputs["productionVariants"] if item.get("instanceType")}
        return {**super().named_outputs(ctx, reg, region, name, resource_arn),
                "sandboxInstanceTypes": {requested: used for requested, used in mapped.items() if requested != used}}

    @staticmethod
    def _variant(variant: dict[str, Any]) -> dict[str, Any]:
        serverless = variant.get("serverlessConfig")
        weight = variant.get("initialVariantWeight")
        return compact(
            VariantName=variant.get("variantName") or "AllTraffic",
            ModelName=variant["modelName"],
            InstanceType=sandbox_instance_type(variant["instanceType"]) if variant.get("instanceType") else None,
            InitialInstanceCount=as_int(variant.get("initialInstanceCount")),
            InitialVariantWeight=float(weight) if weight is not None else None,
            AcceleratorType=variant.get("acceleratorType"),
            VolumeSizeInGB=as_int(variant.get("volumeSizeInGb")),
            ModelDataDownloadTimeoutInSeconds=as_int(variant.get("modelDataDownloadTimeoutInSeconds")),
            ContainerStartupHealthCheckTimeoutInSeconds=as_int(variant.get("containerStartupHealthCheckTimeoutInSeconds")),
            ServerlessConfig=compact(
                MemorySizeInMB=as_int(serverless["memorySizeInMb"]),
                MaxConcurrency=as_int(serverless["maxConcurrency"]),
                ProvisionedConcurrency=as_int(serverless.get("provisionedConcurrency")),
            ) if serverless else None,
        )


@register("aws:sagemaker/endpoint:Endpoint")
class EndpointHandler(_SageMakerHandler):
    """A SageMaker real-time endpoint serving an endpoint configuration; repointed in place.

    A new endpoint configuration is applied with UpdateEndpoint, as the provider does on AWS (the
    endpoint keeps its name and ARN; the engine deletes the old configuration only afterwards).
    Create and update wait, as the provider does, until the endpoint is no longer Creating or
    Updating: Failed is an error with SageMaker's FailureReason, and so is an update that left the
    endpoint InService on its previous configuration (the provider would record that as drift).
    Sandbox: moto lacks UpdateEndpoint, so the sandbox's server serves it (sagemaker_api.py); with a
    Docker engine the server runs the model's image as a local container and the endpoint is
    InService once it answers /ping (endpoint_containers.py), else InService at once.
    """

    replace_on = ("name",)
    delete_before_replace = True
    arn_field, describe_call = "EndpointArn", ("describe_endpoint", "EndpointName", "")
    remove_call = ("delete_endpoint", "EndpointName")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = name_or_autoname(reg.inputs, reg.name, max_length=SAGEMAKER_NAME_MAX)
        endpoint_arn = self.client(ctx, region).create_endpoint(
            EndpointName=name, EndpointConfigName=reg.inputs["endpointConfigName"], Tags=tag_list(ctx.tags(reg)),
        )["EndpointArn"]
        self._wait_until_settled(ctx, name, reg.inputs["endpointConfigName"], region)
        return name, self.named_outputs(ctx, reg, region, name, endpoint_arn)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        endpoint_arn = old.outputs["arn"]
        if input_changed(reg, old, "endpointConfigName"):
            endpoint_arn = self.client(ctx, region).update_endpoint(
                EndpointName=old.id, EndpointConfigName=reg.inputs["endpointConfigName"])["EndpointArn"]
            self._wait_until_settled(ctx, old.id, reg.inputs["endpointConfigName"], region)
        self.sync_tags(ctx, reg, old, region, endpoint_arn)
        return self.named_outputs(ctx, reg, region, old.id, endpoint_arn)

    def _wait_until_settled(self, ctx: SandboxContext, name: str, config_name: str, region: str) -> None:
        sagemaker = self.client(ctx, region)
        deadline = time.monotonic() + ENDPOINT_SETTLE_TIMEOUT_S
        endpoint = sagemaker.describe_endpoint(EndpointName=name)
        while endpoint["EndpointStatus"] in ENDPOINT_IN_PROGRESS:
            if time.monotonic() > deadline:
                raise EnvctlError(f"endpoint {name} is still {endpoint['EndpointStatus']} after "
                                  f"{ENDPOINT_SETTLE_TIMEOUT_S / 60:.0f} minutes")
            time.sleep(ENDPOINT_POLL_S)
            endpoint = sagemaker.describe_endpoint(EndpointName=name)
        reason = endpoint.get("FailureReason") or "no reason given"
        if endpoint["EndpointStatus"] != "InService":
            raise EnvctlError(f"endpoint {name} is {endpoint['EndpointStatus']}: {reason}")
        if endpoint["EndpointConfigName"] != config_name:
            raise EnvctlError(f"endpoint {name} could not move to configuration {config_name} and still serves "
                              f"{endpoint['EndpointConfigName']}: {reason}")


@register("aws:sagemaker/notebookInstance:NotebookInstance")
class NotebookInstanceHandler(_SageMakerHandler):
    """A SageMaker notebook instance in the team's subnet, without internet or root access.

    Sandbox: the instance is InService at once and runs nothing; moto has no
    UpdateNotebookInstance, so every change (tags too) replaces it, where AWS would stop,
    update and restart it.
    """

    delete_before_replace = True
    arn_field, describe_call = "NotebookInstanceArn", ("describe_notebook_instance", "NotebookInstanceName", "")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        inputs = reg.inputs
        name = name_or_autoname(inputs, reg.name, max_length=SAGEMAKER_NAME_MAX)
        notebook = self.client(ctx, region).create_notebook_instance(**compact(
            NotebookInstanceName=name,
            InstanceType=inputs["instanceType"],
            RoleArn=inputs["roleArn"],
            SubnetId=inputs.get("subnetId"),
            SecurityGroupIds=inputs.get("securityGroups"),
            KmsKeyId=inputs.get("kmsKeyId"),
            LifecycleConfigName=inputs.get("lifecycleConfigName"),
            DirectInternetAccess=inputs.get("directInternetAccess"),
            VolumeSizeInGB=as_int(inputs.get("volumeSize")),
            AcceleratorTypes=inputs.get("acceleratorTypes"),
            DefaultCodeRepository=inputs.get("defaultCodeRepository"),
            AdditionalCodeRepositories=inputs.get("additionalCodeRepositories"),
            RootAccess=inputs.get("rootAccess"),
            PlatformIdentifier=inputs.get("platformIdentifier"),
            Tags=tag_list(ctx.tags(reg)),
        ))
        return name, self.named_outputs(ctx, reg, region, name, notebook["NotebookInstanceArn"])

    def remove(self, sagemaker: Any, old: StoredResource) -> None:
        notebook = self.describe(sagemaker, old.id, old.inputs)
        if notebook["NotebookInstanceStatus"] not in ("Stopped", "Failed"):
            sagemaker.stop_notebook_instance(NotebookInstanceName=old.id)
            sagemaker.get_waiter("notebook_instance_stopped").wait(NotebookInstanceName=old.id)
        sagemaker.delete_notebook_instance(NotebookInstanceName=old.id)


# --- Application Auto Scaling ----------------------------------------------------------------


class _ScalingHandler(Handler):
    """Application Auto Scaling names a target by three inputs; the handlers describe by them."""

    service = "application-autoscaling"

    @staticmethod
    def scaling_key(inputs: dict[str, Any]) -> dict[str, str]:
        return {
            "ServiceNamespace": inputs["serviceNamespace"],
            "ResourceId": inputs["resourceId"],
            "ScalableDimension": inputs["scalableDimension"],
        }

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        """Only what is there: describing finds a missing one without an error code to ignore."""
        if self.described(ctx, old.id, old.inputs, region) is not None:
            self.remove(self.client(ctx, region), old)


@register("aws:appautoscaling/target:Target")
class ScalableTargetHandler(_ScalingHandler):
    """An Application Auto Scaling target: the capacity range of an endpoint variant.

    Sandbox: moto stores the target but never scales anything, and does not keep its tags
    (they are sent as to AWS).
    """

    replace_on = ("serviceNamespace", "resourceId", "scalableDimension")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        return reg.inputs["resourceId"], self._register(ctx, reg, region)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        # RegisterScalableTarget on an existing target changes its capacity range in place.
        return self._register(ctx, reg, region)

    def remove(self, autoscaling: Any, old: StoredResource) -> None:
        autoscaling.deregister_scalable_target(**self.scaling_key(old.inputs))

    def describe(self, autoscaling: Any, resource_id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        key = self.scaling_key(inputs)
        targets = autoscaling.describe_scalable_targets(
            ServiceNamespace=key["ServiceNamespace"], ResourceIds=[key["ResourceId"]], ScalableDimension=key["ScalableDimension"],
        )["ScalableTargets"]
        return next((target for target in targets if target["ResourceId"] == key["ResourceId"]), None)

    def adoptable_id(self, ctx: SandboxContext, reg: Registration) -> str | None:
        return reg.inputs["resourceId"]

    def result(self, ctx, reg, region, resource_id, target):
        return resource_id, self._outputs(ctx, reg, target.get("ScalableTargetARN"))

    def _register(self, ctx: SandboxContext, reg: Registration, region: str) -> dict[str, Any]:
        inputs = reg.inputs
        registered = self.client(ctx, region).register_scalable_target(**compact(
            **self.scaling_key(inputs),
            MinCapacity=as_int(inputs["minCapacity"]),
            MaxCapacity=as_int(inputs["maxCapacity"]),
            RoleARN=inputs.get("roleArn"),
            SuspendedState=api_shape(inputs["suspendedState"]) if inputs.get("suspendedState") else None,
            Tags=ctx.tags(reg) or None,
        ))
        return self._outputs(ctx, reg, registered.get("ScalableTargetARN"))

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, target_arn: str | None) -> dict[str, Any]:
        return {**reg.inputs, **compact(arn=target_arn), "tagsAll": ctx.tags(reg)}


@register("aws:appautoscaling/policy:Policy")
class ScalingPolicyHandler(_ScalingHandler):
    """An Application Auto Scaling policy (target tracking or step scaling) on a scalable target.

    Sandbox: moto stores the policy (and, for target tracking, creates its CloudWatch alarms)
    but never evaluates it, so the endpoint is never scaled.
    """

    replace_on = ("name", "serviceNamespace", "resourceId", "scalableDimension")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = name_or_autoname(reg.inputs, reg.name, max_length=256)
        return name, self._put(ctx, reg, name, region)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        return self._put(ctx, reg, old.id, region)

    def remove(self, autoscaling: Any, old: StoredResource) -> None:
        autoscaling.delete_scaling_policy(PolicyName=old.id, **self.scaling_key(old.inputs))

    def describe(self, autoscaling: Any, name: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        policies = autoscaling.describe_scaling_policies(PolicyNames=[name], **self.scaling_key(inputs))["ScalingPolicies"]
        # moto ignores PolicyNames and matches ResourceId as a substring: filter exactly here.
        return next((policy for policy in policies
                     if policy["PolicyName"] == name and policy["ResourceId"] == inputs["resourceId"]), None)

    def result(self, ctx, reg, region, name, policy):
        return name, self._outputs(reg, name, policy["PolicyARN"], policy.get("Alarms", []))

    def _put(self, ctx: SandboxContext, reg: Registration, name: str, region: str) -> dict[str, Any]:
        inputs = reg.inputs
        put = self.client(ctx, region).put_scaling_policy(**compact(
            PolicyName=name,
            **self.scaling_key(inputs),
            PolicyType=inputs.get("policyType", "StepScaling"),
            TargetTrackingScalingPolicyConfiguration=api_shape(inputs["targetTrackingScalingPolicyConfiguration"])
            if inputs.get("targetTrackingScalingPolicyConfiguration") else None,
            StepScalingPolicyConfiguration=self._step_scaling(inputs["stepScalingPolicyConfiguration"])
            if inputs.get("stepScalingPolicyConfiguration") else None,
        ))
        return self._outputs(reg, name, put["PolicyARN"], put.get("Alarms", []))

    @staticmethod
    def _step_scaling(config: dict[str, Any]) -> dict[str, Any]:
        shaped = api_shape(config)
        for step in shaped.get("StepAdjustments", []):
            # Pulumi passes the interval bounds as strings; the API wants numbers.
            for bound in ("MetricIntervalLowerBound", "MetricIntervalUpperBound"):
                if step.get(bound) not in (None, ""):
                    step[bound] = float(step[bound])
                else:
                    step.pop(bound, None)
        return shaped

    @staticmethod
    def _outputs(reg: Registration, name: str, policy_arn: str, alarms: list[dict[str, Any]]) -> dict[str, Any]:
        return {**reg.inputs, "name": name, "arn": policy_arn, "alarmArns": [alarm["AlarmARN"] for alarm in alarms]}
