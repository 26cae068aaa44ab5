"""IAM and resource policy documents, as plain JSON built from a team's ARNs.

Kept apart from the components so that they can be read, linted (parliament) and tested
without Pulumi. Every statement names only the team's own resources; where AWS offers no
resource-level scoping the statement says so with Resource "*" and, where possible, a tag
condition on `envctl:team` (attribute-based access control).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

from provisioner.components.names import TeamNames

TEAM_TAG = "envctl:team"


@dataclass(frozen=True)
class TeamArns:
    """The ARNs a team's policies may name; built once the account id and region are known."""

    team: str
    account_id: str
    region: str
    bucket: str
    kms_key_arn: str
    log_group: str
    ecr_repository: str
    sagemaker_role_name: str
    partition: str = "aws"

    @classmethod
    def for_team(cls, team: str, *, account_id: str, region: str, bucket: str, kms_key_arn: str) -> "TeamArns":
        names = TeamNames(team)
        return cls(
            team=team, account_id=account_id, region=region, bucket=bucket, kms_key_arn=kms_key_arn,
            log_group=names.log_group, ecr_repository=names.ecr_repository, sagemaker_role_name=names.sagemaker_role,
        )

    @property
    def bucket_arn(self) -> str:
        return f"arn:{self.partition}:s3:::{self.bucket}"

    @property
    def secrets_arn(self) -> str:
        return f"arn:{self.partition}:secretsmanager:{self.region}:{self.account_id}:secret:envctl/{self.team}/*"

    @property
    def airflow_secrets_arn(self) -> str:
        return f"arn:{self.partition}:secretsmanager:{self.region}:{self.account_id}:secret:envctl/{self.team}/airflow/*"

    @property
    def log_group_arn(self) -> str:
        return f"arn:{self.partition}:logs:{self.region}:{self.account_id}:log-group:{self.log_group}:*"

    @property
    def sagemaker_log_arn(self) -> str:
        return f"arn:{self.partition}:logs:{self.region}:{self.account_id}:log-group:/aws/sagemaker/*"

    @property
    def ecr_repository_arn(self) -> str:
        return f"arn:{self.partition}:ecr:{self.region}:{self.account_id}:repository/{self.ecr_repository}"

    @property
    def parameters_arn(self) -> str:
        return f"arn:{self.partition}:ssm:{self.region}:{self.account_id}:parameter/envctl/{self.team}/*"

    @property
    def sagemaker_role_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:role/{self.sagemaker_role_name}"

    @property
    def sagemaker_resources_arn(self) -> str:
        return f"arn:{self.partition}:sagemaker:{self.region}:{self.account_id}:*"

    @property
    def model_package_group_arn(self) -> str:
        group = TeamNames(self.team).model_package_group
        return f"arn:{self.partition}:sagemaker:{self.region}:{self.account_id}:model-package-group/{group}"

    @property
    def model_packages_arn(self) -> str:
        """The versions in the team's group: model-package/<group>/<version>."""
        group = TeamNames(self.team).model_package_group
        return f"arn:{self.partition}:sagemaker:{self.region}:{self.account_id}:model-package/{group}/*"


def _doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, indent=2, sort_keys=True)


def assume_role_policy(service: str) -> str:
    return _doc({"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"})


# s3:PutObject also authorises the parts of a multipart upload (`aws s3 cp` of a backup above 8 MB);
# aborting one that failed is an action of its own, so the parts do not linger in the bucket.
S3_OBJECT_ACTIONS = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
KMS_USE_ACTIONS = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"]
ECR_PUSH_ACTIONS = ["ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage"]
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_AUDIENCE = "sts.amazonaws.com"  # what aws-actions/configure-aws-credentials asks GitHub for
ECR_PULL_ACTIONS = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:DescribeImages"]


def _bucket_statements(arns: TeamArns) -> list[dict]:
    return [
        {"Sid": "TeamBucketList", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
         "Resource": arns.bucket_arn},
        {"Sid": "TeamBucketObjects", "Effect": "Allow", "Action": S3_OBJECT_ACTIONS, "Resource": f"{arns.bucket_arn}/*"},
        {"Sid": "TeamKey", "Effect": "Allow", "Action": KMS_USE_ACTIONS, "Resource": arns.kms_key_arn},
    ]


