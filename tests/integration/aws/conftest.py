"""moto's server (tests/services/moto.sh) standing for AWS, a production on it, and an embedded Doppel.

The production is a CloudFormation stack with an EC2 instance and an RDS instance
(templates/production.json), made for each test session and deleted after it. Each
test gets its own Doppel (state directory, registry, in-memory bus running every
function) whose only production, `shop-<session>`, is that stack; boto3 finds moto
through `AWS_ENDPOINT_URL`, as it would find AWS through its own chain.
"""
from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.integration.databases.conftest import pg_server  # noqa: F401 - the test bed's PostgreSQL, a fixture
from tests.support.cloud_doppel import EmbeddedDoppel, unique_env  # noqa: F401 - unique_env for the tests
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
PORT = int(os.environ.get("DOPPEL_TEST_MOTO_PORT", "5055"))
ENDPOINT = f"http://127.0.0.1:{PORT}"
REGION = "eu-west-1"
AWS_ENV = {"AWS_ENDPOINT_URL": ENDPOINT, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": REGION}
SESSION = uuid.uuid4().hex[:6]
PRODUCTION = f"shop-{SESSION}"
PRODUCTION_STACK = f"doppel-it-production-{SESSION}"
PRODUCTION_PASSWORD = "production-secret"


def client(service: str):
    import boto3
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                 region_name=REGION).client(service, endpoint_url=ENDPOINT)


def start_moto() -> str:
    """moto's server, started (or reused) by the project's own script (the `moto_server` fixture of
    tests/integration/conftest.py)."""
    subprocess.run(["bash", str(ROOT / "tests/services/moto.sh")], check=True,
                   stdout=None if os.environ.get("CI") else subprocess.DEVNULL)
    return ENDPOINT


def make_production():
    """The production: an instance booted from one of moto's images and an RDS PostgreSQL instance (the
    `aws_production_stack` fixture of tests/integration/conftest.py, once a session)."""
    cfn, ec2 = client("cloudformation"), client("ec2")
    base = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    cfn.create_stack(StackName=PRODUCTION_STACK, TemplateBody=(HERE / "templates/production.json").read_text(),
                     Parameters=[{"ParameterKey": "BaseImage", "ParameterValue": base},
                                 {"ParameterKey": "DbPassword", "ParameterValue": PRODUCTION_PASSWORD}])
    wait_for(lambda: cfn.describe_stacks(StackName=PRODUCTION_STACK)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE",
             60, "the production stack made")
    yield cfn.describe_stacks(StackName=PRODUCTION_STACK)["Stacks"][0]
    cfn.delete_stack(StackName=PRODUCTION_STACK)


@pytest.fixture(scope="session")
def production_stack(aws_production_stack):
    """This directory's production: the session's aws one."""
    return aws_production_stack


def production_entry(template: Path = HERE / "templates/environment.json", logs: list | None = None,
                     **parameters) -> dict:
    return {"driver": "aws", "region": REGION, "stack": PRODUCTION_STACK, "template": str(template),
            "logs": logs or [],
            "parameters": {"WebImage": "{snapshot.image.Web}", "DbSnapshot": "{snapshot.db.Database}",
                           "DbPassword": "{secrets.db_password}", "EnvName": "{env}", **parameters},
            "clone": {"secrets": ["db_password"], "crons": "disable"}}


class Doppel(EmbeddedDoppel):
    """An embedded Doppel with one aws production, its functions served on the in-memory bus."""

    settle_interval = 0.5  # moto answers at once

    def __init__(self, tmp_path: Path, backups_bucket: str | None = None, production: dict | None = None, **entry):
        document = {"state_dir": str(tmp_path / "state"),
                    "productions": {PRODUCTION: production or production_entry(**entry)},
                    "bus": {"retry": {"attempts": 3, "first_delay": "200ms"}}}
        if backups_bucket:  # backups in moto's S3, through boto3's chain
            document["backups"] = {"store": {"type": "s3", "bucket": backups_bucket, "region_name": REGION}}
        super().__init__(document, PRODUCTION)


@pytest.fixture
def aws_env(moto_server, monkeypatch):
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)


@pytest.fixture
def doppel(aws_env, production_stack, tmp_path):
    instance = Doppel(tmp_path)
    yield instance
    instance.close()


def leftovers(env: str) -> dict:
    """Everything of `env` still in moto, by kind (empty when nothing is left)."""
    ec2, rds, cfn = client("ec2"), client("rds"), client("cloudformation")
    tagged = [{"Name": "tag:doppel-env", "Values": [env]}]
    found = {
        "images": [i["ImageId"] for i in ec2.describe_images(Owners=["self"], Filters=tagged)["Images"]],
        "db_snapshots": [s["DBSnapshotIdentifier"] for s in rds.describe_db_snapshots()["DBSnapshots"]
                         if {"Key": "doppel-env", "Value": env} in (s.get("TagList") or [])],
        "stacks": [s["StackId"] for s in cfn.describe_stacks()["Stacks"] if s["StackName"] == f"doppel-{env}"],
    }
    return {kind: ids for kind, ids in found.items() if ids}


def stack_parameters(env: str) -> dict:
    raw = client("cloudformation").describe_stacks(StackName=f"doppel-{env}")["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in raw["Parameters"]}


def dumps(value) -> str:
    return json.dumps(value, default=str)
