"""Engine and sessions. SQLite gets WAL, a busy timeout and foreign keys on every connection.

A SQLite WAL is folded back into the database file by a checkpoint. By default the connection
whose commit pushes the WAL past 1,000 pages runs it, inline: that one request then waits for
the copy and two fsyncs (measured here: 45-190 ms stalls, the whole p99.9 of the check API).
The service opens its engine with ``checkpoint="background"`` instead: no connection of the
engine checkpoints as part of a commit, and a :class:`WalCheckpointer` thread does it on its
own connection. PASSIVE checkpoints take no lock that writers or readers wait for, and
SQLite releases the GIL while it copies and syncs, so requests keep running meanwhile.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Literal

import orjson
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from riskctl.instruments import DB_COMMITS

log = logging.getLogger(__name__)

# The WAL file is cut back to this size by the first commit after it starts over, if it had
# grown past it. It is set above what the WAL reaches in normal running (the checkpointer
# forces a RESTART past 32,768 frames, 135 MB; frames landing meanwhile took it to 138-161 MB
# at 600 commits/s, twice the service's load), so that only a WAL grown by something holding
# checkpoints back is trimmed. The cut is made by a check's own commit, and freeing the file's
# blocks is slow on a disk that trims them at once (mounted with ``discard``): at 64 MB, a
# server at 270 checks/s whose WAL reached 90 MB had a check blocked in the kernel's discard
# every 12 s or so, and in ``bench/bench_checkpoint.py`` (``trim64``, 600 commits/s) each
# cutting commit took 7-44 ms.
JOURNAL_SIZE_LIMIT = 256 * 1024 * 1024
# key, in a pooled SQLite connection's ``info``, of the busy timeout (ms) it was opened with
BUSY_TIMEOUT_INFO = "riskctl_busy_timeout_ms"


def make_engine(
    url: str,
    *,
    busy_timeout_ms: int = 5000,
    synchronous: str = "NORMAL",
    checkpoint: Literal["inline", "background"] = "inline",
    journal_size_limit: int = JOURNAL_SIZE_LIMIT,
) -> Engine:
    """An engine for ``url``. For SQLite, ``checkpoint="background"`` turns off the WAL
    checkpoint that a commit would otherwise run inline: pair it with a :class:`WalCheckpointer`.
    """
    if url.startswith("sqlite"):
        db_path = make_url(url).database
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
            pool_size=8,
            max_overflow=8,
            json_serializer=_dumps,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, record: Any) -> None:
            # kept with the pooled connection: the check writer waits this long itself
            record.info[BUSY_TIMEOUT_INFO] = int(busy_timeout_ms)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process (what the fault tests do);
            # only an OS crash or power loss can drop the last commits. FULL fsyncs each.
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA journal_size_limit={int(journal_size_limit)}")
            if checkpoint == "background":
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        return _count_commits(engine)
    return _count_commits(
        create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, json_serializer=_dumps)
    )


def _dumps(value: Any) -> str:
    # orjson: the features and signals of a decision are serialised on every check.
    return orjson.dumps(value).decode()


def _count_commits(engine: Engine) -> Engine:
    @event.listens_for(engine, "commit")
    def _commit(_conn: Any) -> None:
        DB_COMMITS.inc()

    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def sqlite_path(engine: Engine) -> Path | None:
    """The database file of a SQLite engine; None for other databases and in-memory SQLite."""
    if engine.dialect.name != "sqlite":
        return None
    db = engine.url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


class WalCheckpointer:
    """Folds a SQLite WAL back into the database from a daemon thread, off the request path.

    Every ``interval_s`` it looks at the WAL file (one ``stat``) and, when frames were added
    since the last look, runs ``PRAGMA wal_checkpoint(PASSIVE)`` on a connection of its own.
    PASSIVE copies what no reader still needs and never waits, so requests keep writing.

    The WAL starts over from its start (and ``journal_size_limit`` trims it) only when a
    writer begins while every frame in it has been copied. Under steady writes a single
    PASSIVE pass never gets there: commits land while it copies and syncs, so the WAL would
    grow without bound (measured: 1.4 GB in a minute at 250 checks/s). So a pass catches up:
    while the last PASSIVE copied everything it saw and more frames have arrived since, it
    runs another, up to ``catchup_rounds``. Each copies only what came during the one before,
    so each is shorter, and soon one ends with nothing new behind it: the next commit starts
    the WAL over. ``wal_checkpoint(RESTART)``, which holds every writer back while it copies
    and syncs, is kept as the fallback for a WAL still past ``restart_frames`` after that,
    waiting at most ``restart_wait_ms`` for a busy writer or reader.

    Measured by ``bench/bench_checkpoint.py`` (two writers at 300 commits/s, ~20 WAL frames
    each, on this VM's ext4 disk, 20 s runs, two each): with a pass a second and a RESTART
    every 16k frames (every 3 s), 19 and 28 commits of 6,000 took over 5 ms and the p99.9 was
    11.8 and 16.2 ms; each RESTART stalled both writers for 8-21 ms. Catching up, with a pass
    every 0.5 s, 9 and 5 took over 5 ms, the p99.9 was 9.6 and 4.9 ms, no RESTART was needed
    and the WAL stayed under 40 MB.

    Every gunicorn worker starts one, and one does the work: passes run only while holding an
    exclusive ``flock`` on ``<database>-checkpoint.lock``, taken without waiting and kept. If
    that worker dies the kernel drops its lock and another worker's thread takes over.
    """

    def __init__(
        self,
        path: Path,
        *,
        interval_s: float = 0.5,
        catchup_rounds: int = 4,
        restart_frames: int = 32768,
        restart_wait_ms: int = 50,
        busy_timeout_ms: int = 5000,
    ) -> None:
        self.path = Path(path)
        self.wal = self.path.with_name(self.path.name + "-wal")
        self.interval_s = interval_s
        self.catchup_rounds = catchup_rounds
        self.restart_frames = restart_frames
        self.restart_wait_ms = restart_wait_ms
        self.busy_timeout_ms = busy_timeout_ms
        self.passes = 0  # checkpoints run (a pass that catches up runs several)
        self.pages = 0  # WAL pages copied back into the database, all passes
        self.restarts = 0  # times the WAL was seen to have started over from its start
        self.forced = 0  # RESTART checkpoints run because catching up did not get there
        self._generation: bytes | None = None  # the WAL header's checkpoint sequence number
        self._copied = 0  # frames of the current WAL generation already copied
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._last_seen: tuple[int, int] | None = None
        self.lock_path = self.path.with_name(self.path.name + "-checkpoint.lock")
        self._lock_fd: int | None = None
        self._warned = False

    def start(self) -> WalCheckpointer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="riskctl-wal-checkpoint", daemon=True)
            self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def checkpoint(self) -> tuple[int, int, int] | None:
        """One pass now: PASSIVE until caught up, then RESTART if the WAL is still long.
        Returns the first PASSIVE's result (busy, WAL frames, frames copied), or None if
        there is no WAL yet."""
        if not self.wal.exists():
            return None
        conn = self._connection()
        first = busy, frames, copied = self._passive(conn)
        for _ in range(self.catchup_rounds):
            if busy or copied < frames:
                break  # a reader still needs frames: the next pass tries again
            busy, now, copied = self._passive(conn)
            if now <= frames:
                break  # nothing came while copying (the next commit starts over), or it did
            frames = now
        if frames >= self.restart_frames:  # the writers never left a gap: make one
            conn.execute(f"PRAGMA busy_timeout={int(self.restart_wait_ms)}")
            try:
                _busy, _frames, copied = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            finally:
                conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            self.forced += 1
            self._observe(copied)  # the frames it copied; the restart itself is seen next pass
        return first

    def _passive(self, conn: sqlite3.Connection) -> tuple[int, int, int]:
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.passes += 1
        self._observe(copied)
        return busy, frames, copied

    def _observe(self, copied: int) -> None:
        """Counts pages copied and WAL restarts. ``copied`` is the checkpoint's count of the
        WAL's frames copied so far, which starts from 0 again when the WAL starts over, told
        by the checkpoint sequence number in the WAL header (bytes 12-15)."""
        try:
            with open(self.wal, "rb") as f:
                generation = f.read(16)[12:16]
        except OSError:
            return
        if len(generation) < 4:
            return  # an empty WAL (cut to nothing, or not written yet): nothing to count
        if generation != self._generation:
            if self._generation is not None:
                self.restarts += 1
            self._generation, self._copied = generation, 0
        if copied > self._copied:
            self.pages += copied - self._copied
            self._copied = copied

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # autocommit, and the GIL released while SQLite works
            self._conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
            )
        return self._conn

    @property
    def elected(self) -> bool:
        """True while this checkpointer is the one that works on the database."""
        return self._lock_fd is not None

    def _elect(self) -> bool:
        if self._lock_fd is None:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # another process's checkpointer holds it
                return False
            self._lock_fd = fd
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if not self._elect():
                    continue
            except OSError as exc:  # the lock file cannot be made: nobody checkpoints, say so
                if not self._warned:
                    log.error("WAL checkpointer cannot lock %s: %s", self.lock_path, exc)
                    self._warned = True
                continue
            try:
                st = self.wal.stat()
            except FileNotFoundError:
                continue
            # size and mtime: a restarted WAL is rewritten from its start at the same size
            seen = (st.st_size, st.st_mtime_ns)
            if seen == self._last_seen:
                continue
            try:
                self.checkpoint()
                st = self.wal.stat()
                self._last_seen = (st.st_size, st.st_mtime_ns)
            except (sqlite3.Error, OSError) as exc:
                log.warning("WAL checkpoint failed (retried on the next pass): %s", exc)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock: another worker may take over
            self._lock_fd = None
