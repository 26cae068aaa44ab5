"""SageMakerAccess: the team's SageMaker execution role, its model package group (the registry its
retraining job registers models in) and, when asked for, a notebook instance."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from provisioner.components import policies
from provisioner.components.names import TeamNames


@dataclass
class SageMakerAccessArgs:
    team: str
    arns: pulumi.Output[policies.TeamArns]
    boundary_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    notebook_instance_type: str | None = None  # None: no notebook
    # The notebook's route out of the private subnet (it has no direct internet access).
    egress: list[pulumi.Resource] = field(default_factory=list)


class SageMakerAccess(pulumi.ComponentResource):
    def __init__(self, name: str, args: SageMakerAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("envctl:index:SageMakerAccess", name, None, opts)
        names = TeamNames(args.team)
        child = pulumi.ResourceOptions(parent=self)
        self.role = aws.iam.Role(
            f"{name}-role", name=names.sagemaker_role, description=f"envctl {args.team}: SageMaker execution",
            assume_role_policy=policies.assume_role_policy("sagemaker.amazonaws.com"),
            permissions_boundary=args.boundary_arn, opts=child,
        )
        self.policy = aws.iam.RolePolicy(f"{name}-policy", role=self.role.id, policy=args.arns.apply(policies.sagemaker_policy),
                                         opts=child)
        self.model_package_group = aws.sagemaker.ModelPackageGroup(
            f"{name}-models", model_package_group_name=names.model_package_group,
            model_package_group_description=f"envctl {args.team}: models registered by the team's retraining job",
            opts=child,
        )
        self.notebook = None
        if args.notebook_instance_type:
            self.notebook = aws.sagemaker.NotebookInstance(
                f"{name}-notebook", name=f"{names.prefix}-notebook", instance_type=args.notebook_instance_type,
                role_arn=self.role.arn, kms_key_id=args.kms_key_arn, subnet_id=args.subnet_id,
                security_groups=[args.security_group_id], direct_internet_access="Disabled", root_access="Disabled",
                # CreateNotebookInstance checks that SageMaker can assume the role and use it, and the AWS
                # provider does not retry it (terraform-provider-aws, sagemaker/notebook_instance.go: one
                # call, no retry). Wait for the role's policy, and for the egress: a NAT gateway takes a
                # minute or two to become available, more than IAM's propagation of a new role usually takes
                # (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency).
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.policy, *args.egress]),
            )
        self.register_outputs({"role_arn": self.role.arn,
                               "model_package_group": self.model_package_group.model_package_group_name})
