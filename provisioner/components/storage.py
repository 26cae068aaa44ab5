"""TeamStorage: the team's KMS key, data bucket, ECR repository, log group and secret containers.

The bucket, the key, its alias and the secrets hold the team's data: all are kept when the
stack is destroyed (retain_on_delete) unless the operator asks for `--delete-data`, and the
next create adopts them (`args.kept`, imported with Pulumi's `import_` option) instead of
creating them: the same bucket and key come back, and the secrets with their values (Airflow's
fernet key among them: without it a restored metadata backup cannot be read). Secret
containers carry no values; values are put with `envctl secrets set` or generated on the host
at first boot.

An adopted resource's inputs here match what this component created (names, description,
key policy, settings), so the import changes nothing; since CLI 3.174 (pulumi/pulumi#19339)
Pulumi imports, then updates in place whatever differs, and refuses a difference that would
replace the resource.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from provisioner.components import policies
from provisioner.components.kept import KeptData
from provisioner.components.names import AIRFLOW_INTERNAL_SECRETS, OWNER_PASSWORDS_SECRET, TeamNames


@dataclass
class TeamStorageArgs:
    team: str
    account_id: pulumi.Input[str]
    region: str
    log_retention_days: int
    secret_names: tuple[str, ...]
    protect_data: bool = True
    kept: KeptData = field(default_factory=KeptData)  # what an earlier destroy kept, to adopt


class TeamStorage(pulumi.ComponentResource):
    def __init__(self, name: str, args: TeamStorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("envctl:index:TeamStorage", name, None, opts)
        names = TeamNames(args.team)
        child = pulumi.ResourceOptions(parent=self)
        kept = args.kept

        def keep(import_id: str | None) -> pulumi.ResourceOptions:
            """Kept by a destroy; adopted (imported) when an earlier destroy kept it."""
            return pulumi.ResourceOptions(parent=self, retain_on_delete=args.protect_data, import_=import_id)

        self.key = aws.kms.Key(
            f"{name}-key", description=f"envctl {args.team}: bucket, volumes, secrets, logs",
            enable_key_rotation=True, deletion_window_in_days=30,
            policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: policies.key_policy(account, args.region, names.log_group, names.alarm_names)
            ),
            opts=keep(kept.key_id),
        )
        # Kept with the key: it is how a re-create finds the key again.
        aws.kms.Alias(f"{name}-key-alias", name=names.kms_alias, target_key_id=self.key.key_id, opts=keep(kept.key_alias))

        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=pulumi.Output.from_input(args.account_id).apply(lambda account: names.bucket(account, args.region)),
            force_destroy=False, opts=keep(kept.bucket),
        )
        # The kept bucket keeps its guards too: public access block, encryption, versioning, policy.
        # They need no import: creating one is a Put, which AWS accepts over the kept setting.
        bucket_child = pulumi.ResourceOptions(parent=self, depends_on=[self.bucket], retain_on_delete=args.protect_data)
        aws.s3.BucketPublicAccessBlock(
            f"{name}-bucket-public-access", bucket=self.bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=bucket_child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-bucket-encryption", bucket=self.bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms", "kms_master_key_id": self.key.arn},
                    "bucket_key_enabled": True}],
            opts=bucket_child,
        )
        aws.s3.BucketVersioning(
            f"{name}-bucket-versioning", bucket=self.bucket.id, versioning_configuration={"status": "Enabled"}, opts=bucket_child,
        )
        self.bucket_policy = aws.s3.BucketPolicy(
            f"{name}-bucket-policy", bucket=self.bucket.id,
            policy=pulumi.Output.all(self.bucket.bucket, self.key.arn, args.account_id).apply(
                lambda v: policies.bucket_policy(
                    policies.TeamArns.for_team(args.team, account_id=v[2], region=args.region, bucket=v[0], kms_key_arn=v[1])
                )
            ),
            opts=bucket_child,
        )

        self.repository = aws.ecr.Repository(
            f"{name}-repository", name=names.ecr_repository, image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": self.key.arn}],
            # DeleteRepository refuses a repository that holds images unless forced: the images are
            # rebuilt from the team's code and envctl's default image, so a destroy deletes them.
            force_delete=True,
            opts=child,
        )
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", name=names.log_group, retention_in_days=args.log_retention_days, kms_key_id=self.key.arn, opts=child,
        )
        self.secrets = {
            secret: aws.secretsmanager.Secret(
                f"{name}-secret-{secret.replace('_', '-')}", name=names.secret(secret), kms_key_id=self.key.arn,
                description=f"envctl {args.team}: {secret} (value set with `envctl secrets set {args.team} {secret}`)",
                recovery_window_in_days=7, opts=keep(kept.secrets.get(names.secret(secret))),
            )
            for secret in args.secret_names
        }
        self.airflow_secrets = {
            secret: aws.secretsmanager.Secret(
                f"{name}-airflow-{secret.replace('_', '-')}", name=names.airflow_secret(secret), kms_key_id=self.key.arn,
                description=f"envctl {args.team}: Airflow {secret}, generated on the host at first boot",
                recovery_window_in_days=7, opts=keep(kept.secrets.get(names.airflow_secret(secret))),
            )
            for secret in AIRFLOW_INTERNAL_SECRETS
        }
        # Like Airflow's keys: kept with the data (a restored metadata backup holds these accounts).
        self.owner_passwords = aws.secretsmanager.Secret(
            f"{name}-airflow-owner-passwords", name=names.owner_passwords_secret, kms_key_id=self.key.arn,
            description=f"envctl {args.team}: the owners' initial Airflow passwords, generated on the host "
                        f"(read one with `envctl password {args.team} --owner <email>`)",
            recovery_window_in_days=7, opts=keep(kept.secrets.get(names.airflow_secret(OWNER_PASSWORDS_SECRET))),
        )
        self.register_outputs({"bucket": self.bucket.bucket, "kms_key_arn": self.key.arn,
                               "repository_url": self.repository.repository_url})
