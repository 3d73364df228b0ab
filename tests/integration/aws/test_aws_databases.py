"""A LAMP production on AWS (load balancer, launch template, instance, RDS, Route 53, one CloudFormation template)
cloned with its database's rows: dumped at snapshot into S3, restored into the env's own database where its stack's
outputs say, anonymised before env.ready, backed up at expiry in the layout of every backup's databases, restored
by hand with `aws s3 cp`, zstd, tar and pg_restore, and dropped with everything else the environment made.

moto's RDS runs no engine, so the stacks' outputs name databases on the test bed's PostgreSQL (127.0.0.1):
production's `doppel_it_awsshop_<session>`, an env's `doppel_<env>_shop` (its stack's `db_name` output).
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import uuid

import pytest
import yaml

from clouds.databases import postgresql
from clouds.databases.servers import DatabaseError, Server
from core.cloud import Snapshot
from core.registry import FAILED, READY
from core.secrets import RedactingFilter
from tests.integration.aws.conftest import (
    AWS_ENV,
    HERE,
    PRODUCTION,
    REGION,
    SESSION,
    Doppel,
    client,
    leftovers,
    stack_parameters,
    unique_env,
)
from tests.integration.aws.test_aws_chain import remove_env
from tests.integration.databases import rental_shop
from tests.integration.databases.conftest import databases, make_rental_shop, query
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.aws, pytest.mark.postgresql]
LAMP_STACK = f"doppel-it-lamp-{SESSION}"
PRODUCTION_DATABASE = f"doppel_it_awsshop_{SESSION}"
PRODUCTION_PASSWORD = "lamp-production-secret"
DUMPS = f"doppel-it-envs-{SESSION}"
PORT = 5432
PASSWORD_ENV = "DOPPEL_IT_AWS_PG_PASSWORD"


def as_postgres(statement: str) -> None:
    """A statement as the server's superuser (as tests/services/postgresql.sh makes the test bed's roles)."""
    subprocess.run(["su", "postgres", "-c", f"psql -q -v ON_ERROR_STOP=1 -p {PORT} -d postgres"],
                   input=statement.encode(), check=True, capture_output=True)


@pytest.fixture(scope="module")
def doppel_server(pg_server):
    """Doppel's account on the env's server: it makes each env's own login, so it has CREATEROLE (the test bed's
    `doppel` has not), and it is a member of `doppel`, whose production's rows are."""
    name, password = f"doppel_it_aws_{SESSION}", uuid.uuid4().hex
    as_postgres(f"CREATE ROLE {name} LOGIN CREATEDB CREATEROLE IN ROLE {pg_server.user} PASSWORD '{password}'")
    os.environ[PASSWORD_ENV] = password
    yield Server("postgresql", name, host=pg_server.host, port=pg_server.port, password_env=PASSWORD_ENV)
    as_postgres(f"DROP ROLE IF EXISTS {name}")


@pytest.fixture(scope="module")
def lamp_production(moto_server, pg_server):
    """Production: the LAMP stack in moto, its rows in the test bed's PostgreSQL where its outputs say."""
    cfn, ec2, route53 = client("cloudformation"), client("ec2"), client("route53")
    zone = route53.create_hosted_zone(Name="shop.example.com.", CallerReference=LAMP_STACK)["HostedZone"]["Id"]
    make_rental_shop(pg_server, PRODUCTION_DATABASE)
    base = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    values = {"BaseImage": base, "DbPassword": PRODUCTION_PASSWORD, "DbHost": pg_server.host,
              "DbName": PRODUCTION_DATABASE, "DbUser": pg_server.user, "HostedZoneId": zone.split("/")[-1],
              "SiteName": f"www-{SESSION}"}
    cfn.create_stack(StackName=LAMP_STACK, TemplateBody=(HERE / "templates/lamp-production.json").read_text(),
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()])
    wait_for(lambda: cfn.describe_stacks(StackName=LAMP_STACK)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE",
             60, "the LAMP production made")
    yield zone.split("/")[-1]
    cfn.delete_stack(StackName=LAMP_STACK)
    wait_for(lambda: all(s["StackName"] != LAMP_STACK for s in cfn.describe_stacks()["Stacks"]), 60,
             "the LAMP production deleted")
    route53.delete_hosted_zone(Id=zone)  # its names went with the stacks
    postgresql.drop(pg_server, PRODUCTION_DATABASE)


