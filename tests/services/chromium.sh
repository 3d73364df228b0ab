#!/usr/bin/env bash
# Debian's Chromium, for the tests that open the gateway's status page in a headless browser
# (tests/flow/test_status_page.py). Installs it when missing; reuses it otherwise.
set -euo pipefail
started=$SECONDS
if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null 2>&1 || {
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null
  }
fi
echo "chromium.sh: $(chromium --version 2>/dev/null | head -1) ready ($((SECONDS - started))s)"
