"""Sandbox handlers for SageMaker (model, endpoint config, endpoint, notebook) and the
Application Auto Scaling target and policy that scale an endpoint's variant."""

from __future__ import annotations

import re
import time
from typing import Any

from botocore.exceptions import ClientError

from provisioner.engines.mocked import Registration
from provisioner.engines.sandbox.handlers.common import (
    api_shape, as_int, autoname, compact, input_changed, is_error, removed_tag_keys, tag_list,
)
from provisioner.engines.sandbox.handlers.registry import Handler, SandboxContext, register
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


def _is_not_found(error: ClientError) -> bool:
    """SageMaker answers a missing resource with a ValidationException ('Could not find ...', 'RecordNotFound')."""
    message = error.response.get("Error", {}).get("Message", "")
    return is_error(error, "ValidationException", "ResourceNotFound") and any(
        marker in message for marker in ("Could not find", "does not exist", "RecordNotFound"))


def _sync_sagemaker_tags(sagemaker: Any, resource_arn: str, old_tags: dict[str, str], new_tags: dict[str, str]) -> None:
    if removed := removed_tag_keys(old_tags, new_tags):
        sagemaker.delete_tags(ResourceArn=resource_arn, TagKeys=removed)
    if new_tags and new_tags != old_tags:
        sagemaker.add_tags(ResourceArn=resource_arn, Tags=tag_list(new_tags))


# --- SageMaker -------------------------------------------------------------------------------


@register("aws:sagemaker/model:Model")
class Model(Handler):
    """A SageMaker model: the inference image (and model data) run by the execution role.

    Autonamed `<logical name>-<7 random characters>` when the program gives no name; every
    change replaces it (AWS cannot change a model).
    Sandbox: moto's CreateModel silently overwrites a model of the same name where AWS
    refuses, so the handler checks first and refuses as AWS does; moto never pulls the image.
    """

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = reg.inputs.get("name") or autoname(reg.name, max_length=SAGEMAKER_NAME_MAX)
        if self._describe(ctx, name, region) is not None:
            raise EnvctlError(f"a SageMaker model named {name} already exists in the sandbox")
        inputs = reg.inputs
        model = ctx.client("sagemaker", region).create_model(**compact(
            ModelName=name,
            ExecutionRoleArn=inputs.get("executionRoleArn"),
            PrimaryContainer=self._container(inputs["primaryContainer"]) if inputs.get("primaryContainer") else None,
            Containers=[self._container(item) for item in inputs["containers"]] if inputs.get("containers") else None,
            VpcConfig=compact(SecurityGroupIds=inputs["vpcConfig"].get("securityGroupIds"),
                              Subnets=inputs["vpcConfig"].get("subnets")) if inputs.get("vpcConfig") else None,
            EnableNetworkIsolation=inputs.get("enableNetworkIsolation"),
            Tags=tag_list(ctx.tags(reg)),
        ))
        return name, {**inputs, "name": name, "arn": model["ModelArn"], "tagsAll": ctx.tags(reg)}

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        try:
            ctx.client("sagemaker", region).delete_model(ModelName=old.id)
        except ClientError as error:
            if not _is_not_found(error):
                raise

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        return self._describe(ctx, old.id, region) is not None

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        name = reg.inputs.get("name")
        model = self._describe(ctx, name, region) if name else None
        if model is None:
            return None
        return name, {**reg.inputs, "name": name, "arn": model["ModelArn"], "tagsAll": ctx.tags(reg)}

    @staticmethod
    def _describe(ctx: SandboxContext, name: str, region: str) -> dict[str, Any] | None:
        try:
            return ctx.client("sagemaker", region).describe_model(ModelName=name)
        except ClientError as error:
            if _is_not_found(error):
                return None
            raise

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
class EndpointConfiguration(Handler):
    """A SageMaker endpoint configuration: production variants (instances or serverless), KMS key.

    Autonamed like a model; every change replaces it.
    Sandbox: moto accepts only an old list of instance types (ml.g5, g6, p4d, p5, inf2 ...
    are rejected), so a rejected type is sent
    as the nearest accepted one (ml.g5.* -> ml.g4dn.*, ml.p4d/p5 -> ml.p3.*, newer m/c/r/t ->
    m5/c5/r5/t2, ml.inf2.* and anything else -> ml.m5.xlarge); the output
    `sandboxInstanceTypes` maps each requested type to the one moto got. Serverless variants
    are sent as they are.
    """

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = reg.inputs.get("name") or autoname(reg.name, max_length=SAGEMAKER_NAME_MAX)
        variants = [self._variant(item) for item in reg.inputs["productionVariants"]]
        config = ctx.client("sagemaker", region).create_endpoint_config(**compact(
            EndpointConfigName=name,
            ProductionVariants=variants,
            KmsKeyId=reg.inputs.get("kmsKeyArn") or None,
            Tags=tag_list(ctx.tags(reg)),
        ))
        mapped = {item["instanceType"]: sandbox_instance_type(item["instanceType"])
                  for item in reg.inputs["productionVariants"] if item.get("instanceType")}
        return name, {
            **reg.inputs, "name": name, "arn": config["EndpointConfigArn"], "tagsAll": ctx.tags(reg),
            "sandboxInstanceTypes": {requested: used for requested, used in mapped.items() if requested != used},
        }

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        try:
            ctx.client("sagemaker", region).delete_endpoint_config(EndpointConfigName=old.id)
        except ClientError as error:
            if not _is_not_found(error):
                raise

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        try:
            ctx.client("sagemaker", region).describe_endpoint_config(EndpointConfigName=old.id)
        except ClientError as error:
            if _is_not_found(error):
                return False
            raise
        return True

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
class Endpoint(Handler):
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

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = reg.inputs.get("name") or autoname(reg.name, max_length=SAGEMAKER_NAME_MAX)
        endpoint_arn = self._create(ctx, reg, name, region)
        self._wait_until_settled(ctx, name, reg.inputs["endpointConfigName"], region)
        return name, self._outputs(ctx, reg, name, endpoint_arn)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        sagemaker = ctx.client("sagemaker", region)
        endpoint_arn = old.outputs["arn"]
        if input_changed(reg, old, "endpointConfigName"):
            endpoint_arn = sagemaker.update_endpoint(
                EndpointName=old.id, EndpointConfigName=reg.inputs["endpointConfigName"])["EndpointArn"]
            self._wait_until_settled(ctx, old.id, reg.inputs["endpointConfigName"], region)
        _sync_sagemaker_tags(sagemaker, endpoint_arn, ctx.tags(old), ctx.tags(reg))
        return self._outputs(ctx, reg, old.id, endpoint_arn)

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        try:
            ctx.client("sagemaker", region).delete_endpoint(EndpointName=old.id)
        except ClientError as error:
            if not _is_not_found(error):
                raise

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        return self._describe(ctx, old.id, region) is not None

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        name = reg.inputs.get("name")
        endpoint = self._describe(ctx, name, region) if name else None
        return (name, self._outputs(ctx, reg, name, endpoint["EndpointArn"])) if endpoint else None

    def _wait_until_settled(self, ctx: SandboxContext, name: str, config_name: str, region: str) -> None:
        sagemaker = ctx.client("sagemaker", region)
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

    @staticmethod
    def _create(ctx: SandboxContext, reg: Registration, name: str, region: str) -> str:
        return ctx.client("sagemaker", region).create_endpoint(
            EndpointName=name, EndpointConfigName=reg.inputs["endpointConfigName"], Tags=tag_list(ctx.tags(reg)),
        )["EndpointArn"]

    @staticmethod
    def _describe(ctx: SandboxContext, name: str, region: str) -> dict[str, Any] | None:
        try:
            return ctx.client("sagemaker", region).describe_endpoint(EndpointName=name)
        except ClientError as error:
            if _is_not_found(error):
                return None
            raise

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, name: str, endpoint_arn: str) -> dict[str, Any]:
        return {**reg.inputs, "name": name, "arn": endpoint_arn, "tagsAll": ctx.tags(reg)}


