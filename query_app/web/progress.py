"""Where each video of the watched folder is on its way to being searchable, for the library page:
read from the folder (one ``stat`` per file), the catalog, and Dagster's runs when a webserver is
known. A file goes: waiting for the sensor → queued → stage k of n → indexed, or failed (with the
catalog's message)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from query_app.web.dagster_status import ACTIVE, DagsterView, IndexRun
from tving_resources.catalog.folder_watch import FolderListing
from tving_resources.catalog.video_catalog import FAILED, INDEXED, CatalogEntry, FileState

WAITING, QUEUED, STARTING, RUNNING = "waiting", "queued", "starting", "running"
DONE_SHOWN_S = 3600.0  # an indexed video stays in the list this long after it was indexed
MAX_SHOWN = 200


@dataclass(frozen=True)
class VideoProgress:
    video_id: str
    name: str
    state: str  # waiting | queued | starting | running | indexed | failed | canceled
    stage: int | None = None
    stages: int | None = None
    step: str | None = None
    error: str | None = None
    failed_stage: str | None = None
    run_url: str | None = None
    updated: float | None = None  # seconds since the epoch


def _from_run(video_id: str, name: str, run: IndexRun) -> VideoProgress:
    state = {"QUEUED": QUEUED, "NOT_STARTED": QUEUED, "STARTING": STARTING, "STARTED": RUNNING}[run.status]
    return VideoProgress(video_id, name, state, run.stage, run.stages, run.step, run_url=run.run_url,
                         updated=run.started)  # fmt: skip


def video_progress(
    listing: FolderListing,
    entries: Sequence[CatalogEntry],
    dagster: DagsterView | None,
    now: float | None = None,
) -> list[VideoProgress]:
    """The watched folder's videos that are not searchable yet, or were indexed in the last hour
    (the rest of the library is on the page already), most recent first."""
    now = time.time() if now is None else now
    catalog = {e.video_id: e for e in entries}
    runs = dagster.runs if dagster is not None else {}
    found: list[VideoProgress] = []
    present = {state.video_id: state for state in listing.settled}
    present.update({FileState(p, 0, 0).video_id: FileState(p, 0, 0) for p in listing.unsettled})  # being copied
    for video_id, state in present.items():
        name = state.path.rsplit("/", 1)[-1]
        entry, run = catalog.get(video_id), runs.get(video_id)
        run_url = run.run_url if run is not None else None
        if run is not None and run.status in ACTIVE:
            found.append(_from_run(video_id, name, run))
        elif entry is not None and entry.state == FAILED and entry.version == state.version:
            found.append(VideoProgress(video_id, name, FAILED, error=entry.error, failed_stage=entry.failed_stage,
                                       run_url=run_url, updated=entry.updated_at))  # fmt: skip
        elif entry is not None and entry.state == INDEXED and entry.indexed_version == state.version:
            if now - (entry.updated_at or 0) <= DONE_SHOWN_S:
                found.append(VideoProgress(video_id, name, INDEXED, run_url=run_url, updated=entry.updated_at))
        elif run is not None and run.status == "CANCELED":
            found.append(VideoProgress(video_id, name, "canceled", run_url=run_url, updated=run.ended))
        else:  # new, changed, or still being copied: the sensor's next tick asks for a run
            found.append(VideoProgress(video_id, name, WAITING, updated=(state.mtime_ns / 1e9) or None))
    found.sort(key=lambda p: -(p.updated or now))
    return found[:MAX_SHOWN]
