"""SQLite on the check path: the WAL is checkpointed off the request path, and the write lock
is taken by polling, not by SQLite's backing-off busy handler."""

from __future__ import annotations

import gc
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select, text

from riskctl.db import JOURNAL_SIZE_LIMIT, WalCheckpointer, make_engine, sqlite_path
from riskctl.migrate import upgrade
from riskctl.models import Decision
from riskctl.persist import DriverWriter
from tests.test_persist import ROUTING, T0, write

ROW = "x" * 3000  # about one page per row


def fill(engine: Engine, start: int, rows: int) -> None:
    for i in range(start, start + rows):  # one transaction (and one commit) per row
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (id, body) VALUES (:i, :b)"), {"i": i, "b": ROW})


def wait_until(cond, what: str, timeout_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.02)


@pytest.fixture()
def background_engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}", checkpoint="background")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)"))
    yield engine
    engine.dispose()


def test_a_background_engine_never_checkpoints_in_a_commit(background_engine: Engine, tmp_path: Path) -> None:
    db = tmp_path / "wal.db"
    before = db.stat().st_size
    fill(background_engine, 0, 1500)  # past the 1,000 pages at which a commit would checkpoint
    assert Path(f"{db}-wal").stat().st_size > 1500 * 4096
    assert db.stat().st_size == before  # nothing was copied back by a commit
    with background_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1500


def test_the_checkpointer_folds_the_wal_back_and_follows_a_restarted_wal(
    background_engine: Engine, tmp_path: Path
) -> None:
    db = tmp_path / "wal.db"
    assert sqlite_path(background_engine) == db
    fill(background_engine, 0, 400)  # first, so that the first pass finds all of it
    checkpointer = WalCheckpointer(db, interval_s=0.05).start()
    try:
        wait_until(lambda: checkpointer.passes >= 1, "a first pass")
        assert db.stat().st_size > 400 * 3000  # the first rows are in the database file
        size = db.stat().st_size  # taken once the pass is over: it grows no more by itself
        passes = checkpointer.passes
        # fewer rows than before: once the copy is complete the WAL restarts from its start
        # and is rewritten at the same file size, which the checkpointer must still notice
        fill(background_engine, 400, 200)
        # the file grows while a pass copies, and the pass is counted once it is over
        wait_until(
            lambda: checkpointer.passes > passes and db.stat().st_size > size + 150 * 3000,
            "the later rows are in the database file",
        )
    finally:
        checkpointer.stop()
    assert not checkpointer.running
    raw = sqlite3.connect(db)
    try:
        assert raw.execute("SELECT count(*) FROM t").fetchone()[0] == 600
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        raw.close()


def test_non_sqlite_and_memory_databases_get_no_checkpointer() -> None:
    for url in ("sqlite://", "postgresql+psycopg://riskctl@127.0.0.1:1/riskctl"):
        engine = create_engine(url)  # nothing connects until a statement runs
        try:
            assert sqlite_path(engine) is None, url
        finally:
            engine.dispose()


@pytest.fixture()
def migrated(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'lock.db'}", checkpoint="background")
    upgrade(engine)
    yield engine, tmp_path / "lock.db"
    engine.dispose()


def hold_write_lock(db: Path, released: threading.Event, taken: threading.Event) -> threading.Thread:
    def run() -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        taken.set()
        released.wait(30)
        conn.execute("COMMIT")
        conn.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def decisions(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Decision)).scalar_one()


def test_the_writer_waits_for_a_held_write_lock_then_stores(migrated) -> None:  # type: ignore[no-untyped-def]
    engine, db = migrated
    writer = DriverWriter(engine, ROUTING)
    released, taken = threading.Event(), threading.Event()
    holder = hold_write_lock(db, released, taken)
    assert taken.wait(10)
    done = threading.Event()

    def store() -> None:
        writer.write(write(1), now=T0)
        done.set()

    t = threading.Thread(target=store, daemon=True)
    t.start()
    # still waiting while the other connection holds the lock (it cannot have written)
    assert not done.wait(0.3)
    assert decisions(engine) == 0
    released.set()
    assert done.wait(20)
    holder.join(10)
    assert decisions(engine) == 1


