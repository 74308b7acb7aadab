"""Index files from the command line through Dagster, in this process.

Each video is registered as a partition, then indexed by one run of the ``index_video`` job (all
stages and checks, visible in the Dagster UI when DAGSTER_HOME is set); the progress bar follows
the run's step events. All runs share this process, hence each model is loaded once for the
whole call. A video that fails stops at its failing stage with its own message; the other videos
go on.
"""

from __future__ import annotations

import difflib
import gc
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from tving_assets.assets.partitions import videos_partitions
from tving_assets.assets.video import VIDEO_STAGES
from tving_assets.definitions import build_definitions
from tving_assets.instance import get_instance, process_tags
from tving_assets.jobs import index_video_job, refresh_search_indexes_job
from tving_assets.resources import TvingSettings
from tving_resources.catalog.video_catalog import INDEXED, VideoCatalog
from tving_resources.errors import VideoError
from tving_resources.ids import file_path, is_video_file
from tving_resources.index.disk import disk_full_error
from tving_resources.index.staleness import Staleness, stale_stages
from tving_resources.media.video import regular_file_stat
from tving_resources.settings import stage_params

_QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
STAGE_NAMES = tuple(a.key.to_user_string() for a in VIDEO_STAGES)


@dataclass
class VideoIndexResult:
    path: str
    video_id: str | None
    ok: bool = False
    error: str | None = None
    failed_stage: str | None = None
    duration: float = 0.0  # seconds of video
    scenes: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    reused_stages: list[str] = field(default_factory=list)  # unchanged: stored results reused
    seconds: float = 0.0  # the whole run
    run_id: str | None = None
    skipped: bool = False  # not a video: left out before anything was catalogued (`tving index`)


def collect_video_files(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[VideoIndexResult]]:
    """Files named explicitly are taken whatever their extension; folders are searched
    recursively for video files. Paths that do not exist, or that name a FIFO, a device or a
    socket (directly or through a symbolic link), come back as failed results, never
    catalogued. A symbolic link is indexed under its own name and path."""
    files: list[Path] = []
    refused: list[VideoIndexResult] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and is_video_file(p)))
        elif path.exists() or path.is_symlink():
            try:
                regular_file_stat(path)
            except VideoError as exc:
                refused.append(VideoIndexResult(str(path), None, error=str(exc)))
                continue
            files.append(path)
        else:
            refused.append(VideoIndexResult(str(path), None, error=missing_path_error(path)))
    unique = list(dict.fromkeys(file_path(p) for p in files))
    return unique, refused


def missing_path_error(path: Path) -> str:
    """What to say of a path that does not exist, with the name meant when one is close to the one
    given (a mistyped folder or file name); the path itself is the caller's to show."""
    close = _close_path(path)
    return "no such file or folder" + (f"; did you mean {close}?" if close else "")


def _close_path(path: Path) -> str | None:
    parts = list(path.parts)
    for i in range(len(parts)):
        head = Path(*parts[: i + 1])
        if head.exists() or head.is_symlink():
            continue
        try:  # a few thousand names at most: a huge folder is not searched whole
            names = [p.name for _, p in zip(range(5000), head.parent.iterdir(), strict=False)]
        except OSError:
            return None
        close = difflib.get_close_matches(head.name, names, n=1)
        if not close:
            return None
        parts[i] = close[0]
    return str(Path(*parts)) if parts != list(path.parts) else None


def register_videos(files: Sequence[Path], catalog: VideoCatalog, instance: dg.DagsterInstance) -> list[str]:
    ids = [catalog.register(f).video_id for f in files]
    known = set(instance.get_dynamic_partitions(videos_partitions.name))
    new = [v for v in dict.fromkeys(ids) if v not in known]
    if new:
        instance.add_dynamic_partitions(videos_partitions.name, new)
    return ids


class _StepProgress:
    """Listens to one run's events: reports each stage as it starts and times it."""

    def __init__(self, result: VideoIndexResult, on_stage: Callable[[VideoIndexResult, str, int], None] | None):
        self.result, self.on_stage = result, on_stage
        self.started: dict[str, float] = {}

    def __call__(self, entry) -> None:
        event = entry.dagster_event
        step = entry.step_key
        if event is None or step not in STAGE_NAMES:
            return
        if event.is_step_start:
            self.started[step] = entry.timestamp
            if self.on_stage:
                self.on_stage(self.result, step, STAGE_NAMES.index(step))
        elif (event.is_step_success or event.is_step_failure) and step in self.started:
            self.result.stage_seconds[step] = round(entry.timestamp - self.started[step], 3)


