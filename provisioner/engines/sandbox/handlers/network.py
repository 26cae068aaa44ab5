"""Sandbox handlers for the team network: VPC, subnets, gateways, routes, endpoints, security groups.

Resources EC2 names by itself (vpc-…, subnet-…) carry one extra tag in the sandbox,
`envctl:sandbox-urn` (a digest of the resource's URN), so that a create interrupted by a
killed process can be found and adopted instead of leaking.
"""

from __future__ import annotations

import hashlib
from typing import Any

from botocore.exceptions import ClientError

from provisioner.engines.mocked import Registration
from provisioner.engines.sandbox.handlers.common import as_int, ignore_missing, is_error, tag_list
from provisioner.engines.sandbox.handlers.registry import Handler, SandboxContext, register
from provisioner.engines.sandbox.state import StoredResource

URN_TAG = "envctl:sandbox-urn"


def urn_digest(urn: str) -> str:
    return hashlib.sha256(urn.encode()).hexdigest()[:20]


def ec2_tags(ctx: SandboxContext, reg: Registration | StoredResource) -> dict[str, str]:
    return {**ctx.tags(reg), URN_TAG: urn_digest(reg.urn)}


def tag_spec(ctx: SandboxContext, reg: Registration, resource_type: str) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": tag_list(ec2_tags(ctx, reg))}]


def by_urn_filter(reg: Registration) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{URN_TAG}", "Values": [urn_digest(reg.urn)]}]


def sync_tags(ctx: SandboxContext, reg: Registration, old: StoredResource, region: str, resource_id: str) -> None:
    ec2 = ctx.client("ec2", region)
    new, before = ec2_tags(ctx, reg), ec2_tags(ctx, old)
    gone = [k for k in before if k not in new]
    if gone:
        ec2.delete_tags(Resources=[resource_id], Tags=[{"Key": k} for k in gone])
    if new != before:
        ec2.create_tags(Resources=[resource_id], Tags=tag_list(new))


def _ec2_arn(ctx: SandboxContext, region: str, kind: str, resource_id: str) -> str:
    return f"arn:aws:ec2:{region}:{ctx.account_id}:{kind}/{resource_id}"


@register("aws:ec2/vpc:Vpc")
class VpcHandler(Handler):
    """A VPC with DNS support and hostnames.

    Sandbox: same as AWS for what envctl uses; one extra tag, envctl:sandbox-urn.
    """

    replace_on = ("cidrBlock", "instanceTenancy")

    def create(self, ctx, reg, region):
        ec2 = ctx.client("ec2", region)
        vpc = ec2.create_vpc(CidrBlock=reg.inputs["cidrBlock"], TagSpecifications=tag_spec(ctx, reg, "vpc"))["Vpc"]
        self._attributes(ec2, vpc["VpcId"], reg.inputs)
        return vpc["VpcId"], self._outputs(ctx, reg, region, vpc["VpcId"])

    def update(self, ctx, reg, old, region):
        self._attributes(ctx.client("ec2", region), old.id, reg.inputs)
        sync_tags(ctx, reg, old, region, old.id)
        return self._outputs(ctx, reg, region, old.id)

    def delete(self, ctx, old, region):
        ignore_missing(lambda: ctx.client("ec2", region).delete_vpc(VpcId=old.id), "InvalidVpcID.NotFound")

    def exists(self, ctx, old, region):
        return bool(ctx.client("ec2", region).describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [old.id]}])["Vpcs"])

    def find(self, ctx, reg, region):
        found = ctx.client("ec2", region).describe_vpcs(Filters=by_urn_filter(reg))["Vpcs"]
        return (found[0]["VpcId"], self._outputs(ctx, reg, region, found[0]["VpcId"])) if found else None

    @staticmethod
    def _attributes(ec2, vpc_id: str, inputs: dict[str, Any]) -> None:
        ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": bool(inputs.get("enableDnsSupport", True))})
        ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": bool(inputs.get("enableDnsHostnames", False))})

    @staticmethod
    def _outputs(ctx, reg, region, vpc_id):
        ec2 = ctx.client("ec2", region)
        in_vpc = {"Name": "vpc-id", "Values": [vpc_id]}
        default_sg = ec2.describe_security_groups(Filters=[in_vpc, {"Name": "group-name", "Values": ["default"]}])
        main_rt = ec2.describe_route_tables(Filters=[in_vpc, {"Name": "association.main", "Values": ["true"]}])
        return {
            **reg.inputs, "id": vpc_id, "arn": _ec2_arn(ctx, region, "vpc", vpc_id), "ownerId": ctx.account_id,
            "defaultSecurityGroupId": default_sg["SecurityGroups"][0]["GroupId"] if default_sg["SecurityGroups"] else "",
            "mainRouteTableId": main_rt["RouteTables"][0]["RouteTableId"] if main_rt["RouteTables"] else "",
        }


