"""SageMaker: a model's image must exist in ECR; no KMS key on local-storage or serverless variants."""

from __future__ import annotations

import re

from provisioner.engines.sandbox.fidelity.registry import Refusal, rule
from provisioner.engines.sandbox.fidelity.request import AwsRequest
from provisioner.engines.sandbox.sagemaker_containers import parse_ecr_image


# SageMaker ML instance families with local NVMe instance storage (EC2 User Guide, "Instance store
# volumes": every family whose attribute letters include `d` — m5d, c5d, r5d, g4dn, p3dn, p4d, m6id ... —
# and the accelerated families g5, g6, g6e, p5, p5e, p5en, trn1, trn1n, which have NVMe instance store).
_LOCAL_STORAGE_FAMILIES = {"g5", "g6", "g6e", "p5", "p5e", "p5en", "trn1", "trn1n"}
_FAMILY = re.compile(r"^ml\.(([a-z]+)(\d+)([a-z-]*))\.")


def has_local_storage(instance_type: str) -> bool:
    match = _FAMILY.match(instance_type or "")
    if not match:
        return False
    family, _, _, attributes = match.groups()
    return family in _LOCAL_STORAGE_FAMILIES or "d" in attributes


def _image_missing(request: AwsRequest, image: str) -> bool:
    """Whether `image` names this sandbox account's ECR and is not there (repository or tag/digest)."""
    ecr = parse_ecr_image(image)
    if ecr is None or ecr.account != request.account:
        return False  # another registry: the sandbox cannot know, as AWS would (no stricter)
    region, repository, tag, digest = ecr.region, ecr.repository, ecr.tag, ecr.digest
    from moto.backends import get_backend
    from moto.ecr.exceptions import ImageNotFoundException, RepositoryNotFoundException

    backend = get_backend("ecr")[request.account][region]
    image_id = {"imageDigest": digest} if digest else {"imageTag": tag or "latest"}
    try:
        list(backend.describe_images(repository, request.account, [image_id]))
    except (RepositoryNotFoundException, ImageNotFoundException):
        return True
    return False


@rule("sagemaker", "CreateModel")
def model_image_must_exist(request: AwsRequest) -> Refusal | None:
    """CreateModel with an image of the account's ECR that is not there (no such repository, tag or
    digest) fails with ValidationException "Requested image <image> not found" (SageMaker API
    Reference, CreateModel / ContainerDefinition.Image: the image must be in an ECR repository the
    execution role can read). moto accepts any image.
    """
    containers = [request.params.get("PrimaryContainer") or {}, *(request.params.get("Containers") or [])]
    for container in containers:
        image = container.get("Image")
        if image and _image_missing(request, image):
            return Refusal("ValidationException", f"Requested image {image} not found.")
    return None


@rule("sagemaker", "CreateEndpointConfig")
def no_kms_key_on_local_storage(request: AwsRequest) -> Refusal | None:
    """CreateEndpointConfig with a KmsKeyId fails when a variant's instance type has local storage
    (SageMaker API Reference, CreateEndpointConfig, KmsKeyId: "If you specify a value for KmsKeyId
    when using any nitro-based instances with local storage, the call to CreateEndpointConfig
    fails"; the list is EC2's "Instance store volumes") or the variant is serverless (SageMaker
    Developer Guide, "Serverless Inference"). moto accepts both.
    """
    if not request.params.get("KmsKeyId"):
        return None
    for variant in request.params.get("ProductionVariants") or []:
        instance_type = variant.get("InstanceType") or ""
        if has_local_storage(instance_type):
            return Refusal("ValidationException",
                           f"The instance type {instance_type} of production variant {variant.get('VariantName')} has "
                           "local instance storage, which is encrypted by a hardware module: KmsKeyId is not supported.")
        if variant.get("ServerlessConfig"):
            return Refusal("ValidationException",
                           f"Production variant {variant.get('VariantName')} is serverless: KmsKeyId is not supported "
                           "for serverless endpoint configurations.")
    return None
