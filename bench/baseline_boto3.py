"""The reference for the sandbox's speed: one team's resources made with raw boto3 calls.

Creates, against an AWS endpoint (the sandbox's moto server), what the sandbox's handlers make
for one team (provisioner/engines/sandbox/handlers/*.py), call for call where it matters: VPC and
its attributes, the default security group emptied, two subnets, internet gateway, Elastic IP,
NAT gateway, two route tables with routes and associations, the S3 gateway endpoint, the host's
security group; KMS key and alias, bucket with tags, encryption, versioning and public access
block, ECR repository, log group with retention, the team's secrets; the permissions boundary,
two roles with inline policies, the instance profile; the bootstrap parameter, data volume,
instance (about 16 KB of userdata), volume attachment, recovery alarm; SageMaker model,
endpoint configuration, endpoint (and notebook), autoscaling target and policy; the budget.

It does none of the engine's bookkeeping (no state file, no reads of outputs, no Pulumi), so
the engine's time over this script's is the price of envctl's machinery.

    python bench/baseline_boto3.py --endpoint http://127.0.0.1:PORT --team NAME [--region eu-west-1]

Credentials from --access-key-id/--secret-access-key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.
Prints JSON: {"seconds": ..., "calls": ..., "writes": ..., "resources": ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

ACCOUNT_ID = "123456789012"  # moto's default account
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
AIRFLOW_SECRETS = ("fernet_key", "webserver_secret_key", "jwt_secret", "postgres_password")
FRAUD_SECRETS = ("snowflake_password", "partner_api_token")  # what stacks/fraud.yaml declares
USERDATA_BYTES = 15_800  # the size of the fraud host's rendered userdata (the limit is 16 KB)
READ_PREFIXES = ("Describe", "Get", "List", "Head", "Batch")  # as the sandbox counts writes


@dataclass
class CallCounter:
    calls: int = 0
    writes: int = 0

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls += 1
        if not model.name.startswith(READ_PREFIXES):
            self.writes += 1


@dataclass
class Team:
    """The names and ids of one team's resources, filled in as they are made."""

    name: str
    region: str
    cidr: str
    secrets: tuple[str, ...]
    notebook: bool
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"envctl-{self.name}"

    @property
    def bucket(self) -> str:
        return f"{self.prefix}-{ACCOUNT_ID}-{self.region}"

    @property
    def zone(self) -> str:
        return f"{self.region}a"

    @property
    def tags(self) -> dict[str, str]:
        return {"envctl:team": self.name, "envctl:owner": "owner@example.com", "envctl:cost-center": "CC-0000",
                "envctl:managed-by": "envctl"}

    def tag_list(self, **extra: str) -> list[dict[str, str]]:
        return [{"Key": key, "Value": value} for key, value in {**self.tags, **extra}.items()]

    def tag_spec(self, resource_type: str, **extra: str) -> list[dict[str, Any]]:
        return [{"ResourceType": resource_type, "Tags": self.tag_list(**extra)}]


class Clients:
    """One boto3 client per service, all counting their calls into one counter."""

    def __init__(self, endpoint: str, region: str, credentials: dict[str, str], counter: CallCounter):
        self._session = boto3.session.Session(**credentials)
        self._endpoint = endpoint
        self._region = region
        self._counter = counter
        self._clients: dict[tuple[str, str], Any] = {}

    def __call__(self, service: str, region: str | None = None) -> Any:
        key = (service, region or self._region)
        if key not in self._clients:
            client = self._session.client(
                service, region_name=key[1], endpoint_url=self._endpoint,
                config=Config(retries={"max_attempts": 2, "mode": "standard"}, s3={"addressing_style": "path"}),
            )
            client.meta.events.register("before-call", self._counter)
            self._clients[key] = client
        return self._clients[key]


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(sid: str, actions: list[str], resources: list[str] | str) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def team_statements(team: Team) -> list[dict[str, Any]]:
    """The grants the team's roles share (bucket, key, secrets, logs, ECR), as the program writes them."""
    bucket_arn = f"arn:aws:s3:::{team.bucket}"
    return [
        allow("TeamBucketList", ["s3:ListBucket", "s3:GetBucketLocation"], bucket_arn),
        allow("TeamBucketObjects", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], f"{bucket_arn}/*"),
        allow("TeamKey", ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
              team.ids["key_arn"]),
        allow("TeamSecrets", ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
              f"arn:aws:secretsmanager:{team.region}:{ACCOUNT_ID}:secret:envctl/{team.name}/*"),
        allow("TeamLogs", ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
              f"arn:aws:logs:{team.region}:{ACCOUNT_ID}:log-group:/envctl/{team.name}:*"),
        allow("TeamImages", ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
              f"arn:aws:ecr:{team.region}:{ACCOUNT_ID}:repository/{team.prefix}"),
        allow("EcrToken", ["ecr:GetAuthorizationToken"], "*"),
    ]


