"""Sandbox handlers for where a team's data lives: KMS key and alias, S3 bucket and its settings,
ECR repository, Secrets Manager secrets (containers only: never a value)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from provisioner.engines.mocked import Registration
from provisioner.engines.sandbox.handlers.common import (
    arn, autoname, compact, ignore_missing, input_changed, is_error, policy_text, removed_tag_keys, tag_list,
)
from provisioner.engines.sandbox.handlers.registry import Handler, SandboxContext, register
from provisioner.engines.sandbox.state import StoredResource
from provisioner.errors import EnvctlError

# AWS accepts a KMS key deletion window of 7 to 30 days.
KMS_MIN_DELETION_WINDOW, KMS_MAX_DELETION_WINDOW = 7, 30


# --- KMS -------------------------------------------------------------------------------------


@register("aws:kms/key:Key")
class KmsKey(Handler):
    """A customer managed KMS key with its description, key policy, rotation and tags.

    Sandbox: moto stores the key policy but never evaluates it, and "scheduled for deletion"
    is as far as deletion goes, as in AWS (the key is then treated as gone).
    """

    replace_on = ("keyUsage", "customerMasterKeySpec", "keySpec", "multiRegion")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        kms = ctx.client("kms", region)
        inputs = reg.inputs
        metadata = kms.create_key(**compact(
            Description=inputs.get("description"),
            Policy=policy_text(inputs["policy"]) if inputs.get("policy") else None,
            KeyUsage=inputs.get("keyUsage"),
            KeySpec=inputs.get("customerMasterKeySpec") or inputs.get("keySpec"),
            MultiRegion=inputs.get("multiRegion"),
            Tags=tag_list(ctx.tags(reg), key="TagKey", value="TagValue"),
        ))["KeyMetadata"]
        key_id = metadata["KeyId"]
        self._set_rotation(kms, key_id, reg.inputs)
        self._set_enabled(kms, key_id, reg.inputs)
        return key_id, self._outputs(ctx, reg, metadata["Arn"], key_id)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        kms = ctx.client("kms", region)
        if input_changed(reg, old, "description"):
            kms.update_key_description(KeyId=old.id, Description=reg.inputs.get("description") or "")
        if input_changed(reg, old, "policy") and reg.inputs.get("policy"):
            kms.put_key_policy(KeyId=old.id, PolicyName="default", Policy=policy_text(reg.inputs["policy"]))
        if input_changed(reg, old, "enableKeyRotation") or input_changed(reg, old, "rotationPeriodInDays"):
            self._set_rotation(kms, old.id, reg.inputs)
        if input_changed(reg, old, "isEnabled"):
            self._set_enabled(kms, old.id, reg.inputs)
        self._sync_tags(kms, old.id, ctx.tags(old), ctx.tags(reg))
        return self._outputs(ctx, reg, old.outputs["arn"], old.id)

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        window = int(old.inputs.get("deletionWindowInDays") or KMS_MAX_DELETION_WINDOW)
        window = min(max(window, KMS_MIN_DELETION_WINDOW), KMS_MAX_DELETION_WINDOW)
        ignore_missing(lambda: ctx.client("kms", region).schedule_key_deletion(KeyId=old.id, PendingWindowInDays=window),
                       "NotFoundException", "KMSInvalidStateException")

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        return self._live_metadata(ctx, old.id, region) is not None

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        """A key has no name to be found by: only an import (the id of a kept key) finds one."""
        metadata = self._live_metadata(ctx, reg.import_id, region) if reg.import_id else None
        return (metadata["KeyId"], self._outputs(ctx, reg, metadata["Arn"], metadata["KeyId"])) if metadata else None

    @staticmethod
    def _live_metadata(ctx: SandboxContext, key_id: str, region: str) -> dict[str, Any] | None:
        """The key's metadata, None when it is gone or scheduled for deletion."""
        try:
            metadata = ctx.client("kms", region).describe_key(KeyId=key_id)["KeyMetadata"]
        except ClientError as error:
            if is_error(error, "NotFoundException"):
                return None
            raise
        return None if metadata["KeyState"] in ("PendingDeletion", "PendingReplicaDeletion") else metadata

    @staticmethod
    def _set_rotation(kms: Any, key_id: str, inputs: dict[str, Any]) -> None:
        if inputs.get("enableKeyRotation"):
            period = inputs.get("rotationPeriodInDays")
            kms.enable_key_rotation(**compact(KeyId=key_id, RotationPeriodInDays=int(period) if period else None))
        else:
            kms.disable_key_rotation(KeyId=key_id)

    @staticmethod
    def _set_enabled(kms: Any, key_id: str, inputs: dict[str, Any]) -> None:
        if inputs.get("isEnabled") is False:
            kms.disable_key(KeyId=key_id)
        else:
            kms.enable_key(KeyId=key_id)

    @staticmethod
    def _sync_tags(kms: Any, key_id: str, old_tags: dict[str, str], new_tags: dict[str, str]) -> None:
        if removed := removed_tag_keys(old_tags, new_tags):
            kms.untag_resource(KeyId=key_id, TagKeys=removed)
        if new_tags and new_tags != old_tags:
            kms.tag_resource(KeyId=key_id, Tags=tag_list(new_tags, key="TagKey", value="TagValue"))

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, key_arn: str, key_id: str) -> dict[str, Any]:
        return {**reg.inputs, "arn": key_arn, "keyId": key_id, "tagsAll": ctx.tags(reg)}


