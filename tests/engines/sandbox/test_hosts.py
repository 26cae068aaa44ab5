"""Sandbox hosts: the real userdata boots Airflow on a local container host (needs Docker, ~2-5 min).

One module fixture creates `fraud` with hosts on, in a temporary state dir, and waits (bounded)
for its userdata to finish; the tests then look inside the host. Without a Docker engine these
tests fail (`make test` starts one where it can), they do not skip.
"""

from __future__ import annotations

import gzip
import json
import re
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

from provisioner.engines.sandbox.engine import SandboxEngine
from provisioner.engines.sandbox.host_inventory import HostInventory, read_host_file
from provisioner.engines.sandbox.host_records import load_host_record
from provisioner.errors import MissingTool
from provisioner.settings import load_settings
from provisioner.userdata import AIRFLOW_UID
from tests.fixtures.browser import chromium  # noqa: F401  (the fixture)
from tests.conftest import ROOT

pytestmark = [pytest.mark.hosts, pytest.mark.docker]

TEAM = "fraud"
SECRET = "snowflake_password"
SECRET_VALUE = "s3cr3t-from-moto"
HEALTHY_WITHIN_S = 180


class Host:
    """The fraud host of the module: its engine, instance, record and a shell inside it."""

    def __init__(self, engine: SandboxEngine, instance_id: str, create_s: float):
        self.engine = engine
        self.instance_id = instance_id
        self.create_s = create_s
        self.hosts = HostInventory(engine.settings.sandbox_dir)

    @property
    def record(self):
        return load_host_record(self.hosts.records, self.instance_id)

    def sh(self, script: str) -> str:
        exit_code, output = self.hosts.run_in_host(self.instance_id, script)
        assert exit_code == 0, f"`{script}` exited {exit_code}: {output}"
        return output

    def read(self, path: str) -> str:
        return read_host_file(self.hosts.client.containers.get(self.record.container), path)

    def aws(self, service: str):
        info = self.engine.server.running()
        return boto3.client(service, endpoint_url=info.endpoint, region_name="eu-west-1", **info.credentials)


def _require_docker() -> None:
    from provisioner.local_images import connect_docker

    try:
        connect_docker()
    except MissingTool as exc:
        pytest.fail(f"sandbox host tests need a Docker engine: {exc.message} (`make test` starts one where it can)")


@pytest.fixture(scope="module")
def host(tmp_path_factory, resolved_spec_module) -> Host:
    _require_docker()
    state_dir = tmp_path_factory.mktemp("hosts-state")
    engine = SandboxEngine(load_settings({"state_dir": str(state_dir), "sandbox_hosts": True}, cwd=ROOT))
    started = time.monotonic()
    result = engine.up(resolved_spec_module)
    create_s = time.monotonic() - started
    assert not [w for w in result.warnings if "userdata failed" in w], result.warnings
    instance_id = engine.outputs(TEAM)["instance_id"]
    yield Host(engine, instance_id, create_s)
    if engine.store.load(TEAM) is not None:
        engine.destroy(TEAM, delete_data=True)
    engine.server.stop()
    from provisioner.engines.sandbox.gateway import HostGateway
    from provisioner.engines.sandbox.container_registry import RegistryServer

    HostGateway(engine.settings.sandbox_dir).stop()
    RegistryServer(engine.settings.sandbox_dir).stop()


@pytest.fixture(scope="module")
def resolved_spec_module():
    from provisioner.spec import load_team

    return load_team(TEAM, ROOT / "stacks", default_region="eu-west-1", pool="10.0.0.0/8", prefix=20, root=ROOT)


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_airflow_health_answers_on_the_published_port(host):
    """After create, Airflow's health endpoint answers on 127.0.0.1:<published port>, scheduler included."""
    url = f"{host.record.airflow_url}/health"
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    health: dict = {}
    while time.monotonic() < deadline:
        health = _get_json(url)
        if health.get("scheduler", {}).get("status") == "healthy":
            break
        time.sleep(5)
    assert health["metadatabase"]["status"] == "healthy"
    assert health["scheduler"]["status"] == "healthy", health


def test_status_shows_host_url_and_bootstrap(host):
    """`envctl status` reports the host container, a local Airflow URL and the succeeded bootstrap."""
    status = host.engine.status(TEAM).to_json()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", status["airflow_url"])
    assert status["host"]["state"] == "running"
    assert status["host"]["container"] == f"envctl-host-{host.instance_id}"
    assert status["bootstrap"]["status"] == "succeeded"
    assert status["bootstrap_status"] == "succeeded"
    assert status["bootstrap"]["instance_id"] == host.instance_id


