"""Sandbox handlers for the team network: VPC, subnets, gateways, routes, endpoints, security groups.

Each carries the URN tag of ec2.py, by which an interrupted create is found again.
"""

from __future__ import annotations

from typing import Any

from provisioner.engines.sandbox.handlers.base import Handler, updated_outputs
from provisioner.engines.sandbox.handlers.catalog import register
from provisioner.engines.sandbox.handlers.common import as_int, ignore_missing, tag_list
from provisioner.engines.sandbox.handlers.ec2 import Ec2Handler, filters, urn_digest


@register("aws:ec2/vpc:Vpc")
class VpcHandler(Ec2Handler):
    """A VPC with DNS support and hostnames.

    Sandbox: same as AWS for what envctl uses; one extra tag, envctl:sandbox-urn.
    """

    replace_on = ("cidrBlock", "instanceTenancy")
    not_found, remove_call = ("InvalidVpcID.NotFound",), ("delete_vpc", "VpcId")
    listing, id_filter, kind = ("describe_vpcs", "Vpcs", "VpcId"), "vpc-id", "vpc"

    def create(self, ctx, reg, region):
        ec2 = self.client(ctx, region)
        vpc = ec2.create_vpc(CidrBlock=reg.inputs["cidrBlock"], TagSpecifications=self.tag_spec(ctx, reg))["Vpc"]
        self.configure(ec2, vpc["VpcId"], reg.inputs)
        return self.result(ctx, reg, region, vpc["VpcId"], vpc)

    def configure(self, ec2, vpc_id, inputs):
        ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": bool(inputs.get("enableDnsSupport", True))})
        ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": bool(inputs.get("enableDnsHostnames", False))})

    def result(self, ctx, reg, region, vpc_id, vpc):
        ec2 = self.client(ctx, region)
        default_sg = ec2.describe_security_groups(Filters=filters("vpc-id", vpc_id) + filters("group-name", "default"))
        main_rt = ec2.describe_route_tables(Filters=filters("vpc-id", vpc_id) + filters("association.main", "true"))
        return vpc_id, {
            **reg.inputs, "id": vpc_id, "arn": self.arn(ctx, region, vpc_id), "ownerId": ctx.account_id,
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


class _GroupRulesHandler(Ec2Handler):
    """A security group whose rules are exactly the program's; updated in place."""

    kind = "security-group"

    def configure(self, ec2, group_id, inputs):
        """Make the group's rules exactly the `ingress` and `egress` inputs."""
        group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        if group.get("IpPermissions"):
            ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=[_strip(p) for p in group["IpPermissions"]])
        if group.get("IpPermissionsEgress"):
            ec2.revoke_security_group_egress(GroupId=group_id, IpPermissions=[_strip(p) for p in group["IpPermissionsEgress"]])
        if inputs.get("ingress"):
            ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=ip_permissions(inputs["ingress"]))
        if inputs.get("egress"):
            ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=ip_permissions(inputs["egress"]))

    def _outputs(self, ctx, reg, region, group_id, name):
        return {**reg.inputs, "id": group_id, "name": name, "ownerId": ctx.account_id,
                "arn": self.arn(ctx, region, group_id)}


@register("aws:ec2/securityGroup:SecurityGroup")
class SecurityGroupHandler(_GroupRulesHandler):
    """A security group whose rules are exactly the program's (AWS's default allow-all egress is removed).

    Sandbox: rules are stored, never enforced (moto moves no packets); Pulumi autonames the group
    when the program gives no name, the sandbox does the same from the logical name.
    """

    replace_on = ("name", "namePrefix", "description", "vpcId")
    not_found, remove_call = ("InvalidGroup.NotFound",), ("delete_security_group", "GroupId")
    listing, id_filter = ("describe_security_groups", "SecurityGroups", "GroupId"), "group-id"

    def create(self, ctx, reg, region):
        ec2 = self.client(ctx, region)
        name = reg.inputs.get("name") or f"{reg.name}-{urn_digest(reg.urn)[:7]}"
        group_id = ec2.create_security_group(
            GroupName=name, Description=reg.inputs.get("description") or "Managed by Pulumi", VpcId=reg.inputs["vpcId"],
            TagSpecifications=self.tag_spec(ctx, reg),
        )["GroupId"]
        self.configure(ec2, group_id, reg.inputs)
        return group_id, self._outputs(ctx, reg, region, group_id, name)

    def result(self, ctx, reg, region, group_id, group):
        return group_id, self._outputs(ctx, reg, region, group_id, group["GroupName"])