@register("aws:kms/alias:Alias")
class KmsAlias(Handler):
    """A KMS alias (`alias/<name>`) pointing at a key; retargeted in place.

    Sandbox: same as AWS for what envctl uses.
    """

    replace_on = ("name", "namePrefix")
    delete_before_replace = True

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = reg.inputs.get("name") or f"alias/{autoname(reg.name, max_length=250)}"
        ctx.client("kms", region).create_alias(AliasName=name, TargetKeyId=reg.inputs["targetKeyId"])
        return name, self._outputs(ctx, reg, name, region)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        ctx.client("kms", region).update_alias(AliasName=old.id, TargetKeyId=reg.inputs["targetKeyId"])
        return self._outputs(ctx, reg, old.id, region)

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        ignore_missing(lambda: ctx.client("kms", region).delete_alias(AliasName=old.id), "NotFoundException")

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        return self._target_of(ctx, old.id, region) is not None

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        name = reg.inputs.get("name")
        if not name or self._target_of(ctx, name, region) is None:
            return None
        return name, self._outputs(ctx, reg, name, region)

    @staticmethod
    def _target_of(ctx: SandboxContext, alias_name: str, region: str) -> str | None:
        paginator = ctx.client("kms", region).get_paginator("list_aliases")
        for page in paginator.paginate():
            for alias in page["Aliases"]:
                if alias["AliasName"] == alias_name:
                    return alias.get("TargetKeyId")
        return None

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, name: str, region: str) -> dict[str, Any]:
        target = reg.inputs["targetKeyId"]
        target_arn = target if target.startswith("arn:") else arn("kms", region, ctx.account_id, f"key/{target}")
        return {**reg.inputs, "name": name, "arn": arn("kms", region, ctx.account_id, name), "targetKeyArn": target_arn}


# --- S3 --------------------------------------------------------------------------------------


def _bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if is_error(error, "404", "NoSuchBucket", "NotFound"):
            return False
        raise
    return True


