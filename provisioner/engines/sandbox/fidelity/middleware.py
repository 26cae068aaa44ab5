"""The WSGI middleware in front of moto's app, and a threaded server that runs both.

Requests arrive here first: the rules registered for the operation run (the first refusal is
answered in AWS's shape), then an extra operation registered for it is served, else moto
answers. `install()` loads the rules and stops moto's own bucket-policy check, which ignores
conditions (a TLS-only Deny would deny every object call): the bucket-policy rule evaluates
Deny statements with their conditions instead.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterable

from provisioner.engines.sandbox.fidelity import registry
from provisioner.engines.sandbox.fidelity.request import parse, render_refusal, render_reply

log = logging.getLogger(__name__)
_INSTALLED = threading.Lock()
_installed = False


def install() -> None:
    """Register the rules and neutralise moto's condition-blind bucket-policy check (once per process)."""
    global _installed
    with _INSTALLED:
        if _installed:
            return
        import provisioner.engines.sandbox.fidelity.rules  # noqa: F401 (registers)
        from moto.iam.access_control import PermissionResult
        from moto.s3.models import FakeBucket

        def no_condition_blind_check(self: Any, action: str, resource: str) -> Any:
            return PermissionResult.NEUTRAL  # the fidelity rule `bucket_policy_denies` decides

        FakeBucket.get_permission = no_condition_blind_check  # type: ignore[method-assign]
        _installed = True


class FidelityMiddleware:
    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = parse(environ)
        if request is not None:
            for item in registry.rules_for(request.service, request.action):
                refusal = item.check(request)
                if refusal is not None:
                    log.info("fidelity rule %s refused %s %s: %s", item.name, request.service, request.action, refusal.code)
                    status, headers, body = render_refusal(request, refusal, rule=item.name)
                    start_response(status, headers)
                    return [body]
            handler = registry.OPERATIONS.get((request.service, request.action))
            if handler is not None:
                answer = handler(request)
                if isinstance(answer, registry.Refusal):
                    status, headers, body = render_refusal(request, answer)
                else:
                    status, headers, body = render_reply(answer)
                start_response(status, headers)
                return [body]
        return self.app(environ, start_response)


class FidelityServer:
    """moto's ThreadedMotoServer with the fidelity middleware in front (same start/stop)."""

    def __init__(self, ip_address: str = "127.0.0.1", port: int = 5000):
        self._address = (ip_address, port)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        install()
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = FidelityMiddleware(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(*self._address, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def get_host_and_port(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join()