def test_container_and_bootstrap_logs_reach_the_team_log_group(host):
    """The containers (Docker's awslogs driver) and the bootstrap (envctl-ship-log) log to moto's /envctl/fraud,
    one stream per component, and `envctl logs fraud scheduler` prints the scheduler's lines."""
    logs = host.aws("logs")
    wanted = {f"{host.instance_id}/{component}" for component in ("scheduler", "webserver", "postgres", "bootstrap")}
    deadline = time.monotonic() + 60  # the driver sends every 5 s
    streams: set[str] = set()
    while time.monotonic() < deadline and not wanted <= streams:
        streams = {s["logStreamName"] for s in logs.describe_log_streams(logGroupName=f"/envctl/{TEAM}")["logStreams"]}
        time.sleep(2)
    assert wanted <= streams, streams
    scheduler = _cli(host, "logs", TEAM, "scheduler", "--since", "30m")
    assert scheduler.exit_code == 0, scheduler.output
    lines = scheduler.stdout.splitlines()
    assert lines and all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ scheduler ", line) for line in lines), lines[:5]
    bootstrap = _cli(host, "logs", TEAM, "bootstrap", "--since", "1h")
    assert "ENVCTL_BOOTSTRAP status=succeeded step=result" in bootstrap.stdout, bootstrap.output
    assert re.search(r"^\S+ bootstrap envctl: step volume$", bootstrap.stdout, re.MULTILINE), bootstrap.stdout[-2000:]


def test_airflow_user_has_the_fixed_uid(host):
    """The userdata made the airflow user and group with uid/gid 50000."""
    assert host.sh("id -u airflow; getent group airflow | cut -d: -f3").split() == [str(AIRFLOW_UID)] * 2


def test_timers_and_unit_are_enabled(host):
    """The DAG-sync, metrics and daily timers are enabled and active; the Airflow unit is enabled and active."""
    units = "envctl-dag-sync.timer envctl-metrics.timer envctl-daily.timer envctl-airflow.service"
    assert host.sh(f"systemctl is-enabled {units}").split() == ["enabled"] * 4
    assert host.sh(f"systemctl is-active {units}").split() == ["active"] * 4


def test_done_signal_and_cloud_init_output(host):
    """The done signal holds the instance id; the userdata ran once, as root, logged like cloud-init."""
    assert host.read("/var/lib/envctl/bootstrap.done").strip() == host.instance_id
    assert "ENVCTL_BOOTSTRAP status=succeeded step=result" in host.read("/var/log/cloud-init-output.log")
    assert json.loads(host.read("/var/lib/cloud/instance/result.json"))["exit_status"] == 0


def test_imds_gives_the_instance_id_and_the_role_credentials(host):
    """The emulated IMDSv2 answers the instance id, and the AWS CLI in the host runs as the host's role."""
    token = host.sh('curl -fsS -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" '
                    '"$AWS_EC2_METADATA_SERVICE_ENDPOINT/latest/api/token"').strip()
    assert host.sh(f'curl -fsS -H "X-aws-ec2-metadata-token: {token}" '
                   '"$AWS_EC2_METADATA_SERVICE_ENDPOINT/latest/meta-data/instance-id"') == host.instance_id
    unauthenticated = host.hosts.run_in_host(
        host.instance_id, 'curl -fsS "$AWS_EC2_METADATA_SERVICE_ENDPOINT/latest/meta-data/instance-id"')
    assert unauthenticated[0] != 0  # IMDSv2 only
    caller = json.loads(host.sh("aws sts get-caller-identity --region eu-west-1 --output json"))
    assert ":assumed-role/" in caller["Arn"] and caller["Arn"].endswith(f"/{host.instance_id}")


def test_secrets_file_is_root_only_and_holds_the_secret(host):
    """A value set in Secrets Manager reaches the host's env file for Airflow, which only root can read."""
    host.aws("secretsmanager").put_secret_value(SecretId=f"envctl/{TEAM}/{SECRET}", SecretString=SECRET_VALUE)
    host.sh("/usr/local/sbin/envctl-fetch-secrets")
    assert host.sh("stat -c '%a %U' /run/envctl /run/envctl/team.env /run/envctl/secrets.env").split() == [
        "700", "root", "600", "root", "600", "root"]
    assert f"AIRFLOW_VAR_{SECRET.upper()}={SECRET_VALUE}" in host.sh("cat /run/envctl/team.env").splitlines()


