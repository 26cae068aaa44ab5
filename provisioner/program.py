"""The Pulumi program: `build(spec)` registers a team's whole environment. The only entry engines call.

Every run renders the whole environment from a validated spec; whatever it does not register
is deleted by the engine.
"""

from __future__ import annotations

import base64
import importlib
from dataclasses import dataclass, field
from typing import Callable

import pulumi
import pulumi_aws as aws

from provisioner.components.deploy import DeploySettings
from provisioner.components.environment import TeamEnvironment, TeamEnvironmentArgs, UserdataInputs
from provisioner.components.inference import InferenceSettings
from provisioner.components.kept import KeptData
from provisioner.components.names import TeamNames, team_tags
from provisioner.live_inputs import LiveInputs
from provisioner.spec import ResolvedSpec
from provisioner.userdata import UserdataContext, encode_for_instance, render_userdata, shipped_host_files

# The services envctl calls: with a custom endpoint only these are pointed at it.
ENDPOINT_SERVICES = (
    "ec2", "s3", "iam", "kms", "ecr", "cloudwatch", "logs", "sagemaker", "secretsmanager",
    "ssm", "sts", "appautoscaling", "budgets", "sns", "scheduler",
)


# pulumi_aws loads its submodules on first use; two threads doing that at once can fail.
PROVIDER_MODULES = ("appautoscaling", "budgets", "cloudwatch", "ebs", "ec2", "ec2transitgateway", "ecr", "iam", "kms",
                    "s3", "sagemaker", "scheduler", "secretsmanager", "sns", "ssm")


def preload_provider_modules() -> None:
    """Import the pulumi_aws submodules the program uses, before running it on several threads.

    pulumi_aws's submodules are lazy: importing one, or `aws.ec2`, gives a placeholder that
    loads on its first attribute access, so read one.
    """
    for module in PROVIDER_MODULES:
        hasattr(importlib.import_module(f"pulumi_aws.{module}"), "__all__")


@dataclass(frozen=True)
class BuildOptions:
    endpoint_url: str | None = None  # e.g. a moto server; None = AWS
    # What the engine read from the team's account before the run (live_inputs.py); None: assumed.
    live: LiveInputs | None = None
    kept: KeptData = field(default_factory=KeptData)  # data an earlier destroy kept: adopted, not created


def provider_args(spec: ResolvedSpec, options: BuildOptions) -> dict:
    tags = team_tags(spec.team, spec.spec.owners[0], spec.spec.cost_center)
    args: dict = {"region": spec.region, "default_tags": {"tags": tags}}
    if options.endpoint_url:
        args.update(
            endpoints=[{service: options.endpoint_url for service in ENDPOINT_SERVICES}],
            skip_credentials_validation=True, skip_requesting_account_id=False,
            skip_metadata_api_check=True, s3_use_path_style=True,
        )
    return args


def userdata_context(spec: ResolvedSpec, inputs: UserdataInputs) -> UserdataContext:
    names = TeamNames(spec.team)
    sso = spec.spec.airflow.sso
    return UserdataContext(
        team=spec.team, region=spec.region, environment=spec.spec.environment,
        airflow_version=spec.spec.airflow.version, bucket=inputs.bucket, log_group=names.log_group,
        kms_key_arn=inputs.kms_key_arn, data_volume_id=inputs.data_volume_id,
        bootstrap_parameter=names.bootstrap_parameter, dags_prefix=spec.spec.airflow.dags.prefix,
        secret_names=tuple(spec.spec.secrets), owners_parameter=names.owners_parameter,
        sagemaker_role_arn=inputs.sagemaker_role_arn, ecr_repository_url=inputs.ecr_repository_url,
        sso_issuer=sso.issuer if sso else "", sso_client_id=sso.client_id if sso else "",
        sso_client_secret=sso.client_secret if sso else "",
    )


def user_data_base64(spec: ResolvedSpec, inputs: UserdataInputs) -> str:
    encoded = encode_for_instance(render_userdata(userdata_context(spec, inputs)))
    if "user_data_base64" in encoded:
        return encoded["user_data_base64"]
    return base64.b64encode(encoded["user_data"].encode()).decode()


def inference_settings(spec: ResolvedSpec, live: LiveInputs) -> InferenceSettings | None:
    """The endpoint the request asks for, serving the promoted model data when the team's job promoted some."""
    wanted = spec.spec.sagemaker.inference
    if not wanted.enabled:
        return None
    settings = InferenceSettings(image=wanted.image, model_data_url=live.promoted_model_data or wanted.model_data)
    if wanted.serverless is not None:
        settings.serverless_memory_mb = wanted.serverless.memory_mb
        settings.serverless_max_concurrency = wanted.serverless.max_concurrency
    elif wanted.instance is not None:
        settings.instance_type = wanted.instance.type
        settings.instance_count = wanted.instance.count
        if wanted.instance.autoscaling is not None:
            settings.autoscaling_min = wanted.instance.autoscaling.min
            settings.autoscaling_max = wanted.instance.autoscaling.max
    return settings


def deploy_settings(spec: ResolvedSpec, live: LiveInputs) -> DeploySettings | None:
    """The team's CI role the request asks for (`deploy.github`), with the account's GitHub OIDC provider if any."""
    if spec.spec.deploy is None:
        return None
    github = spec.spec.deploy.github
    return DeploySettings(repository=github.repository, branch=github.branch, environment=github.environment,
                          oidc_provider_arn=live.github_oidc_provider_arn)


def awake_schedule(spec: ResolvedSpec) -> tuple[str, str, str] | None:
    """The request's `schedule:` as EventBridge Scheduler's (wake cron, sleep cron, time zone)."""
    schedule = spec.spec.schedule
    if schedule is None:
        return None
    return schedule.cron(schedule.start), schedule.cron(schedule.stop), schedule.timezone


def build(spec: ResolvedSpec, options: BuildOptions | None = None) -> TeamEnvironment:
    options = options or BuildOptions()
    live = options.live or LiveInputs.assumed()
    provider = aws.Provider("aws", **provider_args(spec, options))
    notebook = spec.spec.sagemaker.notebook
    args = TeamEnvironmentArgs(
        team=spec.team, region=spec.region, cidr=spec.cidr, environment=spec.spec.environment,
        owners=list(spec.spec.owners), budget_usd_month=spec.spec.budget_usd_month,
        airflow_instance_type=spec.spec.airflow.instance_type, airflow_volume_gb=spec.spec.airflow.volume_gb,
        secret_names=tuple(spec.spec.secrets),
        render_user_data_base64=lambda inputs: user_data_base64(spec, inputs),
        inference=inference_settings(spec, live), inference_image_tag=live.default_image_tag,
        notebook_instance_type=notebook.instance_type if notebook.enabled else None, kept=options.kept,
        dags_prefix=spec.spec.airflow.dags.prefix, deploy=deploy_settings(spec, live),
        host_files=shipped_host_files(spec.team),
        paused_since=live.paused_since, schedule=awake_schedule(spec), asleep_by_schedule=live.asleep_by_schedule,
    )
    return TeamEnvironment(spec.team, args, opts=pulumi.ResourceOptions(provider=provider))


def pulumi_program(spec: ResolvedSpec, options: BuildOptions | None = None) -> Callable[[], None]:
    """The inline program for the Automation API: build and export the outputs."""

    def program() -> None:
        environment = build(spec, options)
        for name, value in environment.outputs.items():
            pulumi.export(name, value)

    return program
