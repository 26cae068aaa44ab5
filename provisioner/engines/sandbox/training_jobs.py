"""Sandbox training jobs that run: CreateTrainingJob runs the job's image in a local container.

moto 5.2.5 marks a training job Completed the moment it is created and writes no model. In the
sandbox's server process (serve.py EXTENSIONS calls `install()`), CreateTrainingJob instead starts
a worker thread that does what SageMaker does with a bring-your-own container
(https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html):

1. the image: `AlgorithmSpecification.TrainingImage` must be in this sandbox's ECR (the sandbox's
   push records it there, see inference_image.push_to_sandbox); the container runs the image the
   recorded manifest names (its config digest) from the local Docker engine;
2. the input: every channel's S3Prefix is copied from the server's own S3 to
   /opt/ml/input/data/<channel>/ (no object under a prefix fails the job, as on AWS), the
   hyperparameters (strings) to /opt/ml/input/config/hyperparameters.json, with
   inputdataconfig.json and resourceconfig.json next to it;
3. `docker run <image> train`, networking off when EnableNetworkIsolation, stopped at
   StoppingCondition.MaxRuntimeInSeconds (status Stopped, MaxRuntimeExceeded);
4. exit 0: /opt/ml/model packed to `<S3OutputPath>/<job>/output/model.tar.gz`, put with SSE-KMS
   and OutputDataConfig.KmsKeyId (which must be a key of the account), after the bucket's policy
   is evaluated for that upload (a Deny fails the job with AccessDenied, as it would on AWS);
   non-zero: Failed, FailureReason "AlgorithmError: " + /opt/ml/output/failure, or the exit code
   and the last lines of the container's log.

DescribeTrainingJob then reports InProgress (with SecondaryStatus Starting, Downloading,
Training, Uploading) -> Completed | Failed | Stopped, FailureReason and ModelArtifacts.
StopTrainingJob (moto lacks it) stops the container. Without a Docker engine a job fails with a
FailureReason that says the sandbox needs one: never a Completed job without a model.

Where the sandbox differs from AWS: one instance whatever ResourceConfig asks for; only the
S3Prefix data type, File (or FastFile) input mode and uncompressed channels; the execution role's
own IAM permissions are not checked (moto does not enforce them for a service's calls); no
CloudWatch logs or metrics; without KmsKeyId the model gets SSE-KMS with the bucket's default key.
The container runner here is deliberately small; the endpoint side has its own
(sagemaker_containers.py) and the two are meant to become one.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import re
import tarfile
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_ECR_IMAGE = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/([^:@]+)(?::([^@]+))?(?:@(sha256:[0-9a-f]{64}))?$")
_S3_URI = re.compile(r"^s3://([^/]+)/?(.*)$")
DEFAULT_MAX_RUNTIME_S = 86400  # SageMaker's default StoppingCondition.MaxRuntimeInSeconds
LOG_TAIL_LINES = 20
MAX_FAILURE_CHARS = 1024  # SageMaker keeps the first 1024 characters of /opt/ml/output/failure
CONTAINER_LABEL = "envctl.sandbox-training-job"

_running: dict[tuple[str, str, str], "_Run"] = {}  # (account, region, job) -> its worker's state
_lock = threading.Lock()


class JobFailed(Exception):
    """The job ends Failed with this FailureReason."""


class JobStopped(Exception):
    """The job ends Stopped (StopTrainingJob, or MaxRuntimeExceeded when `secondary` says so)."""

    def __init__(self, secondary: str):
        super().__init__(secondary)
        self.secondary = secondary


@dataclass
class _Run:
    stop_requested: threading.Event
    container: Any = None


def install() -> None:
    """Run CreateTrainingJob's image for real; add StopTrainingJob (idempotent)."""
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    if getattr(SageMakerModelBackend.create_training_job, "_envctl_runs_jobs", False):
        return
    moto_create = SageMakerModelBackend.create_training_job

    def create_training_job(self: Any, training_job_name: str, **kwargs: Any) -> Any:
        from moto.sagemaker.exceptions import ResourceInUseException

        if training_job_name in self.training_jobs:  # moto overwrites the job
            raise ResourceInUseException(
                f"Training job names must be unique within an AWS account and region, and a training job with "
                f"this name already exists ({self.training_jobs[training_job_name].arn})")
        job = moto_create(self, training_job_name=training_job_name, **kwargs)
        _start(self.account_id, self.region_name, job)
        return job

    create_training_job._envctl_runs_jobs = True  # type: ignore[attr-defined]
    SageMakerModelBackend.create_training_job = create_training_job  # type: ignore[method-assign]
    if not hasattr(SageMakerResponse, "stop_training_job"):
        SageMakerResponse.stop_training_job = _response_stop_training_job  # type: ignore[attr-defined]


