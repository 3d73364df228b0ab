"""A server reached over SSH, for tests: Debian's sshd on 127.0.0.1, on a free port, as a child of the test.

Each `SshServer` has its own host key (or one handed in: a server re-created with the key
pair its user data gave it), an authorized_keys holding the key Doppel logs in with, and
its own "server root" directory. The tree a production names is one absolute path on
every server (`mount_point`), as on real servers made from one template; each sshd runs
in a mount namespace of its own (`unshare -m`) in which that path is its server root,
so two servers on one machine hold two different trees at the same path.

tests/services/sshd.sh installs openssh-server and rsync; nothing is started on port 22.
"""
from __future__ import annotations

import os
import shlex
import socket
import subprocess
from pathlib import Path

from tests.support.waiting import wait_for

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_host_key(folder: Path) -> Path:
    """A fresh ed25519 host key pair in `folder` (ssh_host_ed25519_key and its .pub)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test-server", "-f", str(key)],
                   check=True, capture_output=True)
    return key


class SshServer:
    """sshd on 127.0.0.1:<port>, in whose view `mount_point` is `root`; stop() ends it (and only it)."""

    def __init__(self, folder: Path, *, authorized_key: str, mount_point: Path, host_key: Path | None = None,
                 user: str = "root", port: int | None = None):
        self.folder = Path(folder)
        self.root = self.folder / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.mount_point = Path(mount_point)
        self.mount_point.mkdir(parents=True, exist_ok=True)
        self.host_key = host_key or make_host_key(self.folder / "keys")
        self.user = user
        self.port = port or free_port()
        authorized = self.folder / "authorized_keys"
        authorized.write_text(authorized_key.strip() + "\n")
        authorized.chmod(0o600)
        config = self.folder / "sshd_config"
        config.write_text("\n".join([
            "ListenAddress 127.0.0.1", f"HostKey {self.host_key}", f"PidFile {self.folder / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized}", "PubkeyAuthentication yes", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password",
            f"AllowUsers {user}", "LogLevel ERROR", ""]))
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        script = (f"mount --bind {shlex.quote(str(self.root))} {shlex.quote(str(self.mount_point))} && "
                  f"exec {SSHD} -D -e -f {shlex.quote(str(config))} -p {self.port}")
        self.log = open(self.folder / "sshd.log", "wb")
        self.process = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                        stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for(self._answers, 20, f"sshd on 127.0.0.1:{self.port}", explain=self._log_text)

    @property
    def public_host_key(self) -> str:
        return Path(f"{self.host_key}.pub").read_text().strip()

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"sshd exited with {self.process.returncode}: {self._log_text()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                return conn.recv(4).startswith(b"SSH-")
        except OSError:
            return False

    def _log_text(self) -> str:
        return (self.folder / "sshd.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def __enter__(self) -> "SshServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def tree_files(root: Path) -> dict[str, bytes]:
    """Every regular file under `root` by its relative path, with its content."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def sshd_available() -> bool:
    return os.access(SSHD, os.X_OK)
