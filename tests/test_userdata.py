"""The Airflow host's userdata: valid bash, quoted values, step order, size, Airflow 2 vs 3.

Static checks only; running the script on a host is the sandbox hosts' job.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from provisioner.userdata import (
    BOOTSTRAP_STEPS,
    DOCKER_COMPOSE_SHA256,
    DOCKER_COMPOSE_VERSION,
    USERDATA_LIMIT,
    UserdataContext,
    encode_for_instance,
    render_userdata,
)
from tests.fixtures.userdata import HEREDOC, embedded_files, typical

VALUES_START = "# >>> envctl values\n"
VALUES_END = "# <<< envctl values\n"


def airflow3() -> UserdataContext:
    return typical(airflow_version="3.1.0")


def no_secrets() -> UserdataContext:
    return typical(team="finance-reports", secret_names=(), dags_prefix="pipelines/dags/")


def many_secrets() -> UserdataContext:
    return typical(secret_names=tuple(f"partner_{i:02d}_api_credentials" for i in range(50)))


def hostile(marker_dir: Path) -> UserdataContext:
    """Values a spec would reject; the renderer must still keep them inert."""

    def nasty(label: str) -> str:
        return (
            f"{label}' \"$(touch {marker_dir}/{label}-cmd)\" `touch {marker_dir}/{label}-tick` "
            f"${{HOME}} \\ a  b\n; touch {marker_dir}/{label}-semi #"
        )

    return UserdataContext(
        team=nasty("team"), region=nasty("region"), environment=nasty("environment"),
        airflow_version="2.10.5" + nasty("version"), bucket=nasty("bucket"), log_group=nasty("log_group"),
        kms_key_arn=nasty("kms"), data_volume_id=nasty("volume"), bootstrap_parameter=nasty("parameter"),
        dags_prefix=nasty("dags_prefix"), secret_names=(nasty("secret"), "plain"),
        airflow_image=nasty("image"), extra_env=(("KEY", nasty("extra")),),
    )


CONTEXTS = {"typical": typical, "airflow3": airflow3, "no_secrets": no_secrets, "many_secrets": many_secrets}


@pytest.fixture(scope="module")
def scripts() -> dict[str, str]:
    return {name: render_userdata(make()) for name, make in CONTEXTS.items()}


def values_block(script: str) -> str:
    assert script.count(VALUES_START) == 1 and VALUES_END in script
    return script.split(VALUES_START, 1)[1].split(VALUES_END, 1)[0]


def run_bash(script: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, env={"PATH": "/usr/bin:/bin"}, timeout=10)


def expected_variables(ctx: UserdataContext) -> dict[str, str]:
    return {
        "TEAM": ctx.team, "REGION": ctx.region, "ENVIRONMENT": ctx.environment,
        "AIRFLOW_VERSION": ctx.airflow_version, "AIRFLOW_IMAGE": ctx.airflow_image or f"apache/airflow:{ctx.airflow_version}",
        "BUCKET": ctx.bucket, "DAGS_PREFIX": ctx.dags_prefix, "LOG_GROUP": ctx.log_group,
        "KMS_KEY_ARN": ctx.kms_key_arn, "DATA_VOLUME_ID": ctx.data_volume_id,
        "BOOTSTRAP_PARAMETER": ctx.bootstrap_parameter,
    }


def evaluate_values(script: str, names: list[str], cwd: Path) -> tuple[dict[str, str], list[str], list[str]]:
    """Runs only the values block; returns its scalars, SECRET_NAMES and EXTRA_ENV as bash sees them."""
    probe = values_block(script) + "".join(f'printf "%s\\0" "${name}"\n' for name in names)
    probe += 'printf "%s\\0" "${#SECRET_NAMES[@]}" "${SECRET_NAMES[@]}" "${#EXTRA_ENV[@]}" "${EXTRA_ENV[@]}"\n'
    result = run_bash(probe, cwd)
    assert result.returncode == 0, result.stderr.decode()
    fields = result.stdout.decode().split("\0")[:-1]
    scalars = dict(zip(names, fields[: len(names)], strict=False))
    rest = fields[len(names):]
    secret_count = int(rest[0])
    secrets, rest = rest[1 : 1 + secret_count], rest[1 + secret_count :]
    return scalars, secrets, rest[1 : 1 + int(rest[0])]


@pytest.mark.parametrize("name", CONTEXTS)
def test_script_is_valid_bash_and_passes_shellcheck(name, scripts, shellcheck, tmp_path):
    """Every context renders a script that bash parses and shellcheck accepts at info level."""
    path = tmp_path / "userdata.sh"
    path.write_text(scripts[name])
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    result = subprocess.run([shellcheck, "--shell=bash", "--severity=info", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_hostile_script_is_valid_bash_and_passes_shellcheck(shellcheck, tmp_path):
    """Quotes, $(...), backticks and newlines in values still give a clean script."""
    path = tmp_path / "userdata.sh"
    path.write_text(render_userdata(hostile(tmp_path)))
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    result = subprocess.run([shellcheck, "--shell=bash", "--severity=warning", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("name", ["typical", "airflow3"])
def test_embedded_scripts_pass_shellcheck(name, scripts, shellcheck, tmp_path):
    """The host scripts written through heredocs are checked as the files they become."""
    paths = []
    for target, content in embedded_files(scripts[name]).items():
        if content.startswith("#!/bin/bash\n"):
            path = tmp_path / Path(target).name
            path.write_text(content)
            paths.append(str(path))
    assert {Path(p).name for p in paths} == {"envctl-fetch-secrets", "envctl-compose", "envctl-job", "envctl-owners"}
    result = subprocess.run([shellcheck, "--severity=info", *paths], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_hostile_values_are_assigned_verbatim_and_never_run(tmp_path):
    """The values block, run on its own, creates no marker file and holds the exact strings."""
    ctx = hostile(tmp_path)
    expected = expected_variables(ctx)
    scalars, secrets, extra_env = evaluate_values(render_userdata(ctx), list(expected), tmp_path)
    assert scalars == expected
    assert secrets == list(ctx.secret_names)
    assert extra_env == [f"{key}={value}" for key, value in ctx.extra_env]
    assert list(tmp_path.iterdir()) == []


def test_hostile_values_appear_only_in_the_values_block(tmp_path):
    """Outside the block the script only refers to variables: no value reaches a heredoc or command."""
    script = render_userdata(hostile(tmp_path))
    outside = script.replace(values_block(script), "")
    assert str(tmp_path) not in outside
    assert "${HOME} \\ a  b" not in outside


def test_host_env_round_trips_hostile_values(tmp_path):
    """/etc/envctl/host.env (declare -p) gives the host scripts the exact values back, inertly."""
    ctx = hostile(tmp_path)
    script = render_userdata(ctx)
    declare = re.search(r"^declare -p ([A-Z_ ]+)", script, re.MULTILINE)
    assert declare, "the secrets step writes host.env with declare -p"
    names = declare.group(1).split()
    host_env = tmp_path / "host.env"
    written = run_bash(values_block(script) + f"declare -p {' '.join(names)} >{host_env}\n", tmp_path)
    assert written.returncode == 0, written.stderr.decode()
    scalars = [name for name in names if name != "SECRET_NAMES"]
    read = run_bash(f"set -a; . {host_env}; set +a\n" + "".join(f'printf "%s\\0" "${n}"\n' for n in scalars), tmp_path)
    assert read.returncode == 0, read.stderr.decode()
    values = dict(zip(scalars, read.stdout.decode().split("\0"), strict=False))
    expected = {**expected_variables(ctx), "SECRETS_BACKEND_KWARGS": values["SECRETS_BACKEND_KWARGS"]}
    assert values == {name: expected[name] for name in scalars}
    assert json.loads(values["SECRETS_BACKEND_KWARGS"])["connections_prefix"] == f"envctl/{ctx.team}/connections"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host.env"]


def test_secrets_backend_uses_the_team_prefixes(tmp_path, scripts):
    """Airflow reads connections and variables under envctl/<team>/ through its AWS backend."""
    scalars, _, _ = evaluate_values(scripts["typical"], ["SECRETS_BACKEND_KWARGS"], tmp_path)
    assert json.loads(scalars["SECRETS_BACKEND_KWARGS"]) == {
        "connections_prefix": "envctl/fraud/connections", "variables_prefix": "envctl/fraud/variables",
    }
    compose = yaml.safe_load(embedded_files(scripts["typical"])["/opt/envctl/docker-compose.yml"])
    environment = compose["x-airflow"]["environment"]
    backend = "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
    assert environment["AIRFLOW__SECRETS__BACKEND"] == backend
    assert environment["AIRFLOW__SECRETS__BACKEND_KWARGS"] == "${SECRETS_BACKEND_KWARGS:?}"


@pytest.mark.parametrize("name", CONTEXTS)
def test_no_secret_value_is_written_into_the_script(name, scripts):
    """Secrets are fetched by name; generated keys are stored from a file, never from a literal."""
    script = scripts[name]
    secret_strings = re.findall(r"--secret-string\s+(\S+)", script)
    assert secret_strings == ['"file://$file"', '"file://$work/passwords.json"']  # Airflow's keys, the owners' passwords
    assert "set +x" in embedded_files(script)["/usr/local/sbin/envctl-fetch-secrets"]
    for secret in CONTEXTS[name]().secret_names:
        assert secret not in script.replace(values_block(script), "")


def test_compose_takes_every_key_from_the_runtime_secrets(scripts):
    """Fernet, webserver/API, JWT keys and the Postgres password are placeholders filled from /run/envctl."""
    for name in ("typical", "airflow3"):
        compose = yaml.safe_load(embedded_files(scripts[name])["/opt/envctl/docker-compose.yml"])
        environment = compose["x-airflow"]["environment"]
        assert environment["AIRFLOW__CORE__FERNET_KEY"] == "${ENVCTL_FERNET_KEY:?}"
        assert "${ENVCTL_POSTGRES_PASSWORD:?}" in environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == "${ENVCTL_POSTGRES_PASSWORD:?}"


def test_steps_run_in_the_documented_order(scripts):
    """strict → imds → os → docker → user → volume → secrets → compose → schedules → unit → health → result."""
    script = scripts["typical"]
    positions = [script.index(f"\nstep {step}\n") for step in BOOTSTRAP_STEPS]
    assert positions == sorted(positions)
    assert script.index("set -Eeuo pipefail") < script.index(VALUES_END) + len(VALUES_END) + 5
    assert re.search(r"^trap 'on_error \"\$LINENO\"' ERR$", script, re.MULTILINE)
    assert "/var/log/envctl-bootstrap.log" in script


def test_every_heredoc_is_quoted(scripts):
    """Embedded files use <<'ENVCTL_EOF', so nothing in them expands when they are written."""
    script = scripts["airflow3"]
    heredoc_starts = re.findall(r"<<-?\s*(\S+)$", script, re.MULTILINE)
    assert heredoc_starts == ["'ENVCTL_EOF'"] * len(embedded_files(script))
    assert "<<" not in HEREDOC.sub("", script).replace(VALUES_END, "")
    assert set(embedded_files(script)) >= {
        "/usr/local/sbin/envctl-fetch-secrets", "/opt/envctl/docker-compose.yml", "/usr/local/sbin/envctl-compose",
        "/usr/local/sbin/envctl-job", "/etc/systemd/system/envctl-job@.service",
        "/etc/systemd/system/envctl-dag-sync.timer", "/etc/systemd/system/envctl-daily.timer",
        "/etc/systemd/system/envctl-airflow.service",
    }


@pytest.mark.parametrize("name", CONTEXTS)
def test_every_script_reaches_ec2_within_its_limit_with_room_to_grow(name, scripts):
    """EC2: "User data is limited to 16 KB, in raw form, before it is base64-encoded"
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/user-data.html). What EC2 counts (the raw
    script, or the gzip cloud-init unpacks) fits, and a compressed script keeps a third of the limit free,
    so this fails long before a request or a new step reaches the limit (9.1 KB compressed on 2026-12-02,
    with the owners' accounts, the log shipper and the retraining settings: the next large host script
    should be fetched by the host rather than embedded)."""
    encoded = encode_for_instance(scripts[name])
    if "user_data" in encoded:
        assert len(encoded["user_data"].encode()) <= USERDATA_LIMIT
    else:
        sent = base64.b64decode(encoded["user_data_base64"])
        assert sent[:2] == b"\x1f\x8b" and len(sent) <= USERDATA_LIMIT * 2 // 3, len(sent)


@pytest.mark.parametrize("script", [lambda s: s["many_secrets"], lambda s: "é" * (USERDATA_LIMIT // 2 + 1)])
def test_larger_scripts_are_gzipped_and_round_trip(script, scripts):
    """Above 16 KB (counted in bytes) the script is gzip + base64, identical after gunzip, deterministic."""
    text = script(scripts)
    assert len(text.encode()) > USERDATA_LIMIT
    encoded = encode_for_instance(text)
    assert set(encoded) == {"user_data_base64"}
    assert gzip.decompress(base64.b64decode(encoded["user_data_base64"])).decode() == text
    assert encode_for_instance(text) == encoded


def test_limit_is_inclusive():
    """Exactly 16 KB stays raw; one byte more is compressed."""
    assert set(encode_for_instance("x" * USERDATA_LIMIT)) == {"user_data"}
    assert set(encode_for_instance("x" * (USERDATA_LIMIT + 1))) == {"user_data_base64"}


def test_rendering_is_deterministic_and_follows_the_values():
    """Same context, same bytes; a changed value changes the script."""
    assert render_userdata(typical()) == render_userdata(typical())
    changed = render_userdata(typical(bucket="envctl-fraud-999999999999-eu-west-1"))
    assert changed != render_userdata(typical())
    assert "BUCKET=envctl-fraud-999999999999-eu-west-1\n" in changed


@pytest.mark.parametrize(
    ("name", "health_path", "components", "secret_key_setting"),
    [
        ("typical", "/health", ["webserver", "scheduler"], "AIRFLOW__WEBSERVER__SECRET_KEY"),
        ("airflow3", "/api/v2/monitor/health", ["api-server", "scheduler", "dag-processor"], "AIRFLOW__API__SECRET_KEY"),
    ],
)
def test_airflow_major_version_selects_components_and_health(name, health_path, components, secret_key_setting, scripts,
                                                             tmp_path):
    """Airflow 2 runs webserver + scheduler; Airflow 3 api-server, scheduler, dag-processor and a shared JWT secret."""
    script = scripts[name]
    scalars, _, _ = evaluate_values(script, ["HEALTH_URL"], tmp_path)
    assert scalars["HEALTH_URL"] == f"http://localhost:8080{health_path}"
    compose = yaml.safe_load(embedded_files(script)["/opt/envctl/docker-compose.yml"])
    assert list(compose["services"]) == ["postgres", "airflow-init", *(f"airflow-{c}" for c in components)]
    assert compose["services"][f"airflow-{components[0]}"]["ports"] == ["8080:8080"]
    assert compose["services"]["airflow-init"]["command"] == ["db", "migrate"]
    environment = compose["x-airflow"]["environment"]
    assert environment[secret_key_setting] == "${ENVCTL_WEBSERVER_SECRET_KEY:?}"
    assert ("AIRFLOW__API_AUTH__JWT_SECRET" in environment) == (name == "airflow3")
    assert compose["x-airflow"]["user"] == "50000:0"


def test_unsupported_airflow_versions_are_rejected():
    """Only Airflow 2 and 3 have a compose layout."""
    for version in ("1.10.15", "4.0.0", "latest", ""):
        with pytest.raises(ValueError, match="not supported"):
            render_userdata(typical(airflow_version=version))


def test_custom_image_replaces_the_default(tmp_path):
    """airflow_image overrides apache/airflow:<version>."""
    script = render_userdata(typical(airflow_image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/envctl-fraud:airflow"))
    scalars, _, _ = evaluate_values(script, ["AIRFLOW_IMAGE"], tmp_path)
    assert scalars["AIRFLOW_IMAGE"] == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/envctl-fraud:airflow"


def test_compose_plugin_is_pinned_with_checksums(scripts, tmp_path):
    """The compose binary's version and per-architecture sha256 reach the script."""
    names = ["DOCKER_COMPOSE_VERSION", "DOCKER_COMPOSE_SHA256_X86_64", "DOCKER_COMPOSE_SHA256_AARCH64"]
    scalars, _, _ = evaluate_values(scripts["typical"], names, tmp_path)
    assert scalars == {
        "DOCKER_COMPOSE_VERSION": DOCKER_COMPOSE_VERSION,
        "DOCKER_COMPOSE_SHA256_X86_64": DOCKER_COMPOSE_SHA256["x86_64"],
        "DOCKER_COMPOSE_SHA256_AARCH64": DOCKER_COMPOSE_SHA256["aarch64"],
    }
    assert all(re.fullmatch(r"[0-9a-f]{64}", sha) for sha in DOCKER_COMPOSE_SHA256.values())
    assert "sha256sum -c" in scripts["typical"]