@pytest.fixture(scope="module")
def dumps_bucket(moto_server):
    """The bucket the dumps wait in, versioned so that every object ever written there can be counted."""
    s3 = client("s3")
    s3.create_bucket(Bucket=DUMPS, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=DUMPS, VersioningConfiguration={"Status": "Enabled"})
    yield DUMPS
    listed = s3.list_object_versions(Bucket=DUMPS)
    versions = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in
                listed.get("Versions", []) + listed.get("DeleteMarkers", [])]
    if versions:
        s3.delete_objects(Bucket=DUMPS, Delete={"Objects": versions})
    s3.delete_bucket(Bucket=DUMPS)


def lamp_entry(pg_server, zone: str) -> dict:
    return {"driver": "aws", "region": REGION, "stack": LAMP_STACK, "bucket": DUMPS,
            "template": str(HERE / "templates/lamp-environment.json"),
            "parameters": {"WebImage": "{snapshot.image.Web}", "DbSnapshot": "{snapshot.db.Database}",
                           "DbPassword": "{secrets.db_password}", "EnvName": "{env}", "DbHost": pg_server.host,
                           "HostedZoneId": zone},
            "clone": {"secrets": ["db_password"], "crons": "disable",
                      "anonymise": [{"database": "shop", **rule} for rule in rental_shop.RULES]},
            "databases": [{"kind": "postgresql", "name": "shop", "database": "{outputs.db_name}",
                           "host": "{outputs.db_host}", "port": pg_server.port, "user": pg_server.user,
                           "password_env": pg_server.password_env,
                           "owner": {"user": "{outputs.db_user}", "password": "{secrets.db_password}"}}]}


def personal_values(server, database) -> dict[tuple[str, str], set]:
    return {(table, column): {row[0] for row in query(server, database, f"SELECT {column} FROM {table} "
                                                                        f"WHERE {column} IS NOT NULL")}
            for table, column in rental_shop.PERSONAL}


def dump_objects(env: str) -> list[str]:
    found = client("s3").list_objects_v2(Bucket=DUMPS, Prefix=f"{env}/") if DUMPS in buckets() else {}
    return [o["Key"] for o in found.get("Contents", ())]


def buckets() -> set[str]:
    return {b["Name"] for b in client("s3").list_buckets()["Buckets"]}


def made_in_s3(env: str) -> int:
    """Objects ever written under the env's prefix: moto keeps every version in a versioned bucket."""
    return len(client("s3").list_object_versions(Bucket=DUMPS, Prefix=f"{env}/").get("Versions", ()))


def database_oid(server, name: str):
    rows = query(server, "postgres", "SELECT oid FROM pg_database WHERE datname = %s", (name,))
    return rows[0][0] if rows else None


