#!/usr/bin/env bash
# Debian's Prometheus, for its `promtool`: tests/unit/test_alert_rules.py checks the shipped alert rules
# (deploy/prometheus/) with it. Installs the package when missing (the server itself is not started).
set -euo pipefail
started=$SECONDS
if ! command -v promtool >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 || {
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends prometheus >/dev/null
  }
  # The package starts its server on install where a service manager runs; the tests need only promtool.
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
echo "prometheus.sh: $(promtool --version 2>&1 | head -1) ready ($((SECONDS - started))s)"
