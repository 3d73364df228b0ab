"""File trees on servers reached over SSH: copied with rsync, the server's host key pinned.

A production's `files:` (schemas.openstack_files) name directories on its servers,
at the address its stack's outputs give. A backup copies each tree with rsync into
a mirror kept between backups (`<state_dir>/file-trees/<name>/<tree>/`, so the next
backup moves only what changed), and links it into the backup's directory as
`files/<tree>/`, beside `openstack/`; the archive holds it as it holds a local
production's files. A restore copies `files/<tree>/` back with rsync into the same
path on the server of the stack restored into (a DR stack, an environment), found
through that stack's own outputs.

Every SSH connection trusts exactly one host key, the pinned one: ssh runs with
StrictHostKeyChecking=yes, a known_hosts file of that key alone (under an alias, so
the address does not matter), no global known_hosts and no user config. A server
presenting any other key is refused before a byte is copied, and the refusal says
which server, both fingerprints and what to do. Doppel logs in with its own key,
`<state_dir>/ssh/id_ed25519` (made on first use; its `.pub` goes in the server's
authorized_keys), or the tree's `identity_file`; the private key is never read here.

The key pair a template hands a server through user data ({host_key.TREE} and
{host_key.TREE.public}, from the variable `host_key_env` names) is checked against
the pinned key before Heat sees it, so a DR server cannot be given a key Doppel would refuse.
"""
from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.cloud import DriverError
from core.secrets import redact
from schemas.openstack_files import HOST_KEY_PLACEHOLDER, fingerprint, parse_public_key
from schemas.templates import TemplateError, render

log = logging.getLogger(__name__)

FOLDER = "files"                 # where the trees are in a backup: files/<tree>/
CONNECT_TIMEOUT_S = 15
IO_TIMEOUT_S = 600               # rsync gives up on a transfer that moves nothing for this long
RSYNC_VANISHED = 24              # "some files vanished before they could be transferred": a live tree, kept
KEY_ALIAS = "doppel-pinned"      # the name the pinned key is filed under in the one-line known_hosts
_ALGORITHMS = {"ssh-rsa": "rsa-sha2-512,rsa-sha2-256"}  # the signatures an ssh-rsa key is offered with
_PRESENTED = re.compile(r"(SHA256:[A-Za-z0-9+/]{43})")
_key_lock = threading.Lock()


@dataclass(frozen=True)
class Server:
    """Where one tree is, on one server, and how to trust it."""
    tree: str
    owner: str          # "production shop", "env shop-dr": whose server it is
    production: str
    host: str
    port: int
    user: str
    path: str
    host_key: str       # "<type> <base64>", pinned
    identity: Path
    exclude: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.owner}'s server {self.host}:{self.port} (files {self.tree}, {self.path})"

    @property
    def remote(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.path.rstrip('/')}/"


class HostKeyChanged(DriverError):
    """The server presented a host key other than the pinned one: nothing was copied."""

    def __init__(self, message: str, *, env: str | None = None):
        super().__init__(message, env=env, permanent=True)


# --- Doppel's own key ------------------------------------------------------------------------

def doppel_identity(state_dir: Path) -> Path:
    """Doppel's SSH key, `<state_dir>/ssh/id_ed25519`, made on first use (its .pub beside it)."""
    key = Path(state_dir) / "ssh" / "id_ed25519"
    with _key_lock:
        if not key.exists():
            key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fresh = key.with_name(f".id_ed25519-{os.getpid()}")
            for stale in (fresh, fresh.with_suffix(".pub")):
                stale.unlink(missing_ok=True)
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "doppel", "-f", str(fresh)],
                 what="make Doppel's SSH key")
            os.replace(fresh.with_suffix(".pub"), key.with_suffix(".pub"))
            os.replace(fresh, key)  # last: a key without its .pub is never left behind
    return key


def public_key(identity: Path) -> str:
    """The line to put in a server's authorized_keys for `identity`."""
    return Path(f"{identity}.pub").read_text().strip()


# --- where a tree is -------------------------------------------------------------------------

