"""Watch the videos folder: request an index run for each new or changed file, a removal run
for each file that has been gone for a few ticks. A tick only lists the folder and stats files
(never reads them) and writes the catalog; every side effect that can fail (deleting rows and
files) happens in a run, where it is logged, retried and visible in the UI.

The cursor holds the tick number and two counters: a tick's requests are written to the catalog
stamped with its number, and count as made only once Dagster stored the cursor of that tick
(see tving_resources.catalog.video_catalog), so a tick that fails is made again by the next one."""

import json

import dagster as dg

from tving_assets.assets.partitions import videos_partitions
from tving_assets.instance import ensure_pool_limits
from tving_assets.jobs import index_video_job, refresh_search_indexes_job, remove_video_job, remove_video_run_config
from tving_assets.resources import TvingSettings
from tving_resources.catalog.folder_watch import plan_tick, scan_video_folder
from tving_resources.config import resolve_paths, sensor_interval_seconds
from tving_resources.ids import display_name


@dg.sensor(
    jobs=[index_video_job, remove_video_job, refresh_search_indexes_job],
    minimum_interval_seconds=sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    # the folder as the code location resolves it when it loads (TVING_HOME / TVING_VIDEOS_DIR)
    description=f"Watches {resolve_paths().videos_dir} (and its subfolders) and indexes each new or changed "
    "video file there; removes a video's scenes once its file has been gone for a few ticks.",
)
def videos_folder_sensor(context: dg.SensorEvaluationContext, settings: TvingSettings) -> dg.SensorResult:
    if context.instance_ref is not None:  # (a context made without an instance: tests, previews)
        ensure_pool_limits(context.instance)  # before the runs this tick requests need them
    watch = settings.watch_settings()
    tick = (json.loads(context.cursor).get("tick", 0) if context.cursor else 0) + 1
    catalog = settings.catalog()
    folder = settings.paths.videos_dir
    listing = scan_video_folder(folder, settle_seconds=watch.settle_seconds)
    plan = plan_tick(listing, catalog.entries_under(folder), tick, watch)
    catalog.apply_tick(plan)

    # One run per video, queued by Dagster (its concurrency limits allow one run per video at a
    # time) and launched as its own process; the models stay loaded in the model worker (see
    # tving_resources.worker.server). Run keys are never reused: the file's version and the tick
    # make each request unique, and a tick made again after a failure asks for the same runs
    # (Dagster skips the duplicates).
    run_requests = [
        dg.RunRequest(
            job_name=index_video_job.name,
            partition_key=r.video_id,
            run_key=f"{r.video_id}:{r.version}:{tick}",
            tags={"tving/video": display_name(r.path.rsplit("/", 1)[-1])[:200], "tving/source": "sensor"},
        )
        for r in plan.index
    ]
    run_requests += [
        dg.RunRequest(
            job_name=remove_video_job.name,
            run_key=f"remove:{r.video_id}:{r.missing_since_tick}",
            run_config=remove_video_run_config(r.video_id),
            tags={"tving/video": display_name(r.path.rsplit("/", 1)[-1])[:200], "tving/action": "remove"},
        )
        for r in plan.remove
    ]
    if not run_requests and listing.complete and plan.removals_skipped is None:  # else: keep the skip reason
        run_requests += _refresh_after_indexing(context, catalog)
    # every requested video, not only new ones: a tick made again after a failure must add the
    # partitions its first attempt may not have added (adding an existing partition is a no-op)
    partitions = [r.video_id for r in plan.index]
    summary = plan.summary()
    context.log.info(summary)
    cursor = json.dumps({"tick": tick, "files": plan.files, "pending": plan.pending})
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[videos_partitions.build_add_request(partitions)] if partitions else [],
        skip_reason=None if run_requests else summary,
        cursor=cursor,
    )


_UNFINISHED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED]  # fmt: skip


def _refresh_after_indexing(context: dg.SensorEvaluationContext, catalog) -> list[dg.RunRequest]:
    """Once the library is quiet (nothing asked for this tick, no index run waiting or going)
    and videos were indexed since the search indexes were last refreshed: refresh them now,
    rather than at the nightly schedule (the UI would show search_index as stale until 03:00)."""
    indexed_at = catalog.last_indexed_at()
    if indexed_at is None:
        return []
    instance = context.instance
    busy = instance.get_run_records(dg.RunsFilter(job_name=index_video_job.name, statuses=_UNFINISHED), limit=1)
    if busy:
        return []
    last = instance.get_latest_materialization_event(dg.AssetKey("search_index"))
    if last is not None and last.timestamp >= indexed_at:
        return []
    return [
        dg.RunRequest(
            job_name=refresh_search_indexes_job.name,
            run_key=f"refresh-after:{indexed_at:.3f}",
            tags={"tving/source": "sensor", "tving/action": "refresh search indexes"},
        )
    ]
