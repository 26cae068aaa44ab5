"""What the sandbox handlers get: boto3 clients for the moto server, the account, tags and options."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provisioner.engines.mocked import Registration
    from provisioner.engines.sandbox.state import StoredResource


class SandboxContext:
    """The moto server's clients, the account, tags and options of one engine run.

    `hosts` is the sandbox's container hosts (hosts.SandboxHosts) when the sandbox runs them, else None.
    """

    def __init__(self, endpoint_url: str, account_id: str, credentials: dict[str, str], admin_arn: str,
                 provider_tags: dict[str, dict[str, str]], delete_data: bool = False, hosts: Any = None):
        self.endpoint_url = endpoint_url
        self.account_id = account_id
        self.credentials = credentials
        self.admin_arn = admin_arn
        self.provider_tags = provider_tags  # provider URN -> its default tags
        self.delete_data = delete_data
        self.hosts = hosts
        self.write_calls = 0
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str, region: str) -> Any:
        """A boto3 client for the sandbox, counting its write calls; clients are safe to share between threads."""
        key = (service, region)
        with self._lock:
            if key not in self._clients:
                client = _new_client(service, region, self.endpoint_url, self.credentials)
                client.meta.events.register("before-call", self._count_writes)  # each client has its own events
                self._clients[key] = client
            return self._clients[key]

    def _count_writes(self, model: Any, **_: Any) -> None:
        if not model.name.startswith(("Describe", "Get", "List", "Head", "Batch")):
            with self._lock:
                self.write_calls += 1

    def tags(self, reg: "Registration | StoredResource") -> dict[str, str]:
        """The provider's default tags merged with the resource's own, as the AWS provider does."""
        provider_urn = reg.provider.rsplit("::", 1)[0] if reg.provider else ""
        merged = dict(self.provider_tags.get(provider_urn, {}))
        merged.update(reg.inputs.get("tags") or {})
        return merged


_SESSION: Any = None
_SESSION_LOCK = threading.Lock()


def _new_client(service: str, region: str, endpoint_url: str, credentials: dict[str, str]) -> Any:
    """A client from the process's one boto3 session, which loads each service model only once.

    Sessions are not thread-safe, so clients are made under a lock; the clients themselves are.
    """
    global _SESSION
    import boto3
    from botocore.config import Config

    with _SESSION_LOCK:
        if _SESSION is None:
            _SESSION = boto3.session.Session()
        return _SESSION.client(
            service, region_name=region, endpoint_url=endpoint_url, **credentials,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, s3={"addressing_style": "path"}),
        )


def region_of(reg: "Registration | StoredResource", default: str) -> str:
    return reg.inputs.get("region") or default
