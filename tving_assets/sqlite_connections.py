"""Keep the SQLite connections to the local Dagster instance's files open, per process and thread.

Dagster's SQLite storage makes a new SQLAlchemy engine with a ``NullPool`` for each statement it
runs, so every statement opens the database file again, reads its schema again, commits with a
sync of the write-ahead log and, on closing the last connection, checkpoints and deletes that log:
~400 openings a run. A run whose stages are all unchanged spends about half its time there
(docs/performance.md). Dagster has no setting for it (docs/design.md).

This module keeps the opened connections instead, through SQLAlchemy's public ``do_connect``
event (a listener may hand SQLAlchemy a DBAPI connection of its own). It imports nothing of
Dagster and touches only SQLite files under the folders it is given (the instance's ``base_dir``,
which this project's dagster.yaml sets); every other database of the process is left alone.

- A kept connection belongs to one thread of one process, and serves one user at a time: a file
  opened again while its connection is in use (Dagster does that) gets a second one.
- It is handed back as good as new: on each "close" its cursors are closed (an unfinished cursor
  would hold a read snapshot in WAL mode, and the next user would read stale rows), any
  transaction is rolled back and the isolation level is restored. One whose reset fails is closed
  for real and never handed out again.
- At most ``MAX_IDLE`` idle connections a thread are kept (the least recently used are closed):
  a long-lived process (the code server, a daemon) touches a new run's file for every run.
- A file deleted and made again under the same name (a new inode) gets a new connection; a forked
  child never uses (nor closes) its parent's connections.
- A kept connection to a database in WAL mode (all of Dagster's) commits with
  ``synchronous=NORMAL``: the log is synced at checkpoints rather than at every commit. A killed
  process loses nothing it committed (tests/test_crash_safety.py kills runs); an operating-system
  crash or power cut may lose the last commits, never the database.

``TVING_DAGSTER_SQLITE_REUSE=0`` turns it off (Dagster's own behaviour).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tving_resources.config import reuse_dagster_sqlite_connections

MAX_IDLE = 16  # idle connections kept per thread

_folders: set[str] = set()
_local = threading.local()
_inherited: list[object] = []  # a forked child's copies of its parent's connections: never closed
_counts = {"opened": 0, "reused": 0, "closed": 0}


class _KeptConnection:
    """A ``sqlite3.Connection`` whose ``close()`` makes it ready for its next user instead."""

    def __init__(self, connection: sqlite3.Connection, pool: _ThreadConnections, key: tuple) -> None:
        object.__setattr__(self, "_connection", connection)
        object.__setattr__(self, "_isolation_level", connection.isolation_level)
        object.__setattr__(self, "_cursors", [])
        object.__setattr__(self, "_pool", pool)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "in_use", True)

    def __getattr__(self, name: str):
        return getattr(self._connection, name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self._connection, name, value)

    def cursor(self, *args, **kwargs) -> sqlite3.Cursor:
        cursor = self._connection.cursor(*args, **kwargs)
        self._cursors.append(cursor)
        return cursor

    def execute(self, *args) -> sqlite3.Cursor:
        return self.cursor().execute(*args)

    def close(self) -> None:
        try:
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()
            self._connection.rollback()
            if self._connection.isolation_level != self._isolation_level:
                self._connection.isolation_level = self._isolation_level
        except Exception:
            self._pool.discard(self)  # not known to be clean: closed for real, never handed out
            raise
        object.__setattr__(self, "in_use", False)
        self._pool.returned(self)

    def really_close(self) -> None:
        with contextlib.suppress(Exception):  # another thread's, or already gone: nothing more to free
            self._connection.close()
        _counts["closed"] += 1


class _ThreadConnections:
    """One thread's kept connections: by file, most recently returned last."""

    def __init__(self) -> None:
        self.by_key: dict[tuple, list[_KeptConnection]] = {}
        self.idle: OrderedDict[int, _KeptConnection] = OrderedDict()

    def take(self, key: tuple) -> _KeptConnection | None:
        for connection in self.by_key.get(key, ()):
            if not connection.in_use:
                object.__setattr__(connection, "in_use", True)
                self.idle.pop(id(connection), None)
                return connection
        return None

    def add(self, connection: _KeptConnection) -> None:
        self.by_key.setdefault(connection._key, []).append(connection)

    def returned(self, connection: _KeptConnection) -> None:
        self.idle[id(connection)] = connection
        self.idle.move_to_end(id(connection))
        while len(self.idle) > MAX_IDLE:
            _, oldest = self.idle.popitem(last=False)
            self.discard(oldest)

    def discard(self, connection: _KeptConnection) -> None:
        self.idle.pop(id(connection), None)
        kept = self.by_key.get(connection._key, [])
        if connection in kept:
            kept.remove(connection)
            if not kept:
                del self.by_key[connection._key]
        connection.really_close()


def _thread_connections() -> _ThreadConnections:
    if getattr(_local, "pid", None) != os.getpid():
        _local.pid, _local.connections = os.getpid(), _ThreadConnections()
    return _local.connections


def _on_do_connect(dialect, connection_record, cargs: list, cparams: dict):
    if dialect.name != "sqlite" or not cargs or not _folders:
        return None
    path = os.path.abspath(str(cargs[0]))
    if not any(path.startswith(folder) for folder in _folders):
        return None  # another SQLite database of the process (a catalog, :memory:, a test's)
    try:
        stat = os.stat(path)
    except OSError:
        return None  # not made yet: Dagster creates it with this first connection
    key = (path, stat.st_dev, stat.st_ino, tuple(sorted((k, repr(v)) for k, v in cparams.items())))
    pool = _thread_connections()
    connection = pool.take(key)
    if connection is not None:
        _counts["reused"] += 1
        return connection
    raw = dialect.connect(*cargs, **cparams)
    if raw.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
        raw.execute("PRAGMA synchronous=NORMAL")
    connection = _KeptConnection(raw, pool, key)
    pool.add(connection)
    _counts["opened"] += 1
    return connection


def _forget_parent_connections() -> None:
    connections = getattr(_local, "connections", None)
    if connections is not None:
        _inherited.append(connections)  # closing them here could touch the parent's WAL
    _local.pid, _local.connections = os.getpid(), _ThreadConnections()


def reuse_sqlite_connections(folder: Path) -> bool:
    """Keep the connections to SQLite files under ``folder`` open for the rest of the process
    (unless TVING_DAGSTER_SQLITE_REUSE=0). True when it is on."""
    if not reuse_dagster_sqlite_connections():
        return False
    _folders.add(os.path.join(os.path.abspath(folder), ""))
    if not sa.event.contains(Engine, "do_connect", _on_do_connect):
        sa.event.listen(Engine, "do_connect", _on_do_connect)
        os.register_at_fork(after_in_child=_forget_parent_connections)
    return True


def connection_counts() -> dict[str, int]:
    """Connections this process opened, reused and closed for real (tests, benchmarks)."""
    return dict(_counts)