# ---- the job's status -----------------------------------------------------------------------


def _start(account: str, region: str, job: Any) -> None:
    from moto.core.utils import utcnow

    # Every attribute DescribeTrainingJob shows exists from now on (moto's response iterates them while
    # the worker changes their values); None values are left out of the answer.
    job.training_job_status, job.secondary_status = "InProgress", "Starting"
    job.failure_reason = job.training_end_time = job.billable_time_in_seconds = job.training_time_in_seconds = None
    job.training_start_time = None
    job.secondary_status_transitions = []
    job.final_metric_data_list = []
    _transition(job, "Starting", "Preparing the instances for training", utcnow())
    run = _Run(threading.Event())
    with _lock:
        _running[(account, region, job.training_job_name)] = run
    threading.Thread(target=_work, args=(account, region, job, run), name=f"training-{job.training_job_name}",
                     daemon=True).start()


def _transition(job: Any, status: str, message: str, now: Any) -> None:
    transitions = [dict(item) for item in job.secondary_status_transitions]
    if transitions:
        transitions[-1]["EndTime"] = now
    transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
    job.secondary_status_transitions = transitions
    job.secondary_status = status
    job.last_modified_time = now


def _finish(job: Any, status: str, secondary: str, message: str, failure: str | None = None) -> None:
    from moto.core.utils import utcnow

    now = utcnow()
    _transition(job, secondary, message, now)
    job.secondary_status_transitions[-1]["EndTime"] = now
    if failure is not None:
        job.failure_reason = failure[:MAX_FAILURE_CHARS]
    if job.training_start_time is not None:
        seconds = max(1, int((now - job.training_start_time).total_seconds()))
        job.training_time_in_seconds = job.billable_time_in_seconds = seconds
    job.training_end_time = now
    job.training_job_status = status


def _work(account: str, region: str, job: Any, run: _Run) -> None:
    try:
        _run_job(account, region, job, run)
        _finish(job, "Completed", "Completed", "Training job completed")
    except JobStopped as stopped:
        message = ("The job stopped because it exceeded the maximum allowed runtime." if stopped.secondary == "MaxRuntimeExceeded"
                   else "Training job stopped by StopTrainingJob")
        _finish(job, "Stopped", stopped.secondary, message)
    except JobFailed as failure:
        _finish(job, "Failed", "Failed", "Training job failed", str(failure))
    except Exception as exc:  # a bug or an engine error must still end the job, with its reason
        log.exception("training job %s", job.training_job_name)
        _finish(job, "Failed", "Failed", "Training job failed", f"InternalServerError: the envctl sandbox failed: {exc}")
    finally:
        with _lock:
            _running.pop((account, region, job.training_job_name), None)


def _run_job(account: str, region: str, job: Any, run: _Run) -> None:
    from moto.core.utils import utcnow

    client = _docker()
    image = _local_image(client, account, region, job.algorithm_specification.get("TrainingImage", ""))
    kms_key = _output_key(account, region, job.output_data_config.get("KmsKeyId"))
    _transition(job, "Downloading", "Downloading input data", utcnow())
    inputs = _input_archive(account, job)
    if run.stop_requested.is_set():
        raise JobStopped("Stopped")
    job.training_start_time = utcnow()
    _transition(job, "Training", "Training image download completed. Training in progress.", job.training_start_time)
    model, exit_code = _run_container(client, image, inputs, job, run)
    if exit_code != 0:
        raise JobFailed(_algorithm_error(exit_code, model.failure, model.log_tail))
    _transition(job, "Uploading", "Uploading generated training model", utcnow())
    _upload_model(account, job, model.archive, kms_key)
    if model.stopped:
        raise JobStopped(model.stopped)