@register("aws:s3/bucket:Bucket")
class Bucket(Handler):
    """An S3 bucket in the stack's region, with tags; deleted only when empty unless data may go.

    Sandbox: moto keeps objects in the server's memory; the bucket's settings (encryption,
    versioning, public access block, policy) are separate resources with their own handlers.
    Deletion follows AWS: a bucket with objects is refused unless the run may delete data
    (`--delete-data`) or the program set `forceDestroy`, and then every object version and
    delete marker goes first.
    """

    replace_on = ("bucket", "bucketPrefix", "objectLockEnabled")
    delete_before_replace = True

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = self._bucket_name(reg)
        s3 = ctx.client("s3", region)
        if region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
        if tags := ctx.tags(reg):
            self._put_tags(s3, name, tags)
        return name, self._outputs(ctx, reg, name, region)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        # Only tags (and forceDestroy, which is no AWS setting) can change in place.
        self._put_tags(ctx.client("s3", region), old.id, ctx.tags(reg))
        return self._outputs(ctx, reg, old.id, region)

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        s3 = ctx.client("s3", region)
        if not _bucket_exists(s3, old.id):
            return
        if self._holds_objects(s3, old.id):
            if not (ctx.delete_data or old.inputs.get("forceDestroy")):
                raise EnvctlError(
                    f"bucket {old.id} still holds objects; it is the team's data and is not deleted",
                    hint="destroy with --delete-data to delete the bucket with everything in it",
                )
            self._delete_every_version(s3, old.id)
        s3.delete_bucket(Bucket=old.id)

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        return _bucket_exists(ctx.client("s3", region), old.id)

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        name = reg.inputs.get("bucket")
        if not name or not _bucket_exists(ctx.client("s3", region), name):
            return None
        return name, self._outputs(ctx, reg, name, region)

    @staticmethod
    def _bucket_name(reg: Registration) -> str:
        if reg.inputs.get("bucket"):
            return reg.inputs["bucket"]
        if reg.inputs.get("bucketPrefix"):
            return autoname(reg.inputs["bucketPrefix"].rstrip("-"), max_length=63)
        return autoname(reg.name.lower(), max_length=63)

    @staticmethod
    def _put_tags(s3: Any, bucket: str, tags: dict[str, str]) -> None:
        if tags:
            s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_list(tags)})
        else:
            s3.delete_bucket_tagging(Bucket=bucket)

    @staticmethod
    def _holds_objects(s3: Any, bucket: str) -> bool:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=1)
        return bool(page.get("Versions") or page.get("DeleteMarkers"))

    @staticmethod
    def _delete_every_version(s3: Any, bucket: str) -> None:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            versions = page.get("Versions", []) + page.get("DeleteMarkers", [])
            objects = [{"Key": item["Key"], "VersionId": item["VersionId"]} for item in versions]
            if objects:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, name: str, region: str) -> dict[str, Any]:
        return {
            **reg.inputs,
            "bucket": name,
            "arn": f"arn:aws:s3:::{name}",
            "bucketDomainName": f"{name}.s3.amazonaws.com",
            "bucketRegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
            "region": region,
            "tagsAll": ctx.tags(reg),
        }


class _BucketSetting(Handler):
    """Base for a bucket's setting resources: id = bucket name, put on create and update."""

    replace_on = ("bucket", "expectedBucketOwner")

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        bucket = reg.inputs["bucket"]
        return bucket, self.put(ctx.client("s3", region), bucket, reg)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        return self.put(ctx.client("s3", region), old.id, reg)

    def put(self, s3: Any, bucket: str, reg: Registration) -> dict[str, Any]:
        """Apply the setting; the resource's outputs."""
        raise NotImplementedError


@register("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
class BucketPublicAccessBlock(_BucketSetting):
    """A bucket's public access block (the four block/ignore/restrict switches).

    Sandbox: moto stores the switches but does not enforce them.
    """

    def put(self, s3: Any, bucket: str, reg: Registration) -> dict[str, Any]:
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": bool(reg.inputs.get("blockPublicAcls")),
            "IgnorePublicAcls": bool(reg.inputs.get("ignorePublicAcls")),
            "BlockPublicPolicy": bool(reg.inputs.get("blockPublicPolicy")),
            "RestrictPublicBuckets": bool(reg.inputs.get("restrictPublicBuckets")),
        })
        return dict(reg.inputs)

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        ignore_missing(lambda: ctx.client("s3", region).delete_public_access_block(Bucket=old.id), "NoSuchBucket")

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        try:
            ctx.client("s3", region).get_public_access_block(Bucket=old.id)
        except ClientError as error:
            if is_error(error, "NoSuchBucket", "NoSuchPublicAccessBlockConfiguration"):
                return False
            raise
        return True


