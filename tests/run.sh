#!/usr/bin/env bash
# The README's test command: installs what the tests need (Python packages, and
# RabbitMQ (one node, and a 3-node cluster beside it) / Swift / PostgreSQL / MariaDB from Debian's packages,
# started on 127.0.0.1 by the project's own scripts, reusing any already running) and runs the whole suite.
# .ci/run calls this script. It checks the import contracts (lint-imports) and ruff first.
# Arguments are passed to pytest (e.g. --fast, -k NAME).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
python3 -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v -E "^WARNING: (Running pip as|Location)" || true
if [[ " $* " != *" --fast "* ]]; then
  for service in tests/services/rabbitmq.sh tests/services/rabbitmq-cluster.sh tests/services/swift.sh \
                 tests/services/bind.sh \
                 tests/services/postgresql.sh tests/services/mariadb.sh tests/services/chromium.sh \
                 tests/services/moto.sh tests/services/sshd.sh \
                 tests/services/prometheus.sh tests/services/xfs.sh; do
    [[ -f $service ]] && bash "$service"
  done
fi
# The house's rules first (docs/design.md, "Why this layout"): layers and no import cycles, then ruff.
contracts=$(lint-imports --no-cache 2>&1) || { echo "$contracts" >&2; echo "tests/run.sh: an import breaks the layers (docs/design.md)" >&2; exit 1; }
ruff check --quiet . || { echo "tests/run.sh: ruff found the problems above (ruff check --fix mends most)" >&2; exit 1; }
echo "tests/run.sh: ready after $((SECONDS - started)) s; import contracts and ruff pass; running pytest"
exec python3 -m pytest -p no:cacheprovider "$@"
