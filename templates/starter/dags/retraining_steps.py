"""The steps of the team's retraining pipeline, as plain functions of boto3 (retrain.py runs them as tasks).

prepare_data -> train -> register -> promote:
- prepare_data writes the training data (here: a small generated starter set; replace
  `starter_rows` with your own source) as CSV to the team's bucket, encrypted with the team's key
  as the bucket policy requires;
- train runs a SageMaker training job with the team's execution role on the endpoint's current
  image (or envctl's default image in the team's ECR repository), output to the team's bucket
  under the team's key, waits for it and fails with its FailureReason;
- register adds the model to the team's model package group;
- promote points the team's endpoint at the new model data through envctl's documented path
  (docs/architecture.md, "The inference model"): DescribeEndpoint/-EndpointConfig/-Model, CreateModel,
  CreateEndpointConfig, UpdateEndpoint, then the promotion record /envctl/<team>/inference/model-data,
  so the next `envctl update` keeps the promoted model. It deletes the configuration and model the
  previous promotion made once the endpoint has left them (never envctl's own).

Where the settings come from: the environment of the host's containers (ENVCTL_TEAM, ENVCTL_BUCKET,
ENVCTL_KMS_KEY_ARN, ENVCTL_SAGEMAKER_ROLE_ARN, ENVCTL_ECR_REPOSITORY_URL, ENVCTL_ENDPOINT_NAME,
ENVCTL_MODEL_PACKAGE_GROUP, AWS_DEFAULT_REGION), else the values envctl wrote into retrain.py with the starter.
"""

from __future__ import annotations

import csv
import io
import os
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

JOB_TAG = {"Key": "envctl:managed-by", "Value": "airflow"}  # what the host role may delete again
OWN_PREFIX = "{team}-retrain-"  # names of what this pipeline makes
CONTENT_TYPES = ["application/json", "text/csv"]
TRAINING_INSTANCE_TYPE = "ml.m5.large"
MAX_TRAINING_SECONDS = 3600
STARTER_WEIGHTS, STARTER_BIAS = (0.8, -0.5, 1.5), 2.0  # the relation the starter data follows


@dataclass(frozen=True)
class Settings:
    team: str
    region: str
    bucket: str
    kms_key_arn: str
    role_arn: str
    ecr_repository_url: str
    endpoint_name: str
    model_package_group: str
    poll_seconds: float = 15.0

    @classmethod
    def resolve(cls, **defaults: str | None) -> "Settings":
        """The host's environment first, then the defaults; a value missing from both is an error naming it."""
        env = os.environ
        team = env.get("ENVCTL_TEAM") or defaults.get("team") or ""
        values = {
            "team": team,
            "region": env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or defaults.get("region"),
            "bucket": env.get("ENVCTL_BUCKET") or defaults.get("bucket"),
            "kms_key_arn": env.get("ENVCTL_KMS_KEY_ARN") or defaults.get("kms_key_arn"),
            "role_arn": env.get("ENVCTL_SAGEMAKER_ROLE_ARN") or defaults.get("role_arn"),
            "ecr_repository_url": env.get("ENVCTL_ECR_REPOSITORY_URL") or defaults.get("ecr_repository_url"),
            "endpoint_name": env.get("ENVCTL_ENDPOINT_NAME") or defaults.get("endpoint_name") or f"envctl-{team}",
            "model_package_group": env.get("ENVCTL_MODEL_PACKAGE_GROUP") or f"envctl-{team}-models",
        }
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise RuntimeError(f"retraining settings missing: {', '.join(missing)} (set ENVCTL_* on the host, "
                               "see docs/requesting-an-environment.md)")
        return cls(**values, poll_seconds=float(env.get("ENVCTL_RETRAIN_POLL_SECONDS", "15")))

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=self.region)

    @property
    def tags(self) -> list[dict[str, str]]:
        return [{"Key": "envctl:team", "Value": self.team}, JOB_TAG]

    @property
    def own_prefix(self) -> str:
        return OWN_PREFIX.format(team=self.team)


