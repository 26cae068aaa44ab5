"""The program under Pulumi mocks: what every team environment must be, whatever the request says."""

from __future__ import annotations

import json

import pytest

from provisioner.cli.render import decode_user_data
from provisioner.engines.offline import OFFLINE_AMI, OfflineMaterialiser, offline_registrations
from provisioner.engines.mocked import Registration, run_program
from tests.fixtures.program import TEAMS, _registrations, key_arn, one, resources

TEAM_TAGS = ("envctl:team", "envctl:owner", "envctl:cost-center", "envctl:managed-by")


@pytest.mark.parametrize("team", TEAMS)
def test_every_resource_goes_through_the_team_provider_with_its_tags(team):
    """Default tags on one explicit provider, used by every resource, and no resource overrides them."""
    (provider,) = [r for r in _registrations(team) if r.is_provider]
    tags = provider.default_tags
    assert set(TEAM_TAGS) <= set(tags) and tags["envctl:team"] == team and tags["envctl:managed-by"] == "envctl"
    for resource in resources(team):
        assert resource.provider_urn == provider.urn, resource.urn
        assert not set(TEAM_TAGS) & set(resource.inputs.get("tags") or {}), resource.urn


@pytest.mark.parametrize("team", TEAMS)
def test_host_requires_imdsv2_has_no_public_ip_and_encrypted_root(team):
    instance = one(team, "aws:ec2/instance:Instance")
    assert instance.inputs["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required",
                                                  "httpPutResponseHopLimit": 2}
    assert instance.inputs["associatePublicIpAddress"] is False
    assert instance.inputs["rootBlockDevice"]["encrypted"] is True
    assert instance.inputs["rootBlockDevice"]["kmsKeyId"] == key_arn(team)
    assert instance.inputs["userDataReplaceOnChange"] is True
    private = next(r for r in resources(team, "aws:ec2/subnet:Subnet") if r.name.endswith("-private"))
    assert private.inputs["mapPublicIpOnLaunch"] is False