def ip_permissions(rules: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Pulumi's ingress/egress rules as EC2 IpPermissions."""
    permissions = []
    for rule in rules or []:
        protocol = str(rule.get("protocol", "-1"))
        permission: dict[str, Any] = {"IpProtocol": "-1" if protocol in ("-1", "all") else protocol}
        if permission["IpProtocol"] != "-1":
            permission.update(FromPort=as_int(rule.get("fromPort", 0)), ToPort=as_int(rule.get("toPort", 0)))
        description = {"Description": rule["description"]} if rule.get("description") else {}
        permission["IpRanges"] = [{"CidrIp": cidr, **description} for cidr in rule.get("cidrBlocks") or []]
        permission["Ipv6Ranges"] = [{"CidrIpv6": cidr, **description} for cidr in rule.get("ipv6CidrBlocks") or []]
        permission["UserIdGroupPairs"] = [{"GroupId": group} for group in rule.get("securityGroups") or []]
        permissions.append(permission)
    return permissions


def _strip(permission: dict[str, Any]) -> dict[str, Any]:
    """What describe_security_groups returns, in the shape authorize/revoke take."""
    fields = ("IpProtocol", "FromPort", "ToPort", "IpRanges", "Ipv6Ranges", "UserIdGroupPairs", "PrefixListIds")
    keep = {k: v for k, v in permission.items() if k in fields and v}
    return keep


def sync_rules(ec2, group_id: str, ingress: list[dict[str, Any]] | None, egress: list[dict[str, Any]] | None) -> None:
    """Make the group's rules exactly the given ones."""
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    if group.get("IpPermissions"):
        ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=[_strip(p) for p in group["IpPermissions"]])
    if group.get("IpPermissionsEgress"):
        ec2.revoke_security_group_egress(GroupId=group_id, IpPermissions=[_strip(p) for p in group["IpPermissionsEgress"]])
    if ingress:
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=ip_permissions(ingress))
    if egress:
        ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=ip_permissions(egress))