def test_scheduled_jobs_cover_sync_backup_and_cleanup(scripts):
    """DAG sync every 20 s; nightly pg_dump to the bucket (SSE-KMS), db clean and log clean-up."""
    files = embedded_files(scripts["typical"])
    job = files["/usr/local/sbin/envctl-job"]
    assert 'aws s3 sync "s3://$BUCKET/$DAGS_PREFIX" /data/airflow/dags --delete --exact-timestamps' in job
    assert '--sse aws:kms --sse-kms-key-id "$KMS_KEY_ARN"' in job
    assert 'key="backups/postgres/' in job and 'aws s3 cp "$dump" "s3://$BUCKET/$key"' in job
    assert "airflow db clean --skip-archive --yes" in job and "--clean-before-timestamp" in job
    assert "find /data/airflow/logs -type f -mtime +30 -delete" in job
    timer = files["/etc/systemd/system/envctl-dag-sync.timer"]
    assert "OnCalendar=*-*-* *:*:00/20" in timer and "AccuracySec=1s" in timer
    unit = files["/etc/systemd/system/envctl-airflow.service"]
    assert "ExecStartPre=/usr/local/sbin/envctl-fetch-secrets" in unit
    assert "After=docker.service" in unit and "ExecStop=/usr/local/sbin/envctl-compose down" in unit


