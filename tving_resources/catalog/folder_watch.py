"""What the sensor decides on each tick, as pure functions: list the watched folder (one ``stat``
per file, never a read), then compare the listing with the catalog.

A listing that is missing, empty while the catalog says otherwise, or partly unreadable is not
evidence that files were removed (an unmounted disk, a renamed mount point, a permission error):
such a tick removes nothing and says why. A file counts as removed only after it has been absent
from ``absent_ticks`` complete listings in a row, and at most ``max_removals_per_tick`` removals
are requested per tick. Files modified in the last ``settle_seconds`` are being copied: a new one
waits, a known one keeps its rows until its new version is settled and indexed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tving_resources.catalog.video_catalog import CatalogEntry, FileState
from tving_resources.ids import is_video_file

# A mass disappearance (this many catalogued files or more, and more than max_missing_fraction of
# them) looks like a partly unmounted library, not like a user deleting files.
MASS_MISSING_MIN = 10


@dataclass(frozen=True)
class WatchSettings:
    """The sensor's settings (their defaults: ``tving_resources.settings.IndexSettings``)."""

    settle_seconds: float
    max_runs_per_tick: int  # videos requested per tick
    absent_ticks: int
    max_removals_per_tick: int
    max_missing_fraction: float

    def __post_init__(self) -> None:
        if min(self.absent_ticks, self.max_runs_per_tick) < 1 or self.max_removals_per_tick < 0:
            raise ValueError("absent_ticks and max_runs_per_tick must be >= 1, max_removals_per_tick >= 0")


@dataclass(frozen=True)
class FolderListing:
    root: str
    exists: bool
    settled: tuple[FileState, ...]
    unsettled: tuple[str, ...]  # paths of video files modified too recently (being copied)
    problems: tuple[str, ...]  # what could not be read

    @property
    def complete(self) -> bool:
        return self.exists and not self.problems

    @property
    def present(self) -> frozenset[str]:
        return frozenset(s.path for s in self.settled) | frozenset(self.unsettled)


def scan_video_folder(folder: str | Path, settle_seconds: float = 0.0) -> FolderListing:
    """List video files under ``folder`` (recursively, hidden folders skipped) with one ``stat`` each."""
    root = Path(folder).resolve()
    if not root.is_dir():
        return FolderListing(str(root), False, (), (), (f"{root} is not a folder",))
    problems: list[str] = []

    def unreadable(error: OSError) -> None:
        problems.append(f"{error.filename}: {error.strerror}")

    now_ns = time.time_ns()
    settled, unsettled = [], []
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if not is_video_file(path):
                continue
            try:
                state = FileState.of(path)
            except FileNotFoundError:
                continue  # removed between listing and stat: absent
            except OSError as exc:
                problems.append(f"{path}: {exc.strerror}")
                continue
            if now_ns - state.mtime_ns >= settle_seconds * 1e9:
                settled.append(state)
            else:
                unsettled.append(state.path)
    return FolderListing(str(root), True, tuple(settled), tuple(unsettled), tuple(problems))


@dataclass(frozen=True)
class IndexRequest:
    video_id: str
    path: str
    size: int
    mtime_ns: int
    new: bool  # not in the catalog before

    @property
    def version(self) -> str:
        return f"{self.size}-{self.mtime_ns}"


@dataclass(frozen=True)
class RemovalRequest:
    video_id: str
    path: str
    missing_since_tick: int


@dataclass(frozen=True)
class TickPlan:
    tick: int
    index: tuple[IndexRequest, ...]
    remove: tuple[RemovalRequest, ...]
    newly_missing: tuple[str, ...]  # video ids first found absent on this tick
    reappeared: tuple[str, ...]  # video ids that were absent (or being removed) and are back
    waiting_removal: int  # absent for fewer than absent_ticks ticks, or over the removal cap
    pending: int  # index requests left for later ticks (over the cap)
    files: int  # video files listed
    removals_skipped: str | None = None  # why this tick removes nothing

    @property
    def empty(self) -> bool:
        return not (self.index or self.remove or self.newly_missing or self.reappeared)

    def summary(self) -> str:
        new = sum(r.new for r in self.index)
        text = (
            f"tick {self.tick}: {self.files} video files; {new} new and {len(self.index) - new} changed requested, "
            f"{self.pending} left for later ticks; {len(self.remove)} removals requested, "
            f"{self.waiting_removal} absent files waiting"
        )
        if self.removals_skipped:
            text += f". Removals skipped: {self.removals_skipped}"
        return text


def plan_tick(listing: FolderListing, entries: Sequence[CatalogEntry], tick: int, settings: WatchSettings) -> TickPlan:
    """Compare ``listing`` with the catalog ``entries`` of that folder. Pure: nothing is written."""
    known = {e.path: e for e in entries}
    wanted: list[IndexRequest] = []
    for state in listing.settled:
        entry = known.get(state.path)
        if entry is None or entry.requested_version != state.version or not entry.request_confirmed(tick):
            wanted.append(IndexRequest(state.video_id, state.path, state.size, state.mtime_ns, new=entry is None))
    present = listing.present
    reappeared = tuple(
        e.video_id
        for path, e in known.items()
        if path in present and (e.missing_since_tick is not None or e.removal_tick is not None)
    )
    absent = [e for path, e in known.items() if path not in present]
    skipped = _why_not_remove(listing, len(known), len(absent), settings) if absent else None

    newly_missing, candidates, waiting = [], [], 0
    if skipped is None:
        for entry in absent:
            since = entry.missing_since_tick if entry.missing_since_tick is not None else tick
            if since == tick:
                newly_missing.append(entry.video_id)
            if tick - since + 1 < settings.absent_ticks:
                waiting += 1
            elif entry.removal_tick is None or entry.removal_tick >= tick:  # no confirmed request yet
                candidates.append(RemovalRequest(entry.video_id, entry.path, since))
    remove = candidates[: settings.max_removals_per_tick]
    waiting += len(candidates) - len(remove)
    index = wanted[: settings.max_runs_per_tick]
    return TickPlan(
        tick=tick,
        index=tuple(index),
        remove=tuple(remove),
        newly_missing=tuple(newly_missing),
        reappeared=reappeared,
        waiting_removal=waiting,
        pending=len(wanted) - len(index),
        files=len(listing.settled) + len(listing.unsettled),
        removals_skipped=skipped,
    )


def _why_not_remove(listing: FolderListing, known: int, absent: int, settings: WatchSettings) -> str | None:
    root = listing.root
    if not listing.exists:
        return f"the watched folder {root} is missing (unmounted disk or renamed mount point?)"
    if listing.problems:
        more = f" and {len(listing.problems) - 1} more" if len(listing.problems) > 1 else ""
        return f"part of {root} could not be read ({listing.problems[0]}{more})"
    if not listing.present:
        return f"{root} lists no videos but the catalog holds {known} from it (unmounted disk?)"
    if absent >= MASS_MISSING_MIN and absent > settings.max_missing_fraction * known:
        return f"{absent} of {known} catalogued videos vanished at once (a disk or folder not mounted?)"
    return None
