#!/usr/bin/env bash
# xfsprogs, for the thin-clone tests (tests/unit/clouds/test_thin_clones.py) and bench/clone.py: they make a
# small XFS on a loop device (tests/support/loopfs.py). Installs the package when missing; nothing is started.
set -euo pipefail
started=$SECONDS
if ! command -v mkfs.xfs >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends xfsprogs >/dev/null 2>&1 || {
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends xfsprogs >/dev/null
  }
fi
echo "xfs.sh: $(mkfs.xfs -V 2>&1 | head -1) ready ($((SECONDS - started))s)"
