"""TeamEnvironment: composes a team's network, storage, boundary, Airflow host, SageMaker and inference."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pulumi
import pulumi_aws as aws

from provisioner.components import policies
from provisioner.components.alerts import TeamAlerts, TeamAlertsArgs
from provisioner.components.airflow_host import AirflowHost, AirflowHostArgs
from provisioner.components.boundary import PermissionsBoundary, PermissionsBoundaryArgs
from provisioner.components.deploy import DeployAccess, DeployAccessArgs, DeploySettings
from provisioner.components.inference import InferenceService, InferenceServiceArgs, InferenceSettings
from provisioner.components.kept import KeptData
from provisioner.components.names import TeamNames
from provisioner.components.network import TeamNetwork, TeamNetworkArgs
from provisioner.components.placement import existing_hosts, host_zone
from provisioner.components.sagemaker import SageMakerAccess, SageMakerAccessArgs
from provisioner.components.schedule import AwakeSchedule, AwakeScheduleArgs
from provisioner.components.storage import TeamStorage, TeamStorageArgs

AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


@dataclass
class UserdataInputs:
    """What the userdata renderer gets once the resources it names exist."""

    bucket: str
    kms_key_arn: str
    data_volume_id: str
    sagemaker_role_arn: str = ""  # for the team's DAGs (the role is made after the host, its ARN is known before)
    ecr_repository_url: str = ""


@dataclass
class TeamEnvironmentArgs:
    team: str
    region: str
    cidr: str
    environment: str  # prod | dev
    owners: list[str]
    budget_usd_month: int
    airflow_instance_type: str
    airflow_volume_gb: int
    secret_names: tuple[str, ...]
    render_user_data_base64: Callable[[UserdataInputs], str]
    inference: InferenceSettings | None  # None: no endpoint
    # The tag of envctl's default inference image in the team's repository; None: not pushed yet,
    # so a request for the default image gets no model, config or endpoint until it is.
    inference_image_tag: str | None
    notebook_instance_type: str | None
    kept: KeptData = field(default_factory=KeptData)  # the team's data an earlier destroy kept
    dags_prefix: str = "dags/"
    deploy: DeploySettings | None = None  # the team's own CI (`deploy:`); None: no deploy role
    host_files: dict[str, str] = field(default_factory=dict)  # SSM parameter name -> value (AirflowHostArgs)
    # The pause record's time (`envctl pause`): the host stopped, no endpoint (model and configuration kept).
    paused_since: str | None = None
    # `schedule:` (dev only): (wake cron, sleep cron, time zone) of EventBridge Scheduler; None: always awake.
    schedule: tuple[str, str, str] | None = None
    asleep_by_schedule: bool = False  # the schedule says the host is stopped now: an apply keeps it stopped


class TeamEnvironment(pulumi.ComponentResource):
    def __init__(self, name: str, args: TeamEnvironmentArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("envctl:index:TeamEnvironment", name, None, opts)
        names = TeamNames(args.team)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        # placement.py: the zone and the AMI follow what already runs, the same on every engine.
        hosts = existing_hosts(args.team, invoke)
        zone = host_zone(args.team, args.region, args.airflow_instance_type, hosts, invoke)

        self.network = TeamNetwork(f"{name}-network", TeamNetworkArgs(args.team, args.region, args.cidr, zone), opts=child)
        self.storage = TeamStorage(
            f"{name}-storage",
            TeamStorageArgs(
                team=args.team, account_id=account_id, region=args.region,
                log_retention_days=90 if args.environment == "prod" else 30, secret_names=args.secret_names,
                kept=args.kept,
            ),
            opts=child,
        )
        arns = pulumi.Output.all(account_id, self.storage.bucket.bucket, self.storage.key.arn).apply(
            lambda v: policies.TeamArns.for_team(args.team, account_id=v[0], region=args.region, bucket=v[1], kms_key_arn=v[2])
        )
        self.boundary = PermissionsBoundary(f"{name}-boundary", PermissionsBoundaryArgs(args.team, arns), opts=child)

        def user_data(volume_id: pulumi.Output[str]) -> pulumi.Output[str]:
            return pulumi.Output.all(self.storage.bucket.bucket, self.storage.key.arn, volume_id, arns,
                                     self.storage.repository.repository_url).apply(
                lambda v: args.render_user_data_base64(UserdataInputs(
                    bucket=v[0], kms_key_arn=v[1], data_volume_id=v[2], sagemaker_role_arn=v[3].sagemaker_role_arn,
                    ecr_repository_url=v[4]))
            )

        ami = aws.ssm.get_parameter_output(name=AMI_PARAMETER, opts=invoke)
        self.host = AirflowHost(
            f"{name}-airflow",
            AirflowHostArgs(
                team=args.team, region=args.region, instance_type=args.airflow_instance_type, volume_gb=args.airflow_volume_gb,
                latest_ami_id=ami.value, existing_hosts=hosts, availability_zone=zone,
                subnet_id=self.network.private_subnet.id, security_group_id=self.network.host_security_group.id,
                kms_key_arn=self.storage.key.arn, boundary_arn=self.boundary.arn, arns=arns, owners=args.owners,
                user_data_base64=user_data,
                egress=self.network.egress, host_files=args.host_files,
                running=args.paused_since is None and not args.asleep_by_schedule,
            ),
            opts=child,
        )
        self.sagemaker = SageMakerAccess(
            f"{name}-sagemaker",
            SageMakerAccessArgs(
                team=args.team, arns=arns, boundary_arn=self.boundary.arn, kms_key_arn=self.storage.key.arn,
                subnet_id=self.network.private_subnet.id, security_group_id=self.network.host_security_group.id,
                notebook_instance_type=args.notebook_instance_type, egress=self.network.egress,
            ),
            opts=child,
        )
        self.schedule = None
        if args.schedule is not None:
            wake, sleep, timezone = args.schedule
            self.schedule = AwakeSchedule(
                f"{name}-schedule",
                AwakeScheduleArgs(team=args.team, account_id=account_id, region=args.region, wake_cron=wake,
                                  sleep_cron=sleep, timezone=timezone, instance_id=self.host.instance.id,
                                  kms_key_arn=self.storage.key.arn,
                                  notebook_name=self.sagemaker.notebook.name if self.sagemaker.notebook else None,
                                  enabled=args.paused_since is None,
                                  heartbeat_alarm=names.alarm("scheduler-heartbeat")),
                opts=child,
            )
        self.deploy = None
        if args.deploy is not None:
            self.deploy = DeployAccess(
                f"{name}-deploy",
                DeployAccessArgs(team=args.team, settings=args.deploy, dags_prefix=args.dags_prefix, arns=arns,
                                 boundary_arn=self.boundary.arn),
                opts=child,
            )
        self.inference = None
        self.inference_status = ""
        if args.inference is not None:
            waits_for_image = args.inference.image == "default" and args.inference_image_tag is None
            if waits_for_image:
                # CreateModel refuses an image that is not in ECR: register nothing that names it yet.
                self.inference_status = (f"waiting for the image: run `envctl inference push {args.team}` "
                                         "(it pushes envctl's default image, then creates the endpoint)")
            else:
                image = (
                    self.storage.repository.repository_url.apply(lambda url: f"{url}:{args.inference_image_tag}")
                    if args.inference.image == "default" else args.inference.image
                )
                self.inference = InferenceService(
                    f"{name}-inference",
                    InferenceServiceArgs(
                        team=args.team, image=image, execution_role_arn=self.sagemaker.role.arn,
                        kms_key_arn=self.storage.key.arn, settings=args.inference,
                        serving=args.paused_since is None,
                    ),
                    opts=child,
                )
                self.inference_status = "serving" if args.paused_since is None else (
                    f"paused: no endpoint (its model and configuration are kept); `envctl resume {args.team}`")
                self.inference_image = image

        self.alerts = TeamAlerts(
            f"{name}-alerts",
            TeamAlertsArgs(
                team=args.team, region=args.region, account_id=account_id, owners=args.owners,
                kms_key_arn=self.storage.key.arn, instance_id=self.host.instance.id,
                endpoint_name=self.inference.endpoint.name if self.inference is not None and self.inference.endpoint else None,
                host_stopped=args.paused_since is not None or args.asleep_by_schedule,
            ),
            opts=child,
        )
        self.budget = aws.budgets.Budget(
            f"{name}-budget", name=names.prefix, budget_type="COST", limit_amount=str(args.budget_usd_month), limit_unit="USD",
            time_unit="MONTHLY", cost_filters=[{"name": "TagKeyValue", "values": [f"user:envctl:team${args.team}"]}],
            notifications=[
                {"comparison_operator": "GREATER_THAN", "threshold": pct, "threshold_type": "PERCENTAGE",
                 "notification_type": kind, "subscriber_email_addresses": args.owners}
                for pct, kind in ((80, "ACTUAL"), (100, "FORECASTED"))
            ],
            opts=child,
        )
        self.outputs: dict[str, pulumi.Input] = {
            "team": args.team,
            "region": args.region,
            "vpc_id": self.network.vpc.id,
            "private_subnet_id": self.network.private_subnet.id,
            "instance_id": self.host.instance.id,
            "host_role_arn": self.host.role.arn,
            "bootstrap_parameter": self.host.bootstrap_result.name,
            "bucket_name": self.storage.bucket.bucket,
            "kms_key_arn": self.storage.key.arn,
            "log_group": self.storage.log_group.name,
            "alerts_topic_arn": self.alerts.topic.arn,
            "ecr_repository_url": self.storage.repository.repository_url,
            "sagemaker_role_arn": self.sagemaker.role.arn,
            "model_package_group": self.sagemaker.model_package_group.model_package_group_name,
            "secrets_prefix": names.secrets_prefix,
        }
        if self.inference_status:
            self.outputs["inference_status"] = self.inference_status
        if self.inference is not None:
            if self.inference.endpoint is not None:
                self.outputs["endpoint_name"] = self.inference.endpoint.name
            self.outputs["inference_image"] = self.inference_image
        if args.paused_since is not None:
            self.outputs["paused_since"] = args.paused_since
        if self.deploy is not None:
            self.outputs["deploy_role_arn"] = self.deploy.role.arn
        if self.sagemaker.notebook is not None:
            self.outputs["notebook_name"] = self.sagemaker.notebook.name
        self.register_outputs(self.outputs)
