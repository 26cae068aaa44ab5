"""The sandbox engine against a real moto server: create, converge, change, destroy, recover."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace

import pytest

from provisioner.engines.sandbox.engine import SandboxEngine
from provisioner.engines.sandbox.handlers.ec2 import URN_TAG
from provisioner.errors import LockConflict
from provisioner.program import UserdataInputs, userdata_context
from provisioner.spec import ResolvedSpec
from provisioner.userdata import encode_for_instance, render_userdata
from tests.conftest import ROOT
from tests.engines.sandbox.conftest import client, make_engine, spec_for

pytestmark = [pytest.mark.sandbox]


@pytest.fixture(scope="module")
def two_teams(engine):
    """Two teams in different regions, created once for the read-back tests."""
    alpha, beta = spec_for("alpha"), spec_for("beta", region="eu-central-1", cidr="10.98.0.0/20")
    return {"alpha": (alpha, engine.up(alpha)), "beta": (beta, engine.up(beta))}


def instance_of(engine, spec, outputs):
    ec2 = client(engine, "ec2", spec.region)
    return ec2.describe_instances(InstanceIds=[outputs["instance_id"]])["Reservations"][0]["Instances"][0]


def test_create_materialises_every_resource(two_teams):
    """Every resource the program registers is made in moto; none is left unmaterialised."""
    for _spec, result in two_teams.values():
        assert result.summary["create"] == len(result.changes) > 40
        assert result.not_materialised == []
        assert result.outputs["instance_id"].startswith("i-")


def test_instance_userdata_is_byte_identical_to_the_rendered_script(engine, two_teams):
    spec, result = two_teams["alpha"]
    ec2 = client(engine, "ec2", spec.region)
    attribute = ec2.describe_instance_attribute(InstanceId=result.outputs["instance_id"], Attribute="userData")
    stored = base64.b64decode(attribute["UserData"]["Value"])
    volume = ec2.describe_volumes(Filters=[{"Name": "tag:envctl:team", "Values": ["alpha"]}])["Volumes"][0]
    expected = render_userdata(userdata_context(spec, UserdataInputs(
        bucket=result.outputs["bucket_name"], kms_key_arn=result.outputs["kms_key_arn"], data_volume_id=volume["VolumeId"],
        sagemaker_role_arn=result.outputs["sagemaker_role_arn"], ecr_repository_url=result.outputs["ecr_repository_url"])))
    sent = encode_for_instance(expected)  # gzip above EC2's 16 KB
    assert stored == (base64.b64decode(sent["user_data_base64"]) if "user_data_base64" in sent else sent["user_data"].encode())


def test_instance_is_private_requires_imdsv2_and_carries_team_tags(engine, two_teams):
    for team, (spec, result) in two_teams.items():
        instance = instance_of(engine, spec, result.outputs)
        assert instance["MetadataOptions"]["HttpTokens"] == "required"
        assert instance["MetadataOptions"]["HttpPutResponseHopLimit"] == 2
        assert "PublicIpAddress" not in instance
        assert instance["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/envctl-{team}-airflow-host")
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["envctl:team"] == team and tags["envctl:managed-by"] == "envctl" and tags["envctl:cost-center"] == "CC-1042"


def test_bucket_is_encrypted_with_the_team_key(engine, two_teams):
    for spec, result in two_teams.values():
        s3 = client(engine, "s3", spec.region)
        rule = s3.get_bucket_encryption(Bucket=result.outputs["bucket_name"])["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms",
                                                             "KMSMasterKeyID": result.outputs["kms_key_arn"]}
        assert s3.get_bucket_versioning(Bucket=result.outputs["bucket_name"])["Status"] == "Enabled"
        tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=result.outputs["bucket_name"])["TagSet"]}
        assert tags["envctl:team"] == spec.team


def test_role_policies_name_the_team_resources_and_the_boundary(engine, two_teams):
    spec, result = two_teams["beta"]
    iam = client(engine, "iam", spec.region)
    role = iam.get_role(RoleName="envctl-beta-airflow-host")["Role"]
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"].endswith(":policy/envctl-beta-boundary")
    names = iam.list_role_policies(RoleName="envctl-beta-airflow-host")["PolicyNames"]
    # The AWS managed SSM policy is an inline stand-in in the sandbox (see the attachment handler).
    assert "aws-managed-AmazonSSMManagedInstanceCore" in names and len(names) == 2
    (policy_name,) = [n for n in names if n.startswith("beta-airflow-policy")]
    document = iam.get_role_policy(RoleName="envctl-beta-airflow-host", PolicyName=policy_name)["PolicyDocument"]
    text = json.dumps(document)
    assert result.outputs["bucket_name"] in text and "envctl/beta/*" in text and "alpha" not in text


def test_no_change_rerun_makes_no_write_call(engine, two_teams):
    """Same request and same code: the last apply's fingerprint matches and the program is not even run."""
    spec, first = two_teams["alpha"]
    said: list[str] = []
    again = engine.up(spec, said.append)
    assert not again.changed and again.summary["same"] == len(first.changes)
    assert again.api_writes == 0 and again.outputs == first.outputs
    assert any("nothing can change" in line for line in said)


