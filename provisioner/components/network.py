"""TeamNetwork: a dedicated VPC with a private subnet for the host and NAT for egress only."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass
class TeamNetworkArgs:
    team: str
    region: str
    cidr: str
    availability_zone: pulumi.Input[str]  # placement.host_zone: the zone that offers the host's type


def split_cidr(cidr: str) -> tuple[str, str]:
    """(private, public): the first half for hosts, the third quarter for the NAT gateway."""
    net = ipaddress.IPv4Network(cidr)
    private, rest = net.subnets(prefixlen_diff=1)
    public = next(rest.subnets(prefixlen_diff=1))
    return str(private), str(public)


class TeamNetwork(pulumi.ComponentResource):
    def __init__(self, name: str, args: TeamNetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("envctl:index:TeamNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        private_cidr, public_cidr = split_cidr(args.cidr)

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc", cidr_block=args.cidr, enable_dns_hostnames=True, enable_dns_support=True,
            tags={"Name": f"envctl-{args.team}"}, opts=child,
        )
        # AWS gives every VPC a default group that allows traffic between its members: empty it.
        self.default_security_group = aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=self.vpc.id, ingress=[], egress=[], opts=child,
        )
        self.public_subnet = aws.ec2.Subnet(
            f"{name}-public", vpc_id=self.vpc.id, cidr_block=public_cidr, availability_zone=args.availability_zone,
            map_public_ip_on_launch=False, tags={"Name": f"envctl-{args.team}-public"}, opts=child,
        )
        self.private_subnet = aws.ec2.Subnet(
            f"{name}-private", vpc_id=self.vpc.id, cidr_block=private_cidr, availability_zone=args.availability_zone,
            map_public_ip_on_launch=False, tags={"Name": f"envctl-{args.team}-private"}, opts=child,
        )
        self.internet_gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, opts=child)
        self.nat_ip = aws.ec2.Eip(f"{name}-nat-ip", domain="vpc", opts=child)
        self.nat_gateway = aws.ec2.NatGateway(
            f"{name}-nat", allocation_id=self.nat_ip.allocation_id, subnet_id=self.public_subnet.id,
            tags={"Name": f"envctl-{args.team}"}, opts=pulumi.ResourceOptions(parent=self, depends_on=[self.internet_gateway]),
        )
        self.public_routes = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": self.internet_gateway.id}], opts=child,
        )
        self.private_routes = aws.ec2.RouteTable(
            f"{name}-private-rt", vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": self.nat_gateway.id}], opts=child,
        )
        aws.ec2.RouteTableAssociation(f"{name}-public-rta", subnet_id=self.public_subnet.id, route_table_id=self.public_routes.id,
                                      opts=child)
        self.private_association = aws.ec2.RouteTableAssociation(
            f"{name}-private-rta", subnet_id=self.private_subnet.id, route_table_id=self.private_routes.id, opts=child)
        # S3 traffic (DAGs, backups) stays on the AWS network and costs nothing.
        self.s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-s3", vpc_id=self.vpc.id, service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway", route_table_ids=[self.private_routes.id], opts=child,
        )
        # What a host in the private subnet needs before it boots: without them its package installs
        # and downloads have no way out (an instance depends on its subnet only, unless told).
        self.egress: list[pulumi.Resource] = [self.nat_gateway, self.private_routes, self.private_association, self.s3_endpoint]
        self.host_security_group = aws.ec2.SecurityGroup(
            f"{name}-host-sg", vpc_id=self.vpc.id, description=f"envctl {args.team} Airflow host: no ingress, HTTPS/HTTP egress",
            ingress=[],
            egress=[
                {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"],
                 "description": "HTTPS: AWS APIs, images, packages"},
                {"protocol": "tcp", "from_port": 80, "to_port": 80, "cidr_blocks": ["0.0.0.0/0"],
                 "description": "HTTP: OS package mirrors"},
            ],
            tags={"Name": f"envctl-{args.team}-host"}, opts=child,
        )
        self.register_outputs({"vpc_id": self.vpc.id, "private_subnet_id": self.private_subnet.id})
