"""The data sources the program reads (the caller's identity, an SSM parameter, and the EC2 ones of
components/placement.py), answered from the sandbox.

Each answer has the fields the AWS provider's data source returns (camelCase, as Pulumi sends
them), built from the same API calls the provider makes: GetParameter, DescribeAvailabilityZones,
DescribeInstanceTypeOfferings, DescribeInstances.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provisioner.engines.sandbox.handlers.context import SandboxContext


def sandbox_invoke(ctx: SandboxContext, token: str, args: dict[str, Any], default_region: str) -> dict[str, Any] | None:
    """The sandbox's answer to an invoke, or None for one it leaves to the offline placeholders."""
    region = args.get("region") or default_region
    if token == "aws:index/getCallerIdentity:getCallerIdentity":
        return {"accountId": ctx.account_id, "arn": ctx.admin_arn, "userId": "sandbox", "id": ctx.account_id}
    if token == "aws:ssm/getParameter:getParameter":
        value = ctx.client("ssm", region).get_parameter(Name=args["name"], WithDecryption=True)["Parameter"]["Value"]
        return {"name": args["name"], "value": value, "insecureValue": value, "type": "String", "id": args["name"],
                "arn": "", "version": 1, "withDecryption": True}
    if token in EC2_INVOKES:
        return EC2_INVOKES[token](ctx.client("ec2", region), args)
    return None


def _ec2_filters(args: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"Name": f["name"], "Values": list(f["values"])} for f in args.get("filters") or []]


def _availability_zones(ec2: Any, args: dict[str, Any]) -> dict[str, Any]:
    filters = _ec2_filters(args) + ([{"Name": "state", "Values": [args["state"]]}] if args.get("state") else [])
    zones = sorted(ec2.describe_availability_zones(Filters=filters)["AvailabilityZones"], key=lambda z: z["ZoneName"])
    return {"names": [z["ZoneName"] for z in zones], "zoneIds": [z["ZoneId"] for z in zones], "id": ec2.meta.region_name}


def _instance_type_offerings(ec2: Any, args: dict[str, Any]) -> dict[str, Any]:
    pages = ec2.get_paginator("describe_instance_type_offerings").paginate(
        LocationType=args.get("locationType") or "region", Filters=_ec2_filters(args))
    offers = [o for page in pages for o in page["InstanceTypeOfferings"]]
    return {"locations": [o["Location"] for o in offers], "instanceTypes": [o["InstanceType"] for o in offers],
            "locationTypes": [o["LocationType"] for o in offers], "id": ec2.meta.region_name}


def _instances(ec2: Any, args: dict[str, Any]) -> dict[str, Any]:
    filters = _ec2_filters(args) + [{"Name": f"tag:{k}", "Values": [v]} for k, v in (args.get("instanceTags") or {}).items()]
    if args.get("instanceStateNames"):
        filters.append({"Name": "instance-state-name", "Values": list(args["instanceStateNames"])})
    found = [i for r in ec2.describe_instances(Filters=filters)["Reservations"] for i in r["Instances"]]
    return {"ids": [i["InstanceId"] for i in found], "privateIps": [i.get("PrivateIpAddress", "") for i in found],
            "publicIps": [], "ipv6Addresses": [], "id": ec2.meta.region_name}


def _instance(ec2: Any, args: dict[str, Any]) -> dict[str, Any]:
    (found,) = [i for r in ec2.describe_instances(InstanceIds=[args["instanceId"]])["Reservations"] for i in r["Instances"]]
    return {"id": found["InstanceId"], "instanceId": found["InstanceId"], "ami": found["ImageId"],
            "instanceType": found["InstanceType"], "availabilityZone": found.get("Placement", {}).get("AvailabilityZone", ""),
            "subnetId": found.get("SubnetId", ""), "instanceState": found["State"]["Name"],
            "tags": {t["Key"]: t["Value"] for t in found.get("Tags") or []}}


# The EC2 data sources the program reads (placement.py), answered from moto as the AWS provider would.
EC2_INVOKES = {
    "aws:index/getAvailabilityZones:getAvailabilityZones": _availability_zones,
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": _instance_type_offerings,
    "aws:ec2/getInstances:getInstances": _instances,
    "aws:ec2/getInstance:getInstance": _instance,
}
