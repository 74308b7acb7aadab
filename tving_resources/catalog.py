"""The video catalog: which file each video id (and Dagster partition) stands for, and where
each video stands (requested, indexing, indexed, failed, missing).

A partition key alone must lead back to its file, and the sensor must tell new, changed and
removed files apart without keeping a per-file cursor. A small SQLite file in the data folder
does both; SQLite (WAL mode) is safe for the sensor, several runs and the CLI at once.

Requests made by a sensor tick are written *tentatively*, stamped with the tick's number; the
tick's cursor (which Dagster stores only when the tick succeeds) confirms them. A tick that fails
after writing leaves unconfirmed requests, which the next tick makes again: at least once.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import VideoNotRegisteredError
from .ids import video_id_for

if TYPE_CHECKING:
    from .folder_watch import TickPlan

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
        return cls(str(path.resolve()), stat.st_size, stat.st_mtime_ns)

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
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    registered_at REAL NOT NULL
)
"""
# Columns added after the first release; older catalogs get them on open.
_ADDED_COLUMNS = {
    "state": f"TEXT NOT NULL DEFAULT '{REGISTERED}'",
    "requested_version": "TEXT",
    "request_tick": "INTEGER",
    "missing_since_tick": "INTEGER",
    "removal_tick": "INTEGER",
    "indexed_version": "TEXT",
    "fingerprint": "TEXT",
    "error": "TEXT",
    "failed_stage": "TEXT",
    "updated_at": "REAL",
}


class VideoCatalog:
    def __init__(self, db_path: str | Path):
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)
            present = {row[1] for row in conn.execute("PRAGMA table_info(videos)")}
            for column, spec in _ADDED_COLUMNS.items():
                if column not in present:
                    conn.execute(f"ALTER TABLE videos ADD COLUMN {column} {spec}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.db_path, timeout=30)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def _select(self, where: str = "", args: tuple = ()) -> list[CatalogEntry]:
        with self._connect() as conn:
            rows = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM videos {where}", args).fetchall()
        return [CatalogEntry(*row) for row in rows]

    # ------------------------------------------------------------- register
    def register(self, path: str | Path) -> CatalogEntry:
        """Add a file (or refresh its version) to be indexed now by the caller; the file must exist."""
        state = FileState.of(Path(path))
        now = time.time()
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO videos (video_id, path, size, mtime_ns, registered_at, requested_version, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(video_id) DO UPDATE SET size=excluded.size, "
                "mtime_ns=excluded.mtime_ns, requested_version=excluded.requested_version, request_tick=NULL, "
                "missing_since_tick=NULL, removal_tick=NULL, updated_at=excluded.updated_at",
                (state.video_id, state.path, state.size, state.mtime_ns, now, state.version, now),
            )
        return self.get(state.video_id)

    # ---------------------------------------------------------------- reads
    def find(self, video_id: str) -> CatalogEntry | None:
        rows = self._select("WHERE video_id = ?", (video_id,))
        return rows[0] if rows else None

    def get(self, video_id: str) -> CatalogEntry:
        entry = self.find(video_id)
        if entry is None:
            raise VideoNotRegisteredError(
                f"video id {video_id!r} is not in the catalog {self.db_path}; register its file "
                "with `tving index PATH` or put it in the watched videos folder"
            )
        return entry

    def entries(self) -> list[CatalogEntry]:
        return self._select("ORDER BY path")

    def entries_under(self, folder: str | Path) -> list[CatalogEntry]:
        root = str(Path(folder).resolve()) + os.sep
        # a range on the primary-key-like path column: no scan of other folders' entries
        return self._select("WHERE path >= ? AND path < ? ORDER BY path", (root, root[:-1] + chr(ord(os.sep) + 1)))

    def failures(self) -> list[CatalogEntry]:
        return self._select("WHERE state = ? ORDER BY updated_at DESC", (FAILED,))

    def state_counts(self) -> dict[str, int]:
        with self._connect() as conn:
            return dict(conn.execute("SELECT state, COUNT(*) FROM videos GROUP BY state").fetchall())

    # ------------------------------------------------------ sensor (ticks)
    def apply_tick(self, plan: TickPlan) -> None:
        """Record a tick's decisions tentatively (stamped with its tick number), in one transaction."""
        now = time.time()
        with self._connect() as conn:
            for request in plan.index:
                conn.execute(
                    "INSERT INTO videos (video_id, path, size, mtime_ns, registered_at, requested_version, "
                    "request_tick, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(video_id) DO UPDATE SET "
                    "size=excluded.size, mtime_ns=excluded.mtime_ns, requested_version=excluded.requested_version, "
                    "request_tick=excluded.request_tick, missing_since_tick=NULL, removal_tick=NULL, "
                    "updated_at=excluded.updated_at",
                    (request.video_id, request.path, request.size, request.mtime_ns, now, request.version,
                     plan.tick, now),
                )  # fmt: skip
            conn.executemany(
                "UPDATE videos SET missing_since_tick = ? WHERE video_id = ? AND missing_since_tick IS NULL",
                [(plan.tick, v) for v in plan.newly_missing],
            )
            conn.executemany(
                "UPDATE videos SET missing_since_tick = NULL, removal_tick = NULL WHERE video_id = ?",
                [(v,) for v in plan.reappeared],
            )
            conn.executemany(
                "UPDATE videos SET removal_tick = ? WHERE video_id = ?", [(plan.tick, r.video_id) for r in plan.remove]
            )

    # --------------------------------------------------------- runs (state)
    def mark_indexing(self, video_id: str, version: str) -> None:
        """A run started on ``version`` of the file: that version counts as requested (confirmed)."""
        self._update(video_id, state=INDEXING, requested_version=version, request_tick=None)

    def mark_indexed(self, video_id: str, version: str, fingerprint: str) -> None:
        self._update(
            video_id, state=INDEXED, indexed_version=version, fingerprint=fingerprint, error=None, failed_stage=None
        )

    def mark_failed(self, video_id: str, stage: str, message: str) -> None:
        self._update(video_id, state=FAILED, error=message, failed_stage=stage)

    def _update(self, video_id: str, **values: object) -> None:
        values["updated_at"] = time.time()
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._connect() as conn:
            conn.execute(f"UPDATE videos SET {assignments} WHERE video_id = ?", (*values.values(), video_id))

    def remove(self, video_ids: Iterable[str]) -> None:
        with self._connect() as conn:
            conn.executemany("DELETE FROM videos WHERE video_id = ?", [(v,) for v in video_ids])
