"""Seeds LocalStack's Secrets Manager for the end-to-end tests (docs/e2e-fixtures.md).

Run by `cargo xtask services up` with the LocalStack venv's Python (boto3 comes with
localstack-core). Prints one JSON line: {"shared_secret_arn": "..."}.
Never prints a secret value.
"""

import argparse
import json
import sys

import boto3
from botocore.config import Config

DEFAULT_KEY = "test"  # LocalStack maps non-numeric access keys to account 000000000000
SHARED_ACCOUNT = "987654321098"  # a 12-digit access key id selects that account
# The account of the role ARNs in seed 000 (arn:aws:iam::123456789012:role/...). LocalStack
# gives credentials from AssumeRoleWithWebIdentity to the role's account, so the seed's
# secrets exist there too, for the OIDC examples to read them unchanged.
SEED_ROLE_ACCOUNT = "123456789012"
OLD_VERSION = "01234567-89ab-cdef-0123-456789abcdef"


def client(endpoint, region, access_key=DEFAULT_KEY):
    return boto3.client(
        "secretsmanager",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )


def check(condition, what):
    if not condition:
        sys.exit(f"seed check failed: {what}")


def seed_role_account(endpoint, plain):
    """The seed 000 secrets again, in the account of the seed's role ARNs."""
    sm = client(endpoint, "us-east-1", access_key=SEED_ROLE_ACCOUNT)
    for name in ["app-secrets/database", "app-secrets/api", "us-app-secrets/database"]:
        sm.create_secret(Name=name, SecretString=plain[name])
    name = "prod-app-secrets/database"
    sm.create_secret(Name=name, SecretString='{"password":"old-pass-1111"}', ClientRequestToken=OLD_VERSION)
    sm.put_secret_value(SecretId=name, SecretString='{"password":"new-pass-2222"}')
    client(endpoint, "eu-west-1", access_key=SEED_ROLE_ACCOUNT).create_secret(
        Name="eu-app-secrets/database", SecretString='{"password":"eu-pass-4444"}'
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    args = parser.parse_args()

    sm = client(args.endpoint, "us-east-1")
    plain = {
        "app-secrets/database": '{"password":"db-pass-1234","username":"admin","port":5432,"enabled":true}',
        "app-secrets/api": '{"api_key":"api-key-5678","endpoint":"https://api.example.com"}',
        "us-app-secrets/database": '{"password":"us-pass-3333"}',
        "plain/string": "just-a-plain-string",
        "json/mixed": '{"big":1000000,"float":1.5,"flag":false,"nullv":null,"nested":{"a":1},"list":[1,2]}',
    }
    for n in range(40):
        plain[f"bulk/{n:02d}"] = json.dumps({"value": f"bulk-value-{n:02d}"}, separators=(",", ":"))
    for name, value in plain.items():
        sm.create_secret(Name=name, SecretString=value)

    sm.create_secret(Name="binary/blob", SecretBinary=bytes([0x00, 0xFF, 0x10, 0x20, 0x7F]))

    # Two versions: the old one keeps AWSPREVIOUS and gets the custom stage STAGING.
    name = "prod-app-secrets/database"
    sm.create_secret(Name=name, SecretString='{"password":"old-pass-1111"}', ClientRequestToken=OLD_VERSION)
    new = sm.put_secret_value(SecretId=name, SecretString='{"password":"new-pass-2222"}')
    sm.update_secret_version_stage(SecretId=name, VersionStage="STAGING", MoveToVersionId=OLD_VERSION)
    stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    check(sorted(stages.get(OLD_VERSION, [])) == ["AWSPREVIOUS", "STAGING"], f"{name} old version stages {stages.get(OLD_VERSION)}")
    check("AWSCURRENT" in stages.get(new["VersionId"], []), f"{name} new version is not AWSCURRENT")
    check(
        sm.get_secret_value(SecretId=name, VersionStage="STAGING")["VersionId"] == OLD_VERSION,
        f"{name} STAGING does not read the old version",
    )

    client(args.endpoint, "eu-west-1").create_secret(
        Name="eu-app-secrets/database", SecretString='{"password":"eu-pass-4444"}'
    )

    seed_role_account(args.endpoint, plain)
    seed_workflows(args.endpoint)

    # AWS refuses cross-account reads of a secret under the default KMS key, and LocalStack
    # emulates that check (it only looks at whether a KmsKeyId is set). LocalStack 4.13.1's
    # KMS fails on Python 3.11, so the secret names a customer-managed key ARN that is not
    # created; the resource policy grants the reader account, as on AWS.
    key_arn = f"arn:aws:kms:us-east-1:{SHARED_ACCOUNT}:key/00000000-1111-2222-3333-444444444444"
    shared_sm = client(args.endpoint, "us-east-1", access_key=SHARED_ACCOUNT)
    shared = shared_sm.create_secret(
        Name="shared-api-keys",
        SecretString='{"production_key":"shared-prod-key-7777"}',
        KmsKeyId=key_arn,
    )
    arn = shared["ARN"]
    shared_sm.put_resource_policy(
        SecretId=arn,
        ResourcePolicy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
                        "Action": "secretsmanager:GetSecretValue",
                        "Resource": "*",
                    }
                ],
            }
        ),
    )
    check(f":{SHARED_ACCOUNT}:secret:shared-api-keys" in arn, f"shared secret ARN {arn} is not in account {SHARED_ACCOUNT}")

    print(json.dumps({"shared_secret_arn": arn}))


# Shell-hostile values for the dotenv round trip of `get --spread` (docs/e2e-fixtures.md).
SPREAD_SHELL = {
    "plain": "abc-123_/x",
    "spaces": "a b  c",
    "quotes": "it's \"q\"",
    "dollar": "$HOME ${X} `id` $(id)",
    "backslash": "a\\b\\n",
    "newline": "l1\nl2",
    "hash": "#x=y;z",
    "empty": "",
}


def seed_workflows(endpoint):
    """The secrets of the seed 004 workflow (`get --spread`), in both accounts."""
    for key in [DEFAULT_KEY, SEED_ROLE_ACCOUNT]:
        # seed 004: `awssecrets --region eu-west-1 --secret my-secrets`
        client(endpoint, "eu-west-1", access_key=key).create_secret(
            Name="my-secrets",
            SecretString='{"NPM_TOKEN":"npm-token-4004","npm_registry":"registry.npmjs.org","retries":3,"dry_run":false}',
        )
    sm = client(endpoint, "us-east-1")
    sm.create_secret(Name="spread/nested", SecretString='{"a":"x","nested":{"b":1}}')
    sm.create_secret(Name="spread/collision", SecretString='{"db-pass":"a","DB_PASS":"b"}')
    sm.create_secret(Name="spread/shell", SecretString=json.dumps(SPREAD_SHELL))


if __name__ == "__main__":
    main()
