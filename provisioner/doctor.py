"""`envctl doctor`: preflight checks before the first create and after upgrades.

Each check says ok, warn or fail, what it found and how to fix it. Nothing here creates anything
that stays (the backend probe object is deleted at once). The AWS checks take a client factory
`(service, region) -> boto3 client` so tests can point them at a moto server; boto3, the Pulumi
engine module and Docker are imported inside the checks, never pulumi_aws.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import asdict, dataclass
from functools import partial
from importlib import metadata, util
from pathlib import Path
from typing import Any, Callable, Iterable

from provisioner.settings import Settings

OK, WARN, FAIL = "ok", "warn", "fail"
COST_TAG = "envctl:team"
PULUMI_TIMEOUT_S = 30

ClientFactory = Callable[[str, str], Any]

# What one team environment takes (provisioner/components/network.py): one VPC, one NAT gateway in
# one zone, one Elastic IP for it. Quota codes from the Service Quotas console / ListServiceQuotas:
# https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html
# https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/elastic-ip-addresses-eip.html#using-instance-addressing-limit
PER_TEAM_QUOTAS = (
    # (name, service code, quota code, AWS default, what the count is)
    ("VPCs per Region", "vpc", "L-F678F1CE", 5, "vpcs"),
    ("EC2-VPC Elastic IPs", "ec2", "L-0263D0A3", 5, "eips"),
    ("NAT gateways per Availability Zone", "vpc", "L-FE5A380F", 5, "nat_per_zone"),
)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def failed(checks: Iterable[Check]) -> bool:
    return any(check.status == FAIL for check in checks)


def run_checks(settings: Settings, target: str, *, client: ClientFactory | None = None,
               pulumi: str | None = None) -> list[Check]:
    """Every check for the target, in the order a first create needs them."""
    specs, requests = _requests(settings)
    if target == "sandbox":
        return [requests, *sandbox_checks(settings)]
    pulumi_path = pulumi if pulumi is not None else shutil.which("pulumi")
    checks = [requests, _guarded("pulumi-cli", lambda: check_pulumi_cli(pulumi_path, settings)),
              _guarded("pulumi-aws-plugin", lambda: check_aws_plugin(pulumi_path))]
    checks.extend(aws_checks(settings, specs, client or default_clients(settings)))
    return checks


# ---------------------------------------------------------------------- the requests


def _requests(settings: Settings) -> tuple[list[Any], Check]:
    from provisioner.spec import request_files, validate_files

    files = request_files(settings.stacks_dir) if settings.stacks_dir.is_dir() else []
    if not files:
        return [], Check("requests", WARN, f"no request files in {settings.stacks_dir}",
                         "add stacks/<team>.yaml (see docs/requesting-an-environment.md)")
    specs, errors = validate_files(files, default_region=settings.region, pool=settings.cidr_pool,
                                   prefix=settings.team_prefix, root=settings.root)
    if errors:
        return specs, Check("requests", FAIL, f"{len(errors)} problem(s): " + "; ".join(errors[:3]),
                            "run `envctl validate` and fix the files it names")
    return specs, Check("requests", OK, f"{len(specs)} valid request(s): " + ", ".join(sorted(s.team for s in specs)))


# ---------------------------------------------------------------------- the Pulumi CLI


def _pulumi(path: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=PULUMI_TIMEOUT_S,
                          env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"}, stdin=subprocess.DEVNULL)


def check_pulumi_cli(path: str | None, settings: Settings) -> Check:
    """The CLI's version against what the engine needs (any 3.x from MIN_CLI_VERSION) and the SDK's version."""
    from semver import VersionInfo

    from provisioner.engines.pulumi import INSTALL_HINT, MIN_CLI_VERSION, cli_supported, is_self_managed

    if path is None:
        return Check("pulumi-cli", FAIL, "the Pulumi CLI is not on PATH (target aws needs it)", INSTALL_HINT)
    run = _pulumi(path, "version")
    text = run.stdout.strip().removeprefix("v")
    try:
        version = VersionInfo.parse(text)
    except ValueError:
        return Check("pulumi-cli", FAIL, f"`pulumi version` answered {text or run.stderr.strip()!r}", INSTALL_HINT)
    sdk = metadata.version("pulumi")
    backend = settings.effective_backend_url
    tags = "no stack tags (self-managed backend)" if is_self_managed(backend) else "stack tags set (Pulumi Cloud)"
    if not cli_supported(version):
        return Check("pulumi-cli", FAIL, f"Pulumi CLI {version}; envctl needs {MIN_CLI_VERSION.major}.x, "
                     f"at least {MIN_CLI_VERSION}", f"install Pulumi CLI {sdk} (the SDK's version): {INSTALL_HINT}")
    detail = f"Pulumi CLI {version} at {path}, SDK {sdk}, backend {backend}: {tags}"
    if str(version) != sdk:
        return Check("pulumi-cli", WARN, detail + "; the CLI and the SDK differ",
                     f"install the SDK's version: curl -fsSL https://get.pulumi.com | sh -s -- --version {sdk}")
    return Check("pulumi-cli", OK, detail)


def check_aws_plugin(path: str | None) -> Check:
    """`pulumi plugin ls`: the aws resource plugin of the pulumi-aws SDK's version."""
    import json

    sdk = metadata.version("pulumi_aws")
    install = f"pulumi plugin install resource aws {sdk}"
    if path is None:
        return Check("pulumi-aws-plugin", FAIL, "not checked: the Pulumi CLI is not on PATH", f"install the CLI, then {install}")
    run = _pulumi(path, "plugin", "ls", "--json")
    try:
        plugins = json.loads(run.stdout or "[]") or []
    except json.JSONDecodeError:
        return Check("pulumi-aws-plugin", WARN, f"`pulumi plugin ls --json` answered no JSON: {run.stderr.strip()[:200]}",
                     install)
    versions = sorted({p.get("version", "") for p in plugins if p.get("name") == "aws" and p.get("kind") == "resource"})
    if sdk in versions:
        return Check("pulumi-aws-plugin", OK, f"aws plugin {sdk} installed (pulumi-aws SDK {sdk})")
    found = f"installed: {', '.join(versions)}" if versions else "none installed"
    return Check("pulumi-aws-plugin", WARN, f"no aws plugin {sdk} for pulumi-aws {sdk} ({found}); the CLI downloads "
                 "it on first use, which needs access to github.com", install)