def resolve(tree: Mapping, outputs: Mapping, *, owner: str, production: str, identity: Path,
            env: str | None = None) -> Server:
    """The server of `tree` for a stack with these outputs; a missing output fails for good, naming it."""
    def filled(field: str) -> str:
        try:
            return str(render(tree[field], outputs=outputs, secrets={}, env=env or production, production=production))
        except TemplateError as exc:
            raise DriverError(f"cannot find the server of files {tree['name']} of {owner}: {exc}; fix "
                              f"productions.{production}.files or the stack's outputs", env=env,
                              permanent=True) from None
    port = filled("port") if isinstance(tree["port"], str) else tree["port"]
    if not str(port).isdigit() or not 0 < int(port) < 65536:
        raise DriverError(f"files {tree['name']} of {owner}: the port its stack gives ({port!r}) is not a port "
                          f"number; fix productions.{production}.files", env=env, permanent=True)
    identity = Path(tree["identity_file"]) if tree.get("identity_file") else identity
    return Server(tree=tree["name"], owner=owner, production=production, host=filled("host"), port=int(port),
                  user=tree["user"], path=tree["path"], host_key=tree["host_key"], identity=identity,
                  exclude=tuple(tree.get("exclude") or ()))


# --- SSH with the pinned key ----------------------------------------------------------------

