"""The names of a team's resources, derived in one place from the team name."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TeamNames:
    team: str

    @property
    def prefix(self) -> str:
        return f"envctl-{self.team}"

    def bucket(self, account_id: str, region: str) -> str:
        return f"{self.prefix}-{account_id}-{region}"

    @property
    def kms_alias(self) -> str:
        return f"alias/{self.prefix}"

    @property
    def log_group(self) -> str:
        return f"/envctl/{self.team}"

    @property
    def alerts_topic(self) -> str:
        """The SNS topic the team's alarms publish to; the owners are subscribed to it."""
        return f"{self.prefix}-alerts"

    def alarm(self, key: str) -> str:
        return f"{self.prefix}-{key}"

    @property
    def alarm_names(self) -> tuple[str, ...]:
        """Every alarm that may publish to the team's topic (the endpoint's exist only with an endpoint)."""
        return tuple(self.alarm(key) for key in ALARM_KEYS)

    @property
    def metrics_namespace(self) -> str:
        """The CloudWatch namespace of the metrics the team's host publishes (scheduler heartbeat, ...)."""
        return f"envctl/{self.team}"

    @property
    def ecr_repository(self) -> str:
        return self.prefix

    @property
    def host_role(self) -> str:
        return f"{self.prefix}-airflow-host"

    @property
    def sagemaker_role(self) -> str:
        return f"{self.prefix}-sagemaker"

    @property
    def deploy_role(self) -> str:
        """The role the team's own CI assumes with GitHub OIDC (`deploy:` in the request)."""
        return f"{self.prefix}-deploy"

    @property
    def boundary_policy(self) -> str:
        return f"{self.prefix}-boundary"

    @property
    def bootstrap_parameter(self) -> str:
        return f"/envctl/{self.team}/bootstrap"

    @property
    def endpoint(self) -> str:
        return self.prefix

    @property
    def model_package_group(self) -> str:
        """The SageMaker model package group the team's retraining job registers its models in."""
        return f"{self.prefix}-models"

    @property
    def inference_promotion_parameter(self) -> str:
        """The SSM parameter a team's retraining job writes when it promotes model data."""
        return f"/envctl/{self.team}/inference/model-data"

    @property
    def pause_parameter(self) -> str:
        """The pause record (`envctl pause`): an SSM parameter outside /envctl/<team>/, which the team's
        roles may write, so that only envctl's operator pauses and resumes the environment."""
        return f"/envctl-pause/{self.team}"

    @property
    def secrets_prefix(self) -> str:
        """Every secret of the team is named under this prefix (its roles may read only these)."""
        return f"envctl/{self.team}/"

    def secret(self, name: str) -> str:
        return f"{self.secrets_prefix}{name}"

    def airflow_secret(self, name: str) -> str:
        return f"{self.secrets_prefix}airflow/{name}"

    @property
    def owner_passwords_secret(self) -> str:
        """One secret holding {owner e-mail: initial password}; the host generates the values."""
        return self.airflow_secret(OWNER_PASSWORDS_SECRET)

    def host_file_parameter(self, key: str) -> str:
        """An SSM parameter holding a host file too large for the userdata (userdata.SHIPPED_FILES)."""
        return f"/envctl/{self.team}/host/{key}"

    @property
    def owners_parameter(self) -> str:
        """The SSM parameter with the request's owners (a JSON list) that the host's owner sync reads."""
        return f"/envctl/{self.team}/airflow/owners"


def team_tags(team: str, owner: str, cost_center: str) -> dict[str, str]:
    """The tags every resource of a team carries (the provider's default tags)."""
    return {"envctl:team": team, "envctl:owner": owner, "envctl:cost-center": cost_center, "envctl:managed-by": "envctl"}


# The alarms that tell a team's owners (components/alerts.py; runbooks in docs/operations.md).
ALARM_KEYS = (
    "host-status", "scheduler-heartbeat", "dag-run-failures", "data-volume-usage", "backup-age",
    "endpoint-5xx-rate", "endpoint-p99-latency",
)

AIRFLOW_INTERNAL_SECRETS = ("fernet_key", "webserver_secret_key", "jwt_secret", "postgres_password")

# The Airflow login passwords of the owners (a JSON object by e-mail), generated on the host; not one
# of AIRFLOW_INTERNAL_SECRETS, which the host turns into environment variables of the containers.
OWNER_PASSWORDS_SECRET = "owner_passwords"
