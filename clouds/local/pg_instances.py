"""PostgreSQL server instances of their own: a copy-on-write copy of a live data directory, started on 127.0.0.1.

The copy is a backup-mode copy (PostgreSQL's non-exclusive base backup, done by
hand): on one session of production, a temporary physical replication slot keeps
every WAL segment from now on, `pg_backup_start(fast)` checkpoints and forces full
page writes, the data directory is reflinked file by file (clouds.local.copying:
each file shares production's blocks, so the copy costs the same whatever its size),
`pg_backup_stop` gives the backup label, and pg_wal is reflinked last, so the copy
holds every WAL record from the backup's checkpoint to past its end. The session
ends and the slot goes with it. Files PostgreSQL itself leaves out of a base backup
(postmaster.pid, pg_replslot, pg_stat_tmp, temporary files...) are left out here too.

A copy is started as the data directory's owner (`pg_ctl start -w`, which returns
once recovery has replayed the WAL to a consistent state and the server accepts
connections) with settings of its own appended to postgresql.auto.conf: its own
port, listening on 127.0.0.1 only, its own socket directory, no archiving, no
replication, no statement logging. It opens *closed*: pg_hba.conf lets only the
bootstrap superuser in, through its socket directory (mode 0700), every role's
password is removed at once, and only once the copy is anonymised does `open_to`
give the env's role a fresh password and let it in over TCP.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from clouds.databases.postgresql import connect
from clouds.databases.servers import DatabaseError, Server, stderr_tail
from clouds.local.copying import copy_tree, tree_size

log = logging.getLogger(__name__)

# What pg_basebackup leaves out: these directories' contents, these files at the top, temporary files anywhere.
_EMPTY_DIRS = {"pg_wal", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_stat_tmp",
               "pg_subtrans"}
_TOP_FILES = {"postmaster.pid", "postmaster.opts", "backup_label", "backup_label.old", "tablespace_map",
              "standby.signal", "recovery.signal", "current_logfiles"}
DATA, RECORD, PASSWORD, LOG = "data", "instance.json", "password", "server.log"


def _left_out(relative: str) -> bool:
    parts = relative.split("/")
    if len(parts) == 1:
        return relative in _TOP_FILES or relative.startswith("pgsql_tmp")
    return parts[0] in _EMPTY_DIRS or parts[-1].startswith("pgsql_tmp") or parts[-1] == "pg_internal.init"


def backup_copy(server: Server, data_directory: Path, instance: Path, label: str) -> dict:
    """A consistent copy of production's running cluster at `data_directory` into `instance`/data (not started);
    returns what it recorded: the bootstrap superuser, the owner, the bytes and files reflinked."""
    data_directory = Path(data_directory)
    if any((data_directory / "pg_tblspc").iterdir()):
        raise DatabaseError(f"{data_directory} has tablespaces outside the data directory (pg_tblspc), which a "
                            "copy of the data directory does not hold; remove data_directory from the component "
                            "to copy the database on its server instead")
    instance.mkdir(parents=True)
    conn = connect(server, "postgres", autocommit=True)
    try:
        superuser = conn.execute("SELECT rolname FROM pg_roles WHERE oid = 10").fetchone()[0]
        conn.execute("SELECT pg_create_physical_replication_slot(%s, true, true)",
                     (f"doppel_{secrets.token_hex(6)}",))  # temporary: keeps the WAL until this session ends
        conn.execute("SELECT pg_backup_start(%s, true)", (label,))
        stats = copy_tree(data_directory, instance / DATA, exclude=_left_out)
        _lsn, backup_label, tablespace_map = conn.execute("SELECT * FROM pg_backup_stop(false)").fetchone()
        wal = copy_tree(data_directory / "pg_wal", instance / DATA / "pg_wal",
                        exclude=lambda relative: relative.startswith("archive_status/"))
    except psycopg.Error as exc:
        raise DatabaseError(f"backup-mode copy of {data_directory} as {server.user} on {server.where}: "
                            f"{str(exc).strip().splitlines()[0]} (the user needs REPLICATION and EXECUTE on "
                            "pg_backup_start and pg_backup_stop, or to be a superuser)") from None
    finally:
        conn.close()
    (instance / DATA / "backup_label").write_text(backup_label)
    if tablespace_map:
        (instance / DATA / "tablespace_map").write_text(tablespace_map)
    owner = os.stat(data_directory)
    record = {"superuser": superuser, "uid": owner.st_uid, "gid": owner.st_gid,
              "bytes": stats.bytes + wal.bytes, "files": stats.files + wal.files, "thin": stats.thin + wal.thin}
    _write(instance / RECORD, record)
    return record


def copy_instance(source: Path, target: Path) -> None:
    """Another stopped instance from a stopped one (a reflink per file where the filesystem has them)."""
    copy_tree(source, target)


def start(instance: Path, bin_dir: Path) -> Server:
    """Start the stopped copy in `instance` on a free port of 127.0.0.1, closed to all but its superuser's socket,
    every role's password removed; the Server through which Doppel reaches it as that superuser."""
    record = _read(instance)
    data = instance / DATA
    if not (record.get("socket") and os.path.isdir(record["socket"])):
        record["socket"] = tempfile.mkdtemp(prefix="doppel-pg-")  # short: a socket's path has 107 bytes at most
    record["port"] = _free_port()
    _write(instance / RECORD, record)
    if not (data / "postgresql.conf").exists():
        (data / "postgresql.conf").write_text("# the production's settings live outside its data directory\n")
    with open(data / "postgresql.auto.conf", "a", encoding="utf-8") as conf:
        conf.write(_settings(record, data))
    _hba(data, record["superuser"])
    (data / "pg_ident.conf").write_text("")
    _owned(instance, record)
    _pg_ctl(record, bin_dir, "start", "-D", str(data), "-l", str(instance / LOG), "-w", "-t", "3600")
    server = admin(record)
    with connect(server, "postgres", autocommit=True) as conn:
        for (role,) in conn.execute("SELECT rolname FROM pg_authid WHERE rolpassword IS NOT NULL").fetchall():
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD NULL").format(sql.Identifier(role)))
    return server