@pytest.mark.timeout(600)  # a hang detector
def test_a_lamp_production_is_cloned_with_its_rows_anonymised_backed_up_restored_by_hand_and_removed(
        aws_env, lamp_production, doppel_server, dumps_bucket, tmp_path, capsys, caplog):
    pg_server = doppel_server
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    bucket = f"doppel-it-backups-{uuid.uuid4().hex[:8]}"
    doppel = Doppel(tmp_path, backups_bucket=bucket, production=lamp_entry(pg_server, lamp_production))
    env_name, request_id = unique_env("lamp"), str(uuid.uuid4())
    clone, scratch = f"doppel_{env_name}_shop", f"doppel_it_byhand_{uuid.uuid4().hex[:8]}"
    before = personal_values(pg_server, PRODUCTION_DATABASE)
    try:
        # When an environment of the LAMP production is requested
        doppel.request(env_name, event_id=request_id)
        env = doppel.settle(env_name)

        # Then it is ready: a second stack, with its own load balancer, instance, RDS instance and name
        assert env.state == READY, env.reason
        assert env.endpoints["db_name"] == clone and env.endpoints["base_url"] == f"http://{env_name}.shop.example.com"
        kinds = {r["ResourceType"] for r in client("cloudformation").describe_stack_resources(
            StackName=f"doppel-{env_name}")["StackResources"]}
        assert {"AWS::ElasticLoadBalancingV2::LoadBalancer", "AWS::EC2::LaunchTemplate", "AWS::RDS::DBInstance",
                "AWS::Route53::RecordSet"} <= kinds
        names = client("route53").list_resource_record_sets(HostedZoneId=lamp_production)["ResourceRecordSets"]
        assert f"{env_name}.shop.example.com." in {r["Name"] for r in names}
        # made from production's image and RDS snapshot, tagged with the environment, and the dump of its rows
        snapshot = next(e for e in doppel.events("snapshot.done") if e.data["env"] == env_name).data["snapshot"]
        parts = {(c["kind"], c["name"]): c["location"] for c in snapshot["components"]}
        assert set(parts) == {("image", "Web"), ("db", "Database"), ("database", "shop")}
        assert parts[("database", "shop")] == f"s3:{DUMPS}/{env_name}/snapshot/{snapshot['id']}/shop.dump"
        assert {kind: len(ids) for kind, ids in leftovers(env_name).items()} == {
            "images": 1, "db_snapshots": 1, "stacks": 1}
        # Its database holds production's rows, with no personal value of production's left
        assert query(pg_server, clone, "SELECT count(*) FROM rental")[0][0] == 120
        for key, values in personal_values(pg_server, clone).items():
            assert values and not values & before[key], key
        assert personal_values(pg_server, PRODUCTION_DATABASE) == before  # and production is as it was
        # Its credentials are its own: the password its stack was made with (its RDS instance's, never
        # production's) is its own account's on its database, and on no event
        password = stack_parameters(env_name)["DbPassword"]
        assert password and password != PRODUCTION_PASSWORD
        account = env.endpoints["db_user"]
        assert account == f"doppel_{env_name}_app"
        own = Server("postgresql", account, host=pg_server.host, port=pg_server.port, password_env="ENV_PASSWORD")
        os.environ["ENV_PASSWORD"] = password
        assert query(own, clone, "SELECT count(*) FROM customer")[0][0] > 0
        os.environ["ENV_PASSWORD"] = PRODUCTION_PASSWORD
        with pytest.raises(DatabaseError, match="password authentication failed"):
            query(own, clone, "SELECT 1")
        said = json.dumps([e.data for e in doppel.events()], default=str)
        assert password not in said
        logged = [r for r in caplog.records if RedactingFilter().filter(r) and password in r.getMessage()]
        assert not logged, f"{len(logged)} log records hold the env's password"  # as Doppel's handlers log them
        assert not [email for email in before[("customer", "email")] if email in said]
        # The dump went once restored; only the record of what was restored is left
        assert dump_objects(env_name) == [f"{env_name}/databases.json"]

        # When env.requested is replayed (same id), nothing new is made: no image, snapshot, stack, dump,
        # nor a second restore of its database
        made, oid = made_in_s3(env_name), database_oid(pg_server, clone)
        doppel.request(env_name, event_id=request_id)
        doppel.settle(env_name)
        assert {kind: len(ids) for kind, ids in leftovers(env_name).items()} == {
            "images": 1, "db_snapshots": 1, "stacks": 1}
        assert made_in_s3(env_name) == made and database_oid(pg_server, clone) == oid
        # nor when a worker that died before its ack runs the snapshot, clone and configure steps again
        key = snapshot["tags"]["doppel-key"]
        doppel.cloud.snapshot(PRODUCTION, env_name, key)
        doppel.cloud.create_stack(env_name, Snapshot.from_dict(snapshot), {}, key)
        doppel.cloud.configure(env_name, doppel.cloud.stack_status(env_name), None, {})
        assert {kind: len(ids) for kind, ids in leftovers(env_name).items()} == {
            "images": 1, "db_snapshots": 1, "stacks": 1}
        assert made_in_s3(env_name) == made and database_oid(pg_server, clone) == oid

        # When it expires as its TTL would (`doppel env expire`), through the real chain
        from doppel.cli import main
        config = tmp_path / "doppel.yaml"
        config.write_text(yaml.safe_dump(doppel.document))
        assert main(["--config", str(config), "env", "expire", env_name, "--timeout", "2m"]) == 0, \
            capsys.readouterr().err

        # Then it was backed up, its database among the backup's, and nothing of it is left
        (entry,) = doppel.app.backups.list(env_name)
        manifest = doppel.app.backups.find(entry.id)
        assert {c.name: c.tables.get("public.rental") for c in manifest.server_databases} == {"shop": 120}
        wait_for(lambda: not leftovers(env_name), 60, f"nothing of {env_name} left in EC2, RDS, CloudFormation")
        assert clone not in databases(pg_server) and dump_objects(env_name) == []
        assert not query(pg_server, "postgres", "SELECT 1 FROM pg_roles WHERE rolname = %s", (account,))

        # And the backup is restored by hand as docs/aws.md says: aws s3 cp, zstd, tar, pg_restore
        postgresql.create(pg_server, scratch)
        script = (f'aws s3 cp "s3://{bucket}/{env_name}/{entry.id}/archive.tar.zst" archive.tar.zst\n'
                  'zstd -d -c archive.tar.zst | tar -x -O --wildcards "databases/shop.pgdump.part-*" '
                  f'| pg_restore --no-owner --no-acl --exit-on-error --host {pg_server.host} --port {pg_server.port} '
                  f'--username {pg_server.user} --dbname {scratch}\n')
        environ = {**AWS_ENV, "PATH": os.environ["PATH"], "PGPASSWORD": pg_server.password()}
        subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=environ, check=True,
                       capture_output=True)
        assert query(pg_server, scratch, "SELECT count(*) FROM rental")[0][0] == 120
        for key, values in personal_values(pg_server, scratch).items():
            assert values and not values & before[key], key
        archive = (tmp_path / "archive.tar.zst").read_bytes()
        restored = json.dumps(query(pg_server, scratch, "SELECT * FROM customer"), default=str)
        assert password not in restored and password.encode() not in archive
        print(f"lamp clone, replay, expiry and restore by hand: {time.monotonic() - started:.1f} s")
    finally:
        remove_env(doppel, env_name)
        doppel.close()
        for name in (clone, scratch):
            postgresql.drop(pg_server, name)
        as_postgres(f'DROP ROLE IF EXISTS "doppel_{env_name}_app"')