# ---- the image ------------------------------------------------------------------------------


def _docker() -> Any:
    from provisioner.errors import MissingTool
    from provisioner.local_images import connect_docker

    try:
        return connect_docker()
    except MissingTool as missing:
        raise JobFailed(f"ClientError: the envctl sandbox runs training jobs in a local Docker engine and has none: "
                        f"{missing.message}. Start one where the sandbox runs, then run the job again.") from None


def _local_image(client: Any, account: str, region: str, image: str) -> str:
    """The local image for an ECR URI of this sandbox: the one its recorded manifest names."""
    import docker.errors
    from moto.backends import get_backend
    from moto.ecr.exceptions import ImageNotFoundException, RepositoryNotFoundException

    match = _ECR_IMAGE.match(image)
    if not match or match.group(1) != account:
        raise JobFailed(f"ClientError: the envctl sandbox runs images of its own ECR ({account}.dkr.ecr.<region>."
                        f"amazonaws.com/<repository>:<tag>) only, not {image!r}")
    _, image_region, repository, tag, digest = match.groups()
    image_id = {"imageDigest": digest} if digest else {"imageTag": tag or "latest"}
    try:
        found = list(get_backend("ecr")[account][image_region].describe_images(repository, account, [image_id]))
    except (RepositoryNotFoundException, ImageNotFoundException):
        raise JobFailed(f"ClientError: Requested image {image} not found in ECR (push it first: "
                        "envctl inference push <team>)") from None
    config_digest = json.loads(found[0].image_manifest or "{}").get("config", {}).get("digest")
    try:
        return client.images.get(config_digest).id
    except (docker.errors.ImageNotFound, docker.errors.NullResource):
        raise JobFailed(f"ClientError: {image} is in the sandbox's ECR, but its image ({config_digest}) is not in this "
                        "machine's Docker engine; push it again with envctl inference push <team>") from None


def _output_key(account: str, region: str, key_id: str | None) -> str | None:
    """KmsKeyId as given, after checking it names an enabled key of the account (id, ARN or alias)."""
    if not key_id:
        return None
    from moto.backends import get_backend

    key_region = key_id.split(":")[3] if key_id.startswith("arn:") else region
    try:
        key = get_backend("kms")[account][key_region].describe_key(key_id)
    except Exception:  # moto's NotFoundException, or KeyError for an alias it does not know
        raise JobFailed(f"ClientError: KMS key {key_id} of OutputDataConfig.KmsKeyId was not found") from None
    if not key.enabled:
        raise JobFailed(f"ClientError: KMS key {key_id} of OutputDataConfig.KmsKeyId is disabled")
    return key_id


# ---- input and output -----------------------------------------------------------------------


def _input_archive(account: str, job: Any) -> bytes:
    """A tar of opt/ml/input: the channels' objects, the hyperparameters and the job's configuration."""
    files: dict[str, bytes] = {}
    for channel in job.input_data_config or []:
        name = channel["ChannelName"]
        source = (channel.get("DataSource") or {}).get("S3DataSource")
        if not source:
            raise JobFailed(f"ClientError: channel {name}: the envctl sandbox reads S3DataSource channels only")
        input_mode = channel.get("InputMode", job.algorithm_specification.get("TrainingInputMode", "File"))
        if source.get("S3DataType", "S3Prefix") != "S3Prefix" or channel.get("CompressionType", "None") != "None" \
                or input_mode not in ("File", "FastFile"):
            raise JobFailed(f"ClientError: channel {name}: the envctl sandbox supports S3DataType S3Prefix, File input "
                            "and no compression only")
        for relative, body in _objects_under(account, job, source["S3Uri"]):
            files[f"opt/ml/input/data/{name}/{relative}"] = body
    config = "opt/ml/input/config"
    files[f"{config}/hyperparameters.json"] = json.dumps(job.hyper_parameters or {}).encode()
    files[f"{config}/inputdataconfig.json"] = json.dumps(
        {channel["ChannelName"]: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                                  "RecordWrapperType": "None"} for channel in job.input_data_config or []}).encode()
    files[f"{config}/resourceconfig.json"] = json.dumps(
        {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}).encode()
    return _tar(files, directories=("opt/ml/model", "opt/ml/output/data"))


