"""TeamSpec: what a team asks for in `stacks/<team>.yaml`, validated alone and against the others.

Errors are collected, never raised one at a time: `validate_files` returns every problem of
every file as `stacks/<file>: <field.path>: <what is wrong; what is allowed>`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from provisioner.airflow_releases import AIRFLOW_VERSION_PATTERN, DEFAULT_AIRFLOW_VERSION
from provisioner.errors import InvalidInput
from provisioner.request_files import request_files

API_VERSION = "envctl/v1"
TEAM_PATTERN = r"^[a-z][a-z0-9-]{1,22}[a-z0-9]$"
SECRET_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"

AIRFLOW_INSTANCE_TYPES = (
    "t3.medium", "t3.large", "t3.xlarge",
    "m6i.large", "m6i.xlarge", "m6i.2xlarge",
    "m7i.large", "m7i.xlarge", "m7i.2xlarge",
    "r6i.large", "r6i.xlarge",
)
INFERENCE_INSTANCE_TYPES = (
    "ml.t2.medium", "ml.m5.large", "ml.m5.xlarge", "ml.m5.2xlarge",
    "ml.c5.large", "ml.c5.xlarge", "ml.c5.2xlarge",
    "ml.g4dn.xlarge", "ml.g5.xlarge", "ml.g5.2xlarge", "ml.inf2.xlarge",
)
NOTEBOOK_INSTANCE_TYPES = ("ml.t3.medium", "ml.t3.large", "ml.m5.xlarge")
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
REGIONS = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1",
    "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1", "eu-south-1",
    "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "ap-south-1", "sa-east-1",
)

# An owner's address is their Airflow user name: ',', ':' and ';' separate users in Airflow 3's user
# list, and RFC 5322's other specials ( <>()[] ) need quoting in an address anyway.
EMAIL_PATTERN = r"^[^@\s'\"`$\\,:;<>()\[\]]+@[^@\s'\"`$\\,:;<>()\[\]]+\.[a-zA-Z]{2,}$"
Email = Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=254)]
SecretName = Annotated[str, StringConstraints(pattern=SECRET_NAME_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Network(_Model):
    cidr: str | None = Field(None, description="The team's VPC range, /16 to /24. Omit to allocate one from the pool.")

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            net = ipaddress.IPv4Network(value, strict=True)
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 network in CIDR form with host bits zero, e.g. 10.20.0.0/20") from None
        if not 16 <= net.prefixlen <= 24:
            raise ValueError(f"/{net.prefixlen} is not allowed; use a prefix from /16 to /24")
        if not net.is_private:
            raise ValueError(f"{value} is not a private range; use 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
        return str(net)


class Dags(_Model):
    source: Literal["s3"] = Field("s3", description="Where DAGs come from: s3 (the team bucket, synced every 20 seconds).")
    prefix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_./-]{1,128}/$")] = Field(
        "dags/", description="Key prefix in the team bucket that holds the DAG files; ends with '/'."
    )


class Sso(_Model):
    """Single sign-on for the Airflow UI through the organisation's OpenID Connect provider."""

    issuer: Annotated[str, StringConstraints(pattern=r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?$",
                                             max_length=512)] = Field(
        description="The OIDC issuer URL (https), e.g. https://login.example.com/realms/data; "
                    "its /.well-known/openid-configuration is read at login."
    )
    client_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:@/-]{1,255}$")] = Field(
        description="The client id registered for this team's Airflow at the provider."
    )
    client_secret: SecretName = Field(
        description="Name of the secret (one of `secrets`) that holds the client secret; set its value with `envctl secrets set`."
    )


class Airflow(_Model):
    version: Annotated[str, StringConstraints(pattern=AIRFLOW_VERSION_PATTERN)] = Field(
        DEFAULT_AIRFLOW_VERSION, description="Apache Airflow release: 2.10.x, 2.11.x or 3.x.y."
    )
    instance_type: Literal[AIRFLOW_INSTANCE_TYPES] = Field("t3.large", description="EC2 type of the Airflow host.")  # type: ignore[valid-type]
    volume_gb: int = Field(50, ge=20, le=1000, description="Size of the data volume (Postgres, logs), 20 to 1000 GiB.")
    dags: Dags = Dags()
    sso: Sso | None = Field(
        None,
        description="Optional OIDC single sign-on for the UI (Airflow 2.x); the owners' accounts still decide who may log in.",
    )

    @model_validator(mode="after")
    def _sso_needs_fab(self) -> "Airflow":
        if self.sso is not None and not self.version.startswith("2."):
            raise ValueError(f"sso is supported on Airflow 2.x only (its FAB login); Airflow {self.version} uses "
                             "its simple auth manager with the owners' passwords: remove sso or use version 2.10.x/2.11.x")
        return self