SNAPSHOT = r"""
find /etc /opt/envctl /usr/local/sbin /usr/local/lib/docker /var/lib/envctl /data -xdev \
  \( -path /data/postgres -o -path /data/airflow/logs -o -path /etc/ld.so.cache \) -prune -o \
  -printf '%p %m %U %G %s\n' | sort
getent passwd; getent group
systemctl list-unit-files --no-legend --no-pager 'envctl*' docker.service
"""


def test_rerun_changes_nothing(host):
    """Running the userdata a second time succeeds and changes no file, user, group or unit."""
    before = host.sh(SNAPSHOT)
    exit_code, output = host.hosts.run_in_host(host.instance_id, "/var/lib/cloud/instance/scripts/part-001")
    assert exit_code == 0, output[-2000:]
    assert "ENVCTL_BOOTSTRAP status=succeeded" in output
    assert " wrote " not in output
    assert host.sh(SNAPSHOT) == before


def test_failed_step_is_reported_in_status(host):
    """A secret container that does not exist fails the `secrets` step; the result and status say so."""
    secrets = host.aws("secretsmanager")
    secret_id = f"envctl/{TEAM}/partner_api_token"
    secrets.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)
    try:
        exit_code, output = host.hosts.run_in_host(host.instance_id, "/var/lib/cloud/instance/scripts/part-001")
        assert exit_code != 0
        assert "ENVCTL_BOOTSTRAP status=failed step=secrets" in output
        status = host.engine.status(TEAM).to_json()
        assert (status["bootstrap"]["status"], status["bootstrap"]["step"]) == ("failed", "secrets")
        assert status["bootstrap_status"] == "failed"
    finally:
        secrets.create_secret(Name=secret_id)  # as the program made it, for the tests after this one


def test_airflow_reads_variables_from_secrets_manager(host):
    """Airflow's Secrets Manager backend, inside the containers on the host, reads the team's variables
    (through the IMDS credentials and the endpoint the host passes on)."""
    outputs = host.engine.outputs(TEAM)
    host.aws("secretsmanager").create_secret(Name=f"envctl/{TEAM}/variables/from_secrets_manager",
                                             SecretString="value-in-moto", KmsKeyId=outputs["kms_key_arn"])
    printed = host.sh(f"{COMPOSE} exec -T airflow-scheduler airflow variables get from_secrets_manager")
    assert printed.strip().splitlines()[-1] == "value-in-moto"


COMPOSE = "/usr/local/sbin/envctl-compose"
PROBE = "envctl_probe"  # an Airflow variable, kept in the metadata database
OWNERS_SYNCED_WITHIN_S = 150  # the owners timer runs every minute; the sync itself starts Airflow's CLI a few times


def _airflow_users(host: Host) -> set[str]:
    listed = host.sh(f"{COMPOSE} exec -T airflow-webserver airflow users list --output json")
    decoder = json.JSONDecoder()
    for at in (i for i, char in enumerate(listed) if char == "["):  # past any log line before the JSON
        try:
            return {user["username"] for user in decoder.raw_decode(listed, at)[0]}
        except (ValueError, TypeError, KeyError):
            continue
    assert "No data found" in listed, listed
    return set()


def _password(host: Host, owner: str) -> str:
    result = _cli(host, "password", TEAM, "--owner", owner)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1
    return result.stdout.strip()


def _fab_login(base_url: str, user: str, password: str) -> int:
    """FAB's login form as a browser posts it (CSRF token included); the status of /api/v1/dags afterwards."""
    import http.cookiejar
    import urllib.error
    import urllib.parse

    web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = web.open(f"{base_url}/login/", timeout=30).read().decode()
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": user, "password": password, "csrf_token": csrf}).encode()
    web.open(f"{base_url}/login/", form, timeout=30)
    try:
        return web.open(f"{base_url}/api/v1/dags", timeout=30).status
    except urllib.error.HTTPError as error:
        return error.code


def test_airflow_accounts_are_exactly_the_owners(host, resolved_spec_module):
    """After create, `airflow users list` in the webserver lists the request's owners and nobody else,
    and each has a generated password in the team's secret (never in the userdata or the state)."""
    owners = set(resolved_spec_module.spec.owners)
    assert _airflow_users(host) == owners
    stored = json.loads(host.aws("secretsmanager").get_secret_value(
        SecretId=f"envctl/{TEAM}/airflow/owner_passwords")["SecretString"])
    assert set(stored) == owners and all(len(password) >= 24 for password in stored.values())
    state = "".join(path.read_text() for path in host.engine.settings.state_dir.rglob("*.json"))  # stacks, records
    assert not [password for password in stored.values() if password in state]
    assert not [password for password in stored.values() if password in host.sh("cat /var/lib/cloud/instance/scripts/part-001")]


