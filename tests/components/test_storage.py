"""TeamStorage under Pulumi mocks: what a destroy keeps, what it may delete, and how kept data is adopted."""

from __future__ import annotations

from provisioner.components.kept import KeptData
from provisioner.engines.mocked import run_program
from provisioner.engines.offline import OfflineMaterialiser
from provisioner.program import BuildOptions, build
from provisioner.spec import load_team
from tests.conftest import ROOT

KEPT_TYPES = {"aws:s3/bucket:Bucket", "aws:kms/key:Key", "aws:kms/alias:Alias", "aws:secretsmanager/secret:Secret"}


def registrations(kept: KeptData | None = None):
    spec = load_team("fraud", ROOT / "stacks", default_region="eu-west-1", pool="10.0.0.0/8", prefix=20, root=ROOT)
    run = run_program(lambda: build(spec, BuildOptions(kept=kept or KeptData())) and None, OfflineMaterialiser("eu-west-1"),
                      project="envctl", stack="fraud", config={"aws:region": "eu-west-1"})
    return [r for r in run.registrations if r.custom and not r.is_provider]


def test_repository_is_force_deleted_because_delete_repository_refuses_one_with_images():
    """DeleteRepository fails on a repository that holds images unless forced: a destroy after a push must work."""
    (repository,) = [r for r in registrations() if r.type == "aws:ecr/repository:Repository"]
    assert repository.inputs["forceDelete"] is True


def test_the_team_data_is_kept_by_a_destroy_and_nothing_is_imported_without_kept_data():
    """Bucket, key, alias and every secret (their values too: Airflow's fernet key) outlive a destroy; a first
    create imports nothing."""
    made = registrations()
    kept = {r.type for r in made if r.retain_on_delete}
    assert KEPT_TYPES <= kept
    assert all(r.retain_on_delete for r in made if r.type == "aws:secretsmanager/secret:Secret")
    assert not any(r.import_id for r in made)


def test_kept_data_becomes_import_ids_on_exactly_those_resources():
    """Each kept id reaches its resource as the `import_` option; everything else is created as usual."""
    kept = KeptData(bucket="envctl-fraud-123456789012-eu-west-1", key_id="k-1", key_alias="alias/envctl-fraud",
                    secrets={"envctl/fraud/airflow/fernet_key": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:f"})
    imported = {(r.type, r.inputs.get("name", "")): r.import_id for r in registrations(kept) if r.import_id}
    assert imported == {
        ("aws:s3/bucket:Bucket", ""): kept.bucket,
        ("aws:kms/key:Key", ""): "k-1",
        ("aws:kms/alias:Alias", "alias/envctl-fraud"): "alias/envctl-fraud",
        ("aws:secretsmanager/secret:Secret", "envctl/fraud/airflow/fernet_key"): kept.secrets["envctl/fraud/airflow/fernet_key"],
    }
