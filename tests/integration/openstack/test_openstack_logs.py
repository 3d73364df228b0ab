"""An OpenStack environment's console log outlives its stack: read through Nova's console output API at teardown
(after the expiry backup), kept in the backup store, printed by `doppel env logs` once the stack is gone.

One clone, one expiry, on tests/services/openstack.sh's control plane: whatever Nova's fake hypervisor answers
for the server's console is what must come back.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from clouds.openstack.resources import stack_name
from core.registry import DELETED, READY
from scheduler.firing import Emitter, Firer
from tests.integration.openstack.conftest import Doppel, leftovers, unique_env
from tests.integration.openstack.test_openstack_chain import remove_env
from tests.support.waiting import wait_for

pytestmark = pytest.mark.openstack


@pytest.mark.timeout(600)  # a hang detector: a clone and a teardown on the test bed
def test_the_console_log_of_an_environments_server_is_kept_after_its_stack_is_deleted(
        openstack_cloud, production_stack, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DOPPEL_DB_URL", raising=False)
    monkeypatch.delenv("DOPPEL_AMQP_URL", raising=False)
    conn = openstack_cloud
    name = unique_env("logs")
    doppel = Doppel(tmp_path, logs=[{"kind": "logs", "console": True}])
    try:
        # Given a ready environment whose server has a console log, as Nova's API gives it
        doppel.request(name)
        env = doppel.settle(name)
        assert env.state == READY, env.reason
        stack = conn.orchestration.find_stack(stack_name(name))
        servers = {r.name: r.physical_resource_id for r in conn.orchestration.resources(stack.id)
                   if r.resource_type == "OS::Nova::Server"}
        console = conn.compute.get_server_console_output(servers["app"])["output"]
        assert console.strip(), "the test bed's Nova gives no console output to keep"

        # When its TTL runs out and the scheduler expires it (backup, then teardown)
        Firer(control=doppel.app.deps.scheduler, registry=doppel.app.registry,
              emitter=Emitter(doppel.app.broker, doppel.app.engine), may_fire=lambda: True,
              clock=lambda: env.expires_at + timedelta(seconds=1)).sweep_expired()
        doppel.app.broker.run_until_idle(timeout=120)
        assert doppel.app.registry.latest(name).state == DELETED
        wait_for(lambda: not leftovers(conn, name), 180, f"stack of {name} deleted", interval=2)
        wait_for(lambda: conn.compute.find_server(servers["app"], ignore_missing=True) is None, 120,
                 "its server deleted", interval=2)

        # Then `doppel env logs` prints that console log, from the store
        from doppel.cli import main
        config = tmp_path / "doppel.yaml"
        config.write_text(yaml.safe_dump(doppel.document))
        capsys.readouterr()
        assert main(["--config", str(config), "env", "logs", name]) == 0
        out, err = capsys.readouterr()
        assert out == "".join(f"console/app.log: {line}\n" for line in console.splitlines()), err
        assert "kept until" in err
        (kept,) = doppel.app.logs.logbook.kept(name)
        assert doppel.app.logs.describe(kept)["files"][0]["name"] == "console/app.log"
    finally:
        remove_env(doppel, conn, name)
        doppel.close()
