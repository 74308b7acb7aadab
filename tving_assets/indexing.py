"""Index files from the command line through Dagster, in this process.

Each video is registered as a partition, then its stages are materialized one run per stage
(visible in the Dagster UI when DAGSTER_HOME is set) so the progress bar can follow stage by
stage. All runs share this process, hence each model is loaded once for the whole call. A video
that fails stops at its failing stage with its own message; the other videos go on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from tving_resources.catalog import VideoCatalog
from tving_resources.ids import is_video_file
from tving_resources.resources import TvingSettings

from .assets import VIDEO_STAGES, search_index
from .checks import VIDEO_CHECKS
from .partitions import videos_partitions

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


def collect_video_files(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[VideoIndexResult]]:
    """Files named explicitly are taken whatever their extension; folders are searched
    recursively for video files. Paths that do not exist come back as failed results."""
    files: list[Path] = []
    missing: list[VideoIndexResult] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and is_video_file(p)))
        elif path.is_file():
            files.append(path)
        else:
            missing.append(VideoIndexResult(str(path), None, error=f"{path}: no such file or folder"))
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return unique, missing


def get_instance() -> dg.DagsterInstance:
    """The instance of DAGSTER_HOME when set (runs show in `dagster dev`), else an ephemeral one."""
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def register_videos(files: Sequence[Path], catalog: VideoCatalog, instance: dg.DagsterInstance) -> list[str]:
    ids = [catalog.register(f).video_id for f in files]
    known = set(instance.get_dynamic_partitions(videos_partitions.name))
    new = [v for v in dict.fromkeys(ids) if v not in known]
    if new:
        instance.add_dynamic_partitions(videos_partitions.name, new)
    return ids


def index_videos(
    paths: Iterable[str | os.PathLike[str]],
    resources: dict[str, dg.ConfigurableResource],
    instance: dg.DagsterInstance | None = None,
    refresh_search_index: bool = True,
    on_stage: Callable[[VideoIndexResult, str, int], None] | None = None,
) -> list[VideoIndexResult]:
    """Register and index ``paths``.

    ``on_stage(result, stage, i)`` is called before stage i, then once more with ``"done"`` or
    ``"failed"`` as the stage.
    """
    instance = instance or get_instance()
    settings: TvingSettings = resources["settings"]
    files, results = collect_video_files(paths)
    ids = register_videos(files, settings.catalog(), instance)
    everything = [*VIDEO_STAGES, *VIDEO_CHECKS, search_index]
    for path, video_id in zip(files, ids, strict=True):
        result = VideoIndexResult(str(path), video_id)
        results.append(result)
        for i, stage in enumerate(VIDEO_STAGES):
            name = STAGE_NAMES[i]
            if on_stage:
                on_stage(result, name, i)
            started = time.perf_counter()
            run = dg.materialize(
                everything,
                selection=[stage],
                partition_key=video_id,
                instance=instance,
                resources=resources,
                raise_on_error=False,
                run_config=_QUIET,
                tags={"tving/source": "cli"},
            )
            result.stage_seconds[name] = round(time.perf_counter() - started, 3)
            if not run.success:
                result.failed_stage, result.error = name, _failure_message(run)
                if on_stage:
                    on_stage(result, "failed", i)
                break
        else:
            result.ok = True
            if on_stage:
                on_stage(result, "done", len(VIDEO_STAGES))
        if result.ok:
            _fill_counts(result, settings.artifacts(resources["models"].profile_name))
    if refresh_search_index and any(r.ok for r in results):
        dg.materialize(everything, selection=[search_index], instance=instance, resources=resources, run_config=_QUIET)
    return results


def _failure_message(run: dg.ExecuteInProcessResult) -> str:
    failed_checks = [e for e in run.get_asset_check_evaluations() if not e.passed]
    if failed_checks:
        return "; ".join(f"check {e.check_name} failed: {e.description}" for e in failed_checks)
    for event in run.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data and data.user_failure_data.description:
            return data.user_failure_data.description
        if data.error:
            error = data.error.cause or data.error
            return error.message.strip().splitlines()[-1]
    return "the run failed (see the Dagster run log)"


def _fill_counts(result: VideoIndexResult, artifacts) -> None:
    from tving_resources.errors import TvingError
    from tving_resources.scenes import SceneDetection
    from tving_resources.video import VideoInfo

    try:
        result.duration = artifacts.load(result.video_id, "video", VideoInfo).duration
        result.scenes = len(artifacts.load(result.video_id, "scenes", SceneDetection).scenes)
    except TvingError:
        pass  # the video failed before these stages
