"""Destroy (data kept) then create again, and destroy --delete-data, on the sandbox: AWS's rules for
what a destroy keeps (a bucket you own, a key, its alias, secrets and their recovery window) and for
a repository that holds images."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from provisioner.engines.sandbox.handlers.catalog import HANDLERS
from provisioner.engines.sandbox.state import StoredResource
from tests.engines.sandbox.conftest import client, spec_for

pytestmark = [pytest.mark.sandbox]

ACCOUNT = "123456789012"
MANIFEST = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
               "digest": "sha256:" + "a" * 64},
    "layers": [],
})


def team_secrets(engine, team: str, region: str) -> dict[str, bool]:
    """Every secret under the team's prefix -> whether it is scheduled for deletion."""
    listed = client(engine, "secretsmanager", region).list_secrets(IncludePlannedDeletion=True)["SecretList"]
    return {s["Name"]: bool(s.get("DeletedDate")) for s in listed if s["Name"].startswith(f"envctl/{team}/")}


def adopted(result) -> set[str]:
    return {c.type for c in result.changes if c.detail.startswith("adopted the kept")}


def test_destroy_then_create_adopts_the_kept_bucket_key_alias_and_secrets(engine):
    """Re-create after a destroy that kept the data: the same bucket and key come back, the secrets with
    their values (Airflow's fernet key too), without CreateBucket/CreateAlias/CreateSecret of what exists."""
    spec = spec_for("kappa", cidr="10.90.0.0/20")
    first = engine.up(spec).outputs
    manager = client(engine, "secretsmanager", spec.region)
    manager.put_secret_value(SecretId="envctl/kappa/airflow/fernet_key", SecretString="fernet-1")
    manager.put_secret_value(SecretId="envctl/kappa/snowflake_password", SecretString="pw-1")

    engine.destroy("kappa")
    kms = client(engine, "kms", spec.region)
    assert kms.describe_key(KeyId="alias/envctl-kappa")["KeyMetadata"]["Arn"] == first["kms_key_arn"]
    assert team_secrets(engine, "kappa", spec.region) == dict.fromkeys(
        ["envctl/kappa/snowflake_password", "envctl/kappa/partner_api_token", "envctl/kappa/airflow/fernet_key",
         "envctl/kappa/airflow/webserver_secret_key", "envctl/kappa/airflow/jwt_secret",
         "envctl/kappa/airflow/postgres_password", "envctl/kappa/airflow/owner_passwords"], False)

    again = engine.up(spec)

    assert (again.outputs["bucket_name"], again.outputs["kms_key_arn"]) == (first["bucket_name"], first["kms_key_arn"])
    assert {"aws:s3/bucket:Bucket", "aws:kms/key:Key", "aws:kms/alias:Alias",
            "aws:secretsmanager/secret:Secret"} <= adopted(again)
    assert manager.get_secret_value(SecretId="envctl/kappa/airflow/fernet_key")["SecretString"] == "fernet-1"
    assert manager.get_secret_value(SecretId="envctl/kappa/snowflake_password")["SecretString"] == "pw-1"
    keys = [k for k in kms.list_keys()["Keys"]
            if kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["Description"].startswith("envctl kappa:")]
    assert len(keys) == 1  # no second key made beside the kept one

    engine.destroy("kappa", delete_data=True)

    s3 = client(engine, "s3", spec.region)
    assert first["bucket_name"] not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert kms.describe_key(KeyId=first["kms_key_arn"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert "alias/envctl-kappa" not in [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    assert team_secrets(engine, "kappa", spec.region) == {}  # deleted without recovery: not even scheduled

    fresh = engine.up(spec)  # after --delete-data a create starts afresh
    assert fresh.outputs["kms_key_arn"] != first["kms_key_arn"] and not adopted(fresh)
    engine.destroy("kappa", delete_data=True)


def test_secret_scheduled_for_deletion_is_restored_with_its_value(engine):
    """AWS refuses CreateSecret for a name scheduled for deletion: a kept secret deleted with a recovery
    window (by hand, or by an older envctl) is restored by the create, value and all; a preview only says so."""
    spec = spec_for("lambda", cidr="10.89.0.0/20")
    engine.up(spec)
    manager = client(engine, "secretsmanager", spec.region)
    manager.put_secret_value(SecretId="envctl/lambda/airflow/jwt_secret", SecretString="jwt-1")
    engine.destroy("lambda")
    manager.delete_secret(SecretId="envctl/lambda/airflow/jwt_secret", RecoveryWindowInDays=7)

    preview = engine.preview(spec)
    assert any("envctl/lambda/airflow/jwt_secret is scheduled for deletion" in w for w in preview.warnings)
    assert team_secrets(engine, "lambda", spec.region)["envctl/lambda/airflow/jwt_secret"] is True

    result = engine.up(spec)

    assert any("restored secret envctl/lambda/airflow/jwt_secret" in w for w in result.warnings)
    assert manager.get_secret_value(SecretId="envctl/lambda/airflow/jwt_secret")["SecretString"] == "jwt-1"
    engine.destroy("lambda", delete_data=True)


def test_destroy_deletes_a_repository_that_holds_an_image(engine):
    """DeleteRepository refuses a repository with images unless forced: the program forces it, so a
    destroy after `envctl inference push` succeeds."""
    spec = spec_for("muon", cidr="10.88.0.0/20")
    engine.up(spec)
    ecr = client(engine, "ecr", spec.region)
    ecr.put_image(repositoryName="envctl-muon", imageManifest=MANIFEST, imageTag="v1")

    engine.destroy("muon", delete_data=True)

    with pytest.raises(ClientError, match="RepositoryNotFoundException"):
        ecr.describe_repositories(repositoryNames=["envctl-muon"])


def test_repository_without_force_delete_holding_an_image_is_refused(engine):
    """AWS's rule, kept by the sandbox: DeleteRepository of a non-empty repository without force fails."""
    spec = spec_for("nuon", cidr="10.87.0.0/20")
    info = engine.server.ensure_started()
    ctx = engine._context(info)
    ecr = client(engine, "ecr", spec.region)
    ecr.create_repository(repositoryName="envctl-nu-plain")
    ecr.put_image(repositoryName="envctl-nu-plain", imageManifest=MANIFEST, imageTag="v1")
    repository = StoredResource(urn="urn:pulumi:nuon::envctl::aws:ecr/repository:Repository::r",
                                type="aws:ecr/repository:Repository", name="r", id="envctl-nu-plain",
                                inputs={"name": "envctl-nu-plain"}, outputs={}, inputs_hash="")

    with pytest.raises(ClientError, match="RepositoryNotEmptyException"):
        HANDLERS["aws:ecr/repository:Repository"].delete(ctx, repository, spec.region)
    assert ecr.describe_repositories(repositoryNames=["envctl-nu-plain"])["repositories"]


def test_a_secret_dropped_from_the_request_and_named_again_is_adopted_with_its_value(engine):
    """A secret left out of the request is kept (retain_on_delete), so naming it again must adopt it:
    AWS refuses CreateSecret of a name that exists ("ResourceExistsException")."""
    spec = spec_for("lambda", cidr="10.91.0.0/20")
    engine.up(spec)
    manager = client(engine, "secretsmanager", spec.region)
    manager.put_secret_value(SecretId="envctl/lambda/partner_api_token", SecretString="token-1")
    without = spec_for("lambda", cidr="10.91.0.0/20", secrets=["snowflake_password"])
    engine.up(without)
    assert "envctl/lambda/partner_api_token" in team_secrets(engine, "lambda", spec.region)

    again = engine.up(spec)

    assert "aws:secretsmanager/secret:Secret" in adopted(again)
    assert manager.get_secret_value(SecretId="envctl/lambda/partner_api_token")["SecretString"] == "token-1"
    engine.destroy("lambda", delete_data=True)