@pytest.mark.parametrize("version, setting", [("2.10.5", "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL"),
                                              ("3.0.6", "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL")])
def test_a_synced_dag_reaches_airflow_within_a_minute(version, setting):
    """20 s of sync plus Airflow's scan of its DAG folder (30 s, not its default 300 s) stays under a minute."""
    from provisioner.userdata import DAG_FOLDER_SCAN_SECONDS, SCHEDULED_JOBS

    files = embedded_files(render_userdata(typical(airflow_version=version)))
    compose = yaml.safe_load(files["/opt/envctl/docker-compose.yml"])
    assert compose["x-airflow"]["environment"][setting] == str(DAG_FOLDER_SCAN_SECONDS)
    sync_every = int(SCHEDULED_JOBS["dag-sync"].rsplit("/", 1)[1])
    assert sync_every + DAG_FOLDER_SCAN_SECONDS < 60


def _shell_block(script: str, start: str, end: str) -> str:
    """The lines of the rendered script from the one starting with `start` to the next one equal to `end`."""
    match = re.search(rf"^{re.escape(start)}.*?^{re.escape(end)}$", script, re.MULTILINE | re.DOTALL)
    assert match, start
    return match.group(0) + "\n"


# Stand-ins for the script's own helpers, and a `sleep` that only moves bash's clock.
_HARNESS = """set -Eeuo pipefail
log() { printf 'LOG %s\\n' "$*"; }
die() { log "ERROR: $*"; return 1; }
sleep() { SLEPT+=("$1"); SECONDS=$((SECONDS + $1)); }
SLEPT=()
"""