# ---------------------------------------------------------------------- AWS


def default_clients(settings: Settings) -> ClientFactory:
    """boto3 clients with short timeouts, at settings.endpoint_url when one is set."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 2})

    def make(service: str, region: str) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=settings.endpoint_url or None, config=config)

    return make


def aws_checks(settings: Settings, specs: list[Any], client: ClientFactory) -> list[Check]:
    regions = sorted({spec.region for spec in specs} or {settings.region})
    identity = _guarded("aws-credentials", lambda: check_credentials(client, settings.region))
    checks = [identity]
    aws_ok = identity.status != FAIL

    def skipped(name: str) -> Check:
        return Check(name, WARN, "not checked: no usable AWS credentials", "fix aws-credentials first")

    if aws_ok:
        for region in regions:
            here = [spec for spec in specs if spec.region == region]
            checks.append(_guarded(f"availability-zones {region}", partial(check_zones, client, region, here)))
            checks.append(_guarded(f"quotas {region}", partial(check_quotas, client, region, here)))
        checks.append(_guarded("cost-allocation-tag", lambda: check_cost_tag(client)))
    else:
        checks += [skipped(name) for name in ("availability-zones", "quotas", "cost-allocation-tag")]
    in_aws = aws_ok or not settings.effective_backend_url.startswith("s3://")
    checks.append(_guarded("backend", lambda: check_backend(settings, client)) if in_aws else skipped("backend"))
    in_aws = aws_ok or not settings.secrets_provider.startswith("awskms://")
    checks.append(_guarded("secrets-provider", lambda: check_secrets_provider(settings, client))
                  if in_aws else skipped("secrets-provider"))
    return checks


def check_credentials(client: ClientFactory, region: str) -> Check:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        who = client("sts", region).get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        return Check("aws-credentials", FAIL, f"sts get-caller-identity failed: {_one_line(exc)}",
                     "configure credentials (aws configure sso, AWS_PROFILE, or the CI's OIDC role)")
    return Check("aws-credentials", OK, f"account {who['Account']} as {who['Arn']}")


def check_zones(client: ClientFactory, region: str, specs: list[Any]) -> Check:
    """The region's available zones that offer every requested EC2 instance type.

    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstanceTypeOfferings.html
    """
    name = f"availability-zones {region}"
    ec2 = client("ec2", region)
    zones = ec2.describe_availability_zones(Filters=[{"Name": "state", "Values": ["available"]}])["AvailabilityZones"]
    names = sorted(z["ZoneName"] for z in zones if z.get("ZoneType", "availability-zone") == "availability-zone")
    if not names:
        return Check(name, FAIL, f"{region} has no available zone for this account",
                     "pick another region in envctl.toml or the request")
    types = sorted({spec.spec.airflow.instance_type for spec in specs})
    if not types:
        return Check(name, OK, f"zones {', '.join(names)} (no requests in this region)")
    offered: dict[str, set[str]] = {t: set() for t in types}
    pages = ec2.get_paginator("describe_instance_type_offerings").paginate(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": types}])
    for page in pages:
        for offer in page["InstanceTypeOfferings"]:
            offered.setdefault(offer["InstanceType"], set()).add(offer["Location"])
    usable = {t: sorted(offered[t] & set(names)) for t in types}
    missing = [t for t in types if not usable[t]]
    shown = "; ".join(f"{t}: {', '.join(z) or 'none'}" for t, z in usable.items())
    if missing:
        return Check(name, FAIL, f"not offered in any available zone of {region}: {', '.join(missing)} ({shown})",
                     "request another airflow.instance_type, or another region")
    return Check(name, OK, f"zones {', '.join(names)}; {shown}")


def check_quotas(client: ClientFactory, region: str, specs: list[Any]) -> Check:
    """What one team takes (a VPC, an Elastic IP, a NAT gateway) against the quotas; SageMaker endpoint instances.

    https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_GetServiceQuota.html
    """
    name = f"quotas {region}"
    ec2 = client("ec2", region)
    quotas = client("service-quotas", region)
    used = _usage(ec2)
    notes, unknown, fits = [], [], []
    for title, service, code, default, key in PER_TEAM_QUOTAS:
        value = _quota(quotas, service, code)
        if value is None:
            unknown.append(title)
            value = default
        fits.append(int(value) - used[key])
        notes.append(f"{title} {used[key]}/{int(value)}")
    more = max(0, min(fits))
    status, fix = (OK, "") if more > 0 else (FAIL, "request quota increases in the Service Quotas console (VPCs, "
                                              "Elastic IPs, NAT gateways per AZ)")
    detail = f"{more} more team environment(s) fit: " + ", ".join(notes)
    sagemaker, sm_fail, sm_unknown = _sagemaker_quotas(quotas, specs)
    if sagemaker:
        detail += "; SageMaker " + ", ".join(sagemaker)
    if sm_fail:
        status, fix = FAIL, (fix + "; " if fix else "") + "request SageMaker quota for " + ", ".join(sm_fail) + \
            " (often 0 in new accounts), or use serverless inference"
    unknown += sm_unknown
    if unknown and status == OK:
        status = WARN
        fix = ("could not read these quotas (Service Quotas unavailable or not allowed); AWS defaults assumed: "
               + ", ".join(unknown))
    return Check(name, status, detail, fix)


def _usage(ec2: Any) -> dict[str, int]:
    vpcs = len(ec2.describe_vpcs()["Vpcs"])
    eips = len([a for a in ec2.describe_addresses()["Addresses"] if a.get("Domain", "vpc") == "vpc"])
    nats = [n for n in ec2.describe_nat_gateways()["NatGateways"] if n.get("State") in ("pending", "available")]
    per_zone: dict[str, int] = {}
    if nats:
        subnets = ec2.describe_subnets(SubnetIds=sorted({n["SubnetId"] for n in nats}))["Subnets"]
        zone_of = {s["SubnetId"]: s["AvailabilityZone"] for s in subnets}
        for nat in nats:
            zone = zone_of.get(nat["SubnetId"], "?")
            per_zone[zone] = per_zone.get(zone, 0) + 1
    # A new team's NAT goes to the first usable zone: count the fullest one.
    return {"vpcs": vpcs, "eips": eips, "nat_per_zone": max(per_zone.values(), default=0)}


def _quota(quotas: Any, service: str, code: str) -> float | None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return quotas.get_service_quota(ServiceCode=service, QuotaCode=code)["Quota"]["Value"]
    except (BotoCoreError, ClientError, NotImplementedError):
        return None


def _sagemaker_quotas(quotas: Any, specs: list[Any]) -> tuple[list[str], list[str], list[str]]:
    """(notes, types short of quota, unreadable) for the instance types the requests' endpoints use."""
    from botocore.exceptions import BotoCoreError, ClientError

    wanted: dict[str, int] = {}
    for spec in specs:
        inference = spec.spec.sagemaker.inference
        if inference is None or not inference.enabled or inference.instance is None:
            continue
        instance = inference.instance
        count = instance.autoscaling.max if instance.autoscaling else instance.count
        wanted[instance.type] = wanted.get(instance.type, 0) + count
    if not wanted:
        return [], [], []
    values: dict[str, float] = {}
    try:
        for page in quotas.get_paginator("list_service_quotas").paginate(ServiceCode="sagemaker"):
            for quota in page["Quotas"]:
                match = re.fullmatch(r"(ml\.\S+) for endpoint usage", quota.get("QuotaName", ""))
                if match:
                    values[match.group(1)] = quota["Value"]
    except (BotoCoreError, ClientError, NotImplementedError):
        return [f"{t}: {n} requested, quota not readable" for t, n in wanted.items()], [], [f"SageMaker {', '.join(wanted)}"]
    notes, short, unknown = [], [], []
    for itype, count in sorted(wanted.items()):
        if itype not in values:
            unknown.append(f"SageMaker {itype}")
            notes.append(f"{itype}: {count} requested, no quota listed")
            continue
        notes.append(f"{itype} for endpoints: {count} requested, quota {int(values[itype])}")
        if values[itype] < count:
            short.append(itype)
    return notes, short, unknown