def trust(service: str) -> str:
    return policy({"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": service}})


def userdata(team: Team) -> bytes:
    """Shell text of the fraud host's userdata size (moto stores it byte for byte, so only size matters)."""
    head = f"#!/bin/bash\nset -euo pipefail\n# envctl {team.name}: Airflow host bootstrap\n"
    line = "echo 'bootstrap step: install, configure and start the Airflow containers' >/dev/null\n"
    body = line * ((USERDATA_BYTES - len(head)) // len(line) + 1)
    return (head + body)[:USERDATA_BYTES].encode()


# --- network ---------------------------------------------------------------------------------


def create_network(clients: Clients, team: Team) -> None:
    ec2 = clients("ec2")
    vpc_id = ec2.create_vpc(CidrBlock=team.cidr, TagSpecifications=team.tag_spec("vpc", Name=team.prefix))["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    team.ids["vpc"] = vpc_id
    empty_default_security_group(ec2, team)
    make_subnets(ec2, team)
    make_gateways(ec2, team)
    make_routes(ec2, team)
    ec2.create_vpc_endpoint(VpcId=vpc_id, ServiceName=f"com.amazonaws.{team.region}.s3", VpcEndpointType="Gateway",
                            RouteTableIds=[team.ids["private_rt"]], TagSpecifications=team.tag_spec("vpc-endpoint"))
    make_host_security_group(ec2, team)


def empty_default_security_group(ec2: Any, team: Team) -> None:
    group = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [team.ids["vpc"]]},
                                                  {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]
    ec2.revoke_security_group_egress(GroupId=group["GroupId"],
                                     IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    ec2.create_tags(Resources=[group["GroupId"]], Tags=team.tag_list())


def make_subnets(ec2: Any, team: Team) -> None:
    base = team.cidr.split("/")[0].rsplit(".", 2)[0]  # "10.20" of 10.20.0.0/20
    for kind, cidr in (("private", f"{base}.0.0/21"), ("public", f"{base}.8.0/22")):
        subnet_id = ec2.create_subnet(VpcId=team.ids["vpc"], CidrBlock=cidr, AvailabilityZone=team.zone,
                                      TagSpecifications=team.tag_spec("subnet", Name=f"{team.prefix}-{kind}"))["Subnet"]["SubnetId"]
        ec2.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": False})
        team.ids[f"{kind}_subnet"] = subnet_id


def make_gateways(ec2: Any, team: Team) -> None:
    igw = ec2.create_internet_gateway(TagSpecifications=team.tag_spec("internet-gateway"))["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=team.ids["vpc"])
    allocation = ec2.allocate_address(Domain="vpc", TagSpecifications=team.tag_spec("elastic-ip"))["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=team.ids["public_subnet"], AllocationId=allocation,
                                 TagSpecifications=team.tag_spec("natgateway", Name=team.prefix))["NatGateway"]["NatGatewayId"]
    team.ids.update(igw=igw, nat=nat)


def make_routes(ec2: Any, team: Team) -> None:
    for kind, target in (("public", {"GatewayId": team.ids["igw"]}), ("private", {"NatGatewayId": team.ids["nat"]})):
        table = ec2.create_route_table(VpcId=team.ids["vpc"], TagSpecifications=team.tag_spec("route-table"))["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", **target)
        ec2.associate_route_table(SubnetId=team.ids[f"{kind}_subnet"], RouteTableId=table)
        team.ids[f"{kind}_rt"] = table


def make_host_security_group(ec2: Any, team: Team) -> None:
    group_id = ec2.create_security_group(GroupName=f"{team.prefix}-host", Description="envctl Airflow host",
                                         VpcId=team.ids["vpc"], TagSpecifications=team.tag_spec("security-group"))["GroupId"]
    ec2.revoke_security_group_egress(GroupId=group_id,
                                     IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": why}]}
        for port, why in ((443, "HTTPS: AWS APIs, images, packages"), (80, "HTTP: OS package mirrors"))
    ])
    team.ids["host_sg"] = group_id


# --- storage ---------------------------------------------------------------------------------


def create_storage(clients: Clients, team: Team) -> None:
    make_key(clients("kms"), team)
    make_bucket(clients("s3"), team)
    clients("ecr").create_repository(
        repositoryName=team.prefix, imageTagMutability="IMMUTABLE", imageScanningConfiguration={"scanOnPush": True},
        encryptionConfiguration={"encryptionType": "KMS", "kmsKey": team.ids["key_arn"]}, tags=team.tag_list())
    logs = clients("logs")
    logs.create_log_group(logGroupName=f"/envctl/{team.name}", kmsKeyId=team.ids["key_arn"], tags=team.tags)
    logs.put_retention_policy(logGroupName=f"/envctl/{team.name}", retentionInDays=90)
    make_secrets(clients("secretsmanager"), team)


def make_key(kms: Any, team: Team) -> None:
    key_policy = policy({"Sid": "AccountAdministers", "Effect": "Allow", "Action": "kms:*", "Resource": "*",
                         "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}})
    metadata = kms.create_key(Description=f"envctl {team.name}: data key", Policy=key_policy,
                              Tags=[{"TagKey": k, "TagValue": v} for k, v in team.tags.items()])["KeyMetadata"]
    kms.enable_key_rotation(KeyId=metadata["KeyId"])
    kms.enable_key(KeyId=metadata["KeyId"])
    kms.create_alias(AliasName=f"alias/{team.prefix}", TargetKeyId=metadata["KeyId"])
    team.ids.update(key=metadata["KeyId"], key_arn=metadata["Arn"])


def make_bucket(s3: Any, team: Team) -> None:
    s3.create_bucket(Bucket=team.bucket, CreateBucketConfiguration={"LocationConstraint": team.region})
    s3.put_bucket_tagging(Bucket=team.bucket, Tagging={"TagSet": team.tag_list()})
    s3.put_bucket_encryption(Bucket=team.bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": team.ids["key_arn"]},
        "BucketKeyEnabled": True}]})
    s3.put_bucket_versioning(Bucket=team.bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_public_access_block(Bucket=team.bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})


def make_secrets(secretsmanager: Any, team: Team) -> None:
    names = [f"envctl/{team.name}/airflow/{name}" for name in AIRFLOW_SECRETS]
    names += [f"envctl/{team.name}/{name}" for name in team.secrets]
    for name in names:
        secretsmanager.create_secret(Name=name, Description=f"envctl {team.name}: {name}", KmsKeyId=team.ids["key_arn"],
                                     Tags=team.tag_list())


# --- identity --------------------------------------------------------------------------------


def create_identity(clients: Clients, team: Team) -> None:
    iam = clients("iam")
    boundary = iam.create_policy(PolicyName=f"{team.prefix}-boundary", Description=f"envctl {team.name}: boundary",
                                 PolicyDocument=policy(*team_statements(team)), Tags=team.tag_list())["Policy"]["Arn"]
    host_role, sagemaker_role = f"{team.prefix}-airflow-host", f"{team.prefix}-sagemaker"
    for role, service in ((host_role, "ec2.amazonaws.com"), (sagemaker_role, "sagemaker.amazonaws.com")):
        arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust(service), PermissionsBoundary=boundary,
                              Description=f"envctl {team.name}", Tags=team.tag_list())["Role"]["Arn"]
        iam.put_role_policy(RoleName=role, PolicyName=f"{role}-policy", PolicyDocument=policy(*team_statements(team)))
        team.ids[role] = arn
    # AWS's AmazonSSMManagedInstanceCore, which the sandbox puts on the role as an inline stand-in.
    iam.put_role_policy(RoleName=host_role, PolicyName="aws-managed-AmazonSSMManagedInstanceCore", PolicyDocument=policy(
        allow("SsmCore", ["ssm:UpdateInstanceInformation", "ssmmessages:*", "ec2messages:*"], "*")))
    iam.create_instance_profile(InstanceProfileName=host_role, Tags=team.tag_list())
    iam.add_role_to_instance_profile(InstanceProfileName=host_role, RoleName=host_role)
    team.ids.update(host_role=host_role, sagemaker_role_arn=team.ids[sagemaker_role])