@register("aws:sagemaker/notebookInstance:NotebookInstance")
class NotebookInstance(Handler):
    """A SageMaker notebook instance in the team's subnet, without internet or root access.

    Sandbox: the instance is InService at once and runs nothing; moto has no
    UpdateNotebookInstance, so every change (tags too) replaces it, where AWS would stop,
    update and restart it.
    """

    delete_before_replace = True

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        inputs = reg.inputs
        name = inputs.get("name") or autoname(reg.name, max_length=SAGEMAKER_NAME_MAX)
        notebook = ctx.client("sagemaker", region).create_notebook_instance(**compact(
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
        return name, self._outputs(ctx, reg, name, notebook["NotebookInstanceArn"])

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        sagemaker = ctx.client("sagemaker", region)
        notebook = self._describe(ctx, old.id, region)
        if notebook is None:
            return
        if notebook["NotebookInstanceStatus"] not in ("Stopped", "Failed"):
            sagemaker.stop_notebook_instance(NotebookInstanceName=old.id)
            sagemaker.get_waiter("notebook_instance_stopped").wait(NotebookInstanceName=old.id)
        sagemaker.delete_notebook_instance(NotebookInstanceName=old.id)

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        return self._describe(ctx, old.id, region) is not None

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        name = reg.inputs.get("name")
        notebook = self._describe(ctx, name, region) if name else None
        return (name, self._outputs(ctx, reg, name, notebook["NotebookInstanceArn"])) if notebook else None

    @staticmethod
    def _describe(ctx: SandboxContext, name: str, region: str) -> dict[str, Any] | None:
        try:
            return ctx.client("sagemaker", region).describe_notebook_instance(NotebookInstanceName=name)
        except ClientError as error:
            if _is_not_found(error):
                return None
            raise

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, name: str, notebook_arn: str) -> dict[str, Any]:
        return {**reg.inputs, "name": name, "arn": notebook_arn, "tagsAll": ctx.tags(reg)}


# --- Application Auto Scaling ----------------------------------------------------------------


def _scaling_key(inputs: dict[str, Any]) -> dict[str, str]:
    return {
        "ServiceNamespace": inputs["serviceNamespace"],
        "ResourceId": inputs["resourceId"],
        "ScalableDimension": inputs["scalableDimension"],
    }


@register("aws:appautoscaling/target:Target")
class ScalableTarget(Handler):
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

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        if self._describe(ctx, old.inputs, region) is not None:
            ctx.client("application-autoscaling", region).deregister_scalable_target(**_scaling_key(old.inputs))

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        return self._describe(ctx, old.inputs, region) is not None

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        target = self._describe(ctx, reg.inputs, region)
        if target is None:
            return None
        return reg.inputs["resourceId"], self._outputs(ctx, reg, target.get("ScalableTargetARN"))

    def _register(self, ctx: SandboxContext, reg: Registration, region: str) -> dict[str, Any]:
        inputs = reg.inputs
        registered = ctx.client("application-autoscaling", region).register_scalable_target(**compact(
            **_scaling_key(inputs),
            MinCapacity=as_int(inputs["minCapacity"]),
            MaxCapacity=as_int(inputs["maxCapacity"]),
            RoleARN=inputs.get("roleArn"),
            SuspendedState=api_shape(inputs["suspendedState"]) if inputs.get("suspendedState") else None,
            Tags=ctx.tags(reg) or None,
        ))
        return self._outputs(ctx, reg, registered.get("ScalableTargetARN"))

    @staticmethod
    def _describe(ctx: SandboxContext, inputs: dict[str, Any], region: str) -> dict[str, Any] | None:
        key = _scaling_key(inputs)
        targets = ctx.client("application-autoscaling", region).describe_scalable_targets(
            ServiceNamespace=key["ServiceNamespace"], ResourceIds=[key["ResourceId"]], ScalableDimension=key["ScalableDimension"],
        )["ScalableTargets"]
        return next((target for target in targets if target["ResourceId"] == key["ResourceId"]), None)

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, target_arn: str | None) -> dict[str, Any]:
        return {**reg.inputs, **compact(arn=target_arn), "tagsAll": ctx.tags(reg)}