def run_name(settings: Settings, now: datetime | None = None) -> str:
    """A name for this run's job, model and configuration (at most 63 characters, as SageMaker allows)."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    return f"{settings.own_prefix}{stamp}"[-63:].lstrip("-")


# ---- prepare -------------------------------------------------------------------------------------------


def starter_rows(count: int = 200, seed: int = 14) -> list[list[float]]:
    """label,feature1,feature2,feature3 rows following STARTER_WEIGHTS and STARTER_BIAS with a little noise."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        x = [round(rng.uniform(-3, 3), 4) for _ in STARTER_WEIGHTS]
        label = sum(w * v for w, v in zip(STARTER_WEIGHTS, x)) + STARTER_BIAS + rng.gauss(0, 0.05)
        rows.append([round(label, 4), *x])
    return rows


def prepare_data(settings: Settings, name: str) -> str:
    """The training CSV in the team's bucket (SSE-KMS with the team's key); its channel prefix."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["label", "f1", "f2", "f3"])
    writer.writerows(starter_rows())
    key = f"retraining/{name}/train/train.csv"
    settings.client("s3").put_object(Bucket=settings.bucket, Key=key, Body=buffer.getvalue().encode(),
                                     ServerSideEncryption="aws:kms", SSEKMSKeyId=settings.kms_key_arn)
    return f"s3://{settings.bucket}/retraining/{name}/train/"


# ---- train ---------------------------------------------------------------------------------------------


def _not_found(error: Exception) -> bool:
    response = getattr(error, "response", {}) or {}
    return "Could not find" in response.get("Error", {}).get("Message", "")


def live_model(settings: Settings) -> dict[str, Any] | None:
    """The endpoint's configuration and the model of its first variant, or None without an endpoint."""
    from botocore.exceptions import ClientError

    sagemaker = settings.client("sagemaker")
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=settings.endpoint_name)
    except ClientError as error:
        if _not_found(error):
            return None
        raise
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    return {"endpoint": endpoint, "config": config, "model": model}


def training_image(settings: Settings) -> str:
    """The endpoint's current image; without an endpoint, the newest envctl default image in the team's ECR."""
    live = live_model(settings)
    if live is not None:
        return live["model"]["PrimaryContainer"]["Image"]
    repository = settings.ecr_repository_url.split("/", 1)[1]
    images = []
    for page in settings.client("ecr").get_paginator("describe_images").paginate(repositoryName=repository):
        images += [(str(image.get("imagePushedAt")), tag) for image in page.get("imageDetails", [])
                   for tag in image.get("imageTags", []) if tag.startswith("default-")]
    if not images:
        raise RuntimeError(f"no image to train with: endpoint {settings.endpoint_name} does not exist and "
                           f"{settings.ecr_repository_url} holds no envctl default image (run `envctl inference push "
                           f"{settings.team}`)")
    return f"{settings.ecr_repository_url}:{max(images)[1]}"


