"""One mariadb-dump feeding several `mariadb` clients at once: a copy loaded in parallel from one point in time.

MariaDB cannot share one transaction's snapshot between sessions, so the copy keeps one reader
(`mariadb-dump --single-transaction`: one moment, no global lock) and spreads its output over N loaders by
table section, cut where mariadb-dump writes its section comments:
- the header (the SET statements before the first table) goes to every loader: each session needs them;
- each table's section (its structure, rows and triggers, or a view's placeholder) goes whole to one loader,
  the one sent the fewest bytes so far;
- the tail (final views, routines, events, then the footer) goes to one loader only once every other loader
  has finished: views and routines refer to tables another loader may still be loading.
The dump is read in large blocks and cut with bytes.find, never line by line; each loader is fed by its own
thread from a bounded queue, so the reader runs ahead of a loader busy with a large table and hands the next
table to another.
"""
from __future__ import annotations

import queue
import subprocess
import tempfile
import threading

from clouds.databases.servers import DatabaseError, stderr_tail

HEADER, TAIL = "header", "tail"
_TABLE_MARKERS = (b"-- Table structure for table ", b"-- Temporary table structure for view ")
_TAIL_MARKERS = (b"-- Final view structure for view ", b"-- Dumping routines", b"-- Dumping events")
_LONGEST = 1 + max(map(len, _TABLE_MARKERS + _TAIL_MARKERS))  # with the newline before it
_CHUNK = 1 << 20
_QUEUED = 256  # blocks (of up to _CHUNK) waiting for one loader: how far the reader may run ahead of it


class SectionRouter:
    """Cuts a mariadb-dump stream, block by block, into its header, its table sections (numbered from 0) and its
    tail. A marker is the start of a line; one cut in two by a block boundary is found once the next block comes."""

    def __init__(self):
        self.part: str | int = HEADER
        self.sections = 0
        self._carry = b""

    def feed(self, block: bytes) -> list[tuple[str | int, bytes]]:
        """The pieces of the stream that are certain so far, each with the part it belongs to."""
        return self._cut(self._carry + block, final=False)

    def close(self) -> list[tuple[str | int, bytes]]:
        """What was held back at the end of the stream."""
        return self._cut(self._carry, final=True)

    def _cut(self, data: bytes, final: bool) -> list[tuple[str | int, bytes]]:
        pieces: list[tuple[str | int, bytes]] = []
        if self.part == TAIL:  # nothing more to cut
            self._carry = b""
            return [(TAIL, data)] if data else []
        limit = len(data) if final else max(0, len(data) - _LONGEST + 1)  # a marker starting later may be cut
        start = search = 0
        while (found := data.find(b"\n-- ", search, limit + _LONGEST)) >= 0 and found < limit:
            search = found + 1
            if data.startswith(_TAIL_MARKERS, found + 1):
                part: str | int = TAIL
            elif data.startswith(_TABLE_MARKERS, found + 1):
                part, self.sections = self.sections, self.sections + 1
            else:
                continue
            if found + 1 > start:
                pieces.append((self.part, data[start:found + 1]))
            self.part, start = part, found + 1
            if part == TAIL:
                pieces.append((TAIL, data[start:]))
                self._carry = b""
                return pieces
        if limit > start:
            pieces.append((self.part, data[start:limit]))
        self._carry = data[limit:]
        return pieces