def test_the_writer_gives_up_at_the_busy_timeout_and_stores_nothing(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'lock.db'}", busy_timeout_ms=200)
    db = tmp_path / "lock.db"
    upgrade(engine)
    writer = DriverWriter(engine, ROUTING)
    released, taken = threading.Event(), threading.Event()
    holder = hold_write_lock(db, released, taken)
    assert taken.wait(10)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            writer.write(write(1), now=T0)
    finally:
        released.set()
        holder.join(10)
    assert decisions(engine) == 0
    # the writer waited on a connection of its own: the pool's keep the engine's busy timeout
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 200
    writer.write(write(1), now=T0)
    assert decisions(engine) == 1
    writer.close()
    engine.dispose()


def test_the_writer_keeps_one_connection_and_counts_each_commit(migrated) -> None:  # type: ignore[no-untyped-def]
    from riskctl.instruments import DB_COMMITS

    engine, _db = migrated
    writer = DriverWriter(engine, ROUTING)
    before = DB_COMMITS._value.get()
    for i in range(5):
        writer.write(write(i), now=T0)
    assert DB_COMMITS._value.get() - before == 5  # what bench/bench_load.py reports per check
    conns = writer._connections
    assert len(conns._idle) == 1  # one thread wrote: one connection, reused
    conn = conns._idle[0]
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 0  # the writer polls instead
    # the engine's per-connection pragmas (journal_mode would read "wal" on any connection)
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert not conn.in_transaction
    # a refused write (the same event again) rolls back and keeps the connection
    with pytest.raises(writer.integrity_errors):
        writer.write(write(0), now=T0)
    assert conns._idle == [conn] and not conn.in_transaction
    assert DB_COMMITS._value.get() - before == 5
    assert decisions(engine) == 5
    # the pool lent it and forgot it: nothing is checked out of the engine's pool
    assert engine.pool.checkedout() == 0
    writer.close()
    assert conns._idle == []
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")


def test_threads_writing_at_once_each_get_a_connection_and_every_write_lands(migrated) -> None:  # type: ignore[no-untyped-def]
    engine, _db = migrated
    writer = DriverWriter(engine, ROUTING)
    threads, per_thread = 4, 25
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def run(t: int) -> None:
        start.wait(10)
        try:
            for i in range(per_thread):
                writer.write(write(t * 1000 + i), now=T0)
        except BaseException as exc:  # reported below
            failures.append(exc)

    workers = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert failures == []
    assert decisions(engine) == threads * per_thread
    idle = writer._connections._idle
    assert 1 <= len(idle) <= threads  # never more connections than threads writing at once
    assert len({id(c) for c in idle}) == len(idle)
    assert not any(c.in_transaction for c in idle)
    writer.close()


def test_gunicorn_workers_freeze_what_they_loaded() -> None:
    from api import gunicorn_conf

    gc.unfreeze()
    try:
        gunicorn_conf.post_worker_init(object())
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_under_steady_writes_the_wal_still_starts_over(background_engine: Engine, tmp_path: Path) -> None:
    db = tmp_path / "wal.db"
    checkpointer = WalCheckpointer(db, interval_s=0.05, restart_frames=200).start()
    stop = threading.Event()
    written = [0]

    def writer() -> None:  # never pauses: PASSIVE alone would never see the whole WAL copied
        while not stop.is_set():
            fill(background_engine, written[0], 20)
            written[0] += 20

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        wait_until(lambda: checkpointer.restarts >= 2, "the WAL started over twice")
    finally:
        stop.set()
        t.join(30)
        checkpointer.stop()
    raw = sqlite3.connect(db)
    try:
        # the WAL now holds only what came after the last restart, not every row written
        frames = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        assert frames < written[0]
        assert raw.execute("SELECT count(*) FROM t").fetchone()[0] == written[0]
    finally:
        raw.close()


class _CommitsWhileCopying(WalCheckpointer):
    """A checkpointer whose first PASSIVE ends with commits appended after the frames it
    copied, as when traffic keeps landing while it copies and syncs. (A commit that begins
    once every frame is copied starts the WAL over instead, unless a reader still holds a
    snapshot inside the WAL: ``reader`` is one, let go after the commits.)"""

    def __init__(self, path: Path, engine: Engine, reader: sqlite3.Connection, **kw: int) -> None:
        super().__init__(path, interval_s=3600, restart_frames=10**9, **kw)
        self.engine, self.reader = engine, reader

    def _passive(self, conn: sqlite3.Connection) -> tuple[int, int, int]:
        result = super()._passive(conn)
        if self.passes == 1:
            fill(self.engine, 1000, 5)
            self.reader.rollback()
        return result