class Autoscaling(_Model):
    min: int = Field(1, ge=1, le=20)
    max: int = Field(2, ge=1, le=20)

    @model_validator(mode="after")
    def _order(self) -> "Autoscaling":
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be at least min ({self.min})")
        return self


class InstanceInference(_Model):
    type: Literal[INFERENCE_INSTANCE_TYPES] = "ml.m5.large"  # type: ignore[valid-type]
    count: int = Field(1, ge=1, le=20)
    autoscaling: Autoscaling | None = None


class ServerlessInference(_Model):
    memory_mb: Literal[SERVERLESS_MEMORY_MB] = 2048  # type: ignore[valid-type]
    max_concurrency: int = Field(5, ge=1, le=200)


IMAGE_PATTERN = r"^(default|[a-z0-9.-]+/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[a-f0-9]{64}))$"


class Inference(_Model):
    enabled: bool = True
    image: Annotated[str, StringConstraints(pattern=IMAGE_PATTERN)] = Field(
        "default",
        description="'default' (envctl's container in the team's ECR repository) or a full image URI with tag or digest.",
    )
    model_data: Annotated[str, StringConstraints(pattern=r"^s3://[a-z0-9.-]{3,63}/\S+$")] | None = Field(
        None, description="s3:// URL of model.tar.gz; omit to serve the default model."
    )
    instance: InstanceInference | None = None
    serverless: ServerlessInference | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "Inference":
        if self.enabled and self.instance is None and self.serverless is None:
            raise ValueError("set either 'instance' (type, count, autoscaling) or 'serverless' (memory_mb, max_concurrency)")
        if self.instance is not None and self.serverless is not None:
            raise ValueError("set only one of 'instance' and 'serverless', not both")
        return self

    @property
    def kind(self) -> str:
        return "serverless" if self.serverless is not None else "instance"


class Notebook(_Model):
    enabled: bool = False
    instance_type: Literal[NOTEBOOK_INSTANCE_TYPES] = "ml.t3.medium"  # type: ignore[valid-type]


class SageMaker(_Model):
    notebook: Notebook = Notebook()
    inference: Inference = Inference(enabled=False)


GITHUB_REPOSITORY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$"
# A branch name as GitHub's OIDC subject carries it (refs/heads/<branch>); no wildcards: the trust
# policy matches it exactly.
BRANCH_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$"
GITHUB_ENVIRONMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class GitHubDeploy(_Model):
    repository: Annotated[str, StringConstraints(pattern=GITHUB_REPOSITORY_PATTERN)] = Field(
        description="owner/name of the GitHub repository whose workflows may deploy the team's DAGs and images."
    )
    branch: Annotated[str, StringConstraints(pattern=BRANCH_PATTERN)] = Field(
        "main", description="Only workflow runs on this branch may assume the deploy role (a name, no wildcards)."
    )
    environment: Annotated[str, StringConstraints(pattern=GITHUB_ENVIRONMENT_PATTERN)] | None = Field(
        None, description="A GitHub environment: when set, only jobs in it may assume the role (its protection rules "
                          "decide which branches deploy) and `branch` only names the branch the starter workflow runs on."
    )

    @field_validator("branch")
    @classmethod
    def _git_branch(cls, value: str) -> str:
        if ".." in value or "//" in value or value.endswith(("/", ".", ".lock")):
            raise ValueError(f"{value!r} is not a git branch name (no '..', '//', and no '/', '.' or '.lock' at the end)")
        return value


class Deploy(_Model):
    github: GitHubDeploy = Field(description="A GitHub-OIDC role for the team's own CI: it may write only the team's "
                                             "DAG prefix and push only to the team's ECR repository.")


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY = "(?:" + "|".join(WEEKDAYS) + ")"
_TIME = r"(?:[01]\d|2[0-3]):[0-5]\d"
AWAKE_PATTERN = rf"^({_DAY})(?:-({_DAY}))? ({_TIME})-({_TIME})$"


