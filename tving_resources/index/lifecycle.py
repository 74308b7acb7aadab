"""A video's life in the index after its stages ran: commit its rows, forget a broken file,
remove a video whose file is gone, and collect what crashed runs left behind.

Every step holds the video's lock (:mod:`tving_resources.index.locks`), so a commit, a removal and the
garbage collector never interleave on one video. The order of each step is what makes a crash
harmless: rows are committed before the old version's files go; a removal deletes rows, then
files, then the catalog entry, so a crashed removal is finished by running it again.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tving_resources.catalog.duplicates import DuplicateRegistry
from tving_resources.catalog.people import PeopleRegistry
from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.errors import (
    NoVideoStreamError,
    StageError,
    UnreadableVideoError,
    VideoOverLimitError,
    VideoRemovedError,
)
from tving_resources.ids import display_name
from tving_resources.index.artifacts import ArtifactStore, VideoArtifacts
from tving_resources.index.failpoints import failpoint, kill_when_new_file
from tving_resources.index.locks import try_video_lock, video_lock
from tving_resources.media.video import VideoInfo
from tving_resources.store.maintenance import delete_video_everywhere
from tving_resources.store.scene_store import SceneStore, connect, list_table_names
from tving_resources.store.schema import table_name_for


@dataclass(frozen=True)
class CommitReport:
    video_id: str
    rows: int
    skipped: bool  # the table already held exactly these rows
    pruned: int  # old results and thumbnails removed after the commit
    table: str


def commit_video(
    video: VideoArtifacts, store: SceneStore, catalog: VideoCatalog, locks_dir: Path, lock_timeout: float | None
) -> CommitReport:
    """Make the latest ``rows`` result this video's rows in the table, then drop older results.

    Raises:
        VideoRemovedError: the video left the catalog meanwhile (its file is gone); nothing is
            written and what this run produced is deleted.
    """
    import pyarrow as pa

    video_id = video.video_id
    with video_lock(locks_dir, video_id, lock_timeout):
        if catalog.find(video_id) is None:
            shutil.rmtree(video.folder, ignore_errors=True)
            raise VideoRemovedError(f"{video_id}: the video was removed while it was being indexed; nothing written")
        chain = video.lineage("rows")
        rows = video.load("rows", pa.Table, chain["rows"])
        skipped = video.committed() == chain and store.count(video_id) == rows.num_rows
        if not skipped:
            failpoint("commit:before")
            if "://" not in store.uri:
                kill_when_new_file(Path(store.uri) / f"{store.table_name}.lance", "commit:during")
            store.replace_video(video_id, rows)
            _commit_faces(video, chain, store)
            failpoint("commit:after")
            video.mark_committed(chain)
        # rows of the other tables of this profile (live during a rebuild, retired) keep their thumbnails
        others = _referenced_thumbnails(store.uri, video_id, exclude=store.table_name)
        pruned = video.prune([chain, video.head()], keep_files=others.get((store.stamp.profile, video_id), ()))
        info = video.load("video", VideoInfo, chain["video"])
        catalog.mark_indexed(video_id, f"{info.size_bytes}-{info.mtime_ns}", info.fingerprint)
    return CommitReport(video_id, rows.num_rows, skipped, pruned, store.table_name)


def _commit_faces(video: VideoArtifacts, chain: dict[str, str], store: SceneStore) -> None:
    """The video's faces into the faces table beside the rows (none recorded: none kept)."""
    from tving_resources.index.faces import SceneFaces, face_rows
    from tving_resources.store.faces import FaceStore

    faces = video.load("faces", SceneFaces, chain["faces"]) if "faces" in chain else SceneFaces.off()
    FaceStore(store.uri, store.stamp.profile).replace_video(video.video_id, face_rows(video.video_id, faces))


def stage_error(exc: BaseException, file_name: str, stage: str) -> StageError:
    """``exc`` as a message naming the file, the stage and the cause."""
    if isinstance(exc, StageError):
        return exc
    cause = str(exc).strip() or type(exc).__name__
    for prefix in (f"{file_name}: ", f"{display_name(file_name)}: "):
        cause = cause.removeprefix(prefix)
    broken = isinstance(exc, UnreadableVideoError | NoVideoStreamError | VideoOverLimitError)
    return StageError(display_name(file_name), stage, cause, broken_file=broken)