def wal_frames(db: Path) -> int:
    raw = sqlite3.connect(db)
    try:
        return int(raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        raw.close()


@pytest.mark.parametrize("rounds", [4, 0])
def test_a_pass_catches_up_so_the_next_commit_starts_the_wal_over(
    background_engine: Engine, tmp_path: Path, rounds: int
) -> None:
    """Commits land while a pass copies: one PASSIVE leaves them uncopied and the WAL keeps
    growing; the pass runs PASSIVE again over what came meanwhile until nothing new is
    behind it, and the next commit starts the WAL over, with no writer-blocking RESTART."""
    db = tmp_path / "wal.db"
    fill(background_engine, 0, 50)
    reader = sqlite3.connect(db)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone()[0] == 50  # a snapshot in the WAL
    checkpointer = _CommitsWhileCopying(db, background_engine, reader, catchup_rounds=rounds)
    try:
        first = checkpointer.checkpoint()
    finally:
        reader.close()
    assert first is not None and first[1] == first[2] >= 50  # the first PASSIVE copied all it saw
    fill(background_engine, 2000, 1)  # the next commit
    if rounds:
        assert checkpointer.passes == 3  # the 5 commits copied, then nothing new behind them
        assert wal_frames(db) <= 5  # started over: only the last commit's pages
        checkpointer.checkpoint()
        assert checkpointer.restarts == 1
    else:
        assert checkpointer.passes == 1
        assert wal_frames(db) > 50  # appended after everything since the start
        checkpointer.checkpoint()
        assert checkpointer.restarts == 0
    assert checkpointer.forced == 0
    assert checkpointer.pages >= 56  # each copied page counted once
    with background_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 56


@pytest.mark.parametrize("limit", [None, 256 * 1024])
def test_a_restarting_commit_cuts_the_wal_back_only_past_the_size_limit(tmp_path: Path, limit: int | None) -> None:
    """The first commit after a checkpoint lets the WAL start over truncates the file to
    ``journal_size_limit`` if it is longer: a commit freeing the file's blocks, slow on a disk
    that trims them at once (``bench/bench_checkpoint.py`` ``trim64``). The service's limit is
    above what the WAL reaches in normal running; a small one still cuts it back."""
    db = tmp_path / "wal.db"
    options = {} if limit is None else {"journal_size_limit": limit}
    engine = make_engine(f"sqlite:///{db}", checkpoint="background", **options)
    checkpointer = WalCheckpointer(db, interval_s=3600)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)"))
            assert conn.exec_driver_sql("PRAGMA journal_size_limit").scalar() == (limit or JOURNAL_SIZE_LIMIT)
        fill(engine, 0, 300)
        wal = Path(f"{db}-wal")
        grown = wal.stat().st_size
        assert grown > 300 * 4096
        passed = checkpointer.checkpoint()
        assert passed is not None
        busy, frames, copied = passed
        assert busy == 0 and copied == frames >= 300  # everything copied: the WAL may start over
        fill(engine, 1000, 1)  # the commit that starts it over
        assert wal_frames(db) <= 5
        if limit is None:
            assert wal.stat().st_size == grown  # reused as it is, nothing freed
            # nor in normal running (what ties this case to the service's limit): the
            # checkpointer forces a RESTART before the WAL gets there
            with engine.connect() as conn:
                page = conn.exec_driver_sql("PRAGMA page_size").scalar()
            assert 32 + checkpointer.restart_frames * (24 + page) < JOURNAL_SIZE_LIMIT
        else:
            assert wal.stat().st_size <= limit
    finally:
        if checkpointer._conn is not None:  # opened by the direct checkpoint() call, not a thread
            checkpointer._conn.close()
        engine.dispose()


def test_one_checkpointer_per_database_and_another_takes_over(
    background_engine: Engine, tmp_path: Path
) -> None:
    db = tmp_path / "wal.db"
    first = WalCheckpointer(db, interval_s=0.05).start()
    wait_until(lambda: first.elected, "the first checkpointer holds the lock")
    second = WalCheckpointer(db, interval_s=0.05).start()  # as another gunicorn worker's would
    try:
        fill(background_engine, 0, 50)
        wait_until(lambda: first.passes >= 1, "the first checkpointer's pass")
        fill(background_engine, 50, 50)
        wait_until(lambda: first.passes >= 2, "the first checkpointer's next pass")
        assert second.passes == 0 and not second.elected
        first.stop()  # its worker gone: the lock is free
        fill(background_engine, 100, 50)
        wait_until(lambda: second.passes >= 1, "the second checkpointer took over")
    finally:
        first.stop()
        second.stop()
