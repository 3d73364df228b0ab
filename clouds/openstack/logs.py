"""What an OpenStack environment logged: each server of its stack's console log, read through Nova's API
(`os-getConsoleOutput`), whatever the hypervisor behind Nova writes there."""
from __future__ import annotations

import logging
from pathlib import Path

from clouds.openstack import sdk
from clouds.openstack.resources import stack_name
from core.cloud import TAG_PRODUCTION, CollectedLogs

log = logging.getLogger(__name__)


class LogVerbs:
    """collect_logs for the openstack driver (a mixin of OpenStackDriver: _conn, productions, stack_status)."""

    def collect_logs(self, env: str, into: Path) -> CollectedLogs:
        stack = self.stack_status(env)
        production = stack.tags.get(TAG_PRODUCTION) if stack is not None else None
        spec = self.productions.get(production or "")
        if spec is None or not any(entry["console"] for entry in spec.get("logs", ())):
            return CollectedLogs()
        conn = self._conn(spec)
        resources = sdk.call(env, f"list the resources of stack {stack_name(env)}",
                             lambda: list(conn.orchestration.resources(stack.id)))
        servers = sorted((r.name, r.physical_resource_id) for r in resources
                         if r.resource_type == "OS::Nova::Server" and r.physical_resource_id)
        files, warnings = [], []
        for name, server_id in servers:
            try:
                answer = conn.compute.get_server_console_output(server_id)
            except Exception as exc:  # noqa: BLE001 - a server with no console (ERROR, shelved) must not block
                warnings.append(f"console of server {name} ({server_id}) could not be read: "
                                f"{exc.__class__.__name__}: {str(exc)[:200]}")
                continue
            text = (answer or {}).get("output") or ""
            target = into / "console" / f"{name}.log"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8", errors="replace")
            files.append(target.relative_to(into).as_posix())
        log.info("env %s: read the console of %d server(s)", env, len(files))
        return CollectedLogs(files=tuple(files), warnings=tuple(warnings))