@register("aws:appautoscaling/policy:Policy")
class ScalingPolicy(Handler):
    """An Application Auto Scaling policy (target tracking or step scaling) on a scalable target.

    Sandbox: moto stores the policy (and, for target tracking, creates its CloudWatch alarms)
    but never evaluates it, so the endpoint is never scaled.
    """

    replace_on = ("name", "serviceNamespace", "resourceId", "scalableDimension")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = reg.inputs.get("name") or autoname(reg.name, max_length=256)
        return name, self._put(ctx, reg, name, region)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        return self._put(ctx, reg, old.id, region)

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        if self._describe(ctx, old.inputs, old.id, region) is not None:
            ctx.client("application-autoscaling", region).delete_scaling_policy(PolicyName=old.id, **_scaling_key(old.inputs))

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        return self._describe(ctx, old.inputs, old.id, region) is not None

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        name = reg.inputs.get("name")
        policy = self._describe(ctx, reg.inputs, name, region) if name else None
        return (name, self._outputs(reg, name, policy["PolicyARN"], policy.get("Alarms", []))) if policy else None

    def _put(self, ctx: SandboxContext, reg: Registration, name: str, region: str) -> dict[str, Any]:
        inputs = reg.inputs
        put = ctx.client("application-autoscaling", region).put_scaling_policy(**compact(
            PolicyName=name,
            **_scaling_key(inputs),
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
    def _describe(ctx: SandboxContext, inputs: dict[str, Any], name: str, region: str) -> dict[str, Any] | None:
        policies = ctx.client("application-autoscaling", region).describe_scaling_policies(
            PolicyNames=[name], **_scaling_key(inputs),
        )["ScalingPolicies"]
        # moto ignores PolicyNames and matches ResourceId as a substring: filter exactly here.
        return next((policy for policy in policies
                     if policy["PolicyName"] == name and policy["ResourceId"] == inputs["resourceId"]), None)

    @staticmethod
    def _outputs(reg: Registration, name: str, policy_arn: str, alarms: list[dict[str, Any]]) -> dict[str, Any]:
        return {**reg.inputs, "name": name, "arn": policy_arn, "alarmArns": [alarm["AlarmARN"] for alarm in alarms]}