def _objects_under(account: str, job: Any, uri: str) -> list[tuple[str, bytes]]:
    """(path in the channel, body) of every object whose key starts with the URI's prefix, named as
    SageMaker names them: the key without the prefix's directory part (prefix `data/train` holds
    `data/train/a.csv` as `train/a.csv`, prefix `data/train/` as `a.csv`)."""
    from moto.backends import get_backend
    from moto.s3.exceptions import S3ClientError

    match = _S3_URI.match(uri)
    if not match:
        raise JobFailed(f"ClientError: {uri!r} is not an s3:// URI")
    bucket_name, prefix = match.groups()
    backend = get_backend("s3")[account]["aws"]
    try:
        bucket = backend.get_bucket(bucket_name)
    except S3ClientError:
        raise JobFailed(f"ClientError: Data download failed: bucket {bucket_name} does not exist") from None
    base = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    found = []
    for key_name in sorted(name for name in list(bucket.keys.keys()) if name.startswith(prefix) and not name.endswith("/")):
        key = backend.get_object(bucket_name, key_name)
        if key is None or not hasattr(key, "value"):
            continue  # a delete marker
        _check_bucket_policy(account, job, bucket, "s3:GetObject", key_name, {})
        found.append((key_name[len(base):], key.value))
    if not found:
        raise JobFailed(f"ClientError: No S3 objects found under S3 URL \"{uri}\" given in input data source. Please ensure "
                        "that the bucket exists in the selected region, that objects exist under that S3 prefix, and that "
                        "the role has permission to read objects under that prefix.")
    return found


def _upload_model(account: str, job: Any, archive: bytes, kms_key: str | None) -> None:
    from moto.backends import get_backend
    from moto.s3.exceptions import S3ClientError

    url = job.model_artifacts["S3ModelArtifacts"]  # <S3OutputPath>/<job>/output/model.tar.gz
    bucket_name, key_name = _S3_URI.match(url).groups()
    backend = get_backend("s3")[account]["aws"]
    headers = {"s3:x-amz-server-side-encryption": "aws:kms"}
    if kms_key:
        headers["s3:x-amz-server-side-encryption-aws-kms-key-id"] = kms_key
    try:
        bucket = backend.get_bucket(bucket_name)
    except S3ClientError:
        raise JobFailed(f"ClientError: the output bucket {bucket_name} of OutputDataConfig.S3OutputPath does not exist") from None
    _check_bucket_policy(account, job, bucket, "s3:PutObject", key_name, headers)
    backend.put_object(bucket_name, key_name, archive, encryption="aws:kms", kms_key_id=kms_key)


def _check_bucket_policy(account: str, job: Any, bucket: Any, action: str, key_name: str, sse: dict[str, str]) -> None:
    """A Deny of the bucket's policy for the execution role's call fails the job (AccessDenied)."""
    if not bucket.policy:
        return
    from provisioner.engines.sandbox.fidelity.policy import NotModelled, denying_statements

    role_name = (job.role_arn or "").rsplit("/", 1)[-1]
    caller = f"arn:aws:sts::{account}:assumed-role/{role_name}/SageMaker"
    context = {"aws:securetransport": "true", "aws:principalaccount": account, "aws:principalarn": caller, **sse}
    resource = f"arn:aws:s3:::{bucket.name}/{key_name}"
    try:
        denied = denying_statements(json.loads(bucket.policy), action=action, resource=resource, caller_arn=caller,
                                    account=account, context=context)
    except NotModelled as gap:
        raise JobFailed(f"ClientError: the envctl sandbox cannot evaluate the policy of bucket {bucket.name}: {gap}") from None
    if denied:
        raise JobFailed(f"ClientError: AccessDenied: {caller} is not authorized to perform: {action} on resource: "
                        f"\"{resource}\" with an explicit deny in a resource-based policy")


