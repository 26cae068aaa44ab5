"""What a team's program needs from the live account before it runs; the engines read it.

The program registers resources from its inputs only (no invoke decides what exists), so two
facts that live in the team's account are read by the engine and handed to `build()`:

- **the default inference image**: which `default-<hash>` tag of envctl's image the team's ECR
  repository holds. The tag envctl builds today if it was pushed; else the newest `default-*`
  tag there (the endpoint keeps serving the image it has until the new one is pushed); else
  none, and the program registers no model, configuration or endpoint yet (CreateModel refuses
  an image that is not in ECR) and says what comes next: `envctl inference push <team>`.
- **the promotion record**: the SSM parameter `/envctl/<team>/inference/model-data`, written by
  the team's retraining job when it points the endpoint at new model data. The program serves
  that model data, so the next `envctl update` keeps the promoted model instead of reverting it.

- **GitHub's OIDC provider** (only for a request with `deploy:`): the account has one for
  token.actions.githubusercontent.com, shared by every team's deploy role, or none yet, and the
  program creates it (components/deploy.py).

- **the pause record** (`envctl pause`): the SSM parameter `/envctl-pause/<team>` holds when the
  environment was paused. While it exists the program registers the host stopped
  (`InstanceState`) and no endpoint (its model and configuration stay), so a later `envctl update`
  keeps the pause; `envctl resume` deletes it and applies (pausing.py).

- **the time of the run**, with a `schedule:` in the request: outside its awake hours the program
  registers the host stopped, as the schedule left it (components/schedule.py).

All go into the sandbox's no-change fingerprint: a push or a promotion makes the next apply run.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from provisioner.components.names import TeamNames
from provisioner.errors import EnvctlError, InvalidInput

if TYPE_CHECKING:
    from provisioner.spec import ResolvedSpec

# client(service, region) -> a boto3/botocore client for the account the engine acts on.
ClientFactory = Callable[[str, str], Any]

DEFAULT_TAG_PREFIX = "default-"
MODEL_DATA_URL = re.compile(r"^s3://[a-z0-9.-]{3,63}/\S+$")


@dataclass(frozen=True)
class LiveInputs:
    """What the engine found in the team's account; `assumed()` is the offline stand-in."""

    default_image_tag: str | None  # the default image tag the endpoint serves; None: not pushed yet
    wanted_image_tag: str  # the tag of the default image this envctl builds
    promoted_model_data: str | None = None  # from the promotion record, if the team's job wrote one
    github_oidc_provider_arn: str | None = None  # the account's GitHub OIDC provider (requests with `deploy:`)
    paused_since: str | None = None  # the pause record's time (ISO 8601, UTC); None: not paused
    asleep_by_schedule: bool = False  # the request's `schedule:` has the host stopped at the time of the run

    @classmethod
    def assumed(cls) -> "LiveInputs":
        """No account to ask (offline preview, tests): today's image pushed, nothing promoted."""
        from provisioner.inference_image import default_image_tag

        tag = default_image_tag()
        return cls(default_image_tag=tag, wanted_image_tag=tag)

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def read_live_inputs(spec: ResolvedSpec, client: ClientFactory) -> LiveInputs:
    """Ask the team's account (through the engine's clients) for the image and the promotion record."""
    from provisioner.inference_image import default_image_tag

    wanted = default_image_tag()
    oidc_provider = github_oidc_provider(client("iam", spec.region)) if spec.spec.deploy else None
    names = TeamNames(spec.team)
    ssm = client("ssm", spec.region)
    paused = paused_since(ssm, names.pause_parameter)
    asleep = asleep_by_schedule(spec)
    inference = spec.spec.sagemaker.inference
    if not inference.enabled:
        return LiveInputs(default_image_tag=None, wanted_image_tag=wanted, github_oidc_provider_arn=oidc_provider,
                          paused_since=paused, asleep_by_schedule=asleep)
    tag = pushed_default_tag(client("ecr", spec.region), names.ecr_repository, wanted) if inference.image == "default" else None
    promoted = promoted_model_data(ssm, names.inference_promotion_parameter)
    return LiveInputs(default_image_tag=tag, wanted_image_tag=wanted, promoted_model_data=promoted,
                      github_oidc_provider_arn=oidc_provider, paused_since=paused, asleep_by_schedule=asleep)


def asleep_by_schedule(spec: ResolvedSpec, now: datetime | None = None) -> bool:
    """Whether the request's `schedule:` has the host stopped at `now` (default: the time of the run), so
    that an apply in the night does not start what the schedule stopped."""
    schedule = spec.spec.schedule
    return schedule is not None and not schedule.awake_at(now or datetime.now(timezone.utc))


