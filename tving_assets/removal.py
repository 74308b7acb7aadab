"""Remove videos from the command line through the same ``remove_video`` job the sensor uses,
in this process (its runs show in the Dagster UI when DAGSTER_HOME is set)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from tving_assets.definitions import build_definitions, build_resources
from tving_assets.indexing import _QUIET
from tving_assets.instance import get_instance, process_tags
from tving_assets.jobs import remove_video_job, remove_video_run_config
from tving_resources.errors import TvingError, VideoNotRegisteredError
from tving_resources.ids import is_video_id, video_id_for
from tving_resources.index.lifecycle import RemovalReport


def remove_videos(
    videos: Sequence[str],
    missing: bool = False,
    force: bool = False,
    resources: dict[str, dg.ConfigurableResource] | None = None,
    instance: dg.DagsterInstance | None = None,
) -> list[RemovalReport]:
    """Remove ``videos`` (ids or file paths) and, with ``missing``, every video whose file is gone."""
    resources = resources or build_resources()
    catalog = resources["settings"].catalog()
    ids = []
    for video in videos:
        video_id = video if is_video_id(video) else video_id_for(Path(video))
        if catalog.find(video_id) is None:
            raise VideoNotRegisteredError(
                f"{video}: not in the catalog{_catalogued_like(video, catalog)} (see `tving status`)"
            )
        ids.append(video_id)
    if missing:
        ids += [e.video_id for e in catalog.entries() if not Path(e.path).exists()]
    job = build_definitions(resources, automation=False).resolve_job_def(remove_video_job.name)
    instance = instance or get_instance(resources["settings"].paths.home)
    reports = []
    for video_id in dict.fromkeys(ids):
        run = job.execute_in_process(
            run_config={**_QUIET, **remove_video_run_config(video_id, only_if_missing=not force)},
            instance=instance,
            tags={"tving/source": "cli", "tving/action": "remove", **process_tags()},
            raise_on_error=False,
        )
        if not run.success:
            failure = run.get_step_failure_events()
            raise TvingError(f"{video_id}: removal failed: {failure[0].message if failure else 'see the run log'}")
        (output,) = [e for e in run.all_events if e.is_successful_output]
        meta = output.step_output_data.metadata  # what the op did, as it reported it
        reports.append(RemovalReport(video_id, bool(meta["removed"].value), str(meta["reason"].value)))
    return reports


def _catalogued_like(video: str, catalog) -> str:
    """ "; did you mean NAME?" for a mistyped file name or id of a catalogued video ("" if none)."""
    import difflib

    entries = catalog.entries()
    by_name = {Path(e.path).name: e.path for e in entries} | {e.video_id: e.video_id for e in entries}
    close = difflib.get_close_matches(Path(video).name if not is_video_id(video) else video, list(by_name), n=1)
    return f"; did you mean {by_name[close[0]]}?" if close else ""