class Schedule(_Model):
    """When a dev environment runs; outside it, its host and notebook are stopped (EventBridge Scheduler)."""

    awake: str = Field(description='Days and hours the environment runs, e.g. "Mon-Fri 07:00-20:00" (a day or a '
                                   'range of days, then HH:MM-HH:MM, start before stop, the same day).')
    timezone: str = Field("UTC", description="IANA time zone of `awake`, e.g. UTC or Europe/Madrid.")

    @field_validator("awake")
    @classmethod
    def _awake(cls, value: str) -> str:
        match = re.match(AWAKE_PATTERN, value)
        if not match:
            raise ValueError(f"{value!r} is not '<day>[-<day>] HH:MM-HH:MM' with days among {', '.join(WEEKDAYS)}, "
                             'e.g. "Mon-Fri 07:00-20:00"')
        if match.group(3) >= match.group(4):
            raise ValueError(f"{value!r}: the start ({match.group(3)}) must be before the stop ({match.group(4)}) "
                             "on the same day")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. UTC, Europe/Madrid, America/New_York)") from None
        return value

    @property
    def days(self) -> tuple[str, ...]:
        """The awake days, in week order ("Fri-Mon" wraps)."""
        first, last = re.match(AWAKE_PATTERN, self.awake).group(1, 2)
        start, stop = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        return tuple(WEEKDAYS[(start + i) % 7] for i in range((stop - start) % 7 + 1))

    @property
    def start(self) -> tuple[int, int]:
        hours, minutes = re.match(AWAKE_PATTERN, self.awake).group(3).split(":")
        return int(hours), int(minutes)

    @property
    def stop(self) -> tuple[int, int]:
        hours, minutes = re.match(AWAKE_PATTERN, self.awake).group(4).split(":")
        return int(hours), int(minutes)

    def cron(self, at: tuple[int, int]) -> str:
        """EventBridge Scheduler's cron() for `at` (hour, minute) on the awake days."""
        days = ",".join(day.upper() for day in self.days)
        return f"cron({at[1]} {at[0]} ? * {days} *)"

    def awake_at(self, moment) -> bool:
        """Whether the environment should run at `moment` (an aware datetime)."""
        from zoneinfo import ZoneInfo

        local = moment.astimezone(ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        return (WEEKDAYS[local.weekday()] in self.days
                and self.start[0] * 60 + self.start[1] <= minute < self.stop[0] * 60 + self.stop[1])


class TeamSpec(_Model):
    """One team's request. The file `stacks/<team>.yaml` holds exactly this."""

    api_version: Literal["envctl/v1"] = Field(alias="apiVersion", description="Always envctl/v1.")
    team: Annotated[str, StringConstraints(pattern=TEAM_PATTERN)] = Field(
        description="Team name: 3-24 characters, lowercase letters, digits and '-', starting with a letter; equals the file name."
    )
    owners: list[Email] = Field(min_length=1, max_length=10, description="E-mail addresses of the owners (at least one).")
    cost_center: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{2,32}$")] = Field(
        description="Cost centre billed, e.g. CC-1042."
    )
    environment: Literal["prod", "dev"] = "dev"
    region: Literal[REGIONS] | None = Field(None, description="AWS region; omit for the organisation default.")  # type: ignore[valid-type]
    network: Network = Network()
    airflow: Airflow = Airflow()
    sagemaker: SageMaker = SageMaker()
    secrets: list[SecretName] = Field(
        default_factory=list, max_length=50,
        description="Names of secrets the Airflow host loads (values are set with `envctl secrets set`).",
    )
    deploy: Deploy | None = Field(None, description="Optional: the team's own CI (a GitHub repository) gets a deploy role.")
    schedule: Schedule | None = Field(
        None, description="Dev environments only: when the host and notebook run, e.g. "
                          '{awake: "Mon-Fri 07:00-20:00", timezone: UTC}; outside it they are stopped, their data kept.'
    )
    budget_usd_month: int = Field(
        ge=50, le=100_000, description="Monthly budget in USD (an AWS Budget alerts the owners at 80% and 100%)."
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("secrets")
    @classmethod
    def _unique_secrets(cls, value: list[str]) -> list[str]:
        seen = {name for name in value if value.count(name) > 1}
        if seen:
            raise ValueError(f"names must be unique; repeated: {', '.join(sorted(seen))}")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule_dev_only(cls, value: Schedule | None, info: ValidationInfo) -> Schedule | None:
        if value is not None and info.data.get("environment") == "prod":
            raise ValueError("a schedule is for dev environments only (a prod environment runs all the time); "
                             "remove schedule, or use `envctl pause` / `envctl resume`")
        return value

    @field_validator("owners")
    @classmethod
    def _unique_owners(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


@dataclass(frozen=True)
class ResolvedSpec:
    """A validated request plus what envctl derives for it (region and CIDR when not given)."""

    spec: TeamSpec
    region: str
    cidr: str
    path: Path | None = None

    @property
    def team(self) -> str:
        return self.spec.team


# ---------------------------------------------------------------- loading and validation


def _field_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("function-after", "function-before") or str(item).startswith(("literal[", "constrained-str")):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(file)"


def _allowed(err: dict[str, Any]) -> str:
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "literal_error":
        return f"allowed: {ctx.get('expected')}"
    if kind == "extra_forbidden":
        return "this field is not part of envctl/v1; remove it (see `envctl schema` for the fields)"
    if kind == "missing":
        return "this field is required"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}"
    return ""


def format_errors(display: str, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        msg = err["msg"].removeprefix("Value error, ")
        hint = _allowed(err)
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "missing"
        elif err["type"] == "literal_error":
            msg = f"{err['input']!r} is not allowed"
        text = f"{msg}; {hint}" if hint and hint not in msg else msg
        out.append(f"{display}: {_field_path(err['loc'])}: {text}")
    return out


def display_path(path: Path, root: Path | None = None) -> str:
    try:
        return str(path.resolve().relative_to((root or Path.cwd()).resolve()))
    except ValueError:
        return str(path)


# A request is a few dozen lines: these bounds refuse hostile files long before they cost anything.
MAX_REQUEST_BYTES = 64 * 1024  # refused before parsing; the largest example request is under 1 KiB
MAX_NESTING = 16  # the deepest field of envctl/v1 is sagemaker.inference.instance.autoscaling.min: 6 levels
MAX_NODES = 10_000  # YAML nodes once every alias is counted as a copy of what it names (billion laughs)


def _too_large(size: str) -> str:
    return f"is {size} bytes; a request is at most {MAX_REQUEST_BYTES} bytes (64 KiB): one team's fields, a few dozen lines"


class UnreadableRequest(Exception):
    """A request file that is not a YAML mapping envctl will read; `problem` says why and what to do."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def _where(mark: Any) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


class _RequestLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses deep nesting and alias bombs while composing, before any
    Python object is built; PyYAML's composer recurses per level, so depth must be bounded here."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._weights: dict[int, int] = {}  # id(node) -> its nodes with aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self._weights:  # `&a [*a]`: the anchored node is still being read
                raise UnreadableRequest(f"the alias *{event.anchor}{_where(event.start_mark)} refers to a value "
                                        "that contains it; a request cannot be recursive")
            return node
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise UnreadableRequest(f"nested deeper than {MAX_NESTING} levels{_where(event.start_mark)}; "
                                        "a request is a mapping of a few levels (`envctl schema` shows them)")
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        weight = 1
        if isinstance(node, yaml.SequenceNode):
            weight += sum(self._weights[id(item)] for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            weight += sum(self._weights[id(key)] + self._weights[id(value)] for key, value in node.value)
        if weight > MAX_NODES:
            raise UnreadableRequest(f"expands to more than {MAX_NODES} values (each alias counts as a copy of "
                                    f"what it names){_where(node.start_mark)}; a request has a few dozen")
        self._weights[id(node)] = weight
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:  # a scalar its tag cannot hold: 2026-13-01, a 5,000-digit int
            reason = str(exc).split(";")[0]
            raise UnreadableRequest(f"cannot read the value{_where(node.start_mark)} as {node.tag.rsplit(':', 1)[-1]}: "
                                    f"{reason}; quote it to make it a string") from None
        except (AttributeError, IndexError, KeyError, TypeError):  # an explicit tag that does not fit: `!!timestamp x`
            raise UnreadableRequest(f"cannot read the value{_where(node.start_mark)} as {node.tag.rsplit(':', 1)[-1]}; "
                                    "remove the tag or quote the value to make it a string") from None


_KINDS = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}


def load_request_text(text: str) -> dict[Any, Any]:
    """The mapping a request's text holds, or UnreadableRequest: too large, not YAML, nested or
    aliased beyond any request, empty, several documents, or not a mapping."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_REQUEST_BYTES:
        raise UnreadableRequest(_too_large(str(size)))
    loader = _RequestLoader(text)
    try:
        node = loader.get_single_node()
        raw = None if node is None else loader.construct_document(node)
    except yaml.composer.ComposerError as exc:
        if exc.context == "expected a single document in the stream":
            raise UnreadableRequest(f"holds more than one YAML document (another starts{_where(exc.problem_mark)}); "
                                    "a request is one document: one team per file, without '---' between") from None
        raise UnreadableRequest(f"not valid YAML{_where(exc.problem_mark)}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UnreadableRequest(f"not valid YAML{_where(mark)}: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:  # bounded by MAX_NESTING; never a traceback should PyYAML recurse elsewhere
        raise UnreadableRequest("nested too deeply to read; a request is a mapping of a few levels") from None
    finally:
        loader.dispose()
    if node is None or raw is None:
        raise UnreadableRequest("is empty; a request needs at least apiVersion, team, owners, "
                                "cost_center and budget_usd_month (`envctl schema` lists every field)")
    if not isinstance(raw, dict):
        kind = _KINDS.get(type(raw), type(raw).__name__)
        raise UnreadableRequest(f"must be a mapping of fields (apiVersion, team, owners, ...), got {kind}")
    return raw


def read_request_file(path: Path) -> str:
    """A request file's text: a regular file of at most MAX_REQUEST_BYTES of UTF-8, else UnreadableRequest."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableRequest("is not a regular file; a request is a YAML file")
        if info.st_size > MAX_REQUEST_BYTES:
            raise UnreadableRequest(_too_large(str(info.st_size)))
        with path.open("rb") as handle:
            data = handle.read(MAX_REQUEST_BYTES + 1)  # the file may have grown since stat
    except OSError as exc:
        raise UnreadableRequest(f"cannot read: {exc.strerror}") from None
    if len(data) > MAX_REQUEST_BYTES:
        raise UnreadableRequest(_too_large(f"more than {MAX_REQUEST_BYTES}"))
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnreadableRequest("is UTF-16 text; save the request as UTF-8")
    nul = data.find(b"\0")
    if nul >= 0:
        raise UnreadableRequest(f"is a binary file (a NUL byte at offset {nul}), not YAML text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UnreadableRequest(f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}, offset {exc.start}); "
                                "save the request as UTF-8") from None


def parse_file(path: Path, root: Path | None = None) -> tuple[TeamSpec | None, list[str]]:
    """One request file: the spec, or the errors that name the file and the field."""
    display = display_path(path, root)
    try:
        raw = load_request_text(read_request_file(path))
    except UnreadableRequest as exc:
        return None, [f"{display}: (file): {exc.problem}"]
    errors = []
    if raw.get("apiVersion") not in (None, API_VERSION):
        errors.append(f"{display}: apiVersion: {raw.get('apiVersion')!r} is not supported; write apiVersion: {API_VERSION}")
        raw = {**raw, "apiVersion": API_VERSION}
    try:
        spec = TeamSpec.model_validate(raw)
    except ValidationError as exc:
        return None, errors + format_errors(display, exc)
    sso = spec.airflow.sso
    if sso is not None and sso.client_secret not in spec.secrets:
        declared = ", ".join(spec.secrets) or "none"
        errors.append(f"{display}: airflow.sso.client_secret: {sso.client_secret!r} is not among secrets (declared: {declared}); "
                      f"add it to secrets, then set its value with `envctl secrets set {spec.team} {sso.client_secret}`")
    if path.stem != spec.team:
        errors.append(f"{display}: team: {spec.team!r} does not match the file name; "
                      f"rename the file to {spec.team}.yaml or set team: {path.stem}")
    return (None if errors else spec), errors


def allocate_cidr(team: str, pool: str, prefix: int, taken: list[ipaddress.IPv4Network]) -> str:
    """A team's network from the pool: its hash picks a slot, probing on to the next free one.

    The slot depends only on the team's name and on the ranges already taken, so adding a team
    never moves another (explicit CIDRs are taken first, then teams in name order).
    """
    net = ipaddress.IPv4Network(pool)
    slots = 2 ** (prefix - net.prefixlen)
    start = int.from_bytes(hashlib.sha256(team.encode()).digest()[:8], "big") % slots
    size = 2 ** (32 - prefix)
    for step in range(slots):
        slot = (start + step) % slots
        candidate = ipaddress.IPv4Network((int(net.network_address) + slot * size, prefix))
        if not any(candidate.overlaps(other) for other in taken):
            return str(candidate)
    raise InvalidInput(f"cidr_pool {pool} has no free /{prefix} left for team {team}; set network.cidr in its request")


def resolve_all(specs: list[tuple[TeamSpec, Path | None]], *, default_region: str, pool: str, prefix: int,
                root: Path | None = None) -> tuple[list[ResolvedSpec], list[str]]:
    """Cross-team checks (unique names, non-overlapping CIDRs) and derived values."""
    errors: list[str] = []
    by_team: dict[str, Path | None] = {}
    for spec, path in specs:
        where = display_path(path, root) if path else spec.team
        if spec.team in by_team:
            other = by_team[spec.team]
            requested_by = display_path(other, root) if other else "another request"
            errors.append(f"{where}: team: {spec.team!r} is already requested by {requested_by}; team names must be unique")
        by_team.setdefault(spec.team, path)
    explicit: list[tuple[ipaddress.IPv4Network, str, str]] = []
    for spec, path in specs:
        if spec.network.cidr:
            net = ipaddress.IPv4Network(spec.network.cidr)
            where = display_path(path, root) if path else spec.team
            for other_net, other_team, other_where in explicit:
                if net.overlaps(other_net) and other_team != spec.team:  # both files are told: either may be the new one
                    advice = "choose a range that does not overlap"
                    errors.append(f"{other_where}: network.cidr: {other_net} overlaps {net} of team {spec.team} ({where}); "
                                  + advice)
                    errors.append(f"{where}: network.cidr: {net} overlaps {other_net} of team {other_team} ({other_where}); "
                                  + advice)
            explicit.append((net, spec.team, where))
    taken = [net for net, _, _ in explicit]
    resolved: list[ResolvedSpec] = []
    cidrs: dict[str, str] = {}
    for spec, path in sorted(specs, key=lambda item: item[0].team):
        if spec.network.cidr:
            cidrs[spec.team] = spec.network.cidr
        elif spec.team not in cidrs:
            try:
                cidr = allocate_cidr(spec.team, pool, prefix, taken)
            except InvalidInput as exc:
                errors.append(f"{display_path(path, root) if path else spec.team}: network.cidr: {exc.message}")
                continue
            taken.append(ipaddress.IPv4Network(cidr))
            cidrs[spec.team] = cidr
    for spec, path in specs:
        if spec.team in cidrs:
            resolved.append(ResolvedSpec(spec=spec, region=spec.region or default_region, cidr=cidrs[spec.team], path=path))
    return resolved, errors


def validate_files(paths: list[Path], *, default_region: str, pool: str, prefix: int,
                   root: Path | None = None) -> tuple[list[ResolvedSpec], list[str]]:
    """Every file alone, then all of them together; returns what is valid and every error."""
    errors: list[str] = []
    good: list[tuple[TeamSpec, Path | None]] = []
    for path in paths:
        spec, errs = parse_file(path, root)
        errors.extend(errs)
        if spec is not None:
            good.append((spec, path))
    resolved, cross = resolve_all(good, default_region=default_region, pool=pool, prefix=prefix, root=root)
    return resolved, errors + cross


def load_team(team: str, stacks_dir: Path, *, default_region: str, pool: str, prefix: int,
              root: Path | None = None) -> ResolvedSpec:
    """One team's resolved spec; the whole folder is validated since CIDRs depend on every request."""
    if not re.match(TEAM_PATTERN, team):
        raise InvalidInput(f"team: {team!r} is not a team name (3-24 characters: a-z, 0-9, '-')")
    paths = request_files(stacks_dir)
    path = next((p for p in paths if p.stem == team), None)
    if path is None:
        known = ", ".join(p.stem for p in paths) or "none"
        request = display_path(stacks_dir / (team + ".yaml"), root)
        raise InvalidInput(f"{request}: (file): no request for team {team!r}; known teams: {known}")
    resolved, errors = validate_files(paths, default_region=default_region, pool=pool, prefix=prefix, root=root)
    mine = [e for e in errors if e.startswith(display_path(path, root) + ":")]
    if mine:
        raise InvalidInput(f"the request for {team} is invalid", errors=mine)
    for item in resolved:
        if item.team == team:
            return item
    raise InvalidInput(f"the request for {team} is invalid", errors=errors)


def json_schema() -> dict[str, Any]:
    schema = TeamSpec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://envctl.dev/schema/envctl-v1.json"
    return schema
