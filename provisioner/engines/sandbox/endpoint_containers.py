"""Sandbox endpoints that serve: each endpoint's model image runs as a local container.

Installed in the sandbox's moto server process (server_process.py's EXTENSIONS). moto marks an endpoint
InService at once and answers InvokeEndpoint with a canned body; here, as SageMaker does
(https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html):

- CreateEndpoint: the endpoint is `Creating` while, for each production variant, the model's image
  (sagemaker_containers.py: the sandbox ECR URI -> the sandbox registry) starts with the command
  `serve`, the model data (ModelDataUrl, a model.tar.gz in the bucket) extracted under /opt/ml/model,
  the model's Environment, port 8080 published on a random 127.0.0.1 port; GET /ping is polled until
  it answers 200, then the endpoint is `InService`. A container that exits, never answers within
  the variant's ContainerStartupHealthCheckTimeoutInSeconds (default PING_TIMEOUT_S), whose image
  cannot be pulled or whose model data cannot be read makes the endpoint `Failed` with
  SageMaker's FailureReason (the container's last log lines added).
- UpdateEndpoint: `Updating` while the new configuration's containers start; once they answer
  /ping they serve and the old ones are removed. When they fail, the endpoint goes back to the old
  configuration, `InService` with the FailureReason (as DescribeEndpoint documents it: "the status
  is InService but update operation fails").
- DeleteEndpoint removes the endpoint's containers; the server's stop removes all of its
  containers (label SERVER_LABEL = the server id).
- InvokeEndpoint (sagemaker-runtime) is proxied to the variant's container (POST /invocations with
  the body, ContentType, Accept and CustomAttributes); a 4xx/5xx from the container is SageMaker's
  ModelError (HTTP 424, OriginalStatusCode, OriginalMessage).

Sandbox: one container per variant, whatever the instance count; nothing scales; no CloudWatch
logs (`docker logs <container>`). Without a Docker engine, for an image of another registry or
account, or for an image recorded in the sandbox's ECR whose layers are not in its registry (only
PutImage was called, as tests do), the endpoint is InService as moto makes it and InvokeEndpoint answers a ValidationError
that says why it cannot serve (never moto's canned body). Inference pipelines (several containers per model)
and uncompressed ModelDataSource are not run either, for the same answer.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import random
import tarfile
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from provisioner.engines.sandbox import sagemaker_containers as containers
from provisioner.engines.sandbox.fidelity.registry import Refusal, Reply, operation
from provisioner.engines.sandbox.fidelity.request import MAX_INVOCATION_BODY
from provisioner.engines.sandbox.sagemaker_containers import ImageUnavailable

if TYPE_CHECKING:
    from provisioner.engines.sandbox.fidelity.request import AwsRequest
    from provisioner.engines.sandbox.server_process import ServerProcess

log = logging.getLogger(__name__)

SERVER_LABEL = "envctl.sandbox-server"
ENDPOINT_LABEL = "envctl.sandbox-endpoint"
SERVING_PORT = 8080
PING_TIMEOUT_S = 240  # SageMaker fails a container that has not answered /ping within four minutes
PING_ANSWER_S = 2  # and a /ping must answer within two seconds
INVOCATION_TIMEOUT_S = 60  # SageMaker's limit for a real-time invocation
FAILURE_REASON_MAX = 1024  # DescribeEndpoint's FailureReason length limit

EndpointKey = tuple[str, str, str]  # account, region, endpoint name


class StartFailed(Exception):
    """A variant's container did not come up; the message is the endpoint's FailureReason."""


@dataclass
class VariantPlan:
    """What one production variant runs."""

    variant: str
    image: str  # the local engine's name of the model's image
    model_data_url: str | None
    environment: dict[str, str]
    weight: float
    ping_timeout_s: float


@dataclass
class Serving:
    """The containers that serve an endpoint now, by variant."""

    config_name: str
    variants: dict[str, containers.StartedContainer]
    weights: dict[str, float]


@dataclass
class _Endpoints:
    lock: threading.Lock = field(default_factory=threading.Lock)
    serving: dict[EndpointKey, Serving] = field(default_factory=dict)
    not_served: dict[EndpointKey, str] = field(default_factory=dict)  # why an endpoint has no container
    generation: dict[EndpointKey, int] = field(default_factory=dict)  # the latest create/update/delete wins
    sandbox_dir: Path | None = None
    server_id: str = ""
    started_any: bool = False  # whether this process ever started a container (else its stop needs no engine)


_ENDPOINTS = _Endpoints()


# ---- installation ---------------------------------------------------------------------------


def install(process: ServerProcess | None = None) -> None:
    """Wrap moto's CreateEndpoint, UpdateEndpoint (sagemaker_api's) and DeleteEndpoint (idempotent)."""
    from moto.sagemaker.models import SageMakerModelBackend

    if process is not None:
        _ENDPOINTS.sandbox_dir, _ENDPOINTS.server_id = process.sandbox_dir, process.server_id
    for name, wrapper in (("create_endpoint", _serving_create), ("update_endpoint", _serving_update),
                          ("delete_endpoint", _serving_delete)):
        original = getattr(SageMakerModelBackend, name)
        if not getattr(original, "_envctl_serving", False):
            wrapped = wrapper(original)
            wrapped._envctl_serving = True  # type: ignore[attr-defined]
            setattr(SageMakerModelBackend, name, wrapped)


def shutdown() -> None:
    """The server stops: remove every container it started."""
    with _ENDPOINTS.lock:
        for key in list(_ENDPOINTS.generation):
            _ENDPOINTS.generation[key] += 1  # bring-ups still running discard what they start
        _ENDPOINTS.serving.clear()
    if _ENDPOINTS.server_id and _ENDPOINTS.started_any:
        remove_server_containers(_ENDPOINTS.server_id)


def remove_server_containers(server_id: str) -> list[str]:
    """Remove the endpoint containers of a sandbox server (none without a Docker engine); their names."""
    try:
        client = containers.docker_client()
    except ImageUnavailable:
        return []
    return containers.remove_labelled(client, SERVER_LABEL, server_id)


def _serving_create(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str, tags: list[dict[str, str]]) -> Any:
        endpoint = original(self, endpoint_name, endpoint_config_name, tags)
        _bring_up(self, endpoint, previous=None)
        return endpoint

    return create_endpoint


def _serving_update(original: Callable[..., Any]) -> Callable[..., Any]:
    def update_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str,
                        retain_all_variant_properties: bool = False) -> str:
        endpoint = self.endpoints.get(endpoint_name)
        previous = _Previous.of(endpoint) if endpoint is not None else None
        arn = original(self, endpoint_name, endpoint_config_name, retain_all_variant_properties)
        _bring_up(self, self.endpoints[endpoint_name], previous=previous)
        return arn

    return update_endpoint


def _serving_delete(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_endpoint(self: Any, endpoint_name: str) -> None:
        original(self, endpoint_name)
        key = (self.account_id, self.region_name, endpoint_name)
        with _ENDPOINTS.lock:
            _ENDPOINTS.generation[key] = _ENDPOINTS.generation.get(key, 0) + 1
            served = _ENDPOINTS.serving.pop(key, None)
            _ENDPOINTS.not_served.pop(key, None)
        if served is not None:
            _remove(served.variants.values())

    return delete_endpoint


@dataclass
class _Previous:
    """What an endpoint served before an update, to go back to when the update fails."""

    config_name: str
    variants: list[dict[str, Any]]
    data_capture: Any

    @classmethod
    def of(cls, endpoint: Any) -> _Previous:
        return cls(endpoint.endpoint_config_name, list(endpoint.production_variants), endpoint.data_capture_config)


# ---- bringing an endpoint's containers up ----------------------------------------------------


def _bring_up(backend: Any, endpoint: Any, previous: _Previous | None) -> None:
    key = (backend.account_id, backend.region_name, endpoint.endpoint_name)
    with _ENDPOINTS.lock:
        generation = _ENDPOINTS.generation[key] = _ENDPOINTS.generation.get(key, 0) + 1
    try:
        plans = _plans(backend, endpoint.endpoint_config_name)
        client = containers.docker_client()
    except ImageUnavailable as reason:
        with _ENDPOINTS.lock:
            _ENDPOINTS.not_served[key] = str(reason)
            served = _ENDPOINTS.serving.pop(key, None)
        if served is not None:  # it serves the old configuration no longer
            _remove(served.variants.values())
        return  # moto's answer stands: InService at once, and InvokeEndpoint says why nothing serves
    _ENDPOINTS.started_any = True
    endpoint.endpoint_status = "Updating" if previous is not None else "Creating"
    endpoint.failure_reason = None
    threading.Thread(target=_start_variants, args=(client, backend, endpoint, key, generation, plans, previous),
                     name=f"endpoint-{endpoint.endpoint_name}", daemon=True).start()


def _plans(backend: Any, config_name: str) -> list[VariantPlan]:
    config = backend.endpoint_configs[config_name]
    registry = _registry_address()
    plans = []
    for variant in config.production_variants:
        model = backend._models.get(variant["ModelName"])
        if model is None:
            raise ImageUnavailable(f"the model {variant['ModelName']} of variant {variant['VariantName']} no longer exists")
        if model.containers and len(model.containers) > 1:
            raise ImageUnavailable(f"the model {model.model_name} is an inference pipeline (several containers), "
                                   "which the sandbox does not run")
        container = model.primary_container or (model.containers or [{}])[0]
        if container.get("ModelDataSource"):
            raise ImageUnavailable(f"the model {model.model_name} names its data with ModelDataSource, which the sandbox "
                                   "does not run: use ModelDataUrl (a model.tar.gz)")
        plans.append(VariantPlan(
            variant=variant["VariantName"],
            image=containers.local_image(container.get("Image", ""), registry, backend.account_id),
            model_data_url=container.get("ModelDataUrl"), environment=dict(container.get("Environment") or {}),
            weight=float(variant.get("InitialVariantWeight") or 1.0),
            ping_timeout_s=float(variant.get("ContainerStartupHealthCheckTimeoutInSeconds") or PING_TIMEOUT_S),
        ))
    return plans


def _registry_address() -> str | None:
    if _ENDPOINTS.sandbox_dir is None:
        return None
    from provisioner.engines.sandbox.container_registry import RegistryServer

    info = RegistryServer(_ENDPOINTS.sandbox_dir).running()
    return info.address if info else None


def _start_variants(client: Any, backend: Any, endpoint: Any, key: EndpointKey, generation: int,
                    plans: list[VariantPlan], previous: _Previous | None) -> None:
    started: dict[str, containers.StartedContainer] = {}
    failure = None
    try:
        for plan in plans:
            started[plan.variant] = _start_variant(client, backend, endpoint.endpoint_name, plan)
    except StartFailed as exc:
        failure = str(exc)[:FAILURE_REASON_MAX]
    except Exception as exc:  # noqa: BLE001 - any surprise must end as Failed, never as Creating forever
        log.exception("starting the containers of endpoint %s failed", endpoint.endpoint_name)
        failure = f"The sandbox could not start the endpoint's containers: {exc}"[:FAILURE_REASON_MAX]
    with _ENDPOINTS.lock:  # the new containers take the traffic ...
        current = _ENDPOINTS.generation.get(key) == generation
        old = None
        if current and failure is None:
            old = _ENDPOINTS.serving.get(key)
            _ENDPOINTS.serving[key] = Serving(endpoint.endpoint_config_name, started,
                                              {plan.variant: plan.weight for plan in plans})
            _ENDPOINTS.not_served.pop(key, None)
    if not current or failure is not None:
        _remove(started.values())  # deleted or updated again meanwhile, or failed: nothing of it serves
    if old is not None:
        _remove(old.variants.values())  # ... then the old ones go, and only then is the update done
    with _ENDPOINTS.lock:
        if _ENDPOINTS.generation.get(key) != generation:
            return  # a later create, update or delete decides the status
        if failure is None:
            endpoint.endpoint_status, endpoint.failure_reason = "InService", None
        elif previous is not None:  # a failed update: back to what served before
            endpoint.endpoint_config_name = previous.config_name
            endpoint.production_variants = previous.variants
            endpoint.data_capture_config = previous.data_capture
            endpoint.endpoint_status, endpoint.failure_reason = "InService", failure
        else:
            endpoint.endpoint_status, endpoint.failure_reason = "Failed", failure


def _start_variant(client: Any, backend: Any, endpoint_name: str, plan: VariantPlan) -> containers.StartedContainer:
    files = _model_files(backend, plan.model_data_url)
    request = containers.ContainerRequest(
        image=plan.image, command=["serve"], name=f"envctl-endpoint-{endpoint_name}-{plan.variant}-{uuid.uuid4().hex[:6]}",
        labels={SERVER_LABEL: _ENDPOINTS.server_id, ENDPOINT_LABEL: endpoint_name, "envctl.sandbox-variant": plan.variant},
        environment=plan.environment, files=files, port=SERVING_PORT)
    try:
        started = containers.run_container(client, request)
    except ImageUnavailable as exc:
        raise StartFailed(f"Failed to start the container of production variant {plan.variant}: {exc}") from None
    try:
        _wait_for_ping(client, started, plan)
    except StartFailed:
        containers.remove_container(client, started.name)
        raise
    return started


def _model_files(backend: Any, model_data_url: str | None) -> bytes:
    """/opt/ml/model as a tar for the container: the model.tar.gz extracted, or empty without model data."""
    with tempfile.TemporaryDirectory(prefix="envctl-model-") as folder:
        if model_data_url:
            _extract(_read_model_data(backend, model_data_url), model_data_url, Path(folder))
        return containers.archive_folder(Path(folder), "opt/ml/model")


def _read_model_data(backend: Any, url: str) -> bytes:
    from moto.s3.models import s3_backends

    download_failed = StartFailed(
        f'Failed to download model data from URL "{url}". Please ensure that there is an object located at the URL '
        "and that the role passed to CreateModel has permissions to download the object.")
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise download_failed
    bucket, key = url[5:].split("/", 1)
    try:
        found = s3_backends[backend.account_id]["aws"].get_object(bucket, key)
    except Exception:  # noqa: BLE001 - moto's NoSuchBucket / MissingKey: the download fails
        found = None
    if found is None:
        raise download_failed
    return found.value


def _extract(data: bytes, url: str, folder: Path) -> None:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            archive.extractall(folder, filter="data")  # no absolute paths, no links out, no devices
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise StartFailed(f'Failed to extract model data archive from URL "{url}". Please ensure that the object '
                          f"located at the URL is a valid tar.gz archive ({exc}).") from None


def _wait_for_ping(client: Any, started: containers.StartedContainer, plan: VariantPlan) -> None:
    deadline = time.monotonic() + plan.ping_timeout_s
    health_check = (f"The primary container for production variant {plan.variant} did not pass the ping health "
                    "check. Please check CloudWatch logs for this endpoint.")
    while True:
        if _ping(started.host_port) == 200:
            return
        state = containers.container_state(client, started.name)
        if state is None or not state.get("Running"):
            code = state.get("ExitCode") if state else "gone"
            raise StartFailed(f"{health_check} (sandbox: the container exited with {code}; "
                              f"docker logs: {containers.logs_tail(client, started.name)})")
        if time.monotonic() > deadline:
            raise StartFailed(f"{health_check} (sandbox: no 200 from /ping within {plan.ping_timeout_s:.0f} s; "
                              f"docker logs: {containers.logs_tail(client, started.name)})")
        time.sleep(0.25)


def _ping(port: int | None) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=PING_ANSWER_S)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def _remove(started: Any) -> None:
    names = [container.name for container in started]
    if not names:
        return
    try:
        client = containers.docker_client()
    except ImageUnavailable:
        return
    for name in names:
        containers.remove_container(client, name)


# ---- InvokeEndpoint ---------------------------------------------------------------------------


@operation("sagemaker", "InvokeEndpoint")
def invoke_endpoint(request: AwsRequest) -> Reply | Refusal:
    """InvokeEndpoint, proxied to the container of the endpoint's variant."""
    from moto.sagemaker.models import sagemaker_backends

    name = request.params.get("EndpointName", "")
    key = (request.account, request.region, name)
    endpoint = sagemaker_backends[request.account][request.region].endpoints.get(name)
    if endpoint is None:
        return Refusal("ValidationError", f"Endpoint {name} of account {request.account} not found.")
    with _ENDPOINTS.lock:
        served, reason = _ENDPOINTS.serving.get(key), _ENDPOINTS.not_served.get(key)
    if served is None:
        if reason:
            return Refusal("ValidationError", f"The sandbox cannot serve endpoint {name}: {reason}.")
        return Refusal("ValidationError", f"Endpoint {name} of account {request.account} is not ready to serve "
                                          f"(status {endpoint.endpoint_status}); wait until it is InService.")
    size = int(request.header("content-length") or 0) if (request.header("content-length") or "").isdigit() else 0
    if size > MAX_INVOCATION_BODY:
        return Refusal("ValidationError", f"The request payload of {size} bytes exceeds the real-time inference "
                                          f"limit of {MAX_INVOCATION_BODY} bytes.")
    variant = _pick_variant(served, request.header("x-amzn-sagemaker-target-variant"))
    if variant is None:
        return Refusal("ValidationError", f"The target variant {request.header('x-amzn-sagemaker-target-variant')} "
                                          f"does not exist on endpoint {name}.")
    return forward(request, served.variants[variant].host_port, variant, name)


