"""Sandbox training jobs (training_jobs.py) in the sandbox's moto server: the job's image really runs.

The docker tests run envctl's default inference image (built once for the module) with `train`
under SageMaker's training contract, against the session's in-process moto server, which loads the
same extensions as the sandbox's server process.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
import time
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from provisioner.components import policies
from provisioner.inference_image import MANIFEST_V2, record_in_ecr
from tests.conftest import SANDBOX_CREDENTIALS

REGION = "eu-west-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/envctl-trainer-sagemaker"
WEIGHTS, BIAS = (0.8, -0.5, 1.5), 2.0


def client(endpoint: str, service: str):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, **SANDBOX_CREDENTIALS)


@pytest.fixture
def team_bucket(moto_endpoint):
    """A bucket like a team's: SSE-KMS default with its own key and envctl's bucket policy; (name, key ARN)."""
    s3, kms = client(moto_endpoint, "s3"), client(moto_endpoint, "kms")
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    bucket = f"envctl-trainer-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}}]})
    arns = policies.TeamArns.for_team("trainer", account_id=ACCOUNT, region=REGION, bucket=bucket, kms_key_arn=key_arn)
    s3.put_bucket_policy(Bucket=bucket, Policy=policies.bucket_policy(arns))
    return bucket, key_arn


def starter_csv(rows: int = 80) -> str:
    rng = random.Random(3)
    lines = ["label,a,b,c"]
    for _ in range(rows):
        x = [rng.uniform(-2, 2) for _ in WEIGHTS]
        lines.append(",".join(map(str, [sum(w * v for w, v in zip(WEIGHTS, x, strict=True)) + BIAS, *x])))
    return "\n".join(lines) + "\n"


def job_request(name: str, image: str, bucket: str, key_arn: str | None, **overrides) -> dict:
    request = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": ROLE_ARN,
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/training/{name}/train/",
            "S3DataDistributionType": "FullyReplicated"}}}],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/models/", **({"KmsKeyId": key_arn} if key_arn else {})},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
        "HyperParameters": {"l2": "0"},
    }
    request.update(overrides)
    return request


def wait_for_end(sagemaker, name: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = sagemaker.describe_training_job(TrainingJobName=name)
        if job["TrainingJobStatus"] not in ("InProgress", "Stopping"):
            return job
        time.sleep(0.5)
    pytest.fail(f"training job {name} still {job['TrainingJobStatus']} after {timeout} s: {job.get('SecondaryStatus')}")


# ---- without a Docker engine, and the API around the job -------------------------------------


def test_without_a_docker_engine_the_job_fails_and_says_why(moto_endpoint, team_bucket, monkeypatch):
    """No engine: InProgress first, then Failed with a reason that names the missing engine, never Completed."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    bucket, key_arn = team_bucket
    sagemaker = client(moto_endpoint, "sagemaker")
    name = f"no-engine-{uuid.uuid4().hex[:6]}"
    sagemaker.create_training_job(**job_request(name, f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/envctl-trainer:x",
                                                bucket, key_arn))
    job = wait_for_end(sagemaker, name, timeout=30)
    assert job["TrainingJobStatus"] == "Failed"
    assert "local Docker engine" in job["FailureReason"] and "/nonexistent/docker.sock" in job["FailureReason"]
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]][-1] == "Failed"


def test_a_job_name_is_unique(moto_endpoint, team_bucket, monkeypatch):
    """A second CreateTrainingJob of a name is ResourceInUse, as on AWS (moto would overwrite the job)."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    bucket, key_arn = team_bucket
    sagemaker = client(moto_endpoint, "sagemaker")
    request = job_request(f"twice-{uuid.uuid4().hex[:6]}", "x", bucket, key_arn)
    sagemaker.create_training_job(**request)
    with pytest.raises(ClientError) as refused:
        sagemaker.create_training_job(**request)
    assert refused.value.response["Error"]["Code"] == "ResourceInUse"


def test_stop_training_job_refuses_a_job_that_ended(moto_endpoint, team_bucket, monkeypatch):
    """StopTrainingJob of a Failed job is a ValidationException naming its status; of an unknown job, not found."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    bucket, key_arn = team_bucket
    sagemaker = client(moto_endpoint, "sagemaker")
    name = f"ended-{uuid.uuid4().hex[:6]}"
    sagemaker.create_training_job(**job_request(name, "x", bucket, key_arn))
    wait_for_end(sagemaker, name, timeout=30)
    with pytest.raises(ClientError, match="in status Failed"):
        sagemaker.stop_training_job(TrainingJobName=name)
    with pytest.raises(ClientError, match="Could not find training job"):
        sagemaker.stop_training_job(TrainingJobName="never-made")


# ---- with Docker: the default image trains ---------------------------------------------------


