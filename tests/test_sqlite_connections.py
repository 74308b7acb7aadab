"""The local Dagster instance's SQLite connections are kept (tving_assets/sqlite_connections.py):
each one is handed back as good as new, a thread keeps a bounded number, and nothing outside the
instance's folder is touched."""

import os
import sqlite3
import subprocess
import sys

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tving_assets import sqlite_connections
from tving_assets.sqlite_connections import connection_counts, reuse_sqlite_connections


def _engine(path, **kwargs) -> sa.Engine:
    # how Dagster's SQLite storage makes one for each statement
    return sa.create_engine(f"sqlite:///{path}", poolclass=NullPool, **kwargs)


def _count(path) -> int:
    engine = _engine(path)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM t")).scalar_one()
    engine.dispose()
    return n


def _insert_elsewhere(path, value: int) -> None:
    """A write from another process (a run's, the daemon's)."""
    code = f"import sqlite3; c = sqlite3.connect({str(path)!r}); c.execute('INSERT INTO t VALUES ({value})')"
    code += "; c.commit()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.fixture
def database(tmp_path):
    folder = tmp_path / "instance"
    folder.mkdir()
    path = folder / "runs.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
    reuse_sqlite_connections(folder)
    return path


def test_one_connection_serves_many_engines(database):
    before = connection_counts()
    assert [_count(database) for _ in range(30)] == [100] * 30
    after = connection_counts()
    assert after["opened"] - before["opened"] <= 1 and after["reused"] - before["reused"] >= 29


def test_an_unfinished_read_does_not_leave_the_next_user_a_stale_snapshot(database):
    engine = _engine(database)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT x FROM t"))
        assert rows.fetchone() is not None  # 99 rows left unread: the statement stays active
    engine.dispose()
    _insert_elsewhere(database, 1000)
    assert _count(database) == 101


def test_a_transaction_and_an_isolation_level_are_not_carried_over(database):
    autocommit = _engine(database, isolation_level="AUTOCOMMIT")
    with autocommit.connect() as conn:
        conn.execute(sa.text("INSERT INTO t VALUES (-1)"))
    engine = _engine(database)
    with engine.connect() as conn:
        conn.execute(sa.text("INSERT INTO t VALUES (-2)"))
        conn.rollback()  # in a fresh connection this undoes the insert: so it must here
    with engine.connect() as conn:
        conn.execute(sa.text("INSERT INTO t VALUES (-3)"))  # left uncommitted: rolled back on close
    assert _count(database) == 101
    _insert_elsewhere(database, 7)  # a kept connection holds no lock: another process writes
    assert _count(database) == 102


def test_a_connection_opened_while_another_is_in_use_is_a_second_one(database):
    """Dagster opens a file again while a transaction on it is open: the inner user's close must
    not roll the outer transaction back."""
    outer_engine, inner_engine = _engine(database), _engine(database)
    with outer_engine.connect() as outer, outer.begin():
        outer.execute(sa.text("INSERT INTO t VALUES (-1)"))
        with inner_engine.connect() as inner:
            assert inner.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 100
    assert _count(database) == 101


def test_a_replaced_file_gets_a_new_connection(database):
    assert _count(database) == 100
    os.remove(database)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{database}{suffix}"):
            os.remove(f"{database}{suffix}")
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
    assert _count(database) == 1


def test_other_databases_are_not_kept(database, tmp_path):
    other = tmp_path / "catalog.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    before = connection_counts()
    assert _count(other) == 0 and _count(other) == 0
    assert connection_counts() == before


def test_a_forked_child_opens_its_own_and_leaves_the_parents_alone(database):
    assert _count(database) == 100
    opened = connection_counts()["opened"]
    pid = os.fork()
    if pid == 0:  # the child: its own connection, then exit with everything it inherited
        ok = _count(database) == 100 and connection_counts()["opened"] == opened + 1
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    _insert_elsewhere(database, 5)
    assert _count(database) == 101 and connection_counts()["opened"] == opened