def check_cost_tag(client: ClientFactory) -> Check:
    """Budgets filtered on envctl:team see nothing until the tag is an Active cost-allocation tag.

    https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/activating-tags.html
    """
    from botocore.exceptions import BotoCoreError, ClientError

    fix = (f"activate it in the payer account: aws ce update-cost-allocation-tags-status "
           f"--cost-allocation-tags-status TagKey={COST_TAG},Status=Active (it appears there after the first tagged resource)")
    try:
        tags = client("ce", "us-east-1").list_cost_allocation_tags(TagKeys=[COST_TAG])["CostAllocationTags"]
    except (BotoCoreError, ClientError, NotImplementedError) as exc:
        return Check("cost-allocation-tag", WARN, f"could not read cost-allocation tags ({_one_line(exc)}); "
                     "team budgets stay at 0 until the tag is active", fix)
    status = next((t.get("Status") for t in tags if t.get("TagKey") == COST_TAG), None)
    if status == "Active":
        return Check("cost-allocation-tag", OK, f"{COST_TAG} is an active cost-allocation tag")
    shown = status or "not known to Billing yet"
    return Check("cost-allocation-tag", WARN, f"{COST_TAG}: {shown}; team budgets see no spend until it is Active", fix)


def check_backend(settings: Settings, client: ClientFactory) -> Check:
    """The state backend reachable and writable."""
    url = settings.effective_backend_url
    if url.startswith("file://"):
        if os.environ.get("GITHUB_ACTIONS") == "true":
            return Check("backend", FAIL, f"state backend {url} on a CI runner: the stacks' state is lost when the job ends",
                         "set ENVCTL_BACKEND_URL to an s3:// bucket (docs/operations.md)")
        return _writable_dir("backend", Path(url.removeprefix("file://")).expanduser(), "state backend folder")
    if url.startswith("s3://"):
        return _s3_backend(url, settings, client)
    if url.startswith(("https://", "http://")):
        if os.environ.get("PULUMI_ACCESS_TOKEN"):
            return Check("backend", OK, f"Pulumi Cloud backend {url}, PULUMI_ACCESS_TOKEN set")
        return Check("backend", WARN, f"Pulumi Cloud backend {url} without PULUMI_ACCESS_TOKEN",
                     "set PULUMI_ACCESS_TOKEN or run `pulumi login`")
    return Check("backend", WARN, f"backend {url}: envctl does not check this kind", "check it with `pulumi stack ls`")