@register("aws:ec2/securityGroup:SecurityGroup")
class SecurityGroupHandler(Handler):
    """A security group whose rules are exactly the program's (AWS's default allow-all egress is removed).

    Sandbox: rules are stored, never enforced (moto moves no packets); Pulumi autonames the group
    when the program gives no name, the sandbox does the same from the logical name.
    """

    replace_on = ("name", "namePrefix", "description", "vpcId")

    def create(self, ctx, reg, region):
        ec2 = ctx.client("ec2", region)
        name = reg.inputs.get("name") or f"{reg.name}-{urn_digest(reg.urn)[:7]}"
        group_id = ec2.create_security_group(
            GroupName=name, Description=reg.inputs.get("description") or "Managed by Pulumi", VpcId=reg.inputs["vpcId"],
            TagSpecifications=tag_spec(ctx, reg, "security-group"),
        )["GroupId"]
        sync_rules(ec2, group_id, reg.inputs.get("ingress"), reg.inputs.get("egress"))
        return group_id, self._outputs(ctx, reg, region, group_id, name)

    def update(self, ctx, reg, old, region):
        sync_rules(ctx.client("ec2", region), old.id, reg.inputs.get("ingress"), reg.inputs.get("egress"))
        sync_tags(ctx, reg, old, region, old.id)
        return self._outputs(ctx, reg, region, old.id, old.outputs.get("name", ""))

    def delete(self, ctx, old, region):
        ignore_missing(lambda: ctx.client("ec2", region).delete_security_group(GroupId=old.id), "InvalidGroup.NotFound")

    def exists(self, ctx, old, region):
        try:
            return bool(ctx.client("ec2", region).describe_security_groups(GroupIds=[old.id])["SecurityGroups"])
        except ClientError as exc:
            if is_error(exc, "InvalidGroup.NotFound"):
                return False
            raise

    def find(self, ctx, reg, region):
        found = ctx.client("ec2", region).describe_security_groups(Filters=by_urn_filter(reg))["SecurityGroups"]
        if not found:
            return None
        group = found[0]
        return group["GroupId"], self._outputs(ctx, reg, region, group["GroupId"], group["GroupName"])

    @staticmethod
    def _outputs(ctx, reg, region, group_id, name):
        return {**reg.inputs, "id": group_id, "name": name, "ownerId": ctx.account_id,
                "arn": _ec2_arn(ctx, region, "security-group", group_id)}


@register("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
class DefaultSecurityGroupHandler(Handler):
    """Takes over the VPC's default security group and sets its rules (envctl: none at all).

    Sandbox: same as AWS: deleting it only forgets it, since a VPC's default group cannot be deleted.
    """

    replace_on = ("vpcId",)

    def create(self, ctx, reg, region):
        ec2 = ctx.client("ec2", region)
        group = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [reg.inputs["vpcId"]]},
                                                      {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]
        sync_rules(ec2, group["GroupId"], reg.inputs.get("ingress"), reg.inputs.get("egress"))
        ec2.create_tags(Resources=[group["GroupId"]], Tags=tag_list(ec2_tags(ctx, reg)))
        return group["GroupId"], {**reg.inputs, "id": group["GroupId"], "name": "default",
                                  "arn": _ec2_arn(ctx, region, "security-group", group["GroupId"])}

    def update(self, ctx, reg, old, region):
        sync_rules(ctx.client("ec2", region), old.id, reg.inputs.get("ingress"), reg.inputs.get("egress"))
        sync_tags(ctx, reg, old, region, old.id)
        return {**old.outputs, **reg.inputs}

    def delete(self, ctx, old, region):
        return None

    def find(self, ctx, reg, region):
        return self.create(ctx, reg, region)


@register("aws:ec2/subnet:Subnet")
class SubnetHandler(Handler):
    """A subnet in one availability zone; never maps public IPs for envctl.

    Sandbox: same as AWS for what envctl uses; one extra tag, envctl:sandbox-urn.
    """

    replace_on = ("vpcId", "cidrBlock", "availabilityZone")

    def create(self, ctx, reg, region):
        ec2 = ctx.client("ec2", region)
        subnet = ec2.create_subnet(
            VpcId=reg.inputs["vpcId"], CidrBlock=reg.inputs["cidrBlock"], AvailabilityZone=reg.inputs.get("availabilityZone"),
            TagSpecifications=tag_spec(ctx, reg, "subnet"),
        )["Subnet"]
        self._public_ip(ec2, subnet["SubnetId"], reg.inputs)
        return subnet["SubnetId"], self._outputs(ctx, reg, region, subnet["SubnetId"])

    def update(self, ctx, reg, old, region):
        self._public_ip(ctx.client("ec2", region), old.id, reg.inputs)
        sync_tags(ctx, reg, old, region, old.id)
        return self._outputs(ctx, reg, region, old.id)

    def delete(self, ctx, old, region):
        ignore_missing(lambda: ctx.client("ec2", region).delete_subnet(SubnetId=old.id), "InvalidSubnetID.NotFound")

    def exists(self, ctx, old, region):
        return bool(ctx.client("ec2", region).describe_subnets(Filters=[{"Name": "subnet-id", "Values": [old.id]}])["Subnets"])

    def find(self, ctx, reg, region):
        found = ctx.client("ec2", region).describe_subnets(Filters=by_urn_filter(reg))["Subnets"]
        return (found[0]["SubnetId"], self._outputs(ctx, reg, region, found[0]["SubnetId"])) if found else None

    @staticmethod
    def _public_ip(ec2, subnet_id, inputs):
        ec2.modify_subnet_attribute(SubnetId=subnet_id,
                                    MapPublicIpOnLaunch={"Value": bool(inputs.get("mapPublicIpOnLaunch", False))})

    @staticmethod
    def _outputs(ctx, reg, region, subnet_id):
        return {**reg.inputs, "id": subnet_id, "arn": _ec2_arn(ctx, region, "subnet", subnet_id), "ownerId": ctx.account_id}