def _key_grants_statement(arns: TeamArns) -> dict:
    """Grants on the team key that AWS services create for the role's own resources, and only those.

    SageMaker encrypts the ML storage volumes of the jobs, endpoints and notebooks it runs as the
    execution role with a grant on the key, which it creates as that role: "The SageMaker execution
    role must have kms:CreateGrant permission in order to encrypt data on the storage volume"
    (SageMaker API reference, RecommendationJobInputConfig.VolumeKmsKeyId; the same holds for
    ResourceConfig.VolumeKmsKeyId and ProductionVariant volumes). `kms:GrantIsForAWSResource` keeps
    the role from granting the key to anyone itself
    (https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-grant-is-for-aws-resource).
    The Airflow host needs none: EBS grants for its volumes are created by EC2 for the caller of
    RunInstances/CreateVolume, i.e. whoever runs envctl.
    """
    return {
        "Sid": "TeamKeyGrantsForAwsResources",
        "Effect": "Allow",
        "Action": "kms:CreateGrant",
        "Resource": arns.kms_key_arn,
        "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
    }


def _ecr_pull_statements(arns: TeamArns) -> list[dict]:
    return [
        # GetAuthorizationToken has no resource-level permissions in IAM.
        {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {"Sid": "TeamRepositoryPull", "Effect": "Allow", "Action": ECR_PULL_ACTIONS, "Resource": arns.ecr_repository_arn},
    ]


# The tag the team's retraining job puts on the models and endpoint configurations it makes; it may
# delete those (once the endpoint has left them), never envctl's own (tagged envctl:managed-by=envctl).
JOB_MANAGED_BY = "airflow"


def _team_sagemaker_statements(arns: TeamArns) -> list[dict]:
    """SageMaker work on the team's own resources (by tag) and passing only its own role to SageMaker;
    the retraining job's model registry (the team's model package group, by ARN) and the clean-up of
    what the job made (by both tags)."""
    return [
        {
            "Sid": "TeamSageMakerJobs",
            "Effect": "Allow",
            "Action": [
                "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob",
                "sagemaker:DescribeModel", "sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig",
                "sagemaker:UpdateEndpoint", "sagemaker:InvokeEndpoint",
            ],
            "Resource": arns.sagemaker_resources_arn,
            "Condition": {"StringEquals": {f"aws:ResourceTag/{TEAM_TAG}": arns.team}},
        },
        {
            "Sid": "TeamSageMakerCreate",
            "Effect": "Allow",
            "Action": ["sagemaker:CreateTrainingJob", "sagemaker:CreateModel", "sagemaker:CreateEndpointConfig",
                       "sagemaker:AddTags"],
            "Resource": arns.sagemaker_resources_arn,
            "Condition": {"StringEquals": {f"aws:RequestTag/{TEAM_TAG}": arns.team}},
        },
        {
            "Sid": "TeamJobCleanUp",
            "Effect": "Allow",
            "Action": ["sagemaker:DeleteModel", "sagemaker:DeleteEndpointConfig"],
            "Resource": arns.sagemaker_resources_arn,
            "Condition": {"StringEquals": {f"aws:ResourceTag/{TEAM_TAG}": arns.team,
                                           "aws:ResourceTag/envctl:managed-by": JOB_MANAGED_BY}},
        },
        {
            "Sid": "TeamModelRegistry",
            "Effect": "Allow",
            "Action": ["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage", "sagemaker:UpdateModelPackage",
                       "sagemaker:DescribeModelPackageGroup"],
            "Resource": [arns.model_package_group_arn, arns.model_packages_arn],
        },
        {
            "Sid": "PassTeamSageMakerRole",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": arns.sagemaker_role_arn,
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        },
    ]


def _metrics_statement(arns: TeamArns) -> dict:
    """SageMaker's own namespaces and the team's (never another team's: its alarms and verdict read it)."""
    return {
        "Sid": "SageMakerMetrics",
        "Effect": "Allow",
        "Action": "cloudwatch:PutMetricData",
        "Resource": "*",  # PutMetricData has no resource-level permissions; the namespace is conditioned
        "Condition": {"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", TeamNames(arns.team).metrics_namespace]}},
    }