def _volume_wait(script: str, attached_after_s: int | None, tmp_path: Path) -> subprocess.CompletedProcess:
    """Runs the volume step's wait loop with the device appearing after `attached_after_s` (None: never)."""
    probe = values_block(script) + _HARNESS
    finds = "false" if attached_after_s is None else f"((SECONDS >= {attached_after_s})) && echo /dev/nvme1n1"
    probe += f"find_data_device() {{ {finds}; }}\n"
    probe += _shell_block(script, "deadline=$((SECONDS + VOLUME_WAIT_SECONDS))", "done")
    probe += 'echo "DEVICE $DATA_DEVICE"\n'
    return subprocess.run(["bash", "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=20)


def test_a_replacement_host_waits_for_its_volume_to_leave_the_old_host(scripts, tmp_path):
    """On a replacement EC2 attaches the data volume only after StopInstances on the old host completes
    and DetachVolume finishes (stop_instance_before_detaching); stopping alone "can take a few minutes"
    (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/how-ec2-instance-stop-start-works.html). A volume
    that arrives after 12 minutes is found; the wait says so every minute and fails naming the volume."""
    late = _volume_wait(scripts["typical"], 12 * 60, tmp_path)
    assert late.returncode == 0 and "DEVICE /dev/nvme1n1" in late.stdout, late.stdout + late.stderr
    assert late.stdout.count("waiting for data volume vol-0123456789abcdef0") == 12
    never = _volume_wait(scripts["typical"], None, tmp_path)
    assert never.returncode != 0
    assert "ERROR: data volume vol-0123456789abcdef0 not attached after 900s" in never.stdout


def _retry(script: str, body: str, tmp_path: Path) -> subprocess.CompletedProcess:
    probe = _HARNESS + _shell_block(script, "retry() {", "}") + body
    return subprocess.run(["bash", "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=20)


def test_network_steps_retry_with_backoff_and_say_when_they_give_up(scripts, tmp_path):
    """A host may boot before its NAT route carries traffic, and mirrors fail transiently: package installs and
    downloads are retried with growing pauses, and a step that gives up says what to check."""
    script = scripts["typical"]
    flaky = _retry(script, 'n=0; flaky() { n=$((n + 1)); ((n >= 4)); }; retry 8 flaky; echo "OK after $n, slept ${SLEPT[*]}"\n',
                   tmp_path)
    assert "OK after 4, slept 5 10 20" in flaky.stdout, flaky.stdout + flaky.stderr
    down = _retry(script, 'retry 8 false || echo "FAILED slept ${SLEPT[*]}"\n', tmp_path)
    assert "FAILED slept 5 10 20 40 60 60 60" in down.stdout and "gave up after 8 attempts: false" in down.stdout
    assert "NAT gateway" in down.stdout
    for command in ("dnf install", "apt-get -q -y -o DPkg::Lock::Timeout=600 install", "snap install",
                    "curl -fsSL -o", "envctl-compose pull", "aws ssm put-parameter"):
        lines = [line for line in script.splitlines() if command in line]
        assert lines and all(re.search(r"\bretry \d+ ", line) for line in lines), (command, lines)


def with_sso() -> UserdataContext:
    return typical(sso_issuer="https://login.example.com/realms/data", sso_client_id="airflow-fraud",
                   sso_client_secret="partner_api_token")


def test_owners_are_synced_at_boot_and_every_minute(scripts):
    """The bootstrap runs envctl-owners --force once Airflow is healthy, before it reports success; a timer
    runs it every minute; a restore drops its marker so the restored metadata gets the owners' accounts."""
    script = scripts["typical"]
    assert script.index('log "Airflow is healthy"') < script.index("/usr/local/sbin/envctl-owners --force") \
        < script.index("\nstep result\n")
    files = embedded_files(script)
    assert "OnCalendar=*-*-* *:*:30" in files["/etc/systemd/system/envctl-owners.timer"]
    assert "owners) /usr/local/sbin/envctl-owners ;;" in files["/usr/local/sbin/envctl-job"]
    assert "OWNERS_PARAMETER" in script and "OWNER_PASSWORDS_SECRET" in script
    from provisioner.userdata import render_host_command

    restore = render_host_command("restore", key="backups/postgres/x.sql.gz", health_url="http://localhost:8080/health",
                                  health_timeout_s=60)
    assert "rm -f /var/lib/envctl/owners.synced" in restore


def test_airflow2_owners_get_fab_admin_accounts_with_the_password_on_stdin(scripts):
    """Airflow 2: FAB's `airflow users` CLI; other accounts are deleted; the password reaches `users create`
    on its standard input (its prompt), never as an argument; the secret is written from a file."""
    sync = embedded_files(scripts["typical"])["/usr/local/sbin/envctl-owners"]
    assert "airflow users list --output json" in sync
    assert 'airflow users delete --username "$user"' in sync
    assert re.search(r"printf '%s\\n%s\\n' \"\$password\" \"\$password\" \| airflow users create --username \"\$owner\" "
                     r"--email \"\$owner\"", sync)
    assert "--role Admin" in sync and "--password" not in sync and "--use-random-password" not in sync
    assert '--secret-string "file://$work/passwords.json"' in sync
    assert "secrets.token_urlsafe(18)" in sync  # 144 random bits
    assert "set +x" in sync and "flock 9" in sync


def test_airflow3_owners_go_to_the_simple_auth_manager_of_the_api_server_only(scripts):
    """Airflow 3: the users (admin) and the passwords file only on the API server, not where tasks run."""
    files = embedded_files(scripts["airflow3"])
    sync = files["/usr/local/sbin/envctl-owners"]
    assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=" in sync and '":admin"' in sync
    assert "/data/airflow/auth/passwords.json" in sync and "airflow users" not in sync
    # Written before every start: the API server never starts with Airflow's default user "admin".
    unit = files["/etc/systemd/system/envctl-airflow.service"]
    assert unit.index("ExecStartPre=/usr/local/sbin/envctl-owners --force") < unit.index("ExecStart=")
    compose = yaml.safe_load(files["/opt/envctl/docker-compose.yml"])
    api = compose["services"]["airflow-api-server"]
    assert api["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == "/opt/airflow/auth/passwords.json"
    assert api["environment"]["AIRFLOW__CORE__FERNET_KEY"] == "${ENVCTL_FERNET_KEY:?}"  # the common settings kept
    assert {"path": "/data/airflow/auth/users.env", "format": "raw", "required": False} in api["env_file"]
    assert "/data/airflow/auth:/opt/airflow/auth" in api["volumes"]
    for name in ("airflow-scheduler", "airflow-dag-processor"):
        service = compose["services"][name]
        assert not any("auth" in volume for volume in service["volumes"])
        assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" not in service["environment"]


def test_sso_adds_the_webserver_login_configuration_only_when_asked():
    """Without airflow.sso FAB's default login (passwords); with it the webserver mounts envctl's
    webserver_config.py and gets the issuer, client id and secret name, which stay in the values block."""
    plain = embedded_files(render_userdata(typical()))
    assert "/opt/envctl/webserver_config.py" not in plain
    assert "webserver_config" not in plain["/opt/envctl/docker-compose.yml"]
    script = render_userdata(with_sso())
    files = embedded_files(script)
    compose = yaml.safe_load(files["/opt/envctl/docker-compose.yml"])
    web = compose["services"]["airflow-webserver"]
    assert "/opt/envctl/webserver_config.py:/opt/airflow/webserver_config.py:ro" in web["volumes"]
    assert web["environment"]["ENVCTL_SSO_ISSUER"] == "${SSO_ISSUER:?}"
    assert web["environment"]["ENVCTL_SSO_CLIENT_SECRET_NAME"] == "${SSO_CLIENT_SECRET_NAME:?}"
    assert "webserver_config" not in json.dumps(compose["services"]["airflow-scheduler"])
    assert "login.example.com" not in script.replace(values_block(script), "")


def _load_webserver_config(tmp_path: Path, monkeypatch, environ: dict[str, str]) -> dict:
    """Runs the rendered webserver_config.py as Airflow does (a module in its namespace), with the two
    modules it imports standing in: FAB's constants (their real values) and the security manager base."""
    import runpy

    stubs = tmp_path / "stubs"
    (stubs / "flask_appbuilder").mkdir(parents=True)
    (stubs / "flask_appbuilder" / "__init__.py").write_text("")
    (stubs / "flask_appbuilder" / "const.py").write_text("AUTH_DB = 1\nAUTH_OAUTH = 4\n")
    override = stubs / "airflow" / "providers" / "fab" / "auth_manager" / "security_manager"
    override.mkdir(parents=True)
    for folder in (stubs / "airflow", *[p for p in override.parents if str(p).startswith(str(stubs / "airflow"))], override):
        (folder / "__init__.py").touch()
    (override / "override.py").write_text("class FabAirflowSecurityManagerOverride:\n    oauth_remotes = {}\n")
    monkeypatch.syspath_prepend(str(stubs))
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    config = tmp_path / "webserver_config.py"
    config.write_text(embedded_files(render_userdata(with_sso()))["/opt/envctl/webserver_config.py"])
    try:
        return runpy.run_path(str(config))
    finally:  # the stand-ins leave no module behind for other tests
        for name in [n for n in sys.modules if n.split(".")[0] in ("airflow", "flask_appbuilder")]:
            del sys.modules[name]


def test_webserver_config_logs_in_through_the_oidc_provider_into_owner_accounts(tmp_path, monkeypatch):
    """The rendered file configures FAB's OAuth login against the issuer's discovery document, reads the
    client secret from the team secret's variable, registers nobody, and maps a verified e-mail address
    to the user name (an owner's account); an unverified or missing address matches no account."""
    config = _load_webserver_config(tmp_path, monkeypatch, {
        "ENVCTL_SSO_ISSUER": "https://login.example.com/realms/data/", "ENVCTL_SSO_CLIENT_ID": "airflow-fraud",
        "ENVCTL_SSO_CLIENT_SECRET_NAME": "partner_api_token", "AIRFLOW_VAR_PARTNER_API_TOKEN": "client-s3cret",
    })
    assert config["AUTH_TYPE"] == 4 and config["AUTH_USER_REGISTRATION"] is False
    (provider,) = config["OAUTH_PROVIDERS"]
    assert provider["remote_app"] == {
        "client_id": "airflow-fraud", "client_secret": "client-s3cret",
        "server_metadata_url": "https://login.example.com/realms/data/.well-known/openid-configuration",
        "client_kwargs": {"scope": "openid email profile"},
    }
    manager = config["SECURITY_MANAGER_CLASS"]()
    claims = {"email": "ana.lopez@example.com", "email_verified": True, "given_name": "Ana", "family_name": "Lopez"}
    assert manager.get_oauth_user_info("sso", {"userinfo": claims}) == {
        "username": "ana.lopez@example.com", "email": "ana.lopez@example.com", "first_name": "Ana", "last_name": "Lopez"}
    assert manager.get_oauth_user_info("sso", {"userinfo": {**claims, "email_verified": False}}) == {}
    assert manager.get_oauth_user_info("sso", {"userinfo": {"sub": "123"}}) == {}
