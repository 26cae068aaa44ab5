"""AirflowHost: the EC2 instance that runs Airflow in Docker, its role, data volume and recovery alarm.

The host has no public IP and no inbound rule; administrators reach it through SSM Session
Manager. Postgres lives on a separate encrypted volume so that replacing the instance (new
userdata, new type) keeps Airflow's metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

import pulumi
import pulumi_aws as aws

from provisioner.components import policies
from provisioner.components.names import TeamNames
from provisioner.components.placement import FINGERPRINT_TAG, ExistingHost, choose_ami, host_fingerprint, host_name

SSM_CORE_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
DATA_DEVICE = "/dev/sdf"
ROOT_VOLUME_GB = 30


@dataclass
class AirflowHostArgs:
    team: str
    region: str
    instance_type: str
    volume_gb: int
    latest_ami_id: pulumi.Input[str]
    existing_hosts: pulumi.Output[list[ExistingHost]]  # the team's live hosts (placement.existing_hosts)
    availability_zone: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    boundary_arn: pulumi.Input[str]
    arns: pulumi.Output[policies.TeamArns]
    owners: list[str]  # the Airflow accounts: the host's owner sync reads them from an SSM parameter
    # Given the data volume's id, the base64 userdata (the program renders it; components read no files).
    user_data_base64: Callable[[pulumi.Output[str]], pulumi.Output[str]]
    # The host boots only once these exist: its route out (NAT route, association, S3 endpoint).
    egress: list[pulumi.Resource] = field(default_factory=list)
    # Host files too large for the userdata, by SSM parameter name (userdata.shipped_host_files): the
    # bootstrap fetches them with the host's role and checks their SHA-256.
    host_files: dict[str, str] = field(default_factory=dict)
    running: bool = True  # False while the environment is paused: the instance stopped, its volumes kept


class AirflowHost(pulumi.ComponentResource):
    def __init__(self, name: str, args: AirflowHostArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("envctl:index:AirflowHost", name, None, opts)
        names = TeamNames(args.team)
        child = pulumi.ResourceOptions(parent=self)

        self.role = aws.iam.Role(
            f"{name}-role", name=names.host_role, description=f"envctl {args.team}: Airflow host",
            assume_role_policy=policies.assume_role_policy("ec2.amazonaws.com"),
            permissions_boundary=args.boundary_arn, opts=child,
        )
        aws.iam.RolePolicyAttachment(f"{name}-ssm-core", role=self.role.name, policy_arn=SSM_CORE_POLICY, opts=child)
        aws.iam.RolePolicy(f"{name}-policy", role=self.role.id, policy=args.arns.apply(policies.host_policy), opts=child)
        self.profile = aws.iam.InstanceProfile(f"{name}-profile", name=names.host_role, role=self.role.name, opts=child)

        self.bootstrap_result = aws.ssm.Parameter(
            f"{name}-bootstrap", name=names.bootstrap_parameter, type="String", value='{"status": "pending"}',
            description=f"envctl {args.team}: result of the Airflow host's bootstrap, written by the host",
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["value"]),
        )
        # Not in the userdata: an owners change reaches the running host (its sync re-reads this every
        # minute) instead of replacing it.
        self.owners_parameter = aws.ssm.Parameter(
            f"{name}-owners", name=names.owners_parameter, type="String", value=json.dumps(args.owners),
            description=f"envctl {args.team}: the owners, who get Airflow accounts (read by the host)", opts=child,
        )
        self.host_files = [
            aws.ssm.Parameter(f"{name}-file-{parameter.rsplit('/', 1)[1]}", name=parameter, type="String", value=value,
                              description=f"envctl {args.team}: a host file (gzip + base64), fetched by the bootstrap",
                              opts=child)
            for parameter, value in sorted(args.host_files.items())
        ]
        self.data_volume = aws.ebs.Volume(
            f"{name}-data", availability_zone=args.availability_zone, size=args.volume_gb, type="gp3",
            encrypted=True, kms_key_id=args.kms_key_arn, tags={"Name": f"envctl-{args.team}-airflow-data"}, opts=child,
        )
        user_data = args.user_data_base64(self.data_volume.id)
        fingerprint = user_data.apply(lambda data: host_fingerprint(data, args.instance_type))
        # placement.py: the running host's AMI while nothing replaces it, the latest AMI on a new host.
        ami = pulumi.Output.all(args.latest_ami_id, fingerprint, args.existing_hosts).apply(lambda v: choose_ami(*v))
        self.instance = aws.ec2.Instance(
            f"{name}-instance",
            ami=ami,
            instance_type=args.instance_type,
            subnet_id=args.subnet_id,
            vpc_security_group_ids=[args.security_group_id],
            iam_instance_profile=self.profile.name,
            associate_public_ip_address=False,
            metadata_options={"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 2},
            root_block_device={"encrypted": True, "kms_key_id": args.kms_key_arn, "volume_type": "gp3",
                               "volume_size": ROOT_VOLUME_GB},
            user_data_base64=user_data,
            user_data_replace_on_change=True,
            monitoring=True,
            tags={"Name": host_name(args.team), FINGERPRINT_TAG: fingerprint},
            # A new instance type replaces the host instead of stopping and resizing it: the host keeps
            # nothing of its own (Postgres is on the data volume, DAGs and backups in the bucket), and a
            # fresh host runs the tested userdata on the current AMI rather than drifting in place.
            # No ignore_changes on the AMI: Pulumi would send the old AMI to a replacement too.
            opts=pulumi.ResourceOptions(parent=self,
                                        depends_on=[self.bootstrap_result, self.owners_parameter, *self.host_files, *args.egress],
                                        replace_on_changes=["instanceType"]),
        )
        self.attachment = aws.ec2.VolumeAttachment(
            f"{name}-data-attachment", device_name=DATA_DEVICE, volume_id=self.data_volume.id,
            instance_id=self.instance.id, stop_instance_before_detaching=True,
            # A volume attaches to one instance at a time: detach from the old host before attaching to the new.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        # The program says whether the host runs (`envctl pause`): StopInstances/StartInstances. Deleting
        # this resource leaves the instance as it is (terraform-provider-aws, ec2_instance_state.go). After the
        # attachment: a replacement made while paused gets its data volume, then stops.
        self.state = aws.ec2transitgateway.InstanceState(
            f"{name}-state", instance_id=self.instance.id, state="running" if args.running else "stopped",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.attachment]),
        )
        self.recovery_alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-recover", alarm_description=f"envctl {args.team}: recover the Airflow host when its system check fails",
            namespace="AWS/EC2", metric_name="StatusCheckFailed_System", statistic="Maximum", period=60,
            evaluation_periods=2, threshold=0, comparison_operator="GreaterThanThreshold",
            dimensions={"InstanceId": self.instance.id},
            alarm_actions=[f"arn:aws:automate:{args.region}:ec2:recover"], opts=child,
        )
        self.register_outputs({"instance_id": self.instance.id, "role_arn": self.role.arn})