@register("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
class BucketEncryption(_BucketSetting):
    """A bucket's default encryption (SSE-KMS with the team's key, bucket key on).

    Sandbox: moto records the default encryption and reports it on objects, but does not
    call KMS, so key policies and grants play no part.
    """

    def put(self, s3: Any, bucket: str, reg: Registration) -> dict[str, Any]:
        rules = [self._rule(rule) for rule in reg.inputs.get("rules") or []]
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})
        return dict(reg.inputs)

    @staticmethod
    def _rule(rule: dict[str, Any]) -> dict[str, Any]:
        default = rule.get("applyServerSideEncryptionByDefault") or {}
        translated: dict[str, Any] = {}
        if default:
            translated["ApplyServerSideEncryptionByDefault"] = compact(
                SSEAlgorithm=default["sseAlgorithm"], KMSMasterKeyID=default.get("kmsMasterKeyId") or None,
            )
        if rule.get("bucketKeyEnabled") is not None:
            translated["BucketKeyEnabled"] = bool(rule["bucketKeyEnabled"])
        return translated

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        ignore_missing(lambda: ctx.client("s3", region).delete_bucket_encryption(Bucket=old.id), "NoSuchBucket")

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        try:
            ctx.client("s3", region).get_bucket_encryption(Bucket=old.id)
        except ClientError as error:
            if is_error(error, "NoSuchBucket", "ServerSideEncryptionConfigurationNotFoundError"):
                return False
            raise
        return True


@register("aws:s3/bucketVersioning:BucketVersioning")
class BucketVersioning(_BucketSetting):
    """A bucket's versioning state; deleting it suspends versioning, as the AWS provider does.

    Sandbox: same as AWS for what envctl uses (MFA delete is stored, never asked for).
    """

    def put(self, s3: Any, bucket: str, reg: Registration) -> dict[str, Any]:
        config = reg.inputs.get("versioningConfiguration") or {}
        status = config.get("status", "Enabled")
        if status == "Disabled":
            # "Disabled" means never enabled; a bucket that had it can only be suspended.
            if self._status(s3, bucket):
                self._suspend(s3, bucket)
        else:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=compact(
                Status=status, MFADelete=config.get("mfaDelete"),
            ))
        return dict(reg.inputs)

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        s3 = ctx.client("s3", region)
        if _bucket_exists(s3, old.id) and self._status(s3, old.id):
            self._suspend(s3, old.id)

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        s3 = ctx.client("s3", region)
        if not _bucket_exists(s3, old.id):
            return False
        wanted = (old.inputs.get("versioningConfiguration") or {}).get("status", "Enabled")
        return wanted == "Disabled" or self._status(s3, old.id) == wanted

    @staticmethod
    def _status(s3: Any, bucket: str) -> str:
        return s3.get_bucket_versioning(Bucket=bucket).get("Status", "")

    @staticmethod
    def _suspend(s3: Any, bucket: str) -> None:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})


@register("aws:s3/bucketPolicy:BucketPolicy")
class BucketPolicy(_BucketSetting):
    """A bucket's resource policy (TLS only, only the team's key, only the team's roles).

    Sandbox: moto gets the program's whole policy. moto's own bucket-policy check ignores
    conditions (a TLS-only Deny would deny every object call), so the sandbox server switches
    it off and its fidelity rule `bucket_policy_denies` evaluates the Deny statements with their
    conditions, as AWS does (provisioner/engines/sandbox/fidelity/rules/s3.py).
    """

    def put(self, s3: Any, bucket: str, reg: Registration) -> dict[str, Any]:
        s3.put_bucket_policy(Bucket=bucket, Policy=policy_text(reg.inputs["policy"]))
        return dict(reg.inputs)

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        ignore_missing(lambda: ctx.client("s3", region).delete_bucket_policy(Bucket=old.id), "NoSuchBucket")

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        try:
            ctx.client("s3", region).get_bucket_policy(Bucket=old.id)
        except ClientError as error:
            if is_error(error, "NoSuchBucket", "NoSuchBucketPolicy"):
                return False
            raise
        return True