@register("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
class DefaultSecurityGroupHandler(_GroupRulesHandler):
    """Takes over the VPC's default security group and sets its rules (envctl: none at all).

    Sandbox: same as AWS: deleting it only forgets it, since a VPC's default group cannot be deleted.
    """

    replace_on = ("vpcId",)

    def create(self, ctx, reg, region):
        ec2 = self.client(ctx, region)
        group = ec2.describe_security_groups(
            Filters=filters("vpc-id", reg.inputs["vpcId"]) + filters("group-name", "default"))["SecurityGroups"][0]
        self.configure(ec2, group["GroupId"], reg.inputs)
        ec2.create_tags(Resources=[group["GroupId"]], Tags=tag_list(self.ec2_tags(ctx, reg)))
        return group["GroupId"], self._outputs(ctx, reg, region, group["GroupId"], "default")

    def delete(self, ctx, old, region):
        return None

    def find(self, ctx, reg, region):
        return self.create(ctx, reg, region)


@register("aws:ec2/subnet:Subnet")
class SubnetHandler(Ec2Handler):
    """A subnet in one availability zone; never maps public IPs for envctl.

    Sandbox: same as AWS for what envctl uses; one extra tag, envctl:sandbox-urn.
    """

    replace_on = ("vpcId", "cidrBlock", "availabilityZone")
    not_found, remove_call = ("InvalidSubnetID.NotFound",), ("delete_subnet", "SubnetId")
    listing, id_filter, kind = ("describe_subnets", "Subnets", "SubnetId"), "subnet-id", "subnet"

    def create(self, ctx, reg, region):
        ec2 = self.client(ctx, region)
        subnet = ec2.create_subnet(
            VpcId=reg.inputs["vpcId"], CidrBlock=reg.inputs["cidrBlock"], AvailabilityZone=reg.inputs.get("availabilityZone"),
            TagSpecifications=self.tag_spec(ctx, reg),
        )["Subnet"]
        self.configure(ec2, subnet["SubnetId"], reg.inputs)
        return self.result(ctx, reg, region, subnet["SubnetId"], subnet)

    def configure(self, ec2, subnet_id, inputs):
        public_ip = bool(inputs.get("mapPublicIpOnLaunch", False))
        ec2.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": public_ip})

    def result(self, ctx, reg, region, subnet_id, subnet):
        return subnet_id, {**reg.inputs, "id": subnet_id, "arn": self.arn(ctx, region, subnet_id), "ownerId": ctx.account_id}


@register("aws:ec2/internetGateway:InternetGateway")
class InternetGatewayHandler(Ec2Handler):
    """An internet gateway attached to the team's VPC (only the NAT's public subnet routes to it).

    Sandbox: same as AWS for what envctl uses.
    """

    replace_on = ("vpcId",)
    not_found = ("InvalidInternetGatewayID.NotFound",)
    listing, kind = ("describe_internet_gateways", "InternetGateways", "InternetGatewayId"), "internet-gateway"

    def create(self, ctx, reg, region):
        ec2 = self.client(ctx, region)
        created = ec2.create_internet_gateway(TagSpecifications=self.tag_spec(ctx, reg))
        gateway_id = created["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=reg.inputs["vpcId"])
        return gateway_id, self._outputs(ctx, reg, region, gateway_id)

    def remove(self, ec2, old):
        ignore_missing(lambda: ec2.detach_internet_gateway(InternetGatewayId=old.id, VpcId=old.inputs["vpcId"]),
                       *self.not_found, "Gateway.NotAttached", "InvalidVpcID.NotFound")
        ec2.delete_internet_gateway(InternetGatewayId=old.id)

    def result(self, ctx, reg, region, gateway_id, gateway):
        if not gateway.get("Attachments"):
            self.client(ctx, region).attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=reg.inputs["vpcId"])
        return gateway_id, self._outputs(ctx, reg, region, gateway_id)

    def _outputs(self, ctx, reg, region, gateway_id):
        return {**reg.inputs, "id": gateway_id, "arn": self.arn(ctx, region, gateway_id)}


@register("aws:ec2/eip:Eip")
class EipHandler(Ec2Handler):
    """An Elastic IP for the NAT gateway.

    Sandbox: moto hands out addresses from a fake pool; nothing is reachable through them.
    """

    replace_on = ("domain",)
    not_found, remove_call = ("InvalidAllocationID.NotFound",), ("release_address", "AllocationId")
    listing, kind = ("describe_addresses", "Addresses", "AllocationId"), "elastic-ip"

    def create(self, ctx, reg, region):
        address = self.client(ctx, region).allocate_address(Domain="vpc", TagSpecifications=self.tag_spec(ctx, reg))
        return self.result(ctx, reg, region, address["AllocationId"], address)

    def result(self, ctx, reg, region, allocation_id, address):
        return allocation_id, {**reg.inputs, "id": allocation_id, "allocationId": allocation_id, "publicIp": address["PublicIp"]}


@register("aws:ec2/natGateway:NatGateway")
class NatGatewayHandler(Ec2Handler):
    """A NAT gateway in the public subnet: the host's only way out.

    Sandbox: moto makes it available at once and moves no traffic.
    """

    replace_on = ("subnetId", "allocationId", "connectivityType")
    not_found, remove_call = ("NatGatewayNotFound",), ("delete_nat_gateway", "NatGatewayId")
    listing, kind = ("describe_nat_gateways", "NatGateways", "NatGatewayId"), "natgateway"

    def create(self, ctx, reg, region):
        nat = self.client(ctx, region).create_nat_gateway(
            SubnetId=reg.inputs["subnetId"], AllocationId=reg.inputs["allocationId"], TagSpecifications=self.tag_spec(ctx, reg),
        )["NatGateway"]
        return self.result(ctx, reg, region, nat["NatGatewayId"], nat)

    def listed(self, ec2, by):
        return [nat for nat in super().listed(ec2, by) if nat.get("State") not in ("deleted", "deleting")]

    def result(self, ctx, reg, region, nat_id, nat):
        return nat_id, {**reg.inputs, "id": nat_id}


def _route_target(route: dict[str, Any]) -> dict[str, str]:
    for key, api in (("gatewayId", "GatewayId"), ("natGatewayId", "NatGatewayId"), ("vpcEndpointId", "VpcEndpointId"),
                     ("networkInterfaceId", "NetworkInterfaceId"), ("transitGatewayId", "TransitGatewayId")):
        if route.get(key):
            return {api: route[key]}
    return {}


@register("aws:ec2/routeTable:RouteTable")
class RouteTableHandler(Ec2Handler):
    """A route table with exactly the program's routes (besides the VPC's local route).

    Sandbox: same as AWS for what envctl uses; routes move no traffic.
    """

    replace_on = ("vpcId",)
    not_found, remove_call = ("InvalidRouteTableID.NotFound",), ("delete_route_table", "RouteTableId")
    listing, kind = ("describe_route_tables", "RouteTables", "RouteTableId"), "route-table"

    def create(self, ctx, reg, region):
        table_id = self.client(ctx, region).create_route_table(
            VpcId=reg.inputs["vpcId"], TagSpecifications=self.tag_spec(ctx, reg))["RouteTable"]["RouteTableId"]
        return self.result(ctx, reg, region, table_id, {})

    def configure(self, ec2, table_id, inputs):
        """Exactly the program's routes."""
        table = ec2.describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0]
        for route in table.get("Routes", []):
            if route.get("GatewayId") != "local" and route.get("DestinationCidrBlock"):
                ec2.delete_route(RouteTableId=table_id, DestinationCidrBlock=route["DestinationCidrBlock"])
        for route in inputs.get("routes") or []:
            ec2.create_route(RouteTableId=table_id, DestinationCidrBlock=route["cidrBlock"], **_route_target(route))

    def result(self, ctx, reg, region, table_id, table):
        """The table with the program's routes (an interrupted create may have stopped before them)."""
        self.configure(self.client(ctx, region), table_id, reg.inputs)
        return table_id, {**reg.inputs, "id": table_id, "arn": self.arn(ctx, region, table_id), "ownerId": ctx.account_id}