# --- the Airflow host ------------------------------------------------------------------------


def create_host(clients: Clients, team: Team) -> None:
    ssm, ec2 = clients("ssm"), clients("ec2")
    ami = ssm.get_parameter(Name=AMI_PARAMETER)["Parameter"]["Value"]
    ssm.put_parameter(Name=f"/envctl/{team.name}/bootstrap", Value='{"status": "pending"}', Type="String",
                      Description=f"envctl {team.name}: bootstrap result", Tags=team.tag_list())
    volume = ec2.create_volume(AvailabilityZone=team.zone, Size=100, VolumeType="gp3", Encrypted=True,
                               KmsKeyId=team.ids["key_arn"], TagSpecifications=team.tag_spec("volume"))["VolumeId"]
    instance = ec2.run_instances(
        ImageId=ami, InstanceType="m6i.large", MinCount=1, MaxCount=1, UserData=userdata(team),
        IamInstanceProfile={"Name": team.ids["host_role"]}, Monitoring={"Enabled": True},
        MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2},
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": team.ids["private_subnet"], "Groups": [team.ids["host_sg"]],
                            "AssociatePublicIpAddress": False}],
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 30, "VolumeType": "gp3", "Encrypted": True,
                                                                 "KmsKeyId": team.ids["key_arn"], "DeleteOnTermination": True}}],
        TagSpecifications=team.tag_spec("instance") + team.tag_spec("volume"),
    )["Instances"][0]["InstanceId"]
    ec2.attach_volume(Device="/dev/sdf", InstanceId=instance, VolumeId=volume)
    clients("cloudwatch").put_metric_alarm(
        AlarmName=f"{team.prefix}-airflow-recover", AlarmDescription=f"envctl {team.name}: recover the Airflow host",
        AlarmActions=[f"arn:aws:automate:{team.region}:ec2:recover"], MetricName="StatusCheckFailed_System",
        Namespace="AWS/EC2", Statistic="Maximum", Dimensions=[{"Name": "InstanceId", "Value": instance}], Period=60,
        EvaluationPeriods=2, Threshold=0.0, ComparisonOperator="GreaterThanThreshold", Tags=team.tag_list())


