"""Telling a full disk apart from other failures, and saying which folder is full.

A full filesystem surfaces in many shapes: ``OSError`` with ``ENOSPC`` from our own writes,
SQLite's "database or disk is full" through SQLAlchemy, LanceDB's Rust "No space left on device
(os error 28)" inside another exception, each possibly wrapped by the next layer. One message
naming the folder is what a user can act on.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterable
from pathlib import Path

from tving_resources.errors import DiskFullError

_MESSAGES = ("no space left on device", "database or disk is full", "disk quota exceeded")
_NEARLY_FULL = 1 << 20  # bytes free under which a bare I/O error is taken for a full disk


def disk_full_cause(exc: BaseException) -> BaseException | None:
    """The exception in ``exc``'s chain (causes and contexts) that says the disk is full, or None."""
    for current in _chain(exc):
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return current
        if any(m in str(current).lower() for m in _MESSAGES):
            return current
    return None


def _io_error(exc: BaseException) -> bool:
    return any(
        (isinstance(e, OSError) and e.errno == errno.EIO) or "disk i/o error" in str(e).lower() for e in _chain(exc)
    )


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it was raised from or during (SQLAlchemy's ``orig`` too)."""
    seen: dict[int, BaseException] = {}
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen[id(current)] = current
        pending += [current.__cause__, current.__context__, getattr(current, "orig", None)]
    return list(seen.values())


def disk_full_error(exc: BaseException, folders: Iterable[str | Path]) -> DiskFullError | None:
    """A DiskFullError naming the full folder, if ``exc`` comes from a full disk: the file the
    failed write named, else the one of ``folders`` with the least space left. SQLite sometimes
    says only "disk I/O error" when its journal cannot grow: that counts when one of ``folders``
    has (almost) no space left."""
    folders = list(folders)
    cause = disk_full_cause(exc)
    if cause is None:
        fullest = _fullest(folders)
        if not _io_error(exc) or fullest is None or (_free_bytes(fullest) or 0) >= _NEARLY_FULL:
            return None
        cause = exc
    named = getattr(cause, "filename", None)
    where = Path(named).parent if named else _fullest(folders)
    free = _free_bytes(where) if where is not None else None
    left = f" ({free / 2**20:.1f} MB free)" if free is not None else ""
    place = f"{where}{left}" if where is not None else "the data folder"
    return DiskFullError(
        f"no space left on the device holding {place}: free some space there, or move the data folder "
        "(TVING_DATA_DIR) to a larger disk, then index again"
    )


def _fullest(folders: Iterable[str | Path]) -> Path | None:
    candidates = [(free, Path(f)) for f in folders if (free := _free_bytes(Path(f))) is not None]
    return min(candidates)[1] if candidates else None


def _free_bytes(folder: Path) -> int | None:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None