def _host_metrics_statement(arns: TeamArns) -> dict:
    """The host's metrics publisher (templates/envctl-metrics.py.j2), in the team's namespace only.

    PutMetricData has no resource-level permissions; `cloudwatch:namespace` limits it to one namespace
    (CloudWatch User Guide, "Using condition keys to limit access to CloudWatch namespaces":
    `"StringEquals": {"cloudwatch:namespace": "MyCustomNamespace"}`).
    """
    return {
        "Sid": "TeamMetrics",
        "Effect": "Allow",
        "Action": "cloudwatch:PutMetricData",
        "Resource": "*",
        "Condition": {"StringEquals": {"cloudwatch:namespace": TeamNames(arns.team).metrics_namespace}},
    }


def host_policy(arns: TeamArns) -> str:
    """The Airflow host: its secrets, bucket, key, log group, repository, metrics; SageMaker work for the team."""
    return _doc(
        *_bucket_statements(arns),
        *_ecr_pull_statements(arns),
        {"Sid": "TeamSecretsRead", "Effect": "Allow",
         "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], "Resource": arns.secrets_arn},
        {"Sid": "AirflowKeysInit", "Effect": "Allow", "Action": "secretsmanager:PutSecretValue",
         "Resource": arns.airflow_secrets_arn},
        {"Sid": "TeamLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
         "Resource": arns.log_group_arn},
        {"Sid": "BootstrapResult", "Effect": "Allow", "Action": ["ssm:PutParameter", "ssm:GetParameter"],
         "Resource": arns.parameters_arn},
        _host_metrics_statement(arns),
        *_team_sagemaker_statements(arns),
    )


def sagemaker_policy(arns: TeamArns) -> str:
    """The SageMaker execution role: the team's bucket, key, repository and SageMaker logs."""
    return _doc(
        *_bucket_statements(arns),
        *_ecr_pull_statements(arns),
        {"Sid": "SageMakerLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
         "Resource": arns.sagemaker_log_arn},
        _metrics_statement(arns),
        _key_grants_statement(arns),
    )


def github_subject(repository: str, branch: str, environment: str | None) -> str:
    """The `sub` claim of GitHub's OIDC token for a job of that repository on that branch (or in that
    environment: a job that names an environment carries it instead of the ref), per GitHub's docs
    "About security hardening with OpenID Connect" (example subject claims)."""
    if environment:
        return f"repo:{repository}:environment:{environment}"
    return f"repo:{repository}:ref:refs/heads/{branch}"


def github_trust_policy(provider_arn: str, subject: str) -> str:
    """Only GitHub's OIDC tokens minted for AWS (aud) and for that repository and branch/environment (sub)."""
    return _doc({
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{GITHUB_OIDC_HOST}:aud": GITHUB_OIDC_AUDIENCE, f"{GITHUB_OIDC_HOST}:sub": subject}},
    })


def deploy_policy(arns: TeamArns, dags_prefix: str) -> str:
    """The team's CI: the objects under its DAG prefix (with the team key) and pushes to its repository, nothing else."""
    return _doc(
        {"Sid": "DagPrefixList", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": arns.bucket_arn,
         "Condition": {"StringLike": {"s3:prefix": [dags_prefix, f"{dags_prefix}*"]}}},
        {"Sid": "DagPrefixObjects", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
         "Resource": f"{arns.bucket_arn}/{dags_prefix}*"},
        {"Sid": "TeamKey", "Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
         "Resource": arns.kms_key_arn},
        # GetAuthorizationToken has no resource-level permissions in IAM.
        {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {"Sid": "TeamRepositoryPush", "Effect": "Allow", "Action": ECR_PULL_ACTIONS + ECR_PUSH_ACTIONS,
         "Resource": arns.ecr_repository_arn},
    )


def permissions_boundary(arns: TeamArns) -> str:
    """The most any team role may ever do, whatever policies are attached to it later."""
    return _doc(
        *_bucket_statements(arns),
        *_ecr_pull_statements(arns),
        # Pushes: only the deploy role's policy grants them (the team's CI, `deploy:` in the request).
        {"Sid": "TeamRepositoryPush", "Effect": "Allow", "Action": ECR_PUSH_ACTIONS, "Resource": arns.ecr_repository_arn},
        {"Sid": "TeamSecrets", "Effect": "Allow",
         "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "secretsmanager:PutSecretValue"],
         "Resource": arns.secrets_arn},
        {"Sid": "TeamLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
         "Resource": [arns.log_group_arn, arns.sagemaker_log_arn]},
        {"Sid": "TeamParameters", "Effect": "Allow", "Action": ["ssm:PutParameter", "ssm:GetParameter"],
         "Resource": arns.parameters_arn},
        {
            "Sid": "SessionManagerAgent",
            "Effect": "Allow",
            # The SSM agent's channel actions have no resource-level permissions.
            "Action": [
                "ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel", "ec2messages:AcknowledgeMessage",
                "ec2messages:DeleteMessage", "ec2messages:FailMessage", "ec2messages:GetEndpoint",
                "ec2messages:GetMessages", "ec2messages:SendReply",
            ],
            "Resource": "*",
        },
        _metrics_statement(arns),
        _key_grants_statement(arns),
        *_team_sagemaker_statements(arns),
    )


def bucket_policy(arns: TeamArns) -> str:
    """TLS only, and an upload that names its encryption must name the team's key.

    An upload that names no encryption gets the bucket's default (SSE-KMS with the team's key)
    and is allowed. Each Deny tests the header with `Null: false` (present) as well as the
    negated operator: a negated operator alone, or an `...IfExists` one, is true when the key is
    missing from the request, which would deny every upload relying on the default encryption
    (IAM User Guide, "IAM JSON policy elements: Condition operators").
    """
    return _doc(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arns.bucket_arn, f"{arns.bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "DenyOtherKeys",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"{arns.bucket_arn}/*",
            "Condition": {
                "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": arns.kms_key_arn},
                "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
            },
        },
        {
            "Sid": "DenyOtherEncryption",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"{arns.bucket_arn}/*",
            "Condition": {
                "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
                "Null": {"s3:x-amz-server-side-encryption": "false"},
            },
        },
    )


def alarm_arns(account_id: str, region: str, alarm_names: Sequence[str], partition: str = "aws") -> list[str]:
    return [f"arn:{partition}:cloudwatch:{region}:{account_id}:alarm:{name}" for name in alarm_names]


def key_policy(account_id: str, region: str, log_group: str, alarm_names: Sequence[str], partition: str = "aws") -> str:
    """The account administers the key (IAM decides who uses it); CloudWatch Logs may use it for the
    team's group, and CloudWatch for the team's alarms publishing to the team's encrypted topic.

    CloudWatch cannot publish to an SNS topic encrypted with a customer managed key unless the key
    policy gives the cloudwatch.amazonaws.com principal kms:GenerateDataKey* and kms:Decrypt ("Enable
    compatibility between event sources from AWS services and encrypted topics",
    https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services);
    without it the alarms fire and nobody is told. aws:SourceAccount and aws:SourceArn (the team's
    alarms, by exact ARN: a team name can be the prefix of another's) keep other alarms from using it.
    """
    return _doc(
        {
            "Sid": "AccountAdministers",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "TeamLogGroup",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.amazonaws.com"},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            "Resource": "*",
            "Condition": {"ArnEquals": {
                "kms:EncryptionContext:aws:logs:arn": f"arn:{partition}:logs:{region}:{account_id}:log-group:{log_group}",
            }},
        },
        {
            "Sid": "TeamAlarmsToEncryptedTopic",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account_id},
                "ArnEquals": {"aws:SourceArn": alarm_arns(account_id, region, alarm_names, partition)},
            },
        },
    )


def alerts_topic_policy(topic_arn: str, account_id: str, region: str, alarm_names: Sequence[str], partition: str = "aws") -> str:
    """The team's alerts topic: the account administers it (IAM decides who), the team's alarms publish.

    Replaces SNS's default policy, which lets any principal of the account publish. CloudWatch
    publishes as its service principal; aws:SourceArn names the team's alarms
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-actions.html,
    confused-deputy prevention for SNS topics).
    """
    return _doc(
        {
            "Sid": "AccountAdministers",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
            "Action": [
                "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:AddPermission", "sns:RemovePermission",
                "sns:DeleteTopic", "sns:Subscribe", "sns:ListSubscriptionsByTopic", "sns:Publish",
            ],
            "Resource": topic_arn,
        },
        {
            "Sid": "TeamAlarmsPublish",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account_id},
                "ArnEquals": {"aws:SourceArn": alarm_arns(account_id, region, alarm_names, partition)},
            },
        },
    )