def train(settings: Settings, name: str, data_uri: str, image: str) -> str:
    """Run the training job and wait for it; the model.tar.gz it wrote, or an error with its FailureReason."""
    from botocore.exceptions import ClientError

    sagemaker = settings.client("sagemaker")
    try:
        sagemaker.create_training_job(
            TrainingJobName=name,
            AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
            RoleArn=settings.role_arn,
            InputDataConfig=[{"ChannelName": "train", "ContentType": "text/csv", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": data_uri, "S3DataDistributionType": "FullyReplicated"}}}],
            OutputDataConfig={"S3OutputPath": f"s3://{settings.bucket}/models/", "KmsKeyId": settings.kms_key_arn},
            ResourceConfig={"InstanceType": TRAINING_INSTANCE_TYPE, "InstanceCount": 1, "VolumeSizeInGB": 5,
                            "VolumeKmsKeyId": settings.kms_key_arn},
            StoppingCondition={"MaxRuntimeInSeconds": MAX_TRAINING_SECONDS},
            HyperParameters={"l2": "0"},
            EnableNetworkIsolation=True,
            Tags=settings.tags,
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceInUse":
            raise
        # a retry of this task: the job exists already, wait for it
    deadline = time.monotonic() + MAX_TRAINING_SECONDS + 600
    while True:
        job = sagemaker.describe_training_job(TrainingJobName=name)
        status = job["TrainingJobStatus"]
        if status == "Completed":
            return job["ModelArtifacts"]["S3ModelArtifacts"]
        if status in ("Failed", "Stopped"):
            raise RuntimeError(f"training job {name} {status.lower()}: {job.get('FailureReason', job.get('SecondaryStatus'))}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"training job {name} still {status} ({job.get('SecondaryStatus')}) after its time limit")
        time.sleep(settings.poll_seconds)


# ---- register and promote ------------------------------------------------------------------------------


def register(settings: Settings, name: str, model_data: str, image: str) -> str:
    """A version in the team's model package group; its ARN."""
    return settings.client("sagemaker").create_model_package(
        ModelPackageGroupName=settings.model_package_group,
        ModelPackageDescription=f"trained by {name}",
        InferenceSpecification={"Containers": [{"Image": image, "ModelDataUrl": model_data}],
                                "SupportedContentTypes": CONTENT_TYPES, "SupportedResponseMIMETypes": CONTENT_TYPES},
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties={"training_job": name},
    )["ModelPackageArn"]


def promote(settings: Settings, name: str, model_data: str) -> str:
    """The endpoint serves model_data (the five calls of envctl's promotion path); the new configuration's name."""
    live = live_model(settings)
    if live is None:
        raise RuntimeError(f"endpoint {settings.endpoint_name} does not exist: run `envctl inference push "
                           f"{settings.team}` (it creates the endpoint), then run the retraining again")
    sagemaker = settings.client("sagemaker")
    model, config = live["model"], live["config"]
    sagemaker.create_model(
        ModelName=name, ExecutionRoleArn=model["ExecutionRoleArn"],
        PrimaryContainer={"Image": model["PrimaryContainer"]["Image"], "ModelDataUrl": model_data}, Tags=settings.tags)
    variants = []
    for variant in config["ProductionVariants"]:
        copied = {key: variant[key] for key in ("VariantName", "InstanceType", "InitialInstanceCount",
                                                "InitialVariantWeight", "ServerlessConfig") if key in variant}
        variants.append({**copied, "ModelName": name})
    extra = {"KmsKeyId": config["KmsKeyId"]} if config.get("KmsKeyId") else {}
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants, Tags=settings.tags, **extra)
    sagemaker.update_endpoint(EndpointName=settings.endpoint_name, EndpointConfigName=name)
    _wait_in_service(settings)
    settings.client("ssm").put_parameter(Name=f"/envctl/{settings.team}/inference/model-data", Value=model_data,
                                         Type="String", Overwrite=True)
    _delete_previous(settings, config["EndpointConfigName"], model["ModelName"], keep=name)
    return name


def _wait_in_service(settings: Settings) -> None:
    sagemaker = settings.client("sagemaker")
    deadline = time.monotonic() + 3600
    while True:
        endpoint = sagemaker.describe_endpoint(EndpointName=settings.endpoint_name)
        if endpoint["EndpointStatus"] == "InService":
            return
        if endpoint["EndpointStatus"] == "Failed" or time.monotonic() > deadline:
            raise RuntimeError(f"endpoint {settings.endpoint_name} is {endpoint['EndpointStatus']}: "
                               f"{endpoint.get('FailureReason', 'no reason given')}")
        time.sleep(settings.poll_seconds)


def _delete_previous(settings: Settings, config_name: str, model_name: str, keep: str) -> None:
    """The configuration and model an earlier promotion made, now that the endpoint left them; envctl's stay."""
    sagemaker = settings.client("sagemaker")
    if config_name.startswith(settings.own_prefix) and config_name != keep:
        sagemaker.delete_endpoint_config(EndpointConfigName=config_name)
    if model_name.startswith(settings.own_prefix) and model_name != keep:
        sagemaker.delete_model(ModelName=model_name)
