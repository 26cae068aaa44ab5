"""DeployAccess: the team's own CI (`deploy: {github: ...}` in the request) as a GitHub-OIDC role.

The role trusts only GitHub's OIDC tokens for the request's repository and branch (or GitHub
environment), may write only the team's DAG prefix (with the team key: the bucket policy refuses
other keys) and push only to the team's ECR repository, and carries the team boundary.

GitHub's OIDC provider (https://token.actions.githubusercontent.com) exists once per account and
every team's role trusts the same one. The engine looks for it before the program runs
(live_inputs.py): when it exists the role names it and the program registers nothing more; when
it does not, this component creates it and keeps it on destroy (retain_on_delete), since other
teams' roles come to trust it too. The next run of that team finds it and stops registering it;
the stack forgets it without deleting it (a "delete" of a kept resource deletes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from provisioner.components import policies
from provisioner.components.names import TeamNames


@dataclass(frozen=True)
class DeploySettings:
    """What the request's `deploy.github` asks for, and what the engine found in the account."""

    repository: str
    branch: str
    environment: str | None
    oidc_provider_arn: str | None  # the account's GitHub OIDC provider; None: there is none yet


@dataclass
class DeployAccessArgs:
    team: str
    settings: DeploySettings
    dags_prefix: str
    arns: pulumi.Output[policies.TeamArns]
    boundary_arn: pulumi.Input[str]


class DeployAccess(pulumi.ComponentResource):
    def __init__(self, name: str, args: DeployAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("envctl:index:DeployAccess", name, None, opts)
        names = TeamNames(args.team)
        child = pulumi.ResourceOptions(parent=self)
        self.oidc_provider = None
        provider_arn: pulumi.Input[str]
        if args.settings.oidc_provider_arn:
            provider_arn = args.settings.oidc_provider_arn
        else:
            self.oidc_provider = aws.iam.OpenIdConnectProvider(
                f"{name}-github-oidc", url=f"https://{policies.GITHUB_OIDC_HOST}",
                client_id_lists=[policies.GITHUB_OIDC_AUDIENCE],
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
            provider_arn = self.oidc_provider.arn
        github = args.settings
        subject = policies.github_subject(github.repository, github.branch, github.environment)
        self.role = aws.iam.Role(
            f"{name}-role", name=names.deploy_role, description=f"envctl {args.team}: deploys from GitHub {github.repository}",
            assume_role_policy=pulumi.Output.from_input(provider_arn).apply(
                lambda arn: policies.github_trust_policy(arn, subject)),
            permissions_boundary=args.boundary_arn, opts=child,
        )
        self.policy = aws.iam.RolePolicy(
            f"{name}-policy", role=self.role.id,
            policy=args.arns.apply(lambda arns: policies.deploy_policy(arns, args.dags_prefix)), opts=child,
        )
        self.register_outputs({"role_arn": self.role.arn})