def test_a_lamp_clone_with_a_personal_column_no_rule_covers_fails_naming_it_and_leaves_nothing(
        aws_env, lamp_production, doppel_server, dumps_bucket, tmp_path):
    pg_server = doppel_server
    # Given rules that leave address.phone out
    entry = lamp_entry(pg_server, lamp_production)
    entry["clone"]["anonymise"] = [r for r in entry["clone"]["anonymise"] if (r["table"], r["column"]) !=
                                   ("address", "phone")]
    doppel = Doppel(tmp_path, production=entry)
    env_name = unique_env("leaky")
    clone = f"doppel_{env_name}_shop"
    try:
        doppel.request(env_name)
        env = doppel.settle(env_name)

        # Then the env failed, naming the column, with no copy of production's rows and no account left
        assert env.state == FAILED
        assert "address.phone (phone)" in env.reason and "no anonymise rule" in env.reason, env.reason
        assert clone not in databases(pg_server)
        # and its compensation deleted what it had made: stack, AMI, RDS snapshot, dumps and credentials in S3
        wait_for(lambda: not leftovers(env_name) and not dump_objects(env_name), 60, f"nothing of {env_name} left")
        account = f"doppel_{env_name}_app"
        assert not query(pg_server, "postgres", "SELECT 1 FROM pg_roles WHERE rolname = %s", (account,))
    finally:
        remove_env(doppel, env_name)
        doppel.close()
        postgresql.drop(pg_server, clone)


@pytest.mark.rabbitmq
@pytest.mark.timeout(300)  # a hang detector
def test_a_lamp_clone_runs_through_doppel_worker_processes_on_rabbitmq_with_its_rows_anonymised(
        aws_env, lamp_production, doppel_server, dumps_bucket, amqp_url, tmp_path):
    from tests.support.chain_site import Site
    pg_server = doppel_server
    entry = lamp_entry(pg_server, lamp_production)
    # Given Doppel as it runs: `doppel worker` on a vhost of its own, the LAMP production in its doppel.yaml
    site = Site(tmp_path, amqp_url, rows=1)
    site.config.write_text(yaml.safe_dump({"state_dir": "state", "productions": {PRODUCTION: entry},
                                           "bus": {"lease": "5s", "retry": {"attempts": 2, "first_delay": "200ms"}}}))
    site.env.update({**AWS_ENV, PASSWORD_ENV: os.environ[PASSWORD_ENV]})
    env_name = unique_env("mq")
    clone = f"doppel_{env_name}_shop"
    before = personal_values(pg_server, PRODUCTION_DATABASE)
    try:
        site.start_worker()
        # When an environment is asked for with the CLI, as a user would
        run = site.doppel("env", "create", env_name, "--from", PRODUCTION, "--timeout", "3m")

        # Then the chain ran through RabbitMQ to env.ready, and the env's database holds production's rows
        # with none of its personal values
        assert clone in run.stdout, run.stdout
        types = [e["type"] for e in site.events() if e["data"].get("env") == env_name]
        assert types[:4] == ["env.requested", "snapshot.done", "stack.ready", "env.ready"], types
        assert query(pg_server, clone, "SELECT count(*) FROM rental")[0][0] == 120
        for key, values in personal_values(pg_server, clone).items():
            assert values and not values & before[key], key
    finally:
        site.stop()
        cleaner = Doppel(tmp_path / "cleanup", production=entry)
        try:
            remove_env(cleaner, env_name)
        finally:
            cleaner.close()
        postgresql.drop(pg_server, clone)
        as_postgres(f'DROP ROLE IF EXISTS "doppel_{env_name}_app"')