def _pick_variant(served: Serving, target: str | None) -> str | None:
    if target:
        return target if target in served.variants else None
    names = list(served.variants)
    return random.choices(names, weights=[served.weights.get(n, 1.0) for n in names])[0]


def forward(request: AwsRequest, port: int | None, variant: str, endpoint_name: str) -> Reply:
    """POST the body to the container's /invocations; its answer, or SageMaker's ModelError."""
    headers = {"Content-Type": request.header("content-type") or "application/octet-stream",
               "Accept": request.header("accept") or "*/*"}
    if request.header("x-amzn-sagemaker-custom-attributes"):
        headers["X-Amzn-SageMaker-Custom-Attributes"] = request.header("x-amzn-sagemaker-custom-attributes")
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=INVOCATION_TIMEOUT_S)
    try:
        connection.request("POST", "/invocations", body=request.body, headers=headers)
        response = connection.getresponse()
        status, body = response.status, response.read()
        content_type = response.getheader("Content-Type") or "application/octet-stream"
        custom = response.getheader("X-Amzn-SageMaker-Custom-Attributes")
    except OSError as exc:
        return model_error(request, endpoint_name, 500, f"the container did not answer: {exc}")
    finally:
        connection.close()
    if status >= 400:
        return model_error(request, endpoint_name, status, body.decode("utf-8", "replace"))
    answer_headers = [("Content-Type", content_type), ("x-Amzn-Invoked-Production-Variant", variant)]
    if custom:
        answer_headers.append(("X-Amzn-SageMaker-Custom-Attributes", custom))
    return Reply(body=body, headers=tuple(answer_headers))


def model_error(request: AwsRequest, endpoint_name: str, status: int, message: str) -> Reply:
    """SageMaker's answer when the container fails an invocation: ModelError, HTTP 424."""
    kind = "client" if 400 <= status < 500 else "server"
    log_group = f"/aws/sagemaker/Endpoints/{endpoint_name}"
    body = {
        "ErrorCode": f"{kind.upper()}_ERROR_FROM_MODEL",
        "Message": f'Received {kind} error ({status}) from primary with message "{message}". See '
                   f"https://{request.region}.console.aws.amazon.com/cloudwatch/home?region={request.region}"
                   f"#logEventViewer:group={log_group} in account {request.account} for more information.",
        "OriginalStatusCode": status,
        "OriginalMessage": message,
        "LogStreamArn": f"arn:aws:logs:{request.region}:{request.account}:log-group:{log_group}",
    }
    return Reply(body=json.dumps(body).encode(), status=424,
                 headers=(("Content-Type", "application/json"), ("x-amzn-ErrorType", "ModelError")))