class _Loader:
    """A `mariadb` client fed from a queue by its own thread."""

    def __init__(self, command: list[str], env: dict[str, str], failed: threading.Event):
        self.errors = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.errors,
                                     env=env)
        self.sent, self.finished = 0, False
        self.blocks: queue.Queue[bytes | None] = queue.Queue(_QUEUED)
        self._failed = failed
        self.thread = threading.Thread(target=self._write, name="mariadb-loader", daemon=True)
        self.thread.start()

    def _write(self) -> None:
        try:
            while (block := self.blocks.get()) is not None:
                self.proc.stdin.write(block)
            self.proc.stdin.close()
        except OSError:  # the client stopped (BrokenPipeError): its exit code and stderr say why
            self._failed.set()

    def put(self, block: bytes | None) -> None:
        """Queue `block` (None: the end); waits while the queue is full, and stops waiting once anything failed."""
        if block is not None:
            self.sent += len(block)
        while True:
            if self._failed.is_set():
                raise _Failed
            try:
                self.blocks.put(block, timeout=0.2)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Send the end, wait for the client; _Failed when anything failed meanwhile or the client did."""
        if self.finished:
            return
        self.put(None)
        while self.thread.is_alive():
            self.thread.join(0.2)
            if self._failed.is_set():
                raise _Failed
        if self.proc.wait() != 0:
            self._failed.set()
            raise _Failed
        self.finished = True

    def kill(self) -> None:
        """End the client; the thread ends with it (a broken pipe, or the end found in its queue)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        try:
            self.blocks.put_nowait(None)
        except queue.Full:
            pass  # the thread is writing, and its write fails now
        self.thread.join(5)
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def message(self) -> str:
        self.errors.seek(0)
        return stderr_tail(self.errors.read())


class _Failed(Exception):
    """A loader or the dump stopped: everything is ended and the first failure reported."""


def load(dump_command: list[str], dump_env: dict[str, str], load_command: list[str], load_env: dict[str, str],
         loaders: int = 2, chunk: int = _CHUNK) -> None:
    """Run `dump_command` (mariadb-dump) into `loaders` copies of `load_command` (mariadb), routed by SectionRouter.
    DatabaseError with the failing tool's stderr tail when any of them fails (every other one is ended)."""
    failed = threading.Event()
    with tempfile.TemporaryFile() as dump_errors:
        dumping = subprocess.Popen(dump_command, stdout=subprocess.PIPE, stderr=dump_errors, env=dump_env)
        started: list[_Loader] = []
        try:
            started.extend(_Loader(load_command, load_env, failed) for _ in range(loaders))
            _route(dumping, started, chunk)
            if dumping.wait() == 0:
                for loader in started:
                    loader.finish()
        except _Failed:
            pass
        finally:
            _end(dumping, started)
        try:
            _verdict(dumping, dump_errors, started, failed)
        finally:
            for loader in started:
                loader.errors.close()


def _verdict(dumping: subprocess.Popen, dump_errors, loaders: list[_Loader], failed: threading.Event) -> None:
    """DatabaseError naming the tool that failed first, with its stderr tail; nothing when all went well."""
    for loader in loaders:  # first: a dump whose reader stopped fails too, for that reason
        if loader.proc.returncode not in (0, -9):  # -9: ended by _end after another failed
            raise DatabaseError(f"mariadb failed: {loader.message()}")
    dump_errors.seek(0)
    if dumping.returncode != 0:
        raise DatabaseError(f"mariadb-dump failed: {stderr_tail(dump_errors.read())}")
    if failed.is_set() or not all(loader.finished for loader in loaders):
        raise DatabaseError("a mariadb loader stopped: " + "; ".join(loader.message() for loader in loaders))


def _route(dumping: subprocess.Popen, loaders: list[_Loader], chunk: int) -> None:
    """Every block of the dump to its loader; the tail only once every other loader has finished."""
    router, owner = SectionRouter(), {}
    tail_loader: _Loader | None = None
    while True:
        block = dumping.stdout.read(chunk)
        for part, piece in router.feed(block) if block else router.close():
            if part == HEADER:
                for loader in loaders:
                    loader.put(piece)
            elif part == TAIL:
                if tail_loader is None:
                    tail_loader = max(loaders, key=lambda loader: loader.sent)  # likely the last to finish anyway
                    for loader in loaders:
                        if loader is not tail_loader:
                            loader.finish()
                tail_loader.put(piece)
            else:
                if part not in owner:
                    owner[part] = min(loaders, key=lambda loader: loader.sent)
                owner[part].put(piece)
        if not block:
            return


def _end(dumping: subprocess.Popen, loaders: list[_Loader]) -> None:
    """Stop whatever still runs (nothing, when all went well) and close what is open."""
    if dumping.poll() is None:
        dumping.kill()
    dumping.wait()
    dumping.stdout.close()
    for loader in loaders:
        loader.kill()
