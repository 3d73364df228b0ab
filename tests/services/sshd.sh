#!/usr/bin/env bash
# Provide Debian's OpenSSH server binary and rsync for the file-tree tests (-m ssh).
#
# Run as root on a fresh Debian 12 machine. Safe to run again: installs only what is
# missing, and starts nothing. The tests start their own sshd (tests/support/sshd.py)
# on 127.0.0.1, on a free port, with a host key and an authorized_keys of their own,
# as a child of the test, and stop it when the test ends. apt does not start services
# on these machines, and the package's own sshd (port 22) is neither started nor needed.
# Environment:
#   APT_LOCK_SECONDS  how long to wait for another apt/dpkg to finish (default 900)
set -euo pipefail

APT_LOCK_SECONDS=${APT_LOCK_SECONDS:-900}
say() { echo "sshd.sh: $*"; }

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v rsync >/dev/null || missing+=(rsync)
command -v ssh >/dev/null || missing+=(openssh-client)
if [ ${#missing[@]} -eq 0 ]; then
    say "sshd, ssh and rsync are installed"
    exit 0
fi
say "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout="$APT_LOCK_SECONDS" install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get -o DPkg::Lock::Timeout="$APT_LOCK_SECONDS" update -q >/dev/null
         apt-get -o DPkg::Lock::Timeout="$APT_LOCK_SECONDS" install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
[ -x /usr/sbin/sshd ] || { echo "sshd.sh: ERROR: /usr/sbin/sshd is still missing" >&2; exit 1; }
say "installed ${missing[*]}"