@pytest.fixture(scope="module")
def trainer_image(docker_client, moto_endpoint):
    """envctl's default image, built locally and recorded in the sandbox's ECR as the sandbox's push does
    (the manifest names the image's config digest); its ECR URI."""
    from provisioner.inference_image import build_image, image_tag

    local_ref = build_image("citest", progress=lambda line: None)
    image = docker_client.images.get(local_ref)
    ecr = client(moto_endpoint, "ecr")
    repository = f"envctl-trainer-{uuid.uuid4().hex[:6]}"
    ecr.create_repository(repositoryName=repository)
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST_V2,
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1, "digest": image.id},
                "layers": []}
    tag = image_tag(local_ref)
    record_in_ecr(ecr, repository, tag, json.dumps(manifest))
    return f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repository}:{tag}"


def put_training_data(moto_endpoint, bucket: str, key_arn: str, name: str, body: str) -> None:
    client(moto_endpoint, "s3").put_object(Bucket=bucket, Key=f"training/{name}/train/part-0.csv", Body=body.encode(),
                                           ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn)


@pytest.mark.docker
def test_a_job_runs_the_default_image_and_writes_an_encrypted_model(moto_endpoint, team_bucket, trainer_image):
    """Completed after InProgress; model.tar.gz at <output>/<job>/output/ under the team key holds the fitted model."""
    bucket, key_arn = team_bucket
    sagemaker, s3 = client(moto_endpoint, "sagemaker"), client(moto_endpoint, "s3")
    name = f"fits-{uuid.uuid4().hex[:6]}"
    put_training_data(moto_endpoint, bucket, key_arn, name, starter_csv())
    sagemaker.create_training_job(**job_request(name, trainer_image, bucket, key_arn))
    assert sagemaker.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "InProgress"
    job = wait_for_end(sagemaker, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"]
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == f"s3://{bucket}/models/{name}/output/model.tar.gz"
    stored = s3.get_object(Bucket=bucket, Key=artifact.split("/", 3)[3])
    assert (stored["ServerSideEncryption"], stored["SSEKMSKeyId"]) == ("aws:kms", key_arn)
    with tarfile.open(fileobj=io.BytesIO(stored["Body"].read()), mode="r:gz") as archive:
        assert archive.getnames() == ["model.json"]
        model = json.load(archive.extractfile("model.json"))
    assert model["weights"] == pytest.approx(WEIGHTS, abs=1e-6)
    assert model["bias"] == pytest.approx(BIAS, abs=1e-6)


@pytest.mark.docker
def test_a_failing_job_reports_the_containers_reason(moto_endpoint, team_bucket, trainer_image):
    """Bad data: Failed, FailureReason from /opt/ml/output/failure; no model is written."""
    bucket, key_arn = team_bucket
    sagemaker, s3 = client(moto_endpoint, "sagemaker"), client(moto_endpoint, "s3")
    name = f"bad-data-{uuid.uuid4().hex[:6]}"
    put_training_data(moto_endpoint, bucket, key_arn, name, "label,a\n1,2\n2,two\n")
    sagemaker.create_training_job(**job_request(name, trainer_image, bucket, key_arn))
    job = wait_for_end(sagemaker, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("AlgorithmError: ") and "part-0.csv line 3" in job["FailureReason"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"models/{name}/").get("KeyCount") == 0


@pytest.mark.docker
def test_an_output_key_the_bucket_policy_denies_fails_the_job(moto_endpoint, team_bucket, trainer_image):
    """KmsKeyId of another key: the team bucket's policy denies the upload, so the job fails with AccessDenied."""
    bucket, key_arn = team_bucket
    sagemaker, s3 = client(moto_endpoint, "sagemaker"), client(moto_endpoint, "s3")
    other_key = client(moto_endpoint, "kms").create_key()["KeyMetadata"]["Arn"]
    name = f"other-key-{uuid.uuid4().hex[:6]}"
    put_training_data(moto_endpoint, bucket, key_arn, name, starter_csv(20))
    sagemaker.create_training_job(**job_request(name, trainer_image, bucket, other_key))
    job = wait_for_end(sagemaker, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert "AccessDenied" in job["FailureReason"] and "s3:PutObject" in job["FailureReason"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"models/{name}/").get("KeyCount") == 0


@pytest.mark.docker
def test_missing_input_and_unknown_images_fail_with_awss_reasons(moto_endpoint, team_bucket, trainer_image):
    """No object under a channel's prefix, or an image not in the sandbox's ECR: Failed with the reason."""
    bucket, key_arn = team_bucket
    sagemaker = client(moto_endpoint, "sagemaker")
    empty, unknown = f"empty-{uuid.uuid4().hex[:6]}", f"unknown-{uuid.uuid4().hex[:6]}"
    sagemaker.create_training_job(**job_request(empty, trainer_image, bucket, key_arn))
    missing_image = trainer_image.rsplit(":", 1)[0] + ":default-000000000000"
    sagemaker.create_training_job(**job_request(unknown, missing_image, bucket, key_arn))
    assert "No S3 objects found under S3 URL" in wait_for_end(sagemaker, empty)["FailureReason"]
    assert f"Requested image {missing_image} not found" in wait_for_end(sagemaker, unknown)["FailureReason"]