def test_an_owner_logs_in_with_the_generated_password_and_a_wrong_one_fails(host, resolved_spec_module):
    """Over HTTP, as the acceptance check does: the password from `envctl password` opens /api/v1, a wrong one does not."""
    owner = resolved_spec_module.spec.owners[0]
    password = _password(host, owner)
    assert _fab_login(host.record.airflow_url, owner, password) == 200
    assert _fab_login(host.record.airflow_url, owner, password + "-wrong") in (401, 403)


def test_an_owner_logs_in_with_chromium_and_sees_the_dags_page(host, resolved_spec_module, chromium):  # noqa: F811
    """A real headless Chromium through the host's forwarded port: the login page, the owner's e-mail and
    the password from `envctl password`, then Airflow's DAGs page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    owner = resolved_spec_module.spec.owners[0]
    chromium.get(f"{host.record.airflow_url}/login/")
    chromium.find_element(By.ID, "username").send_keys(owner)
    chromium.find_element(By.ID, "password").send_keys(_password(host, owner))
    chromium.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(chromium, 30).until(expected_conditions.title_contains("DAGs"))
    assert "/login" not in chromium.current_url
    assert owner.split("@")[0] in chromium.page_source or "Log Out" in chromium.page_source


def test_an_owners_change_reaches_the_running_host_without_replacing_it(host, resolved_spec_module):
    """`envctl update` with one owner replaced rewrites the owners parameter only; within the timer's
    minute (and the sync) the host deletes the former owner's account and creates the new one's."""
    import dataclasses

    original = list(resolved_spec_module.spec.owners)
    changed = [original[0], "new.owner@example.com"]
    spec = dataclasses.replace(resolved_spec_module, spec=resolved_spec_module.spec.model_copy(update={"owners": changed}))
    try:
        host.engine.up(spec)
        assert host.engine.outputs(TEAM)["instance_id"] == host.instance_id  # not replaced
        deadline = time.monotonic() + OWNERS_SYNCED_WITHIN_S
        while time.monotonic() < deadline and _airflow_users(host) != set(changed):
            time.sleep(10)
        assert _airflow_users(host) == set(changed)
        stored = json.loads(host.aws("secretsmanager").get_secret_value(
            SecretId=f"envctl/{TEAM}/airflow/owner_passwords")["SecretString"])  # stacks/fraud.yaml still has the old owners
        assert set(stored) == set(changed)
        assert _fab_login(host.record.airflow_url, changed[1], stored[changed[1]]) == 200
    finally:
        host.engine.up(resolved_spec_module)  # the request's owners again, for the tests after this one


def test_the_sso_configuration_loads_in_the_real_webserver(host):
    """webserver_config.py for a request with airflow.sso, run by the webserver image's Python with its
    Flask-AppBuilder and FAB provider: OAuth against the issuer's discovery document, nobody registers."""
    from provisioner.userdata import _host_files

    config = _host_files(2, sso=True)["webserver_config.py"]
    probe = (
        "import os, runpy\n"
        "os.environ.update(ENVCTL_SSO_ISSUER='https://login.example.com/realms/data', ENVCTL_SSO_CLIENT_ID='airflow-fraud',"
        " ENVCTL_SSO_CLIENT_SECRET_NAME='partner_api_token', AIRFLOW_VAR_PARTNER_API_TOKEN='client-s3cret')\n"
        "from flask_appbuilder.const import AUTH_OAUTH\n"
        "config = runpy.run_path('/tmp/webserver_config.py')\n"
        "assert config['AUTH_TYPE'] == AUTH_OAUTH and config['AUTH_USER_REGISTRATION'] is False\n"
        "print('OK', config['OAUTH_PROVIDERS'][0]['remote_app']['server_metadata_url'],\n"
        "      config['SECURITY_MANAGER_CLASS'].__mro__[1].__name__)\n"
    )
    host.sh(f"{COMPOSE} exec -T airflow-webserver sh -c 'cat >/tmp/webserver_config.py' <<'ENVCTL_CONFIG'\n{config}ENVCTL_CONFIG")
    printed = host.sh(f"{COMPOSE} exec -T airflow-webserver python - <<'ENVCTL_PROBE'\n{probe}ENVCTL_PROBE")
    assert ("OK https://login.example.com/realms/data/.well-known/openid-configuration "
            "FabAirflowSecurityManagerOverride") in printed