def admin(record: dict) -> Server:
    return Server("postgresql", record["superuser"], socket=record["socket"], port=record["port"])


def record_of(instance: Path) -> dict:
    return _read(instance)


def open_to(instance: Path, role: str, database: str) -> None:
    """Give `role` a fresh password (kept in `instance`/password, 0600) and let it reach `database` over TCP on
    127.0.0.1; returns once a connection with it succeeds."""
    record = _read(instance)
    password = secrets.token_urlsafe(24)
    with connect(admin(record), "postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        _hba(instance / DATA, record["superuser"], role, database)
        conn.execute("SELECT pg_reload_conf()")
    descriptor = os.open(instance / PASSWORD, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(password)
    deadline = time.monotonic() + 60
    while True:  # the postmaster reads pg_hba.conf again when it gets to the signal
        try:
            psycopg.connect(host="127.0.0.1", port=record["port"], user=role, password=password, dbname=database,
                            connect_timeout=5).close()
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise DatabaseError(f"the instance on port {record['port']} did not let {role} in after its "
                                    f"pg_hba.conf was reloaded: {str(exc).strip().splitlines()[0]}") from None
            time.sleep(0.05)


def running(instance: Path) -> bool:
    return (instance / DATA / "postmaster.pid").exists()


def stop(instance: Path, bin_dir: Path, mode: str = "fast") -> None:
    if running(instance):
        _pg_ctl(_read(instance), bin_dir, "stop", "-D", str(instance / DATA), "-m", mode, "-w", "-t", "300")


def remove(instance: Path, bin_dir: Path) -> None:
    """Stop the instance (immediately: it is thrown away) and delete it with its socket directory."""
    if not instance.exists():
        return
    record = _read(instance) if (instance / RECORD).exists() else {}
    if running(instance):
        _pg_ctl(record, bin_dir, "stop", "-D", str(instance / DATA), "-m", "immediate", "-w", "-t", "300")
    if record.get("socket"):
        shutil.rmtree(record["socket"], ignore_errors=True)
    shutil.rmtree(instance)
    log.info("removed PostgreSQL instance %s", instance)


def size(instance: Path) -> int:
    return tree_size(instance / DATA)


def bin_dir_of(data_directory: Path) -> Path:
    """The server's programs for the data directory's major version (Debian's layout), else those on the PATH."""
    version = (Path(data_directory) / "PG_VERSION").read_text().strip()
    debian = Path(f"/usr/lib/postgresql/{version}/bin")
    if (debian / "pg_ctl").exists():
        return debian
    found = shutil.which("pg_ctl")
    if found is None:
        raise DatabaseError(f"no pg_ctl for PostgreSQL {version} (not in {debian} nor on the PATH)")
    return Path(found).parent


def _settings(record: dict, data: Path) -> str:
    values = {"port": record["port"], "listen_addresses": "127.0.0.1", "unix_socket_directories": record["socket"],
              "hba_file": str(data / "pg_hba.conf"), "ident_file": str(data / "pg_ident.conf"),
              "external_pid_file": "", "archive_mode": "off", "archive_command": "", "restore_command": "",
              "primary_conninfo": "", "primary_slot_name": "", "ssl": "off", "log_statement": "none",
              "logging_collector": "off", "cluster_name": "doppel"}
    lines = [f"{key} = '{value}'" if isinstance(value, str) else f"{key} = {value}" for key, value in values.items()]
    return "\n# a Doppel environment's own instance (clouds.local.pg_instances)\n" + "\n".join(lines) + "\n"


def _hba(data: Path, superuser: str, role: str | None = None, database: str | None = None) -> None:
    lines = [f'local all "{superuser}" trust']  # the socket directory is 0700: the owner and root only
    if role:
        lines.append(f'host "{database}" "{role}" 127.0.0.1/32 scram-sha-256')
    (data / "pg_hba.conf").write_text("\n".join(lines) + "\n")
    _owned(data / "pg_hba.conf", _read(data.parent))


def _owned(path: Path, record: dict) -> None:
    """Everything under `path` belongs to the data directory's owner (when Doppel runs as root)."""
    if os.geteuid() != 0 or record["uid"] == 0:
        return
    paths = [path] if path.is_file() else [path, *(Path(root) / name for root, dirs, files in os.walk(path)
                                                   for name in dirs + files)]
    for entry in paths:
        os.lchown(entry, record["uid"], record["gid"])
    if record.get("socket"):
        os.chown(record["socket"], record["uid"], record["gid"])
        os.chmod(record["socket"], 0o700)


def _pg_ctl(record: dict, bin_dir: Path, *args: str) -> None:
    as_owner = os.geteuid() == 0 and record.get("uid", 0) != 0
    done = subprocess.run([str(Path(bin_dir) / "pg_ctl"), *args], capture_output=True, cwd="/",
                          user=record["uid"] if as_owner else None, group=record["gid"] if as_owner else None,
                          extra_groups=[] if as_owner else None)
    if done.returncode != 0:
        raise DatabaseError(f"pg_ctl {args[0]} of {args[2]} failed: {stderr_tail(done.stderr + done.stdout)}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _read(instance: Path) -> dict:
    return json.loads((instance / RECORD).read_text())


def _write(path: Path, record: dict) -> None:
    path.write_text(json.dumps(record))