def test_full_program_rerun_without_changes_makes_no_write_call(engine, two_teams):
    """With the fast path defeated (as after an envctl upgrade), the program runs and still writes nothing."""
    spec, first = two_teams["beta"]
    state = engine.store.load("beta")
    state.fingerprint = "from-an-older-envctl"
    engine.store.save(state)
    said: list[str] = []
    again = engine.up(spec, said.append)
    assert not any("nothing can change" in line for line in said)
    assert not again.changed and again.summary["same"] == len(first.changes)
    assert again.api_writes == 0
    assert engine.store.load("beta").fingerprint not in ("", "from-an-older-envctl")


def test_preview_shows_a_change_without_making_it(engine, two_teams):
    spec, result = two_teams["alpha"]
    bigger = replace(spec, spec=spec.spec.model_copy(update={"airflow": spec.spec.airflow.model_copy(update={"volume_gb": 200})}))
    preview = engine.preview(bigger)
    assert [(c.type, c.action) for c in preview.changes if c.action != "same"] == [("aws:ebs/volume:Volume", "update")]
    alphas = [{"Name": "tag:envctl:team", "Values": ["alpha"]}]
    volume = client(engine, "ec2", spec.region).describe_volumes(Filters=alphas)["Volumes"][0]
    assert volume["Size"] == 100 and preview.api_writes == 0


def _assert_host_replaced(engine, spec, first, result) -> dict:
    """The instance and its attachment were replaced, the old instance ended, the volume moved over."""
    actions = {(c.type, c.action) for c in result.changes if c.action != "same"}
    assert {("aws:ec2/instance:Instance", "replace"), ("aws:ec2/volumeAttachment:VolumeAttachment", "replace")} <= actions
    assert ("aws:ebs/volume:Volume", "replace") not in actions
    ec2 = client(engine, "ec2", spec.region)
    old = ec2.describe_instances(InstanceIds=[first.outputs["instance_id"]])["Reservations"][0]["Instances"][0]
    assert old["State"]["Name"] in ("shutting-down", "terminated")
    volume = ec2.describe_volumes(Filters=[{"Name": "tag:envctl:team", "Values": [spec.team]}])["Volumes"][0]
    assert [a["InstanceId"] for a in volume["Attachments"]] == [result.outputs["instance_id"]] != [first.outputs["instance_id"]]
    return instance_of(engine, spec, result.outputs)


def test_changed_instance_type_replaces_the_host_and_moves_the_volume(engine):
    """A new instance type gives a fresh host (replace_on_changes), not a resized one; the data volume survives."""
    spec = spec_for("gamma", cidr="10.97.0.0/20")
    first = engine.up(spec)
    changed = spec_for("gamma", cidr="10.97.0.0/20", airflow={"instance_type": "m6i.xlarge"})
    result = engine.up(changed)
    instance = _assert_host_replaced(engine, changed, first, result)
    assert instance["InstanceType"] == "m6i.xlarge"
    replaced = next(c for c in result.changes if c.type == "aws:ec2/instance:Instance")
    assert "instanceType" in replaced.detail


def test_changed_userdata_replaces_the_host_and_moves_the_volume(engine):
    spec = spec_for("delta", cidr="10.96.0.0/20")
    first = engine.up(spec)
    changed = spec_for("delta", cidr="10.96.0.0/20", secrets=["another_secret"])
    result = engine.up(changed)
    _assert_host_replaced(engine, changed, first, result)
    actions = {(c.type, c.action) for c in result.changes if c.action != "same"}
    assert ("aws:secretsmanager/secret:Secret", "create") in actions and ("aws:secretsmanager/secret:Secret", "delete") in actions


