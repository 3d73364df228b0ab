"""What an AWS environment logged: each EC2 instance of its stack's console output (GetConsoleOutput)."""
from __future__ import annotations

import logging
from pathlib import Path

from clouds.aws import api
from clouds.aws.stacks import stack_name
from core.cloud import TAG_PRODUCTION, CollectedLogs

log = logging.getLogger(__name__)


class LogVerbs:
    """collect_logs for the aws driver (a mixin of AwsDriver: _clients, productions, stack_status)."""

    def collect_logs(self, env: str, into: Path) -> CollectedLogs:
        stack = self.stack_status(env)
        production = stack.tags.get(TAG_PRODUCTION) if stack is not None else None
        spec = self.productions.get(production or "")
        if spec is None or not any(entry["console"] for entry in spec.get("logs", ())):
            return CollectedLogs()
        clients = self._clients(spec)
        resources = api.call(env, f"list the resources of stack {stack_name(env)}", lambda: clients.cloudformation
                             .describe_stack_resources(StackName=stack.id)["StackResources"])
        instances = sorted((r["LogicalResourceId"], r["PhysicalResourceId"]) for r in resources
                           if r["ResourceType"] == "AWS::EC2::Instance" and r.get("PhysicalResourceId"))
        files, warnings = [], []
        for name, instance_id in instances:
            try:  # botocore decodes the base64 Output itself
                text = clients.ec2.get_console_output(InstanceId=instance_id, Latest=True).get("Output") or ""
            except Exception as exc:  # noqa: BLE001 - an instance with no console must not block the teardown
                warnings.append(f"console of instance {name} ({instance_id}) could not be read: "
                                f"{api.code_of(exc) or exc.__class__.__name__}: {api.message_of(exc)[:200]}")
                continue
            target = into / "console" / f"{name}.log"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8", errors="replace")
            files.append(target.relative_to(into).as_posix())
        log.info("env %s: read the console of %d instance(s)", env, len(files))
        return CollectedLogs(files=tuple(files), warnings=tuple(warnings))