def forget_pause(ssm: Any, team: str) -> str | None:
    """After a destroy: the pause record goes with the environment, so that a later create of the team
    starts it running. A warning when it could not be deleted (None when deleted or there was none)."""
    from botocore.exceptions import BotoCoreError, ClientError

    parameter = TeamNames(team).pause_parameter
    try:
        ssm.delete_parameter(Name=parameter)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        return f"the pause record {parameter} could not be deleted ({error}); the next create of {team} would start paused"
    except BotoCoreError as error:
        return f"the pause record {parameter} could not be deleted ({error}); the next create of {team} would start paused"
    return None


def paused_since(ssm: Any, parameter: str) -> str | None:
    """When the environment was paused (the pause record's `since`), or None when it is not paused."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = ssm.get_parameter(Name=parameter)["Parameter"]["Value"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise EnvctlError(f"could not read the pause record {parameter}: {error}") from None
    except BotoCoreError as error:
        raise EnvctlError(f"could not read the pause record {parameter}: {error}") from None
    try:
        since = json.loads(value).get("since")
    except (ValueError, AttributeError):
        since = None
    if not isinstance(since, str) or not since:
        raise InvalidInput(f"SSM parameter {parameter} (the pause record): {value[:80]!r} is not "
                           '{"since": "<ISO 8601 time>"}; run `envctl resume <team>` to remove it, or `envctl pause <team>` '
                           "to write it again")
    return since


def github_oidc_provider(iam: Any) -> str | None:
    """The ARN of the account's OIDC provider for GitHub Actions, or None when there is none."""
    from botocore.exceptions import BotoCoreError, ClientError

    from provisioner.components.policies import GITHUB_OIDC_HOST

    try:
        providers = iam.list_open_id_connect_providers().get("OpenIDConnectProviderList", [])
    except (ClientError, BotoCoreError) as error:
        raise EnvctlError(f"could not list the account's OIDC providers (for the team's deploy role): {error}") from None
    return next((p["Arn"] for p in providers if p["Arn"].endswith(f":oidc-provider/{GITHUB_OIDC_HOST}")), None)


def pushed_default_tag(ecr: Any, repository: str, wanted: str) -> str | None:
    """`wanted` if the repository holds it, else its newest `default-*` tag, else None."""
    from botocore.exceptions import BotoCoreError, ClientError

    found: list[tuple[Any, str]] = []
    try:
        for page in ecr.get_paginator("describe_images").paginate(repositoryName=repository):
            for image in page.get("imageDetails", []):
                found += [(image.get("imagePushedAt"), tag) for tag in image.get("imageTags", [])
                          if tag.startswith(DEFAULT_TAG_PREFIX)]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "RepositoryNotFoundException":
            return None  # the first create makes the repository
        raise EnvctlError(f"could not list the images of ECR repository {repository}: {error}") from None
    except BotoCoreError as error:
        raise EnvctlError(f"could not list the images of ECR repository {repository}: {error}") from None
    tags = {tag for _, tag in found}
    if wanted in tags:
        return wanted
    return max(found, key=lambda item: (str(item[0]), item[1]))[1] if found else None


def promoted_model_data(ssm: Any, parameter: str) -> str | None:
    """The model data URL in the promotion record, or None when the team's job never promoted."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = ssm.get_parameter(Name=parameter)["Parameter"]["Value"].strip()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise EnvctlError(f"could not read the promotion record {parameter}: {error}") from None
    except BotoCoreError as error:
        raise EnvctlError(f"could not read the promotion record {parameter}: {error}") from None
    if not MODEL_DATA_URL.match(value):
        raise InvalidInput(f"SSM parameter {parameter} (the promotion record): {value[:80]!r} is not an "
                           "s3://<bucket>/<key> URL of model data; write the promoted model.tar.gz's URL there, "
                           "or delete the parameter to serve the request's model_data")
    return value


def inference_notes(spec: ResolvedSpec, live: LiveInputs) -> list[str]:
    """What the user should know (and do next) about the endpoint, given what the account holds."""
    inference = spec.spec.sagemaker.inference
    if not inference.enabled or inference.image != "default":
        notes = []
    elif live.default_image_tag is None:
        notes = [f"{spec.team}'s inference endpoint waits for its image (envctl's default, tag {live.wanted_image_tag}, "
                 f"is not in the team's ECR repository yet): run `envctl inference push {spec.team}`, "
                 "which pushes it and then creates the endpoint"]
    elif live.default_image_tag != live.wanted_image_tag:
        notes = [f"{spec.team}'s endpoint serves envctl's default image {live.default_image_tag}; this envctl builds "
                 f"{live.wanted_image_tag}: run `envctl inference push {spec.team}` to serve it"]
    else:
        notes = []
    if (inference.enabled and live.promoted_model_data and inference.model_data
            and inference.model_data != live.promoted_model_data):
        notes.append(f"{spec.team}'s endpoint serves the promoted model data {live.promoted_model_data} "
                     f"({TeamNames(spec.team).inference_promotion_parameter}), not the request's model_data "
                     f"{inference.model_data}; delete that parameter to serve the request's")
    return notes