# --- ECR -------------------------------------------------------------------------------------


@register("aws:ecr/repository:Repository")
class EcrRepository(Handler):
    """An ECR repository: tag mutability, scan on push, KMS encryption, tags; deleted with its
    images only when `forceDelete` is set, as in AWS.

    Sandbox: moto has no registry endpoint (static auth token), so images cannot be pushed to
    or pulled from the repository through moto; PutImage records one (and the repository is
    then not empty). The repository's settings are stored as in AWS.
    """

    replace_on = ("name", "encryptionConfigurations")
    delete_before_replace = True

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = reg.inputs.get("name") or autoname(reg.name.lower(), max_length=256)
        encryption = (reg.inputs.get("encryptionConfigurations") or [None])[0]
        repository = ctx.client("ecr", region).create_repository(**compact(
            repositoryName=name,
            imageTagMutability=reg.inputs.get("imageTagMutability"),
            imageScanningConfiguration=self._scanning(reg.inputs),
            encryptionConfiguration=compact(
                encryptionType=encryption.get("encryptionType", "AES256"), kmsKey=encryption.get("kmsKey") or None,
            ) if encryption else None,
            tags=tag_list(ctx.tags(reg)),
        ))["repository"]
        return name, self._outputs(ctx, reg, repository)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        ecr = ctx.client("ecr", region)
        if input_changed(reg, old, "imageTagMutability"):
            mutability = reg.inputs.get("imageTagMutability") or "MUTABLE"
            ecr.put_image_tag_mutability(repositoryName=old.id, imageTagMutability=mutability)
        if input_changed(reg, old, "imageScanningConfiguration"):
            scanning = self._scanning(reg.inputs) or {"scanOnPush": False}
            ecr.put_image_scanning_configuration(repositoryName=old.id, imageScanningConfiguration=scanning)
        self._sync_tags(ecr, old.outputs["arn"], ctx.tags(old), ctx.tags(reg))
        return self._outputs(ctx, reg, self._describe(ecr, old.id))

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        """As AWS: a repository that holds images is deleted only with `forceDelete` (else RepositoryNotEmptyException)."""
        force = bool(old.inputs.get("forceDelete"))
        ignore_missing(lambda: ctx.client("ecr", region).delete_repository(repositoryName=old.id, force=force),
                       "RepositoryNotFoundException")

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        return self._describe(ctx.client("ecr", region), old.id) is not None

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        name = reg.inputs.get("name")
        repository = self._describe(ctx.client("ecr", region), name) if name else None
        return (name, self._outputs(ctx, reg, repository)) if repository else None

    @staticmethod
    def _scanning(inputs: dict[str, Any]) -> dict[str, bool] | None:
        scanning = inputs.get("imageScanningConfiguration")
        return {"scanOnPush": bool(scanning.get("scanOnPush"))} if scanning else None

    @staticmethod
    def _describe(ecr: Any, name: str) -> dict[str, Any] | None:
        try:
            return ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        except ClientError as error:
            if is_error(error, "RepositoryNotFoundException"):
                return None
            raise

    @staticmethod
    def _sync_tags(ecr: Any, resource_arn: str, old_tags: dict[str, str], new_tags: dict[str, str]) -> None:
        if removed := removed_tag_keys(old_tags, new_tags):
            ecr.untag_resource(resourceArn=resource_arn, tagKeys=removed)
        if new_tags and new_tags != old_tags:
            ecr.tag_resource(resourceArn=resource_arn, tags=tag_list(new_tags))

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, repository: dict[str, Any]) -> dict[str, Any]:
        return {
            **reg.inputs,
            "name": repository["repositoryName"],
            "arn": repository["repositoryArn"],
            "registryId": repository["registryId"],
            "repositoryUrl": repository["repositoryUri"],
            "tagsAll": ctx.tags(reg),
        }