def _tar(files: dict[str, bytes], directories: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        made: set[str] = set()
        for path in [*directories, *files]:
            parts = path.split("/")
            for depth in range(1, len(parts) if path in files else len(parts) + 1):
                directory = "/".join(parts[:depth])
                if directory not in made:
                    made.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode = tarfile.DIRTYPE, 0o777
                    archive.addfile(info)
        for path, body in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(body), 0o644
            archive.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


# ---- the container --------------------------------------------------------------------------


@dataclass
class _ContainerResult:
    archive: bytes  # model.tar.gz of /opt/ml/model
    failure: str  # /opt/ml/output/failure, if the container wrote one
    log_tail: str
    stopped: str = ""  # "Stopped" or "MaxRuntimeExceeded" when the container was stopped


def _run_container(client: Any, image: str, inputs: bytes, job: Any, run: _Run) -> tuple[_ContainerResult, int]:
    import requests.exceptions

    limit = int((job.stopping_condition or {}).get("MaxRuntimeInSeconds") or DEFAULT_MAX_RUNTIME_S)
    container = client.containers.create(
        image, ["train"], labels={CONTAINER_LABEL: job.arn}, network_disabled=bool(job.enable_network_isolation),
        environment={"TRAINING_JOB_NAME": job.training_job_name, "TRAINING_JOB_ARN": job.arn},
    )
    run.container = container
    try:
        container.put_archive("/", inputs)
        container.start()
        stopped = ""
        try:
            exit_code = container.wait(timeout=limit)["StatusCode"]
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):  # MaxRuntimeInSeconds passed
            container.stop(timeout=30)
            exit_code, stopped = container.wait()["StatusCode"], "MaxRuntimeExceeded"
        if run.stop_requested.is_set():
            stopped = "Stopped"
        if stopped:
            exit_code = 0  # a stopped job keeps what /opt/ml/model holds, whatever the exit code
        result = _ContainerResult(
            archive=_model_archive(container), failure=_read_file(container, "/opt/ml/output/failure"),
            log_tail=container.logs(tail=LOG_TAIL_LINES).decode(errors="replace").strip(), stopped=stopped)
        return result, exit_code
    finally:
        container.remove(force=True)


def _model_archive(container: Any) -> bytes:
    """/opt/ml/model as model.tar.gz, its files at the top level (what SageMaker extracts at /opt/ml/model)."""
    stream, _ = container.get_archive("/opt/ml/model")
    source = tarfile.open(fileobj=io.BytesIO(b"".join(stream)), mode="r|")
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed, tarfile.open(fileobj=compressed, mode="w") as target:
        for member in source:
            name = member.name.split("/", 1)[1] if "/" in member.name else ""
            if not name:
                continue  # the model directory itself
            member.name = name
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
    return buffer.getvalue()


def _read_file(container: Any, path: str) -> str:
    import docker.errors

    try:
        stream, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return ""
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.next()
        handle = archive.extractfile(member) if member is not None else None
        return handle.read().decode(errors="replace").strip() if handle else ""


def _algorithm_error(exit_code: int, failure: str, log_tail: str) -> str:
    if failure:
        return f"AlgorithmError: {failure}"
    return f"AlgorithmError: the training container exited with code {exit_code}; its last log lines: {log_tail[-700:]}"


# ---- StopTrainingJob ------------------------------------------------------------------------


def _response_stop_training_job(self: Any) -> Any:
    from moto.core.responses import ActionResult
    from moto.sagemaker.exceptions import ValidationError

    name = self._get_param("TrainingJobName")
    job = self.sagemaker_backend.training_jobs.get(name)
    if job is None:
        self.sagemaker_backend.describe_training_job(name)  # raises AWS's "Could not find training job"
    if job.training_job_status != "InProgress":
        raise ValidationError(message=f"The request was rejected because the training job is in status "
                                      f"{job.training_job_status}.")
    with _lock:
        run = _running.get((self.sagemaker_backend.account_id, self.sagemaker_backend.region_name, name))
    job.training_job_status, job.secondary_status = "Stopping", "Stopping"
    if run is not None:
        run.stop_requested.set()
        if run.container is not None:
            threading.Thread(target=_stop_quietly, args=(run.container,), daemon=True).start()
    return ActionResult({})


def _stop_quietly(container: Any) -> None:
    import docker.errors

    try:
        container.stop(timeout=30)
    except docker.errors.NotFound:
        pass  # it ended (and was removed) meanwhile