@register("aws:ec2/routeTableAssociation:RouteTableAssociation")
class RouteTableAssociationHandler(Handler):
    """Associates a subnet with a route table.

    Sandbox: same as AWS for what envctl uses.
    """

    replace_on = ("subnetId", "gatewayId", "routeTableId")
    service = "ec2"
    not_found, remove_call = ("InvalidAssociationID.NotFound",), ("disassociate_route_table", "AssociationId")

    def create(self, ctx, reg, region):
        association_id = self.client(ctx, region).associate_route_table(
            SubnetId=reg.inputs["subnetId"], RouteTableId=reg.inputs["routeTableId"])["AssociationId"]
        return association_id, {**reg.inputs, "id": association_id}

    def find(self, ctx, reg, region):
        tables = self.client(ctx, region).describe_route_tables(
            Filters=filters("association.subnet-id", reg.inputs["subnetId"]))["RouteTables"]
        for table in tables:
            for association in table.get("Associations", []):
                if association.get("SubnetId") == reg.inputs["subnetId"] and table["RouteTableId"] == reg.inputs["routeTableId"]:
                    return association["RouteTableAssociationId"], {**reg.inputs, "id": association["RouteTableAssociationId"]}
        return None


@register("aws:ec2/vpcEndpoint:VpcEndpoint")
class VpcEndpointHandler(Ec2Handler):
    """A VPC endpoint (envctl: the S3 gateway endpoint on the private route table).

    Sandbox: stored, moves no traffic.
    """

    replace_on = ("vpcId", "serviceName", "vpcEndpointType")
    listing, kind = ("describe_vpc_endpoints", "VpcEndpoints", "VpcEndpointId"), "vpc-endpoint"

    def create(self, ctx, reg, region):
        endpoint = self.client(ctx, region).create_vpc_endpoint(
            VpcId=reg.inputs["vpcId"], ServiceName=reg.inputs["serviceName"],
            VpcEndpointType=reg.inputs.get("vpcEndpointType", "Gateway"), RouteTableIds=reg.inputs.get("routeTableIds") or [],
            TagSpecifications=self.tag_spec(ctx, reg),
        )["VpcEndpoint"]
        return self.result(ctx, reg, region, endpoint["VpcEndpointId"], endpoint)

    def update(self, ctx, reg, old, region):
        before, after = set(old.inputs.get("routeTableIds") or []), set(reg.inputs.get("routeTableIds") or [])
        if before != after:
            self.client(ctx, region).modify_vpc_endpoint(
                VpcEndpointId=old.id, AddRouteTableIds=sorted(after - before), RemoveRouteTableIds=sorted(before - after))
        self.sync_tags(ctx, reg, old, region)
        return updated_outputs(reg, old)

    def remove(self, ec2, old):
        ec2.delete_vpc_endpoints(VpcEndpointIds=[old.id])

    def result(self, ctx, reg, region, endpoint_id, endpoint):
        return endpoint_id, {**reg.inputs, "id": endpoint_id, "arn": self.arn(ctx, region, endpoint_id)}
