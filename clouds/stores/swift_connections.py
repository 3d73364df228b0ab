"""Connections to one Swift account for a store: lent to one thread at a time, authenticated once.

swiftclient connections are not thread-safe: a thread borrows one from a pool
and gives it back once Swift has answered. Tempauth (v1) or Keystone (one
keystoneauth session, so one token, shared by every connection, from
clouds.yaml). swiftclient's exceptions become ObjectMissing / StoreError naming
the store and the object.
"""
from __future__ import annotations

import contextlib
import queue
import threading

import requests.adapters
from swiftclient import ClientException, Connection

from clouds.stores.segments import MiB
from core.stores import ObjectMissing, StoreError

CHUNK = MiB     # bytes per read of a response body, and per write of a request body (_LargeWrites)


class SwiftConnections:
    """A pool of swiftclient connections to one account; `name` (the store's) is in every error it raises."""

    def __init__(self, name: str, *, auth_url: str | None, user: str | None, key: str | None, cloud: str | None,
                 region_name: str | None, interface: str, insecure: bool, retries: int, timeout: float):
        self.name = name
        self.where = cloud or auth_url       # the clouds.yaml entry or the tempauth URL, for the store's repr
        self._auth = dict(auth_url=auth_url, user=user, cloud=cloud, region_name=region_name, interface=interface)
        self._key = key                     # kept out of repr, name and every message
        self._options = dict(insecure=insecure, retries=retries, timeout=timeout)
        self._pool: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._session = None
        self._session_lock = threading.Lock()

    @contextlib.contextmanager
    def connection(self):
        """A connection of our own for the duration: swiftclient connections are not thread-safe."""
        conn = self.borrow()
        try:
            yield conn
        except (ObjectMissing, StoreError):
            self.give_back(conn)                # Swift answered: the connection is fine
            raise
        except BaseException:
            conn.close()
            raise
        self.give_back(conn)

    def borrow(self) -> Connection:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return self._connect()

    def give_back(self, conn: Connection) -> None:
        self._pool.put(conn)

    def _connect(self) -> Connection:
        options = dict(retries=self._options["retries"], insecure=self._options["insecure"],
                       timeout=self._options["timeout"], starting_backoff=0.5, max_backoff=8)
        if self._auth["auth_url"]:
            return _Connection(authurl=self._auth["auth_url"], user=self._auth["user"], key=self._key,
                               auth_version="1", **options)
        return _Connection(session=self._keystone_session(), auth_version="3",
                           os_options={"region_name": self._auth["region_name"],
                                       "endpoint_type": self._auth["interface"]}, **options)

    def _keystone_session(self):
        """One keystoneauth session (one token) shared by every connection, made from clouds.yaml."""
        with self._session_lock:
            if self._session is None:
                import openstack.config  # only Keystone users pay for importing openstacksdk
                try:
                    region = openstack.config.OpenStackConfig().get_one(
                        cloud=self._auth["cloud"], region_name=self._auth["region_name"])
                except Exception as exc:  # noqa: BLE001 - openstacksdk raises several kinds
                    raise StoreError(f"{self.name}: cannot load cloud {self._auth['cloud']!r} "
                                     f"from clouds.yaml: {type(exc).__name__}") from None
                self._session = region.get_session()
        return self._session

    @contextlib.contextmanager
    def errors(self, what: str):
        """Turn swiftclient's exceptions into ObjectMissing / StoreError naming the store and the object."""
        try:
            yield
        except ClientException as exc:
            if exc.http_status == 404:
                raise ObjectMissing(f"{self.name}: no object {what}") from None
            raise StoreError(f"{self.name}: {what}: {reason(exc)}") from None


class _Connection(Connection):
    """A swiftclient Connection whose HTTP connections send a segment in 1 MiB writes.

    urllib3 reads a request body in 16 KiB blocks, and every block is a read
    through two wrappers and a send with the GIL let go and taken back: with four
    segments going up beside the compressor, about a tenth of a backup's CPU
    (bench/backup.py). 1 MiB writes make that negligible.
    """

    def http_connection(self, url=None):
        parsed, conn = super().http_connection(url)
        for scheme in ("http://", "https://"):
            conn.request_session.mount(scheme, _LargeWrites())
        return parsed, conn


class _LargeWrites(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, blocksize=CHUNK, **kwargs)


def reason(exc: BaseException) -> str:
    """What went wrong, for a message; refused credentials say what to check."""
    if isinstance(exc, ClientException):
        if exc.http_status in (401, 403):
            return (f"HTTP {exc.http_status}: refused credentials; check the user and the key in the variable "
                    f"key_env names (tempauth), or the cloud's entry in clouds.yaml (Keystone)")
        status = f"HTTP {exc.http_status} {exc.http_reason}".strip() if exc.http_status else "no HTTP answer"
        return f"{status} ({exc.msg})"
    return f"{type(exc).__name__}: {exc}"