def record_failure(
    video_id: str,
    stage: str,
    exc: BaseException,
    catalog: VideoCatalog,
    lancedb_uri: str,
    stores: Sequence[ArtifactStore],
    locks_dir: Path,
    lock_timeout: float | None = 3600.0,
    run_id: str | None = None,
) -> StageError:
    """Record a stage's failure in the catalog (the first one of ``run_id`` stands). A file whose
    content is broken also loses its rows and results (they describe content that is gone); a
    missing file keeps them (an unmounted disk says nothing about the content)."""
    entry = catalog.find(video_id)
    error = stage_error(exc, entry.name if entry else video_id, stage)
    if entry is None:
        return error  # removed meanwhile: nothing to record
    catalog.mark_failed(video_id, stage, str(error), run_id)
    if error.broken_file:
        with video_lock(locks_dir, video_id, lock_timeout):
            delete_video_everywhere(lancedb_uri, video_id)
            for store in stores:
                store.remove_video(video_id)
    return error


@dataclass(frozen=True)
class RemovalReport:
    video_id: str
    removed: bool
    reason: str
    tables: int = 0


def remove_video(
    video_id: str,
    catalog: VideoCatalog,
    lancedb_uri: str,
    stores: Sequence[ArtifactStore],
    locks_dir: Path,
    only_if_missing: bool = True,
    lock_timeout: float | None = 3600.0,
) -> RemovalReport:
    """Delete a video's rows (every profile's table), results and catalog entry, in that order.

    With ``only_if_missing`` nothing happens when the file is back at its path. Running it again
    after a crash finishes the job; running it for a video already gone changes nothing.
    """
    with video_lock(locks_dir, video_id, lock_timeout):
        entry = catalog.find(video_id)
        if entry is not None and only_if_missing and Path(entry.path).exists():
            return RemovalReport(
                video_id, False, f"{entry.path} still exists (a file in the watched folder would be indexed again)"
            )
        tables = delete_video_everywhere(lancedb_uri, video_id)
        for store in stores:
            store.remove_video(video_id)
        PeopleRegistry(catalog).forget_video(video_id)
        DuplicateRegistry(catalog).forget_video(video_id)
        catalog.remove([video_id])
    reason = "removed" if entry is not None else "not in the catalog; leftovers deleted"
    return RemovalReport(video_id, True, reason, tables)


@dataclass(frozen=True)
class GarbageReport:
    videos: int  # video folders looked at
    removed: int  # unreferenced results, staging folders and old-layout files deleted
    orphan_folders: int  # folders of videos no longer in the catalog, with no rows
    busy: int  # folders skipped because a run holds their video's lock


def collect_garbage(
    stores: Sequence[ArtifactStore], catalog: VideoCatalog, lancedb_uri: str, locks_dir: Path
) -> GarbageReport:
    """Delete what crashed runs left: results neither the latest (head), nor committed, nor
    pointed to by a row; staging folders; folders of videos that left the catalog and the table."""
    catalogued = {e.video_id for e in catalog.entries()}
    referenced = _referenced_thumbnails(lancedb_uri)
    videos = removed = orphans = busy = 0
    for store in stores:
        for video_id in store.video_ids():
            videos += 1
            with try_video_lock(locks_dir, video_id) as taken:
                if not taken:
                    busy += 1
                    continue
                video = store.video(video_id)
                keep = referenced.get((store.profile, video_id), set())
                if video_id not in catalogued and not keep:
                    shutil.rmtree(video.folder, ignore_errors=True)
                    orphans += 1
                    continue
                removed += video.prune([video.head(), video.committed()], keep_files=keep)
    return GarbageReport(videos, removed, orphans, busy)


def _referenced_thumbnails(
    lancedb_uri: str, video_id: str | None = None, exclude: str | None = None
) -> dict[tuple[str, str], set[str]]:
    """(profile, video id) -> thumbnail paths that rows of that profile's tables point to (the
    live one, one being built for a new vector space, retired ones); ``exclude``: but this one."""
    from tving_resources.models.profiles import PROFILES

    referenced: dict[tuple[str, str], set[str]] = defaultdict(set)
    try:
        db = connect(lancedb_uri)
        names = set(list_table_names(db))
    except (OSError, ValueError, RuntimeError):
        return referenced
    for profile in PROFILES:
        base = table_name_for(profile)
        for name in sorted(n for n in names if (n == base or n.startswith(f"{base}_")) and n != exclude):
            query = db.open_table(name).search().select(["video_id", "thumbnails"]).limit(None)
            if video_id is not None:
                query = query.where(f"video_id = '{video_id}'")  # a checked id: [a-z0-9-] only
            for row in query.to_arrow().to_pylist():
                referenced[(profile, row["video_id"])].update(row["thumbnails"] or ())
    return referenced
