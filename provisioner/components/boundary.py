"""PermissionsBoundary: the ceiling for every IAM role of a team."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from provisioner.components import policies
from provisioner.components.names import TeamNames


@dataclass
class PermissionsBoundaryArgs:
    team: str
    arns: pulumi.Output[policies.TeamArns]


class PermissionsBoundary(pulumi.ComponentResource):
    def __init__(self, name: str, args: PermissionsBoundaryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("envctl:index:PermissionsBoundary", name, None, opts)
        self.policy = aws.iam.Policy(
            f"{name}-policy", name=TeamNames(args.team).boundary_policy,
            description=f"envctl {args.team}: the most any of the team's roles may do",
            policy=args.arns.apply(policies.permissions_boundary), opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = self.policy.arn
        self.register_outputs({"arn": self.arn})
