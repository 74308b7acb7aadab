"""The video catalog: which file each video id (and Dagster partition) stands for.

A partition key alone must lead back to its file, and the sensor must tell new, changed and
removed files apart without keeping a per-file cursor. A small SQLite file in the data folder
does both; SQLite (WAL mode) is safe for the sensor, several runs and the CLI at once.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import VideoNotRegisteredError
from .ids import is_video_file, video_id_for


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
    size: int
    mtime_ns: int
    registered_at: float

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def version(self) -> str:
        return f"{self.size}-{self.mtime_ns}"


@dataclass(frozen=True)
class FolderChanges:
    new: tuple[FileState, ...]
    changed: tuple[FileState, ...]
    removed: tuple[CatalogEntry, ...]

    @property
    def empty(self) -> bool:
        return not (self.new or self.changed or self.removed)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS videos (
    video_id TEXT PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    registered_at REAL NOT NULL
)
"""


class VideoCatalog:
    def __init__(self, db_path: str | Path):
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.db_path, timeout=30)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def register(self, path: str | Path) -> CatalogEntry:
        """Add a file or refresh its size/mtime; returns its entry. The file must exist."""
        return self.record(FileState.of(Path(path)))

    def record(self, state: FileState) -> CatalogEntry:
        entry = CatalogEntry(state.video_id, state.path, state.size, state.mtime_ns, time.time())
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO videos VALUES (?, ?, ?, ?, ?) ON CONFLICT(video_id) DO UPDATE SET "
                "size=excluded.size, mtime_ns=excluded.mtime_ns, registered_at=excluded.registered_at",
                (entry.video_id, entry.path, entry.size, entry.mtime_ns, entry.registered_at),
            )
        return entry

    def find(self, video_id: str) -> CatalogEntry | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM videos WHERE video_id = ?", (video_id,)).fetchone()
        return CatalogEntry(*row) if row else None

    def get(self, video_id: str) -> CatalogEntry:
        entry = self.find(video_id)
        if entry is None:
            raise VideoNotRegisteredError(
                f"video id {video_id!r} is not in the catalog {self.db_path}; register its file "
                "with `tving index PATH` or put it in the watched videos folder"
            )
        return entry

    def entries(self) -> list[CatalogEntry]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM videos ORDER BY path").fetchall()
        return [CatalogEntry(*row) for row in rows]

    def remove(self, video_ids: Iterable[str]) -> None:
        with self._connect() as conn:
            conn.executemany("DELETE FROM videos WHERE video_id = ?", [(v,) for v in video_ids])

    def changes_under(self, folder: str | Path, files: Iterable[FileState]) -> FolderChanges:
        """Compare a listing of ``folder`` with what the catalog holds for that folder."""
        root = str(Path(folder).resolve()) + os.sep
        known = {e.path: e for e in self.entries() if e.path.startswith(root)}
        new, changed, seen = [], [], set()
        for state in files:
            seen.add(state.path)
            entry = known.get(state.path)
            if entry is None:
                new.append(state)
            elif entry.version != state.version:
                changed.append(state)
        removed = [e for path, e in known.items() if path not in seen]
        return FolderChanges(tuple(new), tuple(changed), tuple(removed))


def scan_video_folder(folder: str | Path, settle_seconds: float = 0.0) -> list[FileState]:
    """List video files under ``folder`` (recursively) with one ``stat`` each.

    Files modified less than ``settle_seconds`` ago are left for a later scan: they are probably
    still being copied in.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    now_ns = time.time_ns()
    states = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if not is_video_file(path):
                continue
            try:
                state = FileState.of(path)
            except OSError:
                continue  # vanished between listing and stat
            if now_ns - state.mtime_ns >= settle_seconds * 1e9:
                states.append(state)
    return states
