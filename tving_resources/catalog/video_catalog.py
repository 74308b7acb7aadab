"""The video catalog: which file each video id (and Dagster partition) stands for, and where
each video stands (requested, indexing, indexed, failed, missing).

A partition key alone must lead back to its file, and the sensor must tell new, changed and
removed files apart without keeping a per-file cursor. A small SQLite file in the data folder
does both on one machine (WAL mode: safe for the sensor, several runs and the CLI at once); a
cluster points ``TVING_CATALOG_URL`` at PostgreSQL instead (SQLite on a network filesystem is
not safe). The queries are plain SQL that both understand, run through SQLAlchemy.

Requests made by a sensor tick are written *tentatively*, stamped with the tick's number; the
tick's cursor (which Dagster stores only when the tick succeeds) confirms them. A tick that fails
after writing leaves unconfirmed requests, which the next tick makes again: at least once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tving_resources.errors import VideoNotRegisteredError
from tving_resources.ids import file_path, video_id_for

if TYPE_CHECKING:
    from tving_resources.catalog.folder_watch import TickPlan

REGISTERED, INDEXING, INDEXED, FAILED = "registered", "indexing", "indexed", "failed"


@dataclass(frozen=True)
class FileState:
    """What the sensor compares: a file's place, size and modification time (never its bytes)."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileState:
        stat = path.stat()
        return cls(str(file_path(path)), stat.st_size, stat.st_mtime_ns)

    @property
    def video_id(self) -> str:
        return video_id_for(self.path)

    @property
    def version(self) -> str:
        return f"{self.size}-{self.mtime_ns}"


@dataclass(frozen=True)
class CatalogEntry:
    video_id: str
    path: str
    size: int  # size and mtime last seen (the version of the file)
    mtime_ns: int
    registered_at: float
    state: str = REGISTERED
    requested_version: str | None = None  # the version a run was requested for
    request_tick: int | None = None  # the sensor tick that requested it (None: a run or the CLI did)
    missing_since_tick: int | None = None  # first tick of the current absence
    removal_tick: int | None = None  # the tick that requested its removal
    indexed_version: str | None = None
    fingerprint: str | None = None
    error: str | None = None
    failed_stage: str | None = None
    updated_at: float | None = None
    failed_run: str | None = None  # the run whose first failure error and failed_stage are

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def version(self) -> str:
        return f"{self.size}-{self.mtime_ns}"

    def request_confirmed(self, tick: int) -> bool:
        """Whether the request was made by a tick before ``tick`` (whose cursor was stored)."""
        return self.request_tick is None or self.request_tick < tick