@contextmanager
def pinned(server: Server) -> Iterator[list[str]]:
    """The ssh command (as a list) that trusts only the server's pinned key, for as long as the block runs."""
    folder = Path(tempfile.mkdtemp(prefix="doppel-ssh-"))
    try:
        known_hosts = folder / "known_hosts"
        known_hosts.write_text(f"{KEY_ALIAS} {server.host_key}\n")
        kind = server.host_key.split()[0]
        yield ["ssh", "-F", "/dev/null", "-p", str(server.port), "-i", str(server.identity),
               "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
               "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
               "-o", f"HostKeyAlias={KEY_ALIAS}", "-o", f"HostKeyAlgorithms={_ALGORITHMS.get(kind, kind)}",
               "-o", "UpdateHostKeys=no", "-o", "CheckHostIP=no", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
               "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", "-o", "LogLevel=ERROR"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_server(server: Server, ssh: list[str], *, env: str | None = None) -> None:
    """Log in once (running `true`) so a wrong host key, a refused login or no answer is told apart from rsync's
    own failures, before anything is copied."""
    if not server.identity.is_file():
        raise DriverError(f"cannot log in to {server.label}: the key {server.identity} does not exist; fix "
                          f"identity_file in productions.{server.production}.files", env=env, permanent=True)
    host = f"[{server.host}]" if ":" in server.host else server.host
    try:
        done = subprocess.run([*ssh, f"{server.user}@{host}", "true"], capture_output=True,
                              text=True, timeout=CONNECT_TIMEOUT_S * 4, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise DriverError(f"{server.label} did not finish an SSH login in {CONNECT_TIMEOUT_S * 4} s; it is retried",
                          env=env) from None
    if done.returncode == 0:
        return
    err = done.stderr
    if "HOST IDENTIFICATION HAS CHANGED" in err or "Host key verification failed" in err:
        presented = _PRESENTED.search(err.split("sent by the remote host", 1)[-1])
        pinned_fp = fingerprint(parse_public_key(server.host_key)[1])
        raise HostKeyChanged(
            f"refused {server.label}: it presented host key "
            f"{presented.group(1) if presented else '(not shown by ssh)'}, but {server.host_key.split()[0]} "
            f"{pinned_fp} is pinned (productions.{server.production}.files {server.tree}: host_key), so nothing "
            "was copied. A server re-created without its key pair in user data presents a new key (docs/"
            "openstack.md, 'Host keys'): hand it the pinned pair ({host_key." + server.tree + "}) and re-create "
            "it; or, if you have checked the new key out of band (on the server's console: ssh-keygen -lf "
            "/etc/ssh/ssh_host_ed25519_key.pub), pin it in host_key.", env=env)
    if "Permission denied" in err:
        raise DriverError(
            f"{server.label} refused Doppel's login as {server.user}: add Doppel's public key ({server.identity}"
            f".pub: {_public_or_unknown(server.identity)}) to ~{server.user}/.ssh/authorized_keys there",
            env=env, permanent=True)
    raise DriverError(f"cannot reach {server.label} over SSH: {_tail(err) or f'ssh exit {done.returncode}'}; "
                      "it is retried", env=env)


# --- rsync ------------------------------------------------------------------------------------

def pull(server: Server, into: Path, *, env: str | None = None) -> None:
    """Make `into` a copy of the server's tree (only what changed moves); fails closed naming the server."""
    into.mkdir(parents=True, exist_ok=True)
    with pinned(server) as ssh:
        check_server(server, ssh, env=env)
        # --delete-excluded: a pattern added to exclude also leaves the mirror, so no later backup holds it
        _rsync(server, ssh, ["--delete-excluded", server.remote, f"{into}/"], "back up", env=env)


def push(server: Server, source: Path, *, env: str | None = None) -> None:
    """Make the server's tree a copy of `source` (made if missing; files the backup lacks are removed)."""
    if not source.is_dir():
        raise DriverError(f"cannot restore files {server.tree} into {server.label}: the backup holds no "
                          f"{FOLDER}/{server.tree}/", env=env, permanent=True)
    with pinned(server) as ssh:
        check_server(server, ssh, env=env)
        _rsync(server, ssh, ["--mkpath", f"{source}/", server.remote], "restore", env=env)


def _rsync(server: Server, ssh: list[str], ends: list[str], verb: str, *, env: str | None) -> None:
    excludes = [f"--exclude={pattern}" for pattern in server.exclude]
    command = ["rsync", "-aH", "--numeric-ids", "--delete", f"--timeout={IO_TIMEOUT_S}", *excludes,
               "-e", shlex.join(ssh), *ends]
    log.info("files %s: rsync to %s %s", server.tree, verb, server.label)
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode == RSYNC_VANISHED:
        log.warning("files %s on %s: files vanished while copied (a live tree); the rest is copied",
                    server.tree, server.label)
    elif done.returncode != 0:
        raise DriverError(f"rsync could not {verb} files {server.tree} on {server.label}: "
                          f"{_tail(done.stderr) or f'exit {done.returncode}'}", env=env,
                          permanent=done.returncode in (1, 2, 3, 4))  # syntax, protocol, paths, options


def _tail(text: str, lines: int = 4) -> str:
    kept = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("@@@")]
    return redact(" | ".join(kept[-lines:]))


def _public_or_unknown(identity: Path) -> str:
    try:
        return public_key(identity)
    except OSError:
        return "no .pub beside it"


def _run(command: list[str], *, what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise DriverError(f"could not {what}: {_tail(done.stderr) or f'exit {done.returncode}'}", permanent=True)


# --- host keys through user data ----------------------------------------------------------------

def host_key_values(spec: Mapping, production: str, *, env: str | None = None,
                    environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """{host_key.TREE} (the private key from `host_key_env`) and {host_key.TREE.public} (the pinned key) for
    the trees whose parameters use them; the private key must be the pinned key's pair."""
    used = {placeholder.strip() for value in spec["parameters"].values() if isinstance(value, str)
            for placeholder in re.findall(r"\{([^{}]+)\}", value)}
    values: dict[str, str] = {}
    for tree in spec.get("files", ()):
        name = f"{HOST_KEY_PLACEHOLDER}{tree['name']}"
        if not tree.get("host_key_env") or not {name, f"{name}.public"} & used:
            continue
        private = environ.get(tree["host_key_env"], "")
        if not private.strip():
            raise DriverError(f"productions.{production}.files {tree['name']}: the variable {tree['host_key_env']} "
                              "is empty or not set; put the server's private host key in it (the file "
                              "ssh_host_ed25519_key), so the servers the template makes present the pinned key",
                              env=env, permanent=True)
        derived = _public_of(private)
        if derived is None or derived != parse_public_key(tree["host_key"]):
            raise DriverError(f"productions.{production}.files {tree['name']}: the private key in "
                              f"{tree['host_key_env']} is not the pair of the pinned host_key "
                              f"({fingerprint(parse_public_key(tree['host_key'])[1])}); a server given it would be "
                              "refused. Put the pinned key's private half in the variable", env=env, permanent=True)
        values[name] = private.strip() + "\n"
        values[f"{name}.public"] = tree["host_key"]
    return values


def _public_of(private: str) -> tuple[str, bytes] | None:
    """(type, blob) of an OpenSSH private key's public half, None if it is not one."""
    from cryptography.hazmat.primitives import serialization
    try:
        key = serialization.load_ssh_private_key(private.strip().encode() + b"\n", password=None)
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH).decode()
        return parse_public_key(line)
    except (ValueError, TypeError):
        return None


# --- the driver's verbs ---------------------------------------------------------------------------

class FileTreeVerbs:
    """The file-tree verbs of `OpenStackDriver` (clouds.openstack.driver), which gives them its productions, its
    state directory (`_sources_dir`), its stacks (`stack_status`) and production's stack outputs."""

    def ssh_identity(self) -> Path:
        """Doppel's SSH key for this driver's servers (`<state_dir>/ssh/id_ed25519`); its .pub is what servers
        authorize."""
        return doppel_identity(self._sources_dir().parent)

    def _pull_file_trees(self, spec: Mapping, outputs: Mapping, root: Path, name: str, production: str) -> None:
        """Copy the production's trees from `name`'s servers into `root/files/<tree>/` (a backup's directory)."""
        if not spec.get("files"):
            return
        owner = f"production {production}" if name == production else f"env {name}"
        identity = self.ssh_identity()
        for tree in spec["files"]:
            server = resolve(tree, outputs, owner=owner, production=production, identity=identity, env=name)
            mirror = self._mirror(name) / tree["name"]
            pull(server, mirror, env=name)
            (root / FOLDER).mkdir(parents=True, exist_ok=True)
            # Hard links: the backup reads the mirror's files as they are now; rsync replaces a file it updates
            # (a new inode), so the next backup's pull never changes what this one is archiving.
            _run(["cp", "-al", "--", str(mirror), str(root / FOLDER / tree["name"])],
                 what=f"link files {tree['name']} of {owner} into its backup")

    def restore_file_trees(self, env: str, restored: Path, *, production: str | None = None,
                           outputs: Mapping | None = None) -> list[str]:
        """Copy each tree of a restored backup (`restored/files/<tree>/`) onto the servers of `env`'s stack (a DR
        stack, an environment; production's own when `env` is the production), found through that stack's
        outputs (or `outputs`). Returns the trees copied; fails closed naming the server."""
        production = production or env
        spec = self._spec(production, env)
        if outputs is None:
            outputs = self._outputs_of(env, production, spec)
        owner = f"production {production}" if env == production else f"env {env}"
        identity = self.ssh_identity()
        copied = []
        for tree in spec.get("files", ()):
            server = resolve(tree, outputs, owner=owner, production=production, identity=identity, env=env)
            push(server, Path(restored) / FOLDER / tree["name"], env=env)
            copied.append(tree["name"])
        return copied

    def _outputs_of(self, env: str, production: str, spec: Mapping) -> dict:
        if env == production:
            conn = self._conn(spec)
            if not spec.get("stack"):
                return {}
            raw = conn.orchestration.find_stack(spec["stack"], ignore_missing=True)
            raw = raw and conn.orchestration.get_stack(raw.id)
            if raw is None:
                raise DriverError(f"production {production}'s stack {spec['stack']!r} does not exist, so its "
                                  "servers cannot be found", env=env, permanent=True)
            return {o["output_key"]: o.get("output_value") for o in (raw.outputs or [])}
        found = self.stack_status(env)
        if found is None or not found.complete:
            state = "has no stack" if found is None else f"is {found.status}"
            raise DriverError(f"cannot restore files into env {env}: it {state}", env=env, permanent=found is None)
        return dict(found.outputs)

    def _mirror(self, name: str) -> Path:
        return self._sources_dir().parent / "file-trees" / name

    def _discard_file_trees(self, name: str) -> None:
        shutil.rmtree(self._mirror(name), ignore_errors=True)