def test_runs_of_the_local_instance_reuse_connections_and_stay_readable(tmp_path, monkeypatch):
    """Dagster runs on the command line's instance: a handful of connections opened for many
    statements, and everything they wrote is read back by a plain Dagster instance."""
    from tving_assets.instance import dagster_home, get_instance

    parts = dg.DynamicPartitionsDefinition(name="clips")

    @dg.asset(partitions_def=parts)
    def first() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"n": 1})

    @dg.asset(partitions_def=parts, deps=[first])
    def second() -> None:
        pass

    job = dg.Definitions(assets=[first, second], jobs=[dg.define_asset_job("two")]).resolve_job_def("two")
    home = tmp_path / "home"
    instance = get_instance(home)
    keys = [f"c{i}" for i in range(6)]
    instance.add_dynamic_partitions("clips", keys)
    before = connection_counts()
    for key in keys:
        assert job.execute_in_process(instance=instance, partition_key=key).success
    after = connection_counts()
    opened, reused = after["opened"] - before["opened"], after["reused"] - before["reused"]
    assert opened <= 3 + 2 * len(keys) and reused >= 50 * len(keys), (opened, reused)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home(home)))
    plain = dg.DagsterInstance.get()
    assert len(plain.get_run_records()) == len(keys)
    assert plain.get_materialized_partitions(dg.AssetKey("second")) == set(keys)


def _synchronous(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("PRAGMA synchronous")).scalar_one()


def test_wal_databases_commit_without_a_sync_each_time_and_others_keep_their_setting(database, tmp_path):
    assert _synchronous(_engine(database)) == 1  # NORMAL (the default, FULL, is 2)
    rollback_journal = tmp_path / "instance" / "plain.db"
    with sqlite3.connect(rollback_journal) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    assert _synchronous(_engine(rollback_journal)) == 2


def test_a_thread_keeps_a_bounded_number_of_idle_connections(tmp_path):
    """A long-lived process (the code server, a daemon) touches a new run's file for every run:
    beyond MAX_IDLE idle connections, the least recently used are closed for real."""
    folder = tmp_path / "many"
    folder.mkdir()
    reuse_sqlite_connections(folder)
    paths = []
    for i in range(sqlite_connections.MAX_IDLE + 10):
        path = folder / f"run{i}.db"
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE t (x INTEGER)")
        paths.append(path)
    kept = sqlite_connections._thread_connections()
    for connection in list(kept.idle.values()):  # the earlier tests' connections of this thread
        kept.discard(connection)
    before = connection_counts()
    for path in paths:
        assert _count(path) == 0
    after = connection_counts()
    assert after["opened"] - before["opened"] == len(paths)
    assert after["closed"] - before["closed"] == 10
    assert len(kept.idle) == sqlite_connections.MAX_IDLE
    assert _count(paths[-1]) == 0 and connection_counts()["reused"] == after["reused"] + 1  # recent: kept
    assert _count(paths[0]) == 0 and connection_counts()["opened"] == after["opened"] + 1  # oldest: closed


def test_a_connection_whose_reset_fails_is_never_handed_out_again(database):
    assert _count(database) == 100
    kept = sqlite_connections._thread_connections()
    (connection,) = [c for cs in kept.by_key.values() for c in cs if c._key[0] == str(database)]

    engine = _engine(database)
    conn = engine.connect()
    assert conn.connection.dbapi_connection is connection
    connection._connection.close()  # broken under its user: the reset on return fails
    conn.close()  # SQLAlchemy logs the failed reset and goes on
    assert all(c is not connection for cs in kept.by_key.values() for c in cs)
    assert _count(database) == 100


def test_it_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv("TVING_DAGSTER_SQLITE_REUSE", "0")
    folder = tmp_path / "off"
    folder.mkdir()
    assert reuse_sqlite_connections(folder) is False
    path = folder / "runs.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    before = connection_counts()
    assert _count(path) == 0
    assert connection_counts() == before