# --- Secrets Manager -------------------------------------------------------------------------


@register("aws:secretsmanager/secret:Secret")
class Secret(Handler):
    """A Secrets Manager secret container (name, description, KMS key, tags), never a value.

    Deletion follows AWS: the secret is scheduled for deletion after its recovery window
    (`recoveryWindowInDays`; 0 deletes at once), and its name cannot be used again until then;
    a run that may delete data (`--delete-data`) deletes it without recovery. A secret
    scheduled for deletion is gone for `exists` and `find` (an engine restores kept ones first).
    Sandbox: same as AWS for what envctl uses.
    """

    replace_on = ("name", "namePrefix")
    delete_before_replace = True

    def create(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]]:
        name = reg.inputs.get("name") or autoname(reg.inputs.get("namePrefix") or reg.name, max_length=512)
        created = ctx.client("secretsmanager", region).create_secret(**compact(
            Name=name,
            Description=reg.inputs.get("description"),
            KmsKeyId=reg.inputs.get("kmsKeyId"),
            Tags=tag_list(ctx.tags(reg)),
        ))
        return created["ARN"], self._outputs(ctx, reg, created["ARN"], name)

    def update(self, ctx: SandboxContext, reg: Registration, old: StoredResource, region: str) -> dict[str, Any]:
        secrets = ctx.client("secretsmanager", region)
        if input_changed(reg, old, "description") or input_changed(reg, old, "kmsKeyId"):
            secrets.update_secret(**compact(
                SecretId=old.id, Description=reg.inputs.get("description") or "", KmsKeyId=reg.inputs.get("kmsKeyId"),
            ))
        self._sync_tags(secrets, old.id, ctx.tags(old), ctx.tags(reg))
        return self._outputs(ctx, reg, old.id, old.outputs["name"])

    def delete(self, ctx: SandboxContext, old: StoredResource, region: str) -> None:
        window = old.inputs.get("recoveryWindowInDays")
        when = ({"ForceDeleteWithoutRecovery": True} if ctx.delete_data or not window
                else {"RecoveryWindowInDays": int(window)})
        ignore_missing(lambda: ctx.client("secretsmanager", region).delete_secret(SecretId=old.id, **when),
                       "ResourceNotFoundException")

    def exists(self, ctx: SandboxContext, old: StoredResource, region: str) -> bool:
        return self._describe(ctx, old.id, region) is not None

    def find(self, ctx: SandboxContext, reg: Registration, region: str) -> tuple[str, dict[str, Any]] | None:
        """By its ARN when imported, else by its name."""
        name = reg.inputs.get("name")
        secret = self._describe(ctx, reg.import_id or name, region) if (reg.import_id or name) else None
        return (secret["ARN"], self._outputs(ctx, reg, secret["ARN"], secret["Name"])) if secret else None

    @staticmethod
    def _describe(ctx: SandboxContext, secret_id: str, region: str) -> dict[str, Any] | None:
        try:
            secret = ctx.client("secretsmanager", region).describe_secret(SecretId=secret_id)
        except ClientError as error:
            if is_error(error, "ResourceNotFoundException"):
                return None
            raise
        return None if secret.get("DeletedDate") else secret

    @staticmethod
    def _sync_tags(secrets: Any, secret_id: str, old_tags: dict[str, str], new_tags: dict[str, str]) -> None:
        if removed := removed_tag_keys(old_tags, new_tags):
            secrets.untag_resource(SecretId=secret_id, TagKeys=removed)
        if new_tags and new_tags != old_tags:
            secrets.tag_resource(SecretId=secret_id, Tags=tag_list(new_tags))

    @staticmethod
    def _outputs(ctx: SandboxContext, reg: Registration, secret_arn: str, name: str) -> dict[str, Any]:
        return {**reg.inputs, "name": name, "arn": secret_arn, "tagsAll": ctx.tags(reg)}