_COLUMNS = [f.name for f in fields(CatalogEntry)]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS videos (
    video_id TEXT PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    registered_at DOUBLE PRECISION NOT NULL
)
"""
# Columns added after the first release; older catalogs get them on open.
_ADDED_COLUMNS = {
    "state": f"TEXT NOT NULL DEFAULT '{REGISTERED}'",
    "requested_version": "TEXT",
    "request_tick": "BIGINT",
    "missing_since_tick": "BIGINT",
    "removal_tick": "BIGINT",
    "indexed_version": "TEXT",
    "fingerprint": "TEXT",
    "error": "TEXT",
    "failed_stage": "TEXT",
    "updated_at": "DOUBLE PRECISION",
    "failed_run": "TEXT",
}


_engines: dict[str, Any] = {}
_engines_lock = threading.Lock()


def catalog_url(location: str | Path) -> str:
    """A database URL for ``location``: a URL as is, a path as an SQLite file."""
    text = str(location)
    return text if "://" in text else f"sqlite:///{Path(text).resolve()}"


def _engine(url: str):
    """One engine (connection pool) per database and process."""
    with _engines_lock:
        if url not in _engines:
            import sqlalchemy as sa

            if url.startswith("sqlite"):
                engine = sa.create_engine(url, connect_args={"timeout": 30})

                @sa.event.listens_for(engine, "connect")
                def _wal(connection, _record) -> None:
                    connection.execute("PRAGMA journal_mode=WAL")

            else:
                engine = sa.create_engine(url, pool_pre_ping=True)
            _engines[url] = engine
        return _engines[url]


class VideoCatalog:
    """The catalog in an SQLite file (a path) or any database SQLAlchemy reaches (a URL)."""

    def __init__(self, location: str | Path):
        self.url = catalog_url(location)
        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self._engine = _engine(self.url)
        import sqlalchemy as sa

        with self._engine.begin() as raw:
            conn = _Connection(raw)
            conn.execute(_SCHEMA)
            present = {c["name"] for c in sa.inspect(raw).get_columns("videos")}
            for column, spec in _ADDED_COLUMNS.items():
                if column not in present:
                    conn.execute(f"ALTER TABLE videos ADD COLUMN {column} {spec}")

    @contextmanager
    def transaction(self) -> Iterator[_Connection]:
        """One transaction on the catalog's database (committed when the block ends)."""
        with self._engine.begin() as conn:
            yield _Connection(conn)

    def _select(self, where: str = "", args: dict | None = None) -> list[CatalogEntry]:
        with self.transaction() as conn:
            rows = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM videos {where}", args).fetchall()
        return [CatalogEntry(*row) for row in rows]

    # ------------------------------------------------------------- register
    def register(self, path: str | Path) -> CatalogEntry:
        """Add a file (or refresh its version) to be indexed now by the caller; the file must exist."""
        state = FileState.of(Path(path))
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO videos (video_id, path, size, mtime_ns, registered_at, requested_version, updated_at) "
                "VALUES (:id, :path, :size, :mtime, :now, :version, :now) ON CONFLICT(video_id) DO UPDATE SET "
                "size=excluded.size, mtime_ns=excluded.mtime_ns, requested_version=excluded.requested_version, "
                "request_tick=NULL, missing_since_tick=NULL, removal_tick=NULL, updated_at=excluded.updated_at",
                {"id": state.video_id, "path": state.path, "size": state.size, "mtime": state.mtime_ns, "now": now,
                 "version": state.version},
            )  # fmt: skip
        return self.get(state.video_id)

    # ---------------------------------------------------------------- reads
    def find(self, video_id: str) -> CatalogEntry | None:
        rows = self._select("WHERE video_id = :id", {"id": video_id})
        return rows[0] if rows else None

    def get(self, video_id: str) -> CatalogEntry:
        entry = self.find(video_id)
        if entry is None:
            raise VideoNotRegisteredError(
                f"video id {video_id!r} is not in the catalog {self.url}; register its file "
                "with `tving index PATH` or put it in the watched videos folder"
            )
        return entry

    def entries(self) -> list[CatalogEntry]:
        return self._select("ORDER BY path")

    def entries_under(self, folder: str | Path) -> list[CatalogEntry]:
        root = str(Path(folder).resolve()) + os.sep
        # a range on the primary-key-like path column: no scan of other folders' entries
        upper = root[:-1] + chr(ord(os.sep) + 1)
        return self._select("WHERE path >= :low AND path < :high ORDER BY path", {"low": root, "high": upper})

    def failures(self) -> list[CatalogEntry]:
        return self._select("WHERE state = :state ORDER BY updated_at DESC", {"state": FAILED})

    def last_indexed_at(self) -> float | None:
        """When a video was last marked indexed (None: never)."""
        with self.transaction() as conn:
            (when,) = conn.execute("SELECT MAX(updated_at) FROM videos WHERE state = :s", {"s": INDEXED}).fetchone()
        return when

    def state_counts(self) -> dict[str, int]:
        with self.transaction() as conn:
            return {state: n for state, n in conn.execute("SELECT state, COUNT(*) FROM videos GROUP BY state")}

    # ------------------------------------------------------ sensor (ticks)
    def apply_tick(self, plan: TickPlan) -> None:
        """Record a tick's decisions tentatively (stamped with its tick number), in one transaction."""
        now = time.time()
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO videos (video_id, path, size, mtime_ns, registered_at, requested_version, "
                "request_tick, updated_at) VALUES (:id, :path, :size, :mtime, :now, :version, :tick, :now) "
                "ON CONFLICT(video_id) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns, "
                "requested_version=excluded.requested_version, request_tick=excluded.request_tick, "
                "missing_since_tick=NULL, removal_tick=NULL, updated_at=excluded.updated_at",
                [
                    {"id": r.video_id, "path": r.path, "size": r.size, "mtime": r.mtime_ns, "now": now,
                     "version": r.version, "tick": plan.tick}
                    for r in plan.index
                ],
            )  # fmt: skip
            conn.executemany(
                "UPDATE videos SET missing_since_tick = :tick WHERE video_id = :id AND missing_since_tick IS NULL",
                [{"tick": plan.tick, "id": v} for v in plan.newly_missing],
            )
            conn.executemany(
                "UPDATE videos SET missing_since_tick = NULL, removal_tick = NULL WHERE video_id = :id",
                [{"id": v} for v in plan.reappeared],
            )
            conn.executemany(
                "UPDATE videos SET removal_tick = :tick WHERE video_id = :id",
                [{"tick": plan.tick, "id": r.video_id} for r in plan.remove],
            )

    # --------------------------------------------------------- runs (state)
    def mark_indexing(self, video_id: str, version: str) -> None:
        """A run started on ``version`` of the file: that version counts as requested (confirmed)."""
        self._update(video_id, state=INDEXING, requested_version=version, request_tick=None)

    def mark_indexed(self, video_id: str, version: str, fingerprint: str) -> None:
        self._update(
            video_id,
            state=INDEXED,
            indexed_version=version,
            fingerprint=fingerprint,
            error=None,
            failed_stage=None,
            failed_run=None,
        )

    def mark_failed(self, video_id: str, stage: str, message: str, run_id: str | None = None) -> None:
        """Record a failure. Within one run the first failure stands: a stage that fails after
        another (a branch that does not depend on it) does not overwrite its stage and message."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE videos SET state = :state, error = :error, failed_stage = :stage, failed_run = :run, "
                "updated_at = :now WHERE video_id = :id AND NOT (state = :state AND failed_run IS NOT NULL "
                "AND failed_run = :run)",
                {"state": FAILED, "error": message, "stage": stage, "run": run_id, "now": time.time(), "id": video_id},
            )

    def failure_in_run(self, video_id: str, run_id: str) -> CatalogEntry | None:
        """The entry, if ``run_id`` recorded its failure (the stage and message users see)."""
        entry = self.find(video_id)
        return entry if entry is not None and entry.state == FAILED and entry.failed_run == run_id else None

    def _update(self, video_id: str, **values: object) -> None:
        values["updated_at"] = time.time()
        assignments = ", ".join(f"{k} = :{k}" for k in values)
        with self.transaction() as conn:
            conn.execute(f"UPDATE videos SET {assignments} WHERE video_id = :id", {**values, "id": video_id})

    def remove(self, video_ids: Iterable[str]) -> None:
        with self.transaction() as conn:
            conn.executemany("DELETE FROM videos WHERE video_id = :id", [{"id": v} for v in video_ids])


class _Connection:
    """A SQLAlchemy connection that takes SQL text (named parameters)."""

    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql: str, args: dict | None = None):
        import sqlalchemy as sa

        return self._conn.execute(sa.text(sql), args or {})

    def executemany(self, sql: str, rows: list[dict]) -> None:
        if rows:
            import sqlalchemy as sa

            self._conn.execute(sa.text(sql), rows)
