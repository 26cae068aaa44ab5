"""The deploy role (`deploy:`) in a real moto server: the shared GitHub OIDC provider, and segregation
under IAM enforcement (moto scopes S3 by resource, so the DAG prefix and the other team's bucket are tested
here; what moto does not scope, ECR, is evaluated in tests/components/test_deploy_access.py)."""

from __future__ import annotations

import urllib.request

import boto3
import pytest

from tests.engines.sandbox.conftest import client, make_engine, spec_for

pytestmark = [pytest.mark.sandbox]
GITHUB_URL = "token.actions.githubusercontent.com"


def enforce(engine, on: bool) -> None:
    info = engine.server.running()
    urllib.request.urlopen(urllib.request.Request(f"{info.endpoint}/moto-api/reset-auth", data=b"0" if on else b"inf",
                                                  headers={"Content-Type": "text/plain"}, method="POST")).read()


def test_the_deploy_role_writes_only_its_dag_prefix_and_the_provider_is_shared(tmp_path):
    engine = make_engine(tmp_path)
    try:
        a = spec_for("deploya", cidr="10.93.0.0/20", deploy={"github": {"repository": "acme/a-dags"}})
        b = spec_for("deployb", cidr="10.94.0.0/20", deploy={"github": {"repository": "acme/b-dags"}})
        first = engine.up(a)
        assert [c.action for c in first.changes if c.type.endswith("OpenIdConnectProvider")] == ["create"]
        second = engine.up(b)
        assert not [c for c in second.changes if c.type.endswith("OpenIdConnectProvider")]  # found, not made again
        iam = client(engine, "iam", "eu-west-1")
        (provider,) = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
        assert provider["Arn"].endswith(f":oidc-provider/{GITHUB_URL}")
        out_a, out_b = first.outputs, second.outputs
        assert out_a["deploy_role_arn"].endswith(":role/envctl-deploya-deploy")

        enforce(engine, True)
        try:
            creds = client(engine, "sts", "eu-west-1").assume_role(
                RoleArn=out_a["deploy_role_arn"], RoleSessionName="ci")["Credentials"]
            as_ci = boto3.client("s3", endpoint_url=engine.server.running().endpoint, region_name="eu-west-1",
                                 aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                                 aws_session_token=creds["SessionToken"])
            sse = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": out_a["kms_key_arn"]}
            as_ci.put_object(Bucket=out_a["bucket_name"], Key="dags/deploya_hello.py", Body=b"x = 1\n", **sse)
            for bucket, key in ((out_a["bucket_name"], "backups/postgres/evil.sql.gz"),
                                (out_b["bucket_name"], "dags/deploya_hello.py")):
                with pytest.raises(Exception) as denied:
                    as_ci.put_object(Bucket=bucket, Key=key, Body=b"x", **sse)
                assert "AccessDenied" in str(denied.value), (bucket, key)
        finally:
            enforce(engine, False)

        engine.destroy("deploya")
        assert len(iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]) == 1  # deployb's role trusts it
    finally:
        engine.server.stop()
