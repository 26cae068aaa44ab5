"""Offline preview: the program under mocks with placeholder ids, no AWS and no Pulumi CLI.

Placeholders are derived from each resource's URN, so the same request always previews the same.
"""

from __future__ import annotations

import hashlib
from typing import Any

from provisioner.engines.mocked import Registration, run_program
from provisioner.spec import ResolvedSpec

OFFLINE_ACCOUNT = "123456789012"
OFFLINE_AMI = "ami-0offline00000000"
OFFLINE_ZONE_LETTERS = "abc"

# Physical id prefixes AWS uses for resources that are not named by the user.
_ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc-",
    "aws:ec2/subnet:Subnet": "subnet-",
    "aws:ec2/internetGateway:InternetGateway": "igw-",
    "aws:ec2/natGateway:NatGateway": "nat-",
    "aws:ec2/eip:Eip": "eipalloc-",
    "aws:ec2/routeTable:RouteTable": "rtb-",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "rtbassoc-",
    "aws:ec2/securityGroup:SecurityGroup": "sg-",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg-",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce-",
    "aws:ec2/instance:Instance": "i-",
    "aws:ebs/volume:Volume": "vol-",
}


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class OfflineMaterialiser:
    """Answers every registration with its inputs plus placeholder ids and ARNs."""

    def __init__(self, region: str):
        self.region = region

    def register(self, registration: Registration) -> tuple[str, dict[str, Any]]:
        inputs = registration.inputs
        if registration.is_provider:
            return "offline-provider", dict(inputs)
        kind = registration.type
        service = kind.split(":")[1].split("/")[0]
        name = inputs.get("name") or inputs.get("bucket") or f"{registration.name}-{_digest(registration.urn, 7)}"
        if kind in _ID_PREFIX:
            physical_id = _ID_PREFIX[kind] + _digest(registration.urn, 17)
        elif kind == "aws:kms/key:Key":
            h = _digest(registration.urn, 32)
            physical_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        else:
            physical_id = name
        outputs = {
            **inputs,
            "id": physical_id,
            "name": name,
            "arn": f"arn:aws:{service}:{self.region}:{OFFLINE_ACCOUNT}:{kind.split(':')[-1].lower()}/{physical_id}",
        }
        if kind == "aws:s3/bucket:Bucket":
            outputs["arn"] = f"arn:aws:s3:::{name}"
        elif kind == "aws:ecr/repository:Repository":
            outputs["repositoryUrl"] = f"{OFFLINE_ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com/{name}"
        elif kind == "aws:kms/key:Key":
            outputs["keyId"] = physical_id
        elif kind == "aws:ec2/eip:Eip":
            outputs["allocationId"] = physical_id
        elif kind == "aws:iam/role:Role":
            outputs["arn"] = f"arn:aws:iam::{OFFLINE_ACCOUNT}:role/{name}"
        elif kind == "aws:iam/policy:Policy":
            outputs["arn"] = f"arn:aws:iam::{OFFLINE_ACCOUNT}:policy/{name}"
        return physical_id, outputs

    def call(self, token: str, args: dict[str, Any]) -> dict[str, Any]:
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": OFFLINE_ACCOUNT, "arn": f"arn:aws:iam::{OFFLINE_ACCOUNT}:user/offline", "userId": "OFFLINE",
                    "id": OFFLINE_ACCOUNT}
        if token == "aws:ssm/getParameter:getParameter":
            return {"name": args.get("name"), "value": OFFLINE_AMI, "type": "String", "id": args.get("name"), "arn": "",
                    "version": 1, "insecureValue": OFFLINE_AMI, "withDecryption": True}
        if token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{letter}" for letter in OFFLINE_ZONE_LETTERS]
            return {"names": names, "zoneIds": [f"offline-az{i}" for i in range(1, len(names) + 1)], "id": self.region}
        if token == "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
            types = [v for f in args.get("filters") or [] if f.get("name") == "instance-type" for v in f.get("values", [])]
            zones = [f"{self.region}{letter}" for letter in OFFLINE_ZONE_LETTERS]
            return {"locations": zones * len(types), "instanceTypes": [t for t in types for _ in zones],
                    "locationTypes": ["availability-zone"] * len(zones) * len(types), "id": self.region}
        if token == "aws:ec2/getInstances:getInstances":  # offline, no host exists yet
            return {"ids": [], "privateIps": [], "publicIps": [], "ipv6Addresses": [], "id": self.region}
        raise NotImplementedError(f"offline preview has no answer for the invoke {token}")


def offline_registrations(spec: ResolvedSpec, project: str = "envctl") -> list[Registration]:
    from provisioner.program import build

    run = run_program(lambda: build(spec) and None, OfflineMaterialiser(spec.region), project=project,
                      stack=spec.team, config={"aws:region": spec.region})
    return run.registrations