@register("aws:ec2/internetGateway:InternetGateway")
class InternetGatewayHandler(Handler):
    """An internet gateway attached to the team's VPC (only the NAT's public subnet routes to it).

    Sandbox: same as AWS for what envctl uses.
    """

    replace_on = ("vpcId",)

    def create(self, ctx, reg, region):
        ec2 = ctx.client("ec2", region)
        gateway = ec2.create_internet_gateway(TagSpecifications=tag_spec(ctx, reg, "internet-gateway"))["InternetGateway"]
        gateway_id = gateway["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=reg.inputs["vpcId"])
        return gateway_id, {**reg.inputs, "id": gateway_id, "arn": _ec2_arn(ctx, region, "internet-gateway", gateway_id)}

    def update(self, ctx, reg, old, region):
        sync_tags(ctx, reg, old, region, old.id)
        return {**old.outputs, **reg.inputs}

    def delete(self, ctx, old, region):
        ec2 = ctx.client("ec2", region)
        ignore_missing(lambda: ec2.detach_internet_gateway(InternetGatewayId=old.id, VpcId=old.inputs["vpcId"]),
                       "InvalidInternetGatewayID.NotFound", "Gateway.NotAttached", "InvalidVpcID.NotFound")
        ignore_missing(lambda: ec2.delete_internet_gateway(InternetGatewayId=old.id), "InvalidInternetGatewayID.NotFound")

    def find(self, ctx, reg, region):
        found = ctx.client("ec2", region).describe_internet_gateways(Filters=by_urn_filter(reg))["InternetGateways"]
        if not found:
            return None
        gateway_id = found[0]["InternetGatewayId"]
        if not found[0].get("Attachments"):
            ctx.client("ec2", region).attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=reg.inputs["vpcId"])
        return gateway_id, {**reg.inputs, "id": gateway_id, "arn": _ec2_arn(ctx, region, "internet-gateway", gateway_id)}


@register("aws:ec2/eip:Eip")
class EipHandler(Handler):
    """An Elastic IP for the NAT gateway.

    Sandbox: moto hands out addresses from a fake pool; nothing is reachable through them.
    """

    replace_on = ("domain",)

    def create(self, ctx, reg, region):
        address = ctx.client("ec2", region).allocate_address(Domain="vpc", TagSpecifications=tag_spec(ctx, reg, "elastic-ip"))
        return address["AllocationId"], self._outputs(reg, address["AllocationId"], address["PublicIp"])

    def update(self, ctx, reg, old, region):
        sync_tags(ctx, reg, old, region, old.id)
        return {**old.outputs, **reg.inputs}

    def delete(self, ctx, old, region):
        ignore_missing(lambda: ctx.client("ec2", region).release_address(AllocationId=old.id), "InvalidAllocationID.NotFound")

    def find(self, ctx, reg, region):
        found = ctx.client("ec2", region).describe_addresses(Filters=by_urn_filter(reg))["Addresses"]
        return (found[0]["AllocationId"], self._outputs(reg, found[0]["AllocationId"], found[0]["PublicIp"])) if found else None

    @staticmethod
    def _outputs(reg, allocation_id, public_ip):
        return {**reg.inputs, "id": allocation_id, "allocationId": allocation_id, "publicIp": public_ip}