def index_videos(
    paths: Iterable[str | os.PathLike[str]],
    resources: dict[str, dg.ConfigurableResource],
    instance: dg.DagsterInstance | None = None,
    refresh_search_index: bool = True,
    on_stage: Callable[[VideoIndexResult, str, int], None] | None = None,
) -> list[VideoIndexResult]:
    """Register and index ``paths``, one ``index_video`` run per video, in this process.

    ``on_stage(result, stage, i)`` is called when stage i starts, then once more with ``"done"``
    or ``"failed"`` as the stage. ``instance``: default, the home's (see tving_assets.instance).
    """
    settings: TvingSettings = resources["settings"]
    instance = instance or get_instance(settings.paths.home)
    files, results = collect_video_files(paths)
    ids = register_videos(files, settings.catalog(), instance)
    results += run_index_jobs(list(zip(map(str, files), ids, strict=True)), resources, instance, on_stage)
    if refresh_search_index and any(r.ok for r in results):
        _refresh(resources, instance)
    return results


def plan_stale(resources: dict[str, dg.ConfigurableResource], video_ids: Sequence[str] = ()) -> list[Staleness]:
    """For each catalogued video (or those named), the stages that a model or settings change
    since its last indexing makes stale (see ``tving_resources.index.staleness``)."""
    settings: TvingSettings = resources["settings"]
    current = stage_params(settings, resources["models"].runtime)
    artifacts = settings.artifacts(resources["models"].profile_name)
    catalog = settings.catalog()
    # by default the indexed videos: a failed one is tried again when its file changes (the sensor)
    # or when named here, not on every model change
    ids = list(video_ids) or [e.video_id for e in catalog.entries() if e.state == INDEXED]
    return [stale_stages(artifacts.video(v), current) for v in ids]


def index_stale(
    resources: dict[str, dg.ConfigurableResource],
    video_ids: Sequence[str] = (),
    instance: dg.DagsterInstance | None = None,
    refresh_search_index: bool = True,
    on_stage: Callable[[VideoIndexResult, str, int], None] | None = None,
) -> tuple[list[Staleness], list[VideoIndexResult]]:
    """Re-run only the stale stages of each video (one run per video with those assets
    selected); up-to-date videos are left alone."""
    settings: TvingSettings = resources["settings"]
    instance = instance or get_instance(settings.paths.home)
    plans = plan_stale(resources, video_ids)
    catalog = settings.catalog()
    todo = [p for p in plans if p.stale]
    known = set(instance.get_dynamic_partitions(videos_partitions.name))
    missing = [p.video_id for p in todo if p.video_id not in known]
    if missing:
        instance.add_dynamic_partitions(videos_partitions.name, missing)
    videos = [(catalog.get(p.video_id).path, p.video_id) for p in todo]
    selections = {p.video_id: p.assets for p in todo}
    results = run_index_jobs(videos, resources, instance, on_stage, selections=selections)
    if refresh_search_index and any(r.ok for r in results):
        _refresh(resources, instance)
    return plans, results


def _refresh(resources: dict[str, dg.ConfigurableResource], instance: dg.DagsterInstance) -> None:
    build_definitions(resources, automation=False).resolve_job_def(refresh_search_indexes_job.name).execute_in_process(
        instance=instance, run_config=_QUIET, raise_on_error=False, tags=process_tags()
    )


def run_index_jobs(
    videos: Sequence[tuple[str, str]],
    resources: dict[str, dg.ConfigurableResource],
    instance: dg.DagsterInstance,
    on_stage: Callable[[VideoIndexResult, str, int], None] | None = None,
    tags: dict[str, str] | None = None,
    selections: dict[str, list[str]] | None = None,
) -> list[VideoIndexResult]:
    """One ``index_video`` run per registered ``(path, video_id)``, in this process and one after
    the other, so each model loads once for all of them; a video that fails stops alone.
    ``selections``: video id -> the assets to run (default: every stage)."""
    job = build_definitions(resources, automation=False).resolve_job_def(index_video_job.name)
    results: list[VideoIndexResult] = []
    with _start_up_heap_frozen():
        for path, video_id in videos:
            results.append(_run_one(job, path, video_id, resources, instance, on_stage, tags, selections))
    return results