@pytest.mark.parametrize("team", TEAMS)
def test_no_ingress_from_anywhere(team):
    """No security group admits traffic from 0.0.0.0/0 or ::/0 (in fact none admits any)."""
    groups = (resources(team, "aws:ec2/securityGroup:SecurityGroup")
              + resources(team, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"))
    assert len(groups) == 2
    for group in groups:
        assert group.inputs.get("ingress", []) == [], group.name
    default = one(team, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert default.inputs.get("egress", []) == []


@pytest.mark.parametrize("team", TEAMS)
def test_data_is_encrypted_with_the_team_key(team):
    arn = key_arn(team)
    (rule,) = one(team, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration").inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": arn}
    volume = one(team, "aws:ebs/volume:Volume")
    assert volume.inputs["encrypted"] is True and volume.inputs["kmsKeyId"] == arn
    assert one(team, "aws:cloudwatch/logGroup:LogGroup").inputs["kmsKeyId"] == arn
    repository = one(team, "aws:ecr/repository:Repository")
    assert repository.inputs["encryptionConfigurations"] == [{"encryptionType": "KMS", "kmsKey": arn}]
    secrets = resources(team, "aws:secretsmanager/secret:Secret")
    assert secrets and all(s.inputs["kmsKeyId"] == arn for s in secrets)
    assert one(team, "aws:kms/key:Key").inputs["enableKeyRotation"] is True


@pytest.mark.parametrize("team", TEAMS)
def test_bucket_blocks_public_access_is_versioned_and_tls_only(team):
    block = one(team, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    assert one(team, "aws:s3/bucketVersioning:BucketVersioning").inputs["versioningConfiguration"] == {"status": "Enabled"}
    policy = json.loads(one(team, "aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    tls = next(s for s in policy["Statement"] if s["Sid"] == "DenyInsecureTransport")
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.parametrize("team", TEAMS)
def test_team_data_outlives_a_destroy(team):
    """The bucket, its guards, its key with the key's alias, and the secrets are retained on delete; nothing else is."""
    retained = {r.type for r in resources(team) if r.retain_on_delete}
    assert retained == {
        "aws:kms/key:Key", "aws:kms/alias:Alias", "aws:secretsmanager/secret:Secret",
        "aws:s3/bucket:Bucket", "aws:s3/bucketPolicy:BucketPolicy",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "aws:s3/bucketVersioning:BucketVersioning",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    }


@pytest.mark.parametrize("team", TEAMS)
def test_every_role_has_the_team_boundary(team):
    boundary = one(team, "aws:iam/policy:Policy")
    boundary_arn = boundary.outputs["arn"]
    roles = resources(team, "aws:iam/role:Role")
    assert len(roles) == 2
    assert all(role.inputs["permissionsBoundary"] == boundary_arn for role in roles)


def _policy_documents(team: str) -> list[tuple[str, str, dict]]:
    docs = []
    for resource in resources(team):
        for key in ("policy", "assumeRolePolicy"):
            if isinstance(resource.inputs.get(key), str):
                docs.append((resource.name, key, json.loads(resource.inputs[key])))
    return docs


def _allowed_resource(team: str, resource: str, own_arns: set[str]) -> bool:
    """A team's own resource, a name under its prefix, or a wildcard the test below restricts."""
    return (
        resource in own_arns
        or f"envctl-{team}" in resource
        or f"envctl/{team}/" in resource
        or resource.endswith(f":log-group:/envctl/{team}:*")
        or resource == "*"
        or resource.endswith(":root")
        or resource.endswith(":log-group:/aws/sagemaker/*")
        or resource.endswith(":sagemaker:" + resource.split(":sagemaker:")[-1]) and resource.endswith(":*")
    )


def _statement_resources(statement: dict) -> list[str]:
    value = statement.get("Resource", [])
    return [value] if isinstance(value, str) else list(value)


@pytest.mark.parametrize("team", TEAMS)
def test_no_policy_names_another_teams_resources(team):
    """Segregation: every ARN in a team's policies is the team's own (or a tag-scoped wildcard)."""
    own_arns = {r.outputs.get("arn") for r in resources(team)} - {None}
    others = [t for t in TEAMS if t != team]
    for name, key, doc in _policy_documents(team):
        text = json.dumps(doc)
        assert not any(f"envctl-{o}" in text or f"envctl/{o}/" in text for o in others), (name, key)
        for statement in doc["Statement"]:
            for resource in _statement_resources(statement):
                assert _allowed_resource(team, resource, own_arns), (name, resource)


def test_team_prefixes_cannot_reach_a_longer_team_name():
    """fraud's policies use delimiters, so a team named fraud-x would not match them."""
    for name, _, doc in _policy_documents("fraud"):
        for statement in doc["Statement"]:
            for resource in _statement_resources(statement):
                assert "envctl-fraud*" not in resource and "envctl/fraud*" not in resource, (name, resource)


def test_sagemaker_wildcards_are_scoped_by_team_tag():
    """Statements on every SageMaker resource of the account carry the envctl:team tag condition."""
    for name, _, doc in _policy_documents("fraud"):
        for statement in doc["Statement"]:
            if str(statement.get("Resource", "")).endswith(":sagemaker:eu-west-1:123456789012:*"):
                condition = json.dumps(statement.get("Condition", {}))
                assert '"fraud"' in condition and "envctl:team" in condition, (name, statement["Sid"])


@pytest.mark.parametrize("team", TEAMS)
def test_iam_policies_pass_parliament(team):
    """Every identity policy the program emits has no parliament finding of MEDIUM severity or worse."""
    from parliament import analyze_policy_string, enhance_finding

    checked = 0
    for resource in resources(team, "aws:iam/rolePolicy:RolePolicy") + resources(team, "aws:iam/policy:Policy"):
        policy = analyze_policy_string(resource.inputs["policy"], ignore_private_auditors=True)
        serious = [f for f in map(enhance_finding, policy.findings) if f.severity in ("MEDIUM", "HIGH", "CRITICAL")]
        assert serious == [], (resource.name, [(f.issue, f.detail) for f in serious])
        checked += 1
    assert checked == 3


def test_host_passes_only_the_team_sagemaker_role_to_sagemaker():
    host_role = next(r for r in resources("fraud", "aws:iam/role:Role") if r.name == "fraud-airflow-role")
    doc = json.loads(host_role.inputs["assumeRolePolicy"])
    assert doc["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    host_policy = next(r for r in resources("fraud", "aws:iam/rolePolicy:RolePolicy") if r.name == "fraud-airflow-policy")
    passes = [s for s in json.loads(host_policy.inputs["policy"])["Statement"] if s["Action"] == "iam:PassRole"]
    assert [s["Resource"] for s in passes] == ["arn:aws:iam::123456789012:role/envctl-fraud-sagemaker"]
    assert passes[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_inference_shapes_follow_the_request():
    """fraud: instance-backed with autoscaling; treasury: serverless without a KMS key; finance-reports: none."""
    fraud_config = one("fraud", "aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs
    assert fraud_config["productionVariants"][0]["instanceType"] == "ml.m5.large" and "kmsKeyArn" in fraud_config
    target = one("fraud", "aws:appautoscaling/target:Target").inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (1, 4)
    treasury_config = one("treasury", "aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs
    assert treasury_config["productionVariants"][0]["serverlessConfig"] == {"memorySizeInMb": 2048, "maxConcurrency": 5}
    assert "kmsKeyArn" not in treasury_config
    assert resources("treasury", "aws:appautoscaling/target:Target") == []
    assert resources("finance-reports", "aws:sagemaker/endpoint:Endpoint") == []


def test_endpoint_follows_its_config_name():
    """ignore_changes makes Pulumi send the old value: the endpoint must not ignore its config name,
    or a new config never reaches it (and the old one is deleted while in use)."""
    endpoint = one("fraud", "aws:sagemaker/endpoint:Endpoint")
    assert endpoint.ignore_changes == [] and endpoint.replace_on_changes == []
    config = one("fraud", "aws:sagemaker/endpointConfiguration:EndpointConfiguration")
    assert endpoint.inputs["endpointConfigName"] == config.outputs["name"]


def test_default_image_comes_from_the_team_repository():
    image = one("fraud", "aws:sagemaker/model:Model").inputs["primaryContainer"]["image"]
    assert image.startswith("123456789012.dkr.ecr.eu-west-1.amazonaws.com/envctl-fraud:default-")


def test_userdata_names_secrets_never_values():
    """The host's userdata mentions the team's secrets by name only."""
    script = decode_user_data(one("fraud", "aws:ec2/instance:Instance").inputs)
    assert "snowflake_password" in script and "envctl/fraud/" in script
    assert "put-secret-value --secret-string" not in script or "$(" in script  # generated on the host, never literal


def test_owners_reach_the_host_through_a_parameter_not_the_userdata():
    """The owners are the value of /envctl/<team>/airflow/owners, which the instance waits for; they are
    not in the userdata (an owners change must not replace the host), and no password is anywhere in
    the program: the host generates them into the owner_passwords secret, created without a value."""
    parameters = {r.inputs["name"]: r for r in resources("fraud", "aws:ssm/parameter:Parameter")}
    owners = parameters["/envctl/fraud/airflow/owners"]
    value = owners.inputs["value"]  # the provider marks a parameter's value secret
    assert json.loads(value["value"] if isinstance(value, dict) else value) == ["ana.lopez@example.com", "ml-fraud@example.com"]
    assert "value" not in owners.ignore_changes
    instance = one("fraud", "aws:ec2/instance:Instance")
    assert owners.urn in instance.dependencies
    script = decode_user_data(instance.inputs)
    assert "ana.lopez@example.com" not in script and "ml-fraud@example.com" not in script
    assert "/envctl/fraud/airflow/owners" in script and "envctl/fraud/airflow/owner_passwords" in script
    secrets = {r.inputs["name"]: r for r in resources("fraud", "aws:secretsmanager/secret:Secret")}
    passwords = secrets["envctl/fraud/airflow/owner_passwords"]
    assert passwords.inputs["kmsKeyId"] == key_arn("fraud")
    assert not resources("fraud", "aws:secretsmanager/secretVersion:SecretVersion")


def test_the_metrics_publisher_reaches_the_host_through_a_parameter_it_waits_for():
    """The publisher is too large for the userdata: the program stores it in /envctl/<team>/host/envctl-metrics
    (the value userdata.shipped_host_files packs), the instance waits for it, and the userdata carries its SHA-256."""
    import hashlib

    from provisioner.userdata import shipped_host_files, unpack_host_file

    parameters = {r.inputs["name"]: r for r in resources("fraud", "aws:ssm/parameter:Parameter")}
    shipped = parameters["/envctl/fraud/host/envctl-metrics"]
    value = shipped.inputs["value"]
    value = value["value"] if isinstance(value, dict) else value
    assert value == shipped_host_files("fraud")["/envctl/fraud/host/envctl-metrics"]
    instance = one("fraud", "aws:ec2/instance:Instance")
    assert shipped.urn in instance.dependencies
    script = decode_user_data(instance.inputs)
    assert f"ENVCTL_METRICS_SHA256={hashlib.sha256(unpack_host_file(value).encode()).hexdigest()}" in script


def test_program_is_deterministic():
    """Two runs of the same request register the same resources with the same inputs."""
    from tests.conftest import ROOT
    from provisioner.spec import load_team

    spec = load_team("treasury", ROOT / "stacks", default_region="eu-west-1", pool="10.0.0.0/8", prefix=20, root=ROOT)
    first = {r.urn: r.inputs for r in offline_registrations(spec)}
    second = {r.urn: r.inputs for r in offline_registrations(spec)}
    assert first == second


class _Account(OfflineMaterialiser):
    """The offline answers, plus what an AWS account already holds: a team host, a newer AMI, zones."""

    def __init__(self, region: str, *, latest_ami: str = OFFLINE_AMI, hosts: tuple[dict, ...] = (),
                 zones: tuple[str, ...] = ("a", "b", "c"), offered: tuple[str, ...] | None = None):
        super().__init__(region)
        self.latest_ami, self.hosts = latest_ami, {h["id"]: h for h in hosts}
        self.zones = [f"{region}{z}" for z in zones]
        self.offered = self.zones if offered is None else [f"{region}{z}" for z in offered]
        self.calls: list[tuple[str, dict]] = []

    def call(self, token, args):
        self.calls.append((token, args))
        if token == "aws:ssm/getParameter:getParameter":
            return {**super().call(token, args), "value": self.latest_ami, "insecureValue": self.latest_ami}
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"names": list(self.zones), "id": self.region}
        if token == "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
            return {"locations": list(self.offered), "id": self.region}
        if token == "aws:ec2/getInstances:getInstances":
            return {"ids": sorted(self.hosts), "id": self.region}
        if token == "aws:ec2/getInstance:getInstance":
            return self.hosts[args["instanceId"]]
        return super().call(token, args)


def _run(spec, account: _Account) -> list[Registration]:
    from provisioner.program import build

    return run_program(lambda: build(spec) and None, account, project="envctl", stack=spec.team,
                       config={"aws:region": spec.region}).registrations


def _instance(registrations) -> Registration:
    (found,) = [r for r in registrations if r.type == "aws:ec2/instance:Instance"]
    return found


def _host(instance: Registration, ami: str, zone: str = "eu-west-1a") -> dict:
    """The host an earlier run made, as EC2's DescribeInstances (the getInstance data source) shows it."""
    return {"id": "i-0running0000000001", "instanceId": "i-0running0000000001", "ami": ami,
            "availabilityZone": zone, "tags": dict(instance.inputs["tags"])}


def test_a_new_ami_does_not_replace_the_host_but_a_replaced_host_runs_it(resolved_spec):
    """AWS publishing a new AMI must not replace the host; a host replaced for new userdata boots it.

    Pulumi sends the old value of an ignored property, on a replacement too (FACTS: ignore_changes),
    so the program may not ignore `ami`: it keeps a running host's AMI while its fingerprint holds.
    """
    spec = resolved_spec("fraud")
    first = _instance(_run(spec, _Account(spec.region, latest_ami="ami-0first")))
    assert first.inputs["ami"] == "ami-0first" and "ami" not in first.ignore_changes
    running = _host(first, "ami-0first")

    same = _instance(_run(spec, _Account(spec.region, latest_ami="ami-0newer", hosts=(running,))))
    assert same.inputs["ami"] == "ami-0first"
    assert same.inputs["userDataBase64"] == first.inputs["userDataBase64"] and same.inputs["tags"] == first.inputs["tags"]

    new_userdata = resolved_spec(secrets=["another_secret"])
    replaced = _instance(_run(new_userdata, _Account(spec.region, latest_ami="ami-0newer", hosts=(running,))))
    assert replaced.inputs["userDataBase64"] != first.inputs["userDataBase64"]
    assert replaced.inputs["ami"] == "ami-0newer"

    bigger = resolved_spec(airflow={**yaml_of("fraud")["airflow"], "instance_type": "m6i.xlarge"})
    resized = _instance(_run(bigger, _Account(spec.region, latest_ami="ami-0newer", hosts=(running,))))
    assert resized.inputs["ami"] == "ami-0newer"


def yaml_of(team: str) -> dict:
    import yaml

    from tests.conftest import ROOT

    return yaml.safe_load((ROOT / "stacks" / f"{team}.yaml").read_text())


def test_the_host_boots_only_once_it_has_a_route_out():
    """An instance waits for its subnet only unless told: the NAT route, the private subnet's route-table
    association and the S3 gateway endpoint must exist before the host's first package install."""
    regs = _registrations("fraud")
    by_urn = {r.urn: r for r in regs}
    instance = one("fraud", "aws:ec2/instance:Instance")
    waits_for = {by_urn[u].type for u in instance.dependencies if u in by_urn}
    assert {"aws:ec2/routeTableAssociation:RouteTableAssociation", "aws:ec2/routeTable:RouteTable",
            "aws:ec2/natGateway:NatGateway", "aws:ec2/vpcEndpoint:VpcEndpoint"} <= waits_for
    association = next(by_urn[u] for u in instance.dependencies
                       if u in by_urn and by_urn[u].type == "aws:ec2/routeTableAssociation:RouteTableAssociation")
    private = next(r for r in resources("fraud", "aws:ec2/subnet:Subnet") if r.name.endswith("-private"))
    assert association.inputs["subnetId"] == private.id
    routes = next(by_urn[u] for u in instance.dependencies if u in by_urn and by_urn[u].type == "aws:ec2/routeTable:RouteTable")
    assert routes.inputs["routes"][0]["natGatewayId"] == one("fraud", "aws:ec2/natGateway:NatGateway").id


def _zone_of(registrations) -> set[str]:
    return {r.inputs["availabilityZone"] for r in registrations
            if r.type in ("aws:ec2/subnet:Subnet", "aws:ebs/volume:Volume")}


def test_the_zone_is_one_the_account_has_that_offers_the_host_type(resolved_spec):
    """Zone names are per account and not every zone offers every type (EC2 instance type offerings):
    the first available zone by name that offers the type, the same for subnets and the data volume."""
    spec = resolved_spec("fraud")
    assert _zone_of(_run(spec, _Account(spec.region, zones=("b", "c"), offered=("c",)))) == {"eu-west-1c"}
    account = _Account(spec.region, zones=("a", "b"))
    _run(spec, account)
    (offer_args,) = [a for t, a in account.calls if t == "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings"]
    assert offer_args["locationType"] == "availability-zone"
    assert offer_args["filters"] == [{"name": "instance-type", "values": [spec.spec.airflow.instance_type]}]
    (zone_args,) = [a for t, a in account.calls if t == "aws:index/getAvailabilityZones:getAvailabilityZones"]
    assert zone_args["state"] == "available"


def test_the_zone_stays_where_the_host_and_its_volume_are(resolved_spec):
    """A zone that starts offering the type later must not move the team (new subnets and data volume)."""
    spec = resolved_spec("fraud")
    first = _instance(_run(spec, _Account(spec.region, offered=("b",))))
    running = _host(first, OFFLINE_AMI, zone="eu-west-1b")
    assert _zone_of(_run(spec, _Account(spec.region, hosts=(running,)))) == {"eu-west-1b"}


def test_no_zone_offering_the_type_is_a_clear_error(resolved_spec):
    """A type no zone of the region offers fails before anything is made, naming the type and the region."""
    from provisioner.engines.mocked import ProgramFailed
    from provisioner.errors import EnvctlError

    spec = resolved_spec("fraud")
    with pytest.raises(ProgramFailed) as failed:
        _run(spec, _Account(spec.region, offered=()))
    assert isinstance(failed.value.cause, EnvctlError)
    assert spec.spec.airflow.instance_type in str(failed.value.cause) and "eu-west-1" in str(failed.value.cause)
    assert not [r for r in failed.value.registrations if r.type == "aws:ec2/subnet:Subnet"]


def test_a_new_instance_type_replaces_the_host():
    """A new size gives a fresh host (the data volume moves over) rather than a stopped and resized one."""
    assert one("fraud", "aws:ec2/instance:Instance").replace_on_changes == ["instanceType"]


def test_preloaded_provider_modules_can_be_used_from_many_threads():
    """pulumi_aws's lazy submodules break when first loaded by several threads; the preload prevents it."""
    import subprocess
    import sys

    code = (
        "import threading\n"
        "from provisioner.program import preload_provider_modules\n"
        "preload_provider_modules()\n"
        "import pulumi_aws as aws\n"
        "errors = []\n"
        "def use():\n"
        "    try:\n"
        "        aws.ec2.Vpc, aws.sagemaker.Endpoint, aws.iam.Role, aws.appautoscaling.Policy, aws.s3.Bucket\n"
        "    except Exception as exc:\n"
        "        errors.append(repr(exc))\n"
        "threads = [threading.Thread(target=use) for _ in range(8)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "print(errors)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_the_notebook_waits_for_its_role_policy_and_its_egress():
    """CreateNotebookInstance fails while IAM has not propagated the role, and the AWS provider makes one
    call without retrying (terraform-provider-aws sagemaker/notebook_instance.go): the notebook depends on
    the role's policy and on the NAT gateway (which takes longer to become available than IAM to propagate)."""
    by_urn = {r.urn: r for r in _registrations("fraud")}
    notebook = one("fraud", "aws:sagemaker/notebookInstance:NotebookInstance")
    waits_for = {(by_urn[u].type, by_urn[u].name) for u in notebook.dependencies if u in by_urn}
    assert ("aws:iam/rolePolicy:RolePolicy", "fraud-sagemaker-policy") in waits_for
    assert ("aws:ec2/natGateway:NatGateway", "fraud-network-nat") in waits_for
    assert notebook.inputs["directInternetAccess"] == "Disabled"


def _statements(team: str, resource_name: str) -> list[dict]:
    policy = next(r for r in resources(team) if r.name == resource_name and isinstance(r.inputs.get("policy"), str))
    return json.loads(policy.inputs["policy"])["Statement"]


def _actions(statement: dict) -> list[str]:
    return [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]


def test_sagemaker_may_create_grants_on_the_team_key_for_aws_resources_only():
    """SageMaker encrypts ML storage volumes through a grant it creates as the execution role (kms:CreateGrant);
    kms:GrantIsForAWSResource keeps the role from granting the key itself; the boundary allows no more and the
    host role, whose EBS grants EC2 makes for the deployer, gets none."""
    arn = key_arn("fraud")
    for name in ("fraud-sagemaker-policy", "fraud-boundary-policy"):
        grants = [s for s in _statements("fraud", name) if "kms:CreateGrant" in _actions(s)]
        assert grants and all(s["Resource"] == arn and s["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
                              for s in grants), name
    assert not [s for s in _statements("fraud", "fraud-airflow-policy") if "kms:CreateGrant" in _actions(s)]


def test_roles_can_finish_or_abort_a_multipart_backup_upload():
    """`aws s3 cp` sends a large backup as a multipart upload: s3:PutObject authorises CreateMultipartUpload,
    UploadPart and CompleteMultipartUpload, SSE-KMS parts need kms:GenerateDataKey and kms:Decrypt, and the
    CLI aborts a failed upload (s3:AbortMultipartUpload, an action of its own)
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html#mpuAndPermissions)."""
    for name in ("fraud-airflow-policy", "fraud-sagemaker-policy", "fraud-boundary-policy"):
        allowed = {a for s in _statements("fraud", name) if s["Effect"] == "Allow" for a in _actions(s)}
        assert {"s3:PutObject", "s3:AbortMultipartUpload", "kms:GenerateDataKey", "kms:Decrypt"} <= allowed, name


# --- What the program gives a team's retraining job: its model package group and the host role's permissions.
def host_statements(team: str, name: str = "airflow-policy") -> dict[str, dict]:
    policy = next(r for r in resources(team, "aws:iam/rolePolicy:RolePolicy") if r.name == f"{team}-{name}")
    return {statement["Sid"]: statement for statement in json.loads(policy.inputs["policy"])["Statement"]}


@pytest.mark.parametrize("team", TEAMS)
def test_every_team_has_its_model_package_group(team):
    """One group per team, named from the team, its name an output."""
    group = one(team, "aws:sagemaker/modelPackageGroup:ModelPackageGroup")
    assert group.inputs["modelPackageGroupName"] == f"envctl-{team}-models"


@pytest.mark.parametrize("policy", ["airflow-policy", "boundary-policy"])
def test_the_host_may_register_models_only_in_its_teams_group(policy):
    """Model registry calls name only fraud's group and its versions (host policy and boundary alike)."""
    statements = host_statements("fraud", policy) if policy == "airflow-policy" else None
    if statements is None:
        boundary = one("fraud", "aws:iam/policy:Policy")
        statements = {s["Sid"]: s for s in json.loads(boundary.inputs["policy"])["Statement"]}
    registry = statements["TeamModelRegistry"]
    assert "sagemaker:CreateModelPackage" in registry["Action"]
    assert registry["Resource"] == [
        "arn:aws:sagemaker:eu-west-1:123456789012:model-package-group/envctl-fraud-models",
        "arn:aws:sagemaker:eu-west-1:123456789012:model-package/envctl-fraud-models/*",
    ]


def test_the_host_deletes_only_what_the_job_made():
    """DeleteModel/DeleteEndpointConfig need the team's tag AND the job's envctl:managed-by=airflow: envctl's own
    models and configurations (managed-by envctl, the provider's default tag) are never the job's to delete."""
    clean_up = host_statements("fraud")["TeamJobCleanUp"]
    assert sorted(clean_up["Action"]) == ["sagemaker:DeleteEndpointConfig", "sagemaker:DeleteModel"]
    assert clean_up["Condition"] == {"StringEquals": {"aws:ResourceTag/envctl:team": "fraud",
                                                      "aws:ResourceTag/envctl:managed-by": "airflow"}}
    (provider,) = [r for r in _registrations("fraud") if r.is_provider]
    assert provider.default_tags["envctl:managed-by"] == "envctl"


def test_the_promotion_path_is_allowed_for_the_host():
    """The DAG's calls: train, describe, the promotion's 5 calls (creates tagged with the team), the record."""
    statements = host_statements("fraud")
    allowed = {action for statement in statements.values() if statement["Effect"] == "Allow"
               for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])}
    for action in ("sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:DescribeEndpoint",
                   "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel", "sagemaker:CreateModel",
                   "sagemaker:CreateEndpointConfig", "sagemaker:UpdateEndpoint", "ssm:PutParameter", "iam:PassRole",
                   "ecr:DescribeImages", "s3:PutObject", "kms:GenerateDataKey"):
        assert action in allowed, action
    assert statements["TeamSageMakerCreate"]["Condition"] == {"StringEquals": {"aws:RequestTag/envctl:team": "fraud"}}


def test_the_airflow_containers_learn_what_the_retraining_dag_needs():
    """The host's values carry the team's role ARN, repository, endpoint and group; compose passes them on as ENVCTL_*."""
    from provisioner.cli.render import decode_user_data
    from provisioner.userdata import _host_files

    script = decode_user_data(one("fraud", "aws:ec2/instance:Instance").inputs)
    role_arn = "arn:aws:iam::123456789012:role/envctl-fraud-sagemaker"
    for assignment in (f"SAGEMAKER_ROLE_ARN={role_arn}", "ENDPOINT_NAME=envctl-fraud",
                       "MODEL_PACKAGE_GROUP=envctl-fraud-models", "ECR_REPOSITORY_URL="):
        assert assignment in script, assignment
    assert "SAGEMAKER_ROLE_ARN ECR_REPOSITORY_URL ENDPOINT_NAME MODEL_PACKAGE_GROUP" in script  # into host.env
    compose = _host_files(2)["docker-compose.yml"]
    for variable, source in (("ENVCTL_KMS_KEY_ARN", "KMS_KEY_ARN"), ("ENVCTL_SAGEMAKER_ROLE_ARN", "SAGEMAKER_ROLE_ARN"),
                             ("ENVCTL_ECR_REPOSITORY_URL", "ECR_REPOSITORY_URL"), ("ENVCTL_ENDPOINT_NAME", "ENDPOINT_NAME"),
                             ("ENVCTL_MODEL_PACKAGE_GROUP", "MODEL_PACKAGE_GROUP")):
        assert f"{variable}: ${{{source}:-}}" in compose, variable