@register("aws:ec2/natGateway:NatGateway")
class NatGatewayHandler(Handler):
    """A NAT gateway in the public subnet: the host's only way out.

    Sandbox: moto makes it available at once and moves no traffic.
    """

    replace_on = ("subnetId", "allocationId", "connectivityType")

    def create(self, ctx, reg, region):
        nat = ctx.client("ec2", region).create_nat_gateway(
            SubnetId=reg.inputs["subnetId"], AllocationId=reg.inputs["allocationId"],
            TagSpecifications=tag_spec(ctx, reg, "natgateway"),
        )["NatGateway"]
        return nat["NatGatewayId"], {**reg.inputs, "id": nat["NatGatewayId"]}

    def update(self, ctx, reg, old, region):
        sync_tags(ctx, reg, old, region, old.id)
        return {**old.outputs, **reg.inputs}

    def delete(self, ctx, old, region):
        ignore_missing(lambda: ctx.client("ec2", region).delete_nat_gateway(NatGatewayId=old.id), "NatGatewayNotFound")

    def find(self, ctx, reg, region):
        found = [n for n in ctx.client("ec2", region).describe_nat_gateways(Filters=by_urn_filter(reg))["NatGateways"]
                 if n.get("State") not in ("deleted", "deleting")]
        return (found[0]["NatGatewayId"], {**reg.inputs, "id": found[0]["NatGatewayId"]}) if found else None


def _route_target(route: dict[str, Any]) -> dict[str, str]:
    for key, api in (("gatewayId", "GatewayId"), ("natGatewayId", "NatGatewayId"), ("vpcEndpointId", "VpcEndpointId"),
                     ("networkInterfaceId", "NetworkInterfaceId"), ("transitGatewayId", "TransitGatewayId")):
        if route.get(key):
            return {api: route[key]}
    return {}


@register("aws:ec2/routeTable:RouteTable")
class RouteTableHandler(Handler):
    """A route table with exactly the program's routes (besides the VPC's local route).

    Sandbox: same as AWS for what envctl uses; routes move no traffic.
    """

    replace_on = ("vpcId",)

    def create(self, ctx, reg, region):
        ec2 = ctx.client("ec2", region)
        tags = tag_spec(ctx, reg, "route-table")
        table_id = ec2.create_route_table(VpcId=reg.inputs["vpcId"], TagSpecifications=tags)["RouteTable"]["RouteTableId"]
        self._sync_routes(ec2, table_id, reg.inputs.get("routes"))
        return table_id, self._outputs(ctx, reg, region, table_id)

    def update(self, ctx, reg, old, region):
        self._sync_routes(ctx.client("ec2", region), old.id, reg.inputs.get("routes"))
        sync_tags(ctx, reg, old, region, old.id)
        return self._outputs(ctx, reg, region, old.id)

    def delete(self, ctx, old, region):
        ignore_missing(lambda: ctx.client("ec2", region).delete_route_table(RouteTableId=old.id), "InvalidRouteTableID.NotFound")

    def find(self, ctx, reg, region):
        found = ctx.client("ec2", region).describe_route_tables(Filters=by_urn_filter(reg))["RouteTables"]
        if not found:
            return None
        table_id = found[0]["RouteTableId"]
        self._sync_routes(ctx.client("ec2", region), table_id, reg.inputs.get("routes"))
        return table_id, self._outputs(ctx, reg, region, table_id)

    @staticmethod
    def _sync_routes(ec2, table_id: str, routes: list[dict[str, Any]] | None) -> None:
        table = ec2.describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0]
        for route in table.get("Routes", []):
            if route.get("GatewayId") != "local" and route.get("DestinationCidrBlock"):
                ec2.delete_route(RouteTableId=table_id, DestinationCidrBlock=route["DestinationCidrBlock"])
        for route in routes or []:
            ec2.create_route(RouteTableId=table_id, DestinationCidrBlock=route["cidrBlock"], **_route_target(route))

    @staticmethod
    def _outputs(ctx, reg, region, table_id):
        return {**reg.inputs, "id": table_id, "arn": _ec2_arn(ctx, region, "route-table", table_id), "ownerId": ctx.account_id}


