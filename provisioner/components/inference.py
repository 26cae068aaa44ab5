"""InferenceService: a SageMaker real-time endpoint, instance-backed with autoscaling or serverless.

Models and endpoint configurations are immutable in SageMaker, so both are auto-named: a new
image, model data, instance type or count makes a new model and a new configuration, Pulumi
(create before delete) points the endpoint at the new configuration with UpdateEndpoint, and
only then deletes the old configuration and model. Nothing about the endpoint is ignored as
drift: what the request (and the team's promotion record, read by the engine) says is what the
endpoint serves after an apply. docs/architecture.md ("The inference model") has the whole story.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from provisioner.components.names import TeamNames

VARIANT = "AllTraffic"

# Instance families with local (instance store) NVMe volumes, besides those whose name marks it
# with a "d" after the generation (m5d, c5d, r5d, g4dn, p3dn, p4d, m6id ...): see EC2's
# "Instance store volumes" list (https://docs.aws.amazon.com/ec2/latest/instancetypes/ instance
# store specifications of each category).
_LOCAL_STORAGE_FAMILIES = frozenset({
    "g5", "g6", "g6e", "gr6", "p5", "p5e", "p5en", "trn1", "trn1n", "trn2", "dl1", "dl2q", "f1", "f2",
    "i3", "i3en", "i4i", "i4g", "i7i", "i7ie", "i8g", "im4gn", "is4gen", "d2", "d3", "d3en", "h1", "x1", "x1e",
})
_D_SUFFIX_FAMILY = re.compile(r"^[a-z]+\d+[a-z]*d[a-z]*$")


def has_instance_storage(instance_type: str) -> bool:
    """Whether a SageMaker instance type (`ml.<family>.<size>`) has local NVMe instance storage."""
    parts = instance_type.split(".")
    family = parts[1] if len(parts) == 3 and parts[0] == "ml" else parts[0]
    return family in _LOCAL_STORAGE_FAMILIES or bool(_D_SUFFIX_FAMILY.match(family))


def accepts_kms_key(settings: "InferenceSettings") -> bool:
    """CreateEndpointConfig refuses a KmsKeyId for serverless variants and for instance types with
    local storage ("You can't request a KmsKeyId when using an instance type with local storage",
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateEndpointConfig.html, KmsKeyId);
    their volumes are encrypted by the instance's hardware module instead."""
    return not settings.serverless and not has_instance_storage(settings.instance_type or "")


@dataclass
class InferenceSettings:
    """What the team asked for; plain values from its request (model data: the promoted one, if any)."""

    image: str = "default"  # "default" (envctl's image in the team's repository) or a full image URI
    model_data_url: str | None = None
    instance_type: str | None = None  # instance-backed when set
    instance_count: int = 1
    autoscaling_min: int | None = None
    autoscaling_max: int | None = None
    serverless_memory_mb: int | None = None  # serverless when set
    serverless_max_concurrency: int | None = None
    invocations_per_instance_target: float = 100.0

    @property
    def serverless(self) -> bool:
        return self.serverless_memory_mb is not None


@dataclass
class InferenceServiceArgs:
    team: str
    image: pulumi.Input[str]  # resolved image URI
    execution_role_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    settings: InferenceSettings
    serving: bool = True  # False while the environment is paused: the model and configuration, no endpoint


class InferenceService(pulumi.ComponentResource):
    def __init__(self, name: str, args: InferenceServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("envctl:index:InferenceService", name, None, opts)
        names = TeamNames(args.team)
        child = pulumi.ResourceOptions(parent=self)
        wanted = args.settings
        container: dict = {"image": args.image, "mode": "SingleModel"}
        if wanted.model_data_url:
            container["model_data_url"] = wanted.model_data_url
        # Auto-named: a change creates the new model (and config) first, the old one goes last.
        self.model = aws.sagemaker.Model(
            f"{name}-model", execution_role_arn=args.execution_role_arn, primary_container=container, opts=child,
        )
        variant: dict = {"variant_name": VARIANT, "model_name": self.model.name}
        config_extra: dict = {}
        if wanted.serverless:
            variant["serverless_config"] = {"memory_size_in_mb": wanted.serverless_memory_mb,
                                            "max_concurrency": wanted.serverless_max_concurrency}
        else:
            variant.update(instance_type=wanted.instance_type, initial_instance_count=wanted.instance_count)
        if accepts_kms_key(wanted):
            config_extra["kms_key_arn"] = args.kms_key_arn
        self.endpoint_config = aws.sagemaker.EndpointConfiguration(
            f"{name}-config", production_variants=[variant], opts=child, **config_extra,
        )
        self.endpoint: aws.sagemaker.Endpoint | None = None
        self.scaling_target = None
        if not args.serving:
            # Paused: nothing serves and nothing is billed by the hour; the resume creates the endpoint
            # again from the kept configuration.
            self.register_outputs({"endpoint_config_name": self.endpoint_config.name})
            return
        # A new config name is an in-place update (UpdateEndpoint): never ignored, never a replacement.
        self.endpoint = aws.sagemaker.Endpoint(
            f"{name}-endpoint", name=names.endpoint, endpoint_config_name=self.endpoint_config.name, opts=child,
        )
        if wanted.autoscaling_min is not None and wanted.autoscaling_max is not None and not wanted.serverless:
            resource_id = self.endpoint.name.apply(lambda endpoint: f"endpoint/{endpoint}/variant/{VARIANT}")
            self.scaling_target = aws.appautoscaling.Target(
                f"{name}-scaling-target", service_namespace="sagemaker", resource_id=resource_id,
                scalable_dimension="sagemaker:variant:DesiredInstanceCount",
                min_capacity=wanted.autoscaling_min, max_capacity=wanted.autoscaling_max, opts=child,
            )
            aws.appautoscaling.Policy(
                f"{name}-scaling-policy", policy_type="TargetTrackingScaling", service_namespace="sagemaker",
                resource_id=self.scaling_target.resource_id, scalable_dimension=self.scaling_target.scalable_dimension,
                target_tracking_scaling_policy_configuration={
                    "target_value": wanted.invocations_per_instance_target,
                    "predefined_metric_specification": {"predefined_metric_type": "SageMakerVariantInvocationsPerInstance"},
                    "scale_in_cooldown": 300, "scale_out_cooldown": 60,
                },
                opts=child,
            )
        self.register_outputs({"endpoint_name": self.endpoint.name})