def test_a_new_ami_reaches_only_a_replaced_host(engine, monkeypatch):
    """A newer AMI leaves the running host alone; the host replaced for new userdata boots it (moto answers
    the program's EC2 reads as AWS would: DescribeInstances shows the running host's AMI and fingerprint tag)."""
    from provisioner.components import environment

    region = "eu-west-1"
    engine.server.ensure_started()
    ssm, ec2 = client(engine, "ssm", region), client(engine, "ec2", region)
    old_ami, new_ami = (i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"][:2])
    monkeypatch.setattr(environment, "AMI_PARAMETER", "/envctl-test/latest-ami")  # AWS's own path is read-only
    ssm.put_parameter(Name="/envctl-test/latest-ami", Value=old_ami, Type="String", Overwrite=True)
    spec = spec_for("epsilon", cidr="10.95.0.0/20")
    first = engine.up(spec)
    assert instance_of(engine, spec, first.outputs)["ImageId"] == old_ami

    ssm.put_parameter(Name="/envctl-test/latest-ami", Value=new_ami, Type="String", Overwrite=True)
    other = engine.up(spec_for("epsilon", cidr="10.95.0.0/20", budget_usd_month=first_budget(spec) + 1))
    assert other.outputs["instance_id"] == first.outputs["instance_id"]
    assert ("aws:ec2/instance:Instance", "same") in {(c.type, c.action) for c in other.changes}

    changed = spec_for("epsilon", cidr="10.95.0.0/20", budget_usd_month=first_budget(spec) + 1, secrets=["another_secret"])
    result = engine.up(changed)
    assert _assert_host_replaced(engine, changed, first, result)["ImageId"] == new_ami


def first_budget(spec: ResolvedSpec) -> int:
    return spec.spec.budget_usd_month


def _team_leftovers(engine, team: str, region: str) -> dict[str, list[str]]:
    ec2 = client(engine, "ec2", region)
    by_tag = [{"Name": "tag:envctl:team", "Values": [team]}]
    live = [i["InstanceId"] for r in ec2.describe_instances(Filters=by_tag)["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] not in ("terminated", "shutting-down")]
    iam = client(engine, "iam", region)
    return {
        "instances": live,
        "vpcs": [v["VpcId"] for v in ec2.describe_vpcs(Filters=by_tag)["Vpcs"]],
        "volumes": [v["VolumeId"] for v in ec2.describe_volumes(Filters=by_tag)["Volumes"]],
        "roles": [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(f"envctl-{team}-")],
        "buckets": [b["Name"] for b in client(engine, "s3", region).list_buckets()["Buckets"]
                    if b["Name"].startswith(f"envctl-{team}-")],
        "endpoints": [e["EndpointName"] for e in client(engine, "sagemaker", region).list_endpoints()["Endpoints"]
                      if e["EndpointName"] == f"envctl-{team}"],
    }


def test_destroy_keeps_only_the_data_bucket_unless_asked(engine):
    spec = spec_for("epsilon", cidr="10.95.0.0/20")
    engine.up(spec)
    result = engine.destroy("epsilon")
    assert result.summary["delete"] > 30 and any("kept with the team's data" in w for w in result.warnings)
    leftovers = _team_leftovers(engine, "epsilon", spec.region)
    assert leftovers == {"instances": [], "vpcs": [], "volumes": [], "roles": [], "endpoints": [],
                         "buckets": ["envctl-epsilon-123456789012-eu-west-1"]}
    assert "epsilon" not in {s.team for s in engine.list_stacks()}

    engine.up(spec)  # the kept bucket is adopted again
    client(engine, "s3", spec.region).put_object(Bucket="envctl-epsilon-123456789012-eu-west-1", Key="data.csv", Body=b"1,2")
    engine.destroy("epsilon", delete_data=True)
    assert _team_leftovers(engine, "epsilon", spec.region)["buckets"] == []


def test_two_runs_on_one_team_conflict(engine, two_teams):
    """While one run holds a team's lock, another gets exit code 3 and the state is untouched."""
    spec, _ = two_teams["alpha"]
    state_file = engine.store.path("alpha")
    before = state_file.read_bytes()
    with engine.store.lock("alpha"):
        with pytest.raises(LockConflict) as raised:
            engine.up(spec)
    assert raised.value.exit_code == 3
    assert state_file.read_bytes() == before
    with engine.store.lock("fraud"):
        cli = subprocess.run(
            [sys.executable, "-m", "provisioner.cli.main", "create", "fraud", "--target", "sandbox"],
            cwd=ROOT, env={**os.environ, "ENVCTL_STATE_DIR": str(engine.settings.state_dir)},
            capture_output=True, text=True, timeout=120,
        )
    assert cli.returncode == 3, cli.stderr
    assert "is working on team fraud" in cli.stderr and "Traceback" not in cli.stderr
    assert not engine.store.path("fraud").exists()


def test_registry_covers_every_type_the_program_emits():
    """A meta-test: no resource type of any example team lacks a sandbox handler."""
    from provisioner.engines.offline import offline_registrations
    from provisioner.engines.sandbox.handlers import load_all
    from provisioner.spec import load_team

    handlers = load_all()
    emitted = set()
    for team in ("fraud", "treasury", "finance-reports"):
        spec = load_team(team, ROOT / "stacks", default_region="eu-west-1", pool="10.0.0.0/8", prefix=20, root=ROOT)
        emitted |= {r.type for r in offline_registrations(spec) if r.custom and not r.is_provider}
    assert emitted - set(handlers) == set()


def test_every_handler_documents_where_the_sandbox_differs():
    from provisioner.engines.sandbox.handlers import load_all

    for token, handler in load_all().items():
        doc = type(handler).__doc__ or ""
        assert doc.strip().splitlines()[0], token
        assert any(line.strip().startswith("Sandbox:") for line in doc.splitlines()), token


# ------------------------------------------------------------------ each in its own sandbox server


def test_segregation_under_iam_enforcement(tmp_path):
    """With moto enforcing IAM, team A's host role reads its own bucket and is denied team B's."""
    engine = make_engine(tmp_path)
    try:
        a, b = spec_for("teama", cidr="10.90.0.0/20"), spec_for("teamb", cidr="10.91.0.0/20")
        out_a, out_b = engine.up(a).outputs, engine.up(b).outputs
        admin_s3 = client(engine, "s3", "eu-west-1")
        for outputs in (out_a, out_b):
            admin_s3.put_object(Bucket=outputs["bucket_name"], Key="dags/hello.py", Body=b"print('hi')")
        info = engine.server.running()
        urllib.request.urlopen(urllib.request.Request(f"{info.endpoint}/moto-api/reset-auth", data=b"0",
                                                      headers={"Content-Type": "text/plain"}, method="POST")).read()
        try:
            creds = client(engine, "sts", "eu-west-1").assume_role(
                RoleArn=out_a["host_role_arn"], RoleSessionName="segregation-test")["Credentials"]
            as_team_a = client(engine, "s3", "eu-west-1", aws_access_key_id=creds["AccessKeyId"],
                               aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
            own = as_team_a.get_object(Bucket=out_a["bucket_name"], Key="dags/hello.py")["Body"].read()
            assert own == b"print('hi')"
            with pytest.raises(Exception) as denied:
                as_team_a.get_object(Bucket=out_b["bucket_name"], Key="dags/hello.py")
            assert "AccessDenied" in str(denied.value)
        finally:
            urllib.request.urlopen(urllib.request.Request(f"{info.endpoint}/moto-api/reset-auth", data=b"inf",
                                                          headers={"Content-Type": "text/plain"}, method="POST")).read()
    finally:
        engine.server.stop()


def test_restarted_server_is_detected_and_the_state_kept_aside(tmp_path):
    engine = make_engine(tmp_path)
    try:
        spec = spec_for("zeta", cidr="10.92.0.0/20")
        first = engine.up(spec)
        engine.server.stop()
        again = engine.up(spec)
        assert any("sandbox server that is gone" in w for w in again.warnings)
        assert again.summary["create"] == first.summary["create"]
        assert len(list((engine.store.dir / "stale").glob("zeta.*.json"))) == 1
    finally:
        engine.server.stop()


def test_killed_create_converges_without_orphans(tmp_path):
    """kill -9 in the middle of a create, then a re-run: a readable state and nothing leaked."""
    engine = make_engine(tmp_path)
    try:
        engine.server.ensure_started()
        state_file = engine.store.path("fraud")
        process = subprocess.Popen(
            [sys.executable, "-m", "provisioner.cli.main", "create", "fraud", "--target", "sandbox"],
            cwd=ROOT, env={**os.environ, "ENVCTL_STATE_DIR": str(tmp_path)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if len(json.loads(state_file.read_text())["resources"]) >= 15:
                    break
            except (OSError, json.JSONDecodeError, KeyError):
                pass
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        interrupted = json.loads(state_file.read_text())  # readable: written atomically
        assert 15 <= len(interrupted["resources"]) < 47

        spec = engine_spec(engine, "fraud")
        result = engine.up(spec)
        assert result.not_materialised == []
        state = engine.store.load("fraud")
        known = {r.id for r in state.resources.values()}
        ec2 = client(engine, "ec2", spec.region)
        tagged = ec2.describe_tags(Filters=[{"Name": "key", "Values": [URN_TAG]}])["Tags"]
        orphans = [t["ResourceId"] for t in tagged if t["ResourceId"] not in known
                   and not (t["ResourceType"] == "volume" and t["ResourceId"] not in known
                            and _is_root_volume(ec2, t["ResourceId"]))]
        assert orphans == []
        assert engine.up(spec).changed is False
    finally:
        engine.server.stop()


def engine_spec(engine: SandboxEngine, team: str) -> ResolvedSpec:
    from provisioner.spec import load_team

    settings = engine.settings
    return load_team(team, settings.stacks_dir, default_region=settings.region, pool=settings.cidr_pool,
                     prefix=settings.team_prefix, root=settings.root)


def _is_root_volume(ec2, volume_id: str) -> bool:
    volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    return any(a.get("Device") in ("/dev/xvda", "/dev/sda1") for a in volume.get("Attachments", []))