def _s3_backend(url: str, settings: Settings, client: ClientFactory) -> Check:
    from botocore.exceptions import BotoCoreError, ClientError

    location, _, query = url.removeprefix("s3://").partition("?")
    bucket, _, prefix = location.partition("/")
    region = dict(part.partition("=")[::2] for part in query.split("&") if part).get("region", settings.region)
    s3 = client("s3", region)
    probe = f"{prefix.strip('/') + '/' if prefix.strip('/') else ''}.envctl-doctor-probe-{uuid.uuid4().hex}"
    try:
        s3.head_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key=probe, Body=b"envctl doctor probe")
        s3.delete_object(Bucket=bucket, Key=probe)
    except (BotoCoreError, ClientError) as exc:
        return Check("backend", FAIL, f"state bucket {bucket}: {_one_line(exc)}",
                     "create the bucket (versioned, encrypted) or allow s3:ListBucket, s3:GetObject, s3:PutObject and "
                     "s3:DeleteObject on it (docs/operations.md)")
    return Check("backend", OK, f"state backend {url}: bucket reachable, a probe object written and deleted")


def check_secrets_provider(settings: Settings, client: ClientFactory) -> Check:
    """The secrets provider usable: a passphrase present, or the KMS key enabled."""
    from botocore.exceptions import BotoCoreError, ClientError

    provider = settings.secrets_provider
    if provider == "passphrase":
        named = os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
        if os.environ.get("PULUMI_CONFIG_PASSPHRASE") is not None or (named and Path(named).is_file()):
            return Check("secrets-provider", OK, "passphrase provider, passphrase set")
        return Check("secrets-provider", FAIL, "passphrase provider without a passphrase",
                     "set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE (or secrets_provider = awskms://...)")
    if provider.startswith("awskms://"):
        key, region = _kms_key(provider, settings.region)
        try:
            meta = client("kms", region).describe_key(KeyId=key)["KeyMetadata"]
        except (BotoCoreError, ClientError) as exc:
            return Check("secrets-provider", FAIL, f"KMS key {key} in {region}: {_one_line(exc)}",
                         "create the key (and alias) or allow kms:DescribeKey, kms:Encrypt, kms:Decrypt on it")
        if meta.get("KeyState") != "Enabled":
            return Check("secrets-provider", FAIL, f"KMS key {key} is {meta.get('KeyState')}", "enable the key or use another")
        return Check("secrets-provider", OK, f"KMS key {meta['Arn']} enabled")
    if provider in ("", "default"):
        return Check("secrets-provider", OK, "the backend's default provider (Pulumi Cloud)")
    return Check("secrets-provider", WARN, f"secrets provider {provider}: envctl does not check this kind", "")