@register("aws:ec2/routeTableAssociation:RouteTableAssociation")
class RouteTableAssociationHandler(Handler):
    """Associates a subnet with a route table.

    Sandbox: same as AWS for what envctl uses.
    """

    replace_on = ("subnetId", "gatewayId", "routeTableId")

    def create(self, ctx, reg, region):
        association_id = ctx.client("ec2", region).associate_route_table(
            SubnetId=reg.inputs["subnetId"], RouteTableId=reg.inputs["routeTableId"])["AssociationId"]
        return association_id, {**reg.inputs, "id": association_id}

    def delete(self, ctx, old, region):
        ignore_missing(lambda: ctx.client("ec2", region).disassociate_route_table(AssociationId=old.id),
                       "InvalidAssociationID.NotFound")

    def find(self, ctx, reg, region):
        tables = ctx.client("ec2", region).describe_route_tables(
            Filters=[{"Name": "association.subnet-id", "Values": [reg.inputs["subnetId"]]}])["RouteTables"]
        for table in tables:
            for association in table.get("Associations", []):
                if association.get("SubnetId") == reg.inputs["subnetId"] and table["RouteTableId"] == reg.inputs["routeTableId"]:
                    return association["RouteTableAssociationId"], {**reg.inputs, "id": association["RouteTableAssociationId"]}
        return None


@register("aws:ec2/vpcEndpoint:VpcEndpoint")
class VpcEndpointHandler(Handler):
    """A VPC endpoint (envctl: the S3 gateway endpoint on the private route table).

    Sandbox: stored, moves no traffic.
    """

    replace_on = ("vpcId", "serviceName", "vpcEndpointType")

    def create(self, ctx, reg, region):
        endpoint = ctx.client("ec2", region).create_vpc_endpoint(
            VpcId=reg.inputs["vpcId"], ServiceName=reg.inputs["serviceName"],
            VpcEndpointType=reg.inputs.get("vpcEndpointType", "Gateway"), RouteTableIds=reg.inputs.get("routeTableIds") or [],
            TagSpecifications=tag_spec(ctx, reg, "vpc-endpoint"),
        )["VpcEndpoint"]
        return endpoint["VpcEndpointId"], {**reg.inputs, "id": endpoint["VpcEndpointId"],
                                           "arn": _ec2_arn(ctx, region, "vpc-endpoint", endpoint["VpcEndpointId"])}

    def update(self, ctx, reg, old, region):
        before, after = set(old.inputs.get("routeTableIds") or []), set(reg.inputs.get("routeTableIds") or [])
        if before != after:
            ctx.client("ec2", region).modify_vpc_endpoint(
                VpcEndpointId=old.id, AddRouteTableIds=sorted(after - before), RemoveRouteTableIds=sorted(before - after))
        sync_tags(ctx, reg, old, region, old.id)
        return {**old.outputs, **reg.inputs}

    def delete(self, ctx, old, region):
        ctx.client("ec2", region).delete_vpc_endpoints(VpcEndpointIds=[old.id])

    def find(self, ctx, reg, region):
        found = ctx.client("ec2", region).describe_vpc_endpoints(Filters=by_urn_filter(reg))["VpcEndpoints"]
        if not found:
            return None
        endpoint_id = found[0]["VpcEndpointId"]
        return endpoint_id, {**reg.inputs, "id": endpoint_id, "arn": _ec2_arn(ctx, region, "vpc-endpoint", endpoint_id)}