@contextmanager
def _start_up_heap_frozen() -> Iterator[None]:
    """Python's full garbage collections walk every object of the process: here the libraries,
    Dagster's definitions and the models' Python side (a fifth of a second each, measured on the
    sample videos). What exists before the runs lives as long as the process, so the collector
    is told to leave it alone while they run (``gc.freeze``), and given it back after."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _run_one(
    job: dg.JobDefinition,
    path: str,
    video_id: str,
    resources: dict[str, dg.ConfigurableResource],
    instance: dg.DagsterInstance,
    on_stage: Callable[[VideoIndexResult, str, int], None] | None,
    tags: dict[str, str] | None,
    selections: dict[str, list[str]] | None,
) -> VideoIndexResult:
    result = VideoIndexResult(path, video_id, run_id=str(uuid.uuid4()))
    instance.add_event_listener(result.run_id, _StepProgress(result, on_stage))
    started = time.perf_counter()
    selection = (selections or {}).get(video_id)
    settings = resources["settings"]
    try:
        run = job.execute_in_process(
            partition_key=video_id,
            instance=instance,
            run_id=result.run_id,
            raise_on_error=False,
            run_config=_QUIET,
            tags={"tving/source": "cli", **process_tags(), **(tags or {})},
            asset_selection=[dg.AssetKey(a) for a in selection] if selection else None,
        )
    except Exception as exc:  # Dagster's own storage failed: only a full disk is the user's to fix
        full = disk_full_error(exc, [settings.paths.data_dir, settings.paths.home])
        if full is None:
            raise
        result.seconds = round(time.perf_counter() - started, 3)
        result.error = str(full)
        _record_in_catalog(settings.catalog(), video_id, "indexing", result.error, result.run_id)
        if on_stage:
            on_stage(result, "failed", len(STAGE_NAMES))
        return result
    result.seconds = round(time.perf_counter() - started, 3)
    result.reused_stages = _reused_stages(run)
    if run.success:
        result.ok = True
        _fill_counts(result, settings.artifacts(resources["models"].profile_name))
    else:
        # the catalog's record of this run's first failure is what every view shows
        recorded = _catalog_failure(settings.catalog(), video_id, result.run_id)
        result.failed_stage, result.error = recorded or _failure(run)
    if on_stage:
        on_stage(result, "done" if result.ok else "failed", len(STAGE_NAMES))
    return result


def _catalog_failure(catalog: VideoCatalog, video_id: str, run_id: str) -> tuple[str | None, str] | None:
    try:
        entry = catalog.failure_in_run(video_id, run_id)
    except Exception as exc:  # the catalog unreadable (a full disk): Dagster's record stands
        if disk_full_error(exc, []) is None:
            raise
        return None
    return (entry.failed_stage, entry.error or "") if entry is not None else None


def _record_in_catalog(catalog: VideoCatalog, video_id: str, stage: str, message: str, run_id: str | None) -> None:
    """Mark the video failed, if the catalog can still be written (it may share the full disk)."""
    try:
        catalog.mark_failed(video_id, stage, message, run_id)
    except Exception as exc:
        if disk_full_error(exc, []) is None:
            raise


def _reused_stages(run: dg.ExecuteInProcessResult) -> list[str]:
    reused = []
    for event in run.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        skipped = materialization.metadata.get("skipped")
        if skipped is not None and skipped.value:
            reused.append(materialization.asset_key.to_user_string())
    return reused


def _failure(run: dg.ExecuteInProcessResult) -> tuple[str | None, str]:
    """The failed stage (asset name) and a message for the user."""
    failed_checks = [e for e in run.get_asset_check_evaluations() if not e.passed]
    if failed_checks:
        first = failed_checks[0]
        message = "; ".join(f"check {e.check_name} failed: {e.description}" for e in failed_checks)
        return first.asset_key.to_user_string(), message
    for event in run.get_step_failure_events():
        stage = event.step_key
        data = event.step_failure_data
        if data.user_failure_data and data.user_failure_data.description:
            return stage, data.user_failure_data.description
        if data.error:
            error = data.error.cause or data.error
            return stage, error.message.strip().splitlines()[-1]
    return None, "the run failed (see the Dagster run log)"


def _fill_counts(result: VideoIndexResult, artifacts) -> None:
    from tving_resources.errors import TvingError
    from tving_resources.media.scenes import SceneDetection
    from tving_resources.media.video import VideoInfo

    video = artifacts.video(result.video_id)
    chain = video.committed()
    try:
        result.duration = video.load("video", VideoInfo, chain.get("video")).duration
        result.scenes = len(video.load("scenes", SceneDetection, chain.get("scenes")).scenes)
    except TvingError:
        pass