def _kms_key(provider: str, default_region: str) -> tuple[str, str]:
    """awskms://alias/x?region=r, awskms:///arn:aws:kms:r:…, awskms://<key id> → (key id or ARN, region)."""
    rest, _, query = provider.removeprefix("awskms://").partition("?")
    key = rest.lstrip("/")
    params = dict(part.partition("=")[::2] for part in query.split("&") if part)
    region = params.get("region") or (key.split(":")[3] if key.startswith("arn:") else default_region)
    return key, region


# ---------------------------------------------------------------------- the sandbox


def sandbox_checks(settings: Settings) -> list[Check]:
    return [_guarded("moto-server", lambda: check_sandbox_server(settings)),
            _guarded("docker", lambda: check_docker(settings)),
            _writable_dir("state-dir", settings.state_dir, "state dir")]


def check_sandbox_server(settings: Settings) -> Check:
    from provisioner.engines.sandbox.server_control import SandboxServer

    if util.find_spec("moto") is None:
        return Check("moto-server", FAIL, "moto is not installed", "pip install 'envctl[sandbox]'")
    info = SandboxServer(settings.sandbox_dir, settings.sandbox_port).running()
    version = metadata.version("moto")
    if info is None:
        return Check("moto-server", OK, f"not running; moto {version} is installed and starts on the first "
                     "sandbox command (or `envctl sandbox start`)")
    return Check("moto-server", OK, f"running at {info.endpoint} (pid {info.pid}, moto {version})")


def check_docker(settings: Settings) -> Check:
    """A Docker engine, needed for --hosts and for `envctl inference push`."""
    from provisioner.errors import MissingTool
    from provisioner.local_images import connect_docker

    try:
        client = connect_docker()
    except MissingTool as exc:
        status = FAIL if settings.sandbox_hosts else WARN
        return Check("docker", status, f"{exc.message}; needed for --hosts and `envctl inference push`",
                     "start dockerd (bash .ci/docker.sh) or set DOCKER_HOST")
    version = client.version().get("Version", "?")
    return Check("docker", OK, f"Docker engine {version} reachable")


# ---------------------------------------------------------------------- helpers


def _writable_dir(name: str, path: Path, what: str) -> Check:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".envctl-doctor-"):
            pass
    except OSError as exc:
        return Check(name, FAIL, f"{what} {path} is not writable: {exc.strerror or exc}",
                     f"make {path} writable or point state_dir (envctl.toml) elsewhere")
    return Check(name, OK, f"{what} {path} writable")


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """A check that broke is a failed check with the reason, never a traceback."""
    from provisioner.errors import EnvctlError

    try:
        return check()
    except EnvctlError as exc:
        return Check(name, FAIL, exc.message, exc.hint or "")
    except subprocess.TimeoutExpired as exc:
        return Check(name, FAIL, f"`{' '.join(map(str, exc.cmd))}` did not answer in {exc.timeout:.0f} s", "")
    except Exception as exc:  # noqa: BLE001 - doctor reports every broken check instead of stopping
        return Check(name, FAIL, f"the check itself failed: {type(exc).__name__}: {_one_line(exc)}", "")


def _one_line(exc: BaseException) -> str:
    """The error in one short line (an HTML error page from a proxy or emulator cut off)."""
    text = " ".join(str(exc).split()).split(" <", 1)[0].removesuffix(":")
    return text[:300]