# --- SageMaker, inference and the budget -----------------------------------------------------


def create_inference(clients: Clients, team: Team) -> None:
    sagemaker = clients("sagemaker")
    role_arn = team.ids["sagemaker_role_arn"]
    if team.notebook:
        sagemaker.create_notebook_instance(
            NotebookInstanceName=f"{team.prefix}-notebook", InstanceType="ml.t3.medium", RoleArn=role_arn,
            SubnetId=team.ids["private_subnet"], SecurityGroupIds=[team.ids["host_sg"]], KmsKeyId=team.ids["key_arn"],
            DirectInternetAccess="Disabled", RootAccess="Disabled", Tags=team.tag_list())
    image = f"{ACCOUNT_ID}.dkr.ecr.{team.region}.amazonaws.com/{team.prefix}:default"
    sagemaker.create_model(ModelName=f"{team.prefix}-model", ExecutionRoleArn=role_arn,
                           PrimaryContainer={"Image": image, "Mode": "SingleModel"}, Tags=team.tag_list())
    sagemaker.create_endpoint_config(EndpointConfigName=f"{team.prefix}-config", KmsKeyId=team.ids["key_arn"], Tags=team.tag_list(),
                                     ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": f"{team.prefix}-model",
                                                          "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    sagemaker.create_endpoint(EndpointName=team.prefix, EndpointConfigName=f"{team.prefix}-config", Tags=team.tag_list())
    scaling = clients("application-autoscaling")
    target = {"ServiceNamespace": "sagemaker", "ResourceId": f"endpoint/{team.prefix}/variant/AllTraffic",
              "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}
    scaling.register_scalable_target(**target, MinCapacity=1, MaxCapacity=4)
    scaling.put_scaling_policy(**target, PolicyName=f"{team.prefix}-scaling", PolicyType="TargetTrackingScaling",
                               TargetTrackingScalingPolicyConfiguration={
                                   "TargetValue": 100.0, "ScaleInCooldown": 300, "ScaleOutCooldown": 60,
                                   "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}})


def create_budget(clients: Clients, team: Team) -> None:
    subscribers = [{"SubscriptionType": "EMAIL", "Address": "owner@example.com"}]
    clients("budgets", "us-east-1").create_budget(
        AccountId=ACCOUNT_ID,
        Budget={"BudgetName": team.prefix, "BudgetType": "COST", "TimeUnit": "MONTHLY",
                "BudgetLimit": {"Amount": "2500", "Unit": "USD"},
                "CostFilters": {"TagKeyValue": [f"user:envctl:team${team.name}"]}},
        NotificationsWithSubscribers=[
            {"Notification": {"NotificationType": kind, "ComparisonOperator": "GREATER_THAN", "Threshold": threshold,
                              "ThresholdType": "PERCENTAGE"}, "Subscribers": subscribers}
            for kind, threshold in (("ACTUAL", 80.0), ("FORECASTED", 100.0))],
        ResourceTags=team.tag_list())


STEPS = (create_network, create_storage, create_identity, create_host, create_inference, create_budget)


def resource_count(team: Team) -> int:
    """The team's resources as the program counts them (47 for fraud: 6 secrets and a notebook)."""
    return 40 + len(AIRFLOW_SECRETS) + len(team.secrets) + (1 if team.notebook else 0)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True, help="the AWS endpoint, e.g. the sandbox's http://127.0.0.1:PORT")
    parser.add_argument("--team", required=True)
    parser.add_argument("--region", default="eu-west-1")
    parser.add_argument("--cidr", default="10.99.0.0/20", help="the team's network (a /20)")
    parser.add_argument("--secrets", default=",".join(FRAUD_SECRETS), help="the request's declared secrets, comma-separated")
    parser.add_argument("--no-notebook", dest="notebook", action="store_false", help="the request has no notebook")
    parser.add_argument("--access-key-id", default=os.environ.get("AWS_ACCESS_KEY_ID", "testing"))
    parser.add_argument("--secret-access-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"))
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    team = Team(name=args.team, region=args.region, cidr=args.cidr,
                secrets=tuple(s for s in args.secrets.split(",") if s), notebook=args.notebook)
    counter = CallCounter()
    started = time.perf_counter()
    clients = Clients(args.endpoint, args.region, {"aws_access_key_id": args.access_key_id,
                                                   "aws_secret_access_key": args.secret_access_key}, counter)
    for step in STEPS:
        step(clients, team)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": round(seconds, 3), "calls": counter.calls, "writes": counter.writes,
                      "resources": resource_count(team)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
