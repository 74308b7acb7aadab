"""The `local` deployment's instance storage: Dagster's SQLite storage, each database's engine kept.

Dagster's SQLite run and event-log storages build a new SQLAlchemy engine for every statement
(``NullPool``): the database file is opened again, and each statement is compiled again, since
SQLAlchemy caches compiled statements per engine. Indexing a video records about 70 events and
makes about 40 partition look-ups, so that cost is paid a few hundred times a video
(`tving bench index` reports the figures; README, Performance). These subclasses keep one engine
per database open instead: the same files, tables and migrations, readable by any Dagster process
(the UI, the daemon) whatever storage class that process uses.

Kept open: the run storage, the event log's index shard, and the few newest run shards (a run's
events go to its own file). A new run shard is a copy of an empty shard set up once a process as
Dagster sets one up (tables, indexes, WAL mode, alembic's head revision), rather than built
statement by statement for every run. A process forked after the engines were opened drops
the inherited connections rather than share them (Dagster starts runs as new processes, but a
library may fork).
"""

from __future__ import annotations

import functools
import os
import tempfile
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sql import create_engine, get_alembic_config
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError


def _close_in(engines: OrderedDict[str, Engine], pid: int) -> None:
    if os.getpid() == pid:  # never a parent's connections from a forked child
        for engine in engines.values():
            engine.dispose()
        engines.clear()


def _sqlite_engine(url: str, **connect_args) -> Engine:
    """An engine whose connections commit without waiting for the disk (``synchronous=NORMAL``;
    Dagster's databases are in WAL mode): a killed process loses nothing committed, a power cut
    at most the last commits, never the database's consistency (SQLite's documentation). Each
    event is a commit: a run writes some seventy."""
    engine = create_engine(url, connect_args=connect_args)

    @event.listens_for(engine, "connect")
    def _no_sync_wait(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


class _Engines:
    """Engines by database, the newest ``keep`` kept (plus those named in ``always``)."""

    def __init__(self, keep: int, always: frozenset[str] = frozenset()):
        self.keep, self.always = keep, always
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._pid = os.getpid()
        # closed when this storage goes, or at exit: SQLite then folds each -wal file back into
        # its database, as it did when every statement closed its own connection
        weakref.finalize(self, _close_in, self._engines, self._pid)

    def get(self, name: str, make: Callable[[], Engine]) -> Engine:
        if self._pid != os.getpid():  # a forked child: its parent's SQLite connections are not its own
            for engine in self._engines.values():
                engine.dispose(close=False)
            self._engines.clear()
            self._pid = os.getpid()
        engine = self._engines.get(name)
        if engine is not None:
            self._engines.move_to_end(name)
            return engine
        engine = self._engines[name] = make()
        evictable = [n for n in self._engines if n not in self.always]
        for old in evictable[: max(0, len(evictable) - self.keep)]:
            self._engines.pop(old).dispose()
        return engine

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()


@functools.cache
def _event_log_scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(get_alembic_config(sqlite_event_log.__file__))


def _set_up_run_shard(conn: Connection) -> None:
    """What Dagster's SQLite event log does to a new run shard, alembic's scripts read once."""
    SqlEventLogStorageMetadata.create_all(conn)
    conn.execute(text("PRAGMA journal_mode=WAL;"))
    MigrationContext.configure(conn).stamp(_event_log_scripts(), "head")
    conn.commit()


@functools.cache
def _empty_run_shard() -> bytes:
    """An empty run shard's file, set up once a process (its DDL cost 25 ms a run)."""
    with tempfile.TemporaryDirectory(prefix="tving-shard-") as folder:
        path = Path(folder) / "empty.db"
        engine = _sqlite_engine(f"sqlite:///{path}")
        with engine.connect() as conn:
            _set_up_run_shard(conn)
        engine.dispose()  # folds the -wal file into the database
        return path.read_bytes()


def _place_empty_shard(path: str) -> None:
    """Put an empty shard at ``path`` unless a file is there; it appears whole (a hard link of a
    finished file), so no reader ever opens a half-written database."""
    if os.path.exists(path):
        return
    with tempfile.NamedTemporaryFile(dir=os.path.dirname(path), prefix=".new-shard-", delete=False) as handle:
        handle.write(_empty_run_shard())
    try:
        os.link(handle.name, path)
    except FileExistsError:  # made meanwhile by another process: that one is used
        pass
    finally:
        os.unlink(handle.name)


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's per-run-sharded SQLite event log, with an engine kept per shard."""

    KEEP_RUN_SHARDS = 4

    def __init__(self, base_dir: str, inst_data=None):
        # before the parent's __init__, which may already connect (a new index shard is indexed)
        self._engines = _Engines(self.KEEP_RUN_SHARDS, frozenset({INDEX_SHARD_NAME}))
        self._schema_found: set[tuple[str, str]] = set()
        super().__init__(base_dir, inst_data)

    def has_table(self, table_name: str) -> bool:
        """The parent builds an engine and opens the index database for every call, about 60 a
        run (most ask whether the dynamic partitions table exists before a partition lookup)."""
        ask = super().has_table
        return self._schema_has(("table", table_name), lambda: ask(table_name))

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        """Asked for every asset event, each time by reflecting the table's columns."""
        ask = super()._has_asset_key_col_on_connection
        return self._schema_has(("asset_keys column", column_name), lambda: ask(conn, column_name))

    def _schema_has(self, item: tuple[str, str], ask: Callable[[], bool]) -> bool:
        """No migration drops a table or a column, so one found is remembered; a missing one is
        asked again (another process may migrate the database meanwhile)."""
        if item not in self._schema_found and ask():
            self._schema_found.add(item)
        return item in self._schema_found

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:

            def make() -> Engine:
                return _sqlite_engine(self.conn_string_for_shard(shard), timeout=SQLITE_BUSY_TIMEOUT_SECONDS)

            if shard not in self._initialized_dbs and shard != INDEX_SHARD_NAME:
                _place_empty_shard(self.path_for_shard(shard))
            engine = self._engines.get(shard, make)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _initdb(self, engine: Engine, for_index_shard: bool = False) -> None:
        """A new run shard starts as a copy of an empty one (``_place_empty_shard``, done in
        ``_connect`` before SQLite creates the file); one found without a revision is set up here
        as Dagster does it. Anything else (the index shard, a contended shard) goes to the parent."""
        if not for_index_shard:
            try:
                with engine.connect() as conn:
                    if MigrationContext.configure(conn).get_current_revision() is not None:
                        return
                    _set_up_run_shard(conn)
                return
            except DBAPIError:  # e.g. another process creating the same shard: the parent retries
                pass
        super()._initdb(engine, for_index_shard)

    def wipe(self) -> None:
        with self._db_lock:
            self._schema_found.clear()
            self._engines.close()  # the run shards' files are deleted
        super().wipe()

    def dispose(self) -> None:
        with self._db_lock:
            self._engines.close()
        super().dispose()


class PooledSqliteRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage, with its engine kept."""

    def __init__(self, conn_string: str, inst_data=None):
        self._engines = _Engines(keep=1)
        super().__init__(conn_string, inst_data)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        engine = self._engines.get("runs", lambda: _sqlite_engine(self._conn_string))
        with engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self._engines.close()
        super().dispose()


class PooledSqliteStorage(DagsterSqliteStorage):
    """``storage: custom`` in the local dagster.yaml: the same layout as ``storage: sqlite``
    under ``base_dir`` (runs, per-run event logs, schedules), with pooled engines."""

    def __init__(self, base_dir: str, inst_data=None):
        self.base_dir = base_dir
        self._run_storage = PooledSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PooledSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)
