"""EC2: an availability zone must be one of the region's."""

from __future__ import annotations

from provisioner.engines.sandbox.fidelity.registry import Refusal, rule
from provisioner.engines.sandbox.fidelity.request import AwsRequest

_ZONE_PARAMETER = {"CreateSubnet": "AvailabilityZone", "CreateVolume": "AvailabilityZone",
                   "RunInstances": "Placement.AvailabilityZone"}


def region_zones(request: AwsRequest) -> list[str]:
    from moto.backends import get_backend

    backend = get_backend("ec2")[request.account][request.region]
    return [zone.name for zone in backend.describe_availability_zones()]


@rule("ec2", *_ZONE_PARAMETER)
def zone_must_be_in_region(request: AwsRequest) -> Refusal | None:
    """A subnet, volume or instance in a zone the region lacks is refused (EC2 API Reference,
    CreateSubnet / CreateVolume / RunInstances, and "Error codes for the Amazon EC2 API":
    InvalidParameterValue for a subnet, naming the zones subnets can be created in;
    InvalidZone.NotFound for a volume; InvalidParameterValue "Invalid availability zone" for
    an instance). moto accepts any zone name.
    """
    zone = request.params.get(_ZONE_PARAMETER[request.action])
    if not zone:
        return None
    zones = region_zones(request)
    if not zones or zone in zones:
        return None  # (no zones: a region moto does not describe; the sandbox cannot say)
    if request.action == "CreateSubnet":
        return Refusal("InvalidParameterValue",
                       f"Value ({zone}) for parameter availabilityZone is invalid. Subnets can currently only be "
                       f"created in the following availability zones: {', '.join(zones)}.")
    if request.action == "CreateVolume":
        return Refusal("InvalidZone.NotFound", f"The zone '{zone}' does not exist.")
    return Refusal("InvalidParameterValue", f"Invalid availability zone: [{zone}]")