def _set_probe(host: Host, value: str) -> None:
    host.sh(f"{COMPOSE} exec -T postgres psql -U airflow -d airflow -v ON_ERROR_STOP=1 -qc "
            f"\"DELETE FROM variable WHERE key = '{PROBE}'; "
            f"INSERT INTO variable (key, val, is_encrypted) VALUES ('{PROBE}', '{value}', false)\"")


def _probe(host: Host) -> str:
    return host.sh(f"{COMPOSE} exec -T postgres psql -U airflow -d airflow -tAc "
                   f"\"SELECT val FROM variable WHERE key = '{PROBE}'\"").strip()


def _dump(host: Host, key: str) -> str:
    s3 = host.aws("s3")
    stored = s3.get_object(Bucket=host.engine.outputs(TEAM)["bucket_name"], Key=key)
    assert stored["ServerSideEncryption"] == "aws:kms"
    assert stored["SSEKMSKeyId"].endswith(host.engine.outputs(TEAM)["kms_key_arn"].rsplit("/", 1)[1])
    return gzip.decompress(stored["Body"].read()).decode()


def _backups(host: Host):
    from provisioner.backups import list_backups

    return list_backups(host.aws("s3"), host.engine.outputs(TEAM)["bucket_name"])


def _cli(host: Host, *args: str):
    from typer.testing import CliRunner

    from provisioner.cli.main import app

    env = {"ENVCTL_STATE_DIR": str(host.engine.settings.state_dir), "ENVCTL_SANDBOX_HOSTS": "true"}
    return CliRunner().invoke(app, list(args), env=env)


def test_a_deployed_dag_reaches_airflow_within_a_minute(host, tmp_path):
    """`envctl dags deploy` (Airflow's check in the team's image, then the sync): the host's 20 s sync and
    Airflow's 20 s scan of its DAG folder put the DAG in Airflow's database within a minute."""
    dag_id = "fraud_within_a_minute"
    (tmp_path / f"{dag_id}.py").write_text(
        "from datetime import datetime\nfrom airflow import DAG\nfrom airflow.operators.empty import EmptyOperator\n\n"
        f"with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None, tags=['t'], default_args={{'owner': 'fraud'}}):\n"
        "    EmptyOperator(task_id='noop')\n")
    deployed = _cli(host, "dags", "deploy", TEAM, str(tmp_path))
    assert deployed.exit_code == 0, deployed.output
    assert f"added    dags/{dag_id}.py" in deployed.stdout
    started, found = time.monotonic(), ""
    while time.monotonic() - started < 90 and dag_id not in found:
        time.sleep(2)
        found = host.sh(f"{COMPOSE} exec -T postgres psql -U airflow -d airflow -tAc "
                        f"\"SELECT dag_id FROM dag WHERE dag_id = '{dag_id}'\"")
    took = time.monotonic() - started
    assert dag_id in found, f"{dag_id} not in Airflow's database after {took:.0f} s"
    assert took < 60, f"{dag_id} reached Airflow after {took:.0f} s"


def test_backup_job_writes_a_postgres_dump_to_the_team_bucket(host):
    """The nightly job, started as its timer starts it, puts a pg_dump of the metadata in the bucket (SSE-KMS)."""
    _set_probe(host, "in-the-nightly-backup")
    host.sh("systemctl start envctl-job@daily.service")
    [backup] = _backups(host)
    dump = _dump(host, backup.key)
    assert "PostgreSQL database dump complete" in dump and "in-the-nightly-backup" in dump


