"""InferenceService: a SageMaker real-time endpoint, instance-backed with autoscaling or serverless.

Retraining jobs in Airflow point the endpoint at new configurations, so the endpoint ignores
drift of its config name; envctl only replaces the config when the request itself changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from provisioner.components.names import TeamNames

VARIANT = "AllTraffic"


@dataclass
class InferenceSettings:
    """What the team asked for; plain values from its request."""

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


class InferenceService(pulumi.ComponentResource):
    def __init__(self, name: str, args: InferenceServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("envctl:index:InferenceService", name, None, opts)
        names = TeamNames(args.team)
        child = pulumi.ResourceOptions(parent=self)
        wanted = args.settings
        container: dict = {"image": args.image, "mode": "SingleModel"}
        if wanted.model_data_url:
            container["model_data_url"] = wanted.model_data_url
        # Models and configs are immutable in SageMaker: auto-named, so a change creates a new one first.
        self.model = aws.sagemaker.Model(
            f"{name}-model", execution_role_arn=args.execution_role_arn, primary_container=container, opts=child,
        )
        variant: dict = {"variant_name": VARIANT, "model_name": self.model.name}
        config_extra: dict = {}
        if wanted.serverless:
            variant["serverless_config"] = {"memory_size_in_mb": wanted.serverless_memory_mb, "max_concurrency": wanted.serverless_max_concurrency}
        else:
            variant.update(instance_type=wanted.instance_type, initial_instance_count=wanted.instance_count)
            config_extra["kms_key_arn"] = args.kms_key_arn  # SageMaker rejects a key for serverless variants
        self.endpoint_config = aws.sagemaker.EndpointConfiguration(
            f"{name}-config", production_variants=[variant], opts=child, **config_extra,
        )
        self.endpoint = aws.sagemaker.Endpoint(
            f"{name}-endpoint", name=names.endpoint, endpoint_config_name=self.endpoint_config.name,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["endpoint_config_name"]),
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