def test_backup_command_takes_one_now(host):
    _set_probe(host, "in-the-backup")
    result = _cli(host, "backup", TEAM, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["backup"] == _backups(host)[-1].name and "in-the-backup" in _dump(host, report["key"])


def test_job_runs_reach_the_team_log_group(host):
    """Each run of a maintenance job (the nightly one and `envctl backup` above) is in its own stream."""
    daily = _cli(host, "logs", TEAM, "job-daily", "--since", "1h")
    assert daily.exit_code == 0, daily.output
    assert re.search(r" job-daily envctl-job daily: started$", daily.stdout, re.MULTILINE), daily.stdout
    assert re.search(r" job-daily envctl-job daily: exit \d+$", daily.stdout, re.MULTILINE), daily.stdout
    backup = _cli(host, "logs", TEAM, "job-backup", "--since", "1h")
    assert re.search(r" job-backup backups/postgres/\S+\.sql\.gz$", backup.stdout, re.MULTILINE), backup.output


def _put_dag(host: Host, dag_id: str, text: str) -> None:
    """One DAG into the team's DAG prefix, as `envctl dags deploy` puts it (SSE-KMS, the team key). Not a deploy
    of a folder holding this DAG only: that would delete the other tests' DAGs, and moto fails to empty a
    bucket holding delete markers (the destroy at the end)."""
    outputs = host.engine.outputs(TEAM)
    host.aws("s3").put_object(Bucket=outputs["bucket_name"], Key=f"dags/{dag_id}.py", Body=text.encode(),
                              ServerSideEncryption="aws:kms", SSEKMSKeyId=outputs["kms_key_arn"])


def test_pause_and_resume_keep_the_earlier_dag_runs(host):
    """`envctl pause`: the host container and moto's instance stop (systemd shuts Airflow down); `envctl
    resume`: both start, the userdata does not run again, Airflow answers healthy on the host's (new)
    published port, and a DAG run from before the pause is still in its metadata on the data volume."""
    dag_id, run_id = "fraud_before_the_pause", "before-the-pause"
    dag = ("from datetime import datetime\nfrom airflow import DAG\nfrom airflow.operators.empty import EmptyOperator\n\n"
           f"with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None, tags=['t'],\n"
           "         default_args={'owner': 'fraud'}):\n"
           "    EmptyOperator(task_id='noop')\n")
    _put_dag(host, dag_id, dag)
    deadline, found = time.monotonic() + 120, ""
    while time.monotonic() < deadline and dag_id not in found:
        time.sleep(2)
        found = _psql(host, f"SELECT dag_id FROM dag WHERE dag_id = '{dag_id}'")
    assert dag_id in found, f"{dag_id} did not reach Airflow"
    host.sh(f"{COMPOSE} exec -T airflow-scheduler airflow dags trigger {dag_id} --run-id {run_id}")
    assert run_id in _psql(host, f"SELECT run_id FROM dag_run WHERE dag_id = '{dag_id}'")
    boots = host.read("/var/log/cloud-init-output.log").count(" envctl: step volume")

    paused = _cli(host, "pause", TEAM)
    assert paused.exit_code == 0, paused.output
    container = host.hosts.client.containers.get(host.record.container)
    assert container.status == "exited", container.status
    assert _instance_state(host) == "stopped"

    resumed = _cli(host, "resume", TEAM)
    assert resumed.exit_code == 0, resumed.output
    container.reload()
    assert container.status == "running" and _instance_state(host) == "running"
    deadline, health = time.monotonic() + HEALTHY_WITHIN_S, {}
    while time.monotonic() < deadline and health.get("scheduler", {}).get("status") != "healthy":
        time.sleep(5)
        try:
            health = _get_json(f"{host.record.airflow_url}/health")
        except OSError:
            health = {}
    assert health.get("metadatabase", {}).get("status") == "healthy", health
    assert health["scheduler"]["status"] == "healthy", health
    assert run_id in _psql(host, f"SELECT run_id FROM dag_run WHERE dag_id = '{dag_id}'"), "the earlier DAG run is gone"
    assert host.read("/var/log/cloud-init-output.log").count(" envctl: step volume") == boots, "the userdata ran again"


def _psql(host: Host, query: str) -> str:
    return host.sh(f"{COMPOSE} exec -T postgres psql -U airflow -d airflow -tAc \"{query}\"")


def _instance_state(host: Host) -> str:
    reservations = host.aws("ec2").describe_instances(InstanceIds=[host.instance_id])["Reservations"]
    return reservations[0]["Instances"][0]["State"]["Name"]


def _metric(host: Host, name: str, statistic: str, since_s: int) -> list[float]:
    """The team namespace's datapoints of the metric (per minute) that moto holds, as the alarms read them."""
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    points = host.aws("cloudwatch").get_metric_statistics(
        Namespace=f"envctl/{TEAM}", MetricName=name, StartTime=now - timedelta(seconds=since_s),
        EndTime=now + timedelta(minutes=1), Period=60, Statistics=[statistic])["Datapoints"]
    return [point[statistic] for point in points]


def test_a_failing_dag_moves_the_failure_metric_in_moto(host):
    """A DAG whose task fails, deployed and triggered on the host: within minutes the host's publisher (every
    minute, from the metadata database) puts DagRunFailed and TaskFailed >= 1 in the team namespace in moto,
    and SchedulerHeartbeat is 1 while the scheduler runs; the publisher's own runs send no output."""
    dag_id = "fraud_fails_on_purpose"
    _put_dag(host, dag_id,
             "from datetime import datetime\nfrom airflow import DAG\nfrom airflow.operators.bash import BashOperator\n\n"
             f"with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None, is_paused_upon_creation=False,\n"
             "         tags=['t'], default_args={'owner': 'fraud', 'retries': 0}):\n"
             "    BashOperator(task_id='fail', bash_command='exit 3')\n")
    started = time.monotonic()
    failed_before = sum(_metric(host, "DagRunFailed", "Sum", 3600))
    found = ""
    while time.monotonic() - started < 120 and dag_id not in found:
        time.sleep(3)
        found = host.sh(f"{COMPOSE} exec -T postgres psql -U airflow -d airflow -tAc "
                        f"\"SELECT dag_id FROM serialized_dag WHERE dag_id = '{dag_id}'\"")
    assert dag_id in found, f"{dag_id} not serialized after {time.monotonic() - started:.0f} s"
    host.sh(f"{COMPOSE} exec -T airflow-scheduler airflow dags trigger {dag_id}")
    deadline, failed, tasks = time.monotonic() + 300, 0.0, 0.0
    while time.monotonic() < deadline:
        failed = sum(_metric(host, "DagRunFailed", "Sum", 3600)) - failed_before
        tasks = sum(_metric(host, "TaskFailed", "Sum", 3600))
        if failed >= 1 and tasks >= 1:
            break
        time.sleep(10)
    runs = host.sh(f"{COMPOSE} exec -T postgres psql -U airflow -d airflow -tAc "
                   f"\"SELECT state FROM dag_run WHERE dag_id = '{dag_id}'\"")
    assert failed >= 1, f"DagRunFailed did not move in {time.monotonic() - started:.0f} s (runs: {runs.split()})"
    assert tasks >= 1, f"TaskFailed did not move (runs: {runs.split()})"
    assert 1 in _metric(host, "SchedulerHeartbeat", "Maximum", 300)
    assert 0 < max(_metric(host, "DataVolumeUsedPercent", "Maximum", 300)) < 100
    names = {m["MetricName"] for m in host.aws("cloudwatch").list_metrics(Namespace=f"envctl/{TEAM}")["Metrics"]}
    assert {"SchedulerHeartbeat", "DagRunFailed", "DagRunSucceeded", "TaskFailed", "DataVolumeUsedPercent"} <= names
    assert host.sh("systemctl show -p Result --value envctl-job@metrics.service").strip() == "success"


def test_replacing_the_host_keeps_the_metadata_on_the_data_volume(host, resolved_spec_module):
    """A new instance type replaces the host: a fresh root disk, the same data volume, the same metadata."""
    from dataclasses import replace

    _set_probe(host, "after-the-backup")
    host.sh("touch /var/lib/envctl/old-root-disk")
    old_id, old_container = host.instance_id, host.record.container
    airflow = resolved_spec_module.spec.airflow.model_copy(update={"instance_type": "m6i.xlarge"})
    bigger = replace(resolved_spec_module, spec=resolved_spec_module.spec.model_copy(update={"airflow": airflow}))
    result = host.engine.up(bigger)
    assert not [w for w in result.warnings if "userdata failed" in w], result.warnings
    assert ("aws:ec2/instance:Instance", "replace") in {(c.type, c.action) for c in result.changes}
    host.instance_id = host.engine.outputs(TEAM)["instance_id"]
    assert host.instance_id != old_id and host.record.container != old_container
    assert host.sh("test -e /var/lib/envctl/old-root-disk && echo old || echo fresh").strip() == "fresh"
    assert "formatting" not in host.read("/var/log/cloud-init-output.log")
    assert _probe(host) == "after-the-backup"


def test_restore_brings_a_backup_back_into_the_fresh_host(host):
    """`envctl restore` loads the backup, keeps a copy of what it replaces, and Airflow answers healthy."""
    chosen = next(b for b in _backups(host) if "in-the-backup" in _dump(host, b.key))
    result = _cli(host, "restore", TEAM, "--from", chosen.name, "--yes", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["restored"] == chosen.name and report["instance_id"] == host.instance_id
    assert _probe(host) == "in-the-backup"
    safety = next(b for b in _backups(host) if b.name == report["saved_before_restore"])
    assert safety.label == "pre-restore" and "after-the-backup" in _dump(host, safety.key)
    assert _get_json(f"{host.record.airflow_url}/health")["metadatabase"]["status"] == "healthy"


def test_a_backup_that_does_not_load_leaves_the_metadata_as_it_was(host):
    """A dump that is valid gzip but not SQL: the restore fails saying so, and the metadata saved
    before it is loaded back; Airflow answers again."""
    s3, bucket = host.aws("s3"), host.engine.outputs(TEAM)["bucket_name"]
    s3.put_object(Bucket=bucket, Key="backups/postgres/20200101T000000Z.sql.gz", Body=gzip.compress(b"CREATE TABLE broken (;\n"))
    result = _cli(host, "restore", TEAM, "--from", "20200101T000000Z", "--yes")
    assert result.exit_code == 1, result.output
    assert "the backup did not load; the metadata from before the restore is back" in result.stderr
    assert "syntax error" in result.stderr
    assert _probe(host) == "in-the-backup"
    assert _get_json(f"{host.record.airflow_url}/health")["metadatabase"]["status"] == "healthy"


def test_a_backup_from_before_a_destroy_restores_into_the_recreated_host(host, resolved_spec_module):
    """Destroy (data kept) then create: the new host adopts the bucket, key and Airflow's secrets, and a
    backup taken before the destroy restores into it, its encrypted variables readable (same fernet key)."""
    scheduler = f"{COMPOSE} exec -T airflow-scheduler airflow variables"
    _set_probe(host, "before-the-destroy")
    host.sh(f"{scheduler} set envctl_encrypted_probe kept-by-the-fernet-key")
    result = _cli(host, "backup", TEAM, "--json")
    assert result.exit_code == 0, result.output
    before = host.engine.outputs(TEAM)

    host.engine.destroy(TEAM)
    again = host.engine.up(resolved_spec_module)

    assert not [w for w in again.warnings if "userdata failed" in w], again.warnings
    assert (again.outputs["bucket_name"], again.outputs["kms_key_arn"]) == (before["bucket_name"], before["kms_key_arn"])
    host.instance_id = again.outputs["instance_id"]
    assert _probe(host) == ""  # a new host: a fresh data volume
    result = _cli(host, "restore", TEAM, "--from", "latest", "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert _probe(host) == "before-the-destroy"
    assert host.sh(f"{scheduler} get envctl_encrypted_probe").strip().endswith("kept-by-the-fernet-key")


def _health(host: Host) -> dict:
    result = _cli(host, "status", TEAM, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _heartbeat_alarm(host: Host) -> dict:
    from provisioner.components.names import TeamNames

    alarms = host.aws("cloudwatch").describe_alarms(AlarmNames=[TeamNames(TEAM).alarm("scheduler-heartbeat")])
    return alarms["MetricAlarms"][0]


def test_a_stopped_scheduler_turns_the_verdict_down_naming_it(host):
    """With the host's heartbeats arriving (the heartbeat alarm OK), stopping the scheduler container turns the
    verdict to down, with a reason naming the scheduler, once the sandbox has evaluated the alarm (3 minutes without
    a heartbeat of 1; the verdict holds the alarm against the team from 5 minutes after the host booted)."""
    deadline = time.monotonic() + 240
    while _heartbeat_alarm(host)["StateValue"] != "OK" and time.monotonic() < deadline:
        time.sleep(10)
    assert _heartbeat_alarm(host)["StateValue"] == "OK", "no heartbeat reaches moto: the host publishes no metrics"
    scheduler = host.sh("docker ps -q --filter name=scheduler").split()
    assert scheduler, host.sh("docker ps -a")
    host.sh("docker stop " + " ".join(scheduler))
    try:
        deadline = time.monotonic() + 600
        info = _health(host)
        while info["health"] != "down" and time.monotonic() < deadline:
            time.sleep(10)
            info = _health(host)
        assert info["health"] == "down", (info["health"], info["health_reasons"], _heartbeat_alarm(host)["StateReason"])
        assert any(reason.startswith("the scheduler's heartbeat is missing") for reason in info["health_reasons"]), info
    finally:
        host.sh("docker start " + " ".join(scheduler))


def test_destroy_removes_the_host(host):
    """Destroying the environment stops and removes the host container and its docker volume."""
    import docker

    client = docker.from_env()
    name = host.record.container
    host.engine.destroy(TEAM, delete_data=True)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(name)
    assert load_host_record(host.hosts.records, host.instance_id) is None
    assert not list(Path(host.engine.settings.sandbox_dir / "volumes").glob("*.img"))


def test_sandbox_images_command_finds_the_cached_images(host):
    """`envctl sandbox images` lists the host, Postgres and Airflow images; with a warm cache it builds nothing."""
    from typer.testing import CliRunner

    from provisioner.cli.main import app
    from provisioner.engines.sandbox.images import host_image_ref
    from provisioner.image_source import ImageSource

    result = CliRunner().invoke(app, ["sandbox", "images", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    sources = [ImageSource("docker.io", "", "docker.io"), ImageSource(None, "", "docker.io")]
    assert report["images"][0]["image"] in {host_image_ref(source) for source in sources}
    assert {row["source"] for row in report["images"]} == {report["source"]["kind"]}
    assert report["seconds"] < 30
