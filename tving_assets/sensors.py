"""Watch the videos folder: register new files as partitions, re-index changed ones, forget
removed ones. A tick only lists the folder and stats files (never reads them): it stays well
inside Dagster's 60 s sensor budget. The catalog, not the cursor, remembers each file, so the
cursor stays a few dozen bytes whatever the library size."""

import json

import dagster as dg

from tving_resources.catalog import scan_video_folder
from tving_resources.resources import LanceDBResource, TvingSettings

from .jobs import index_video_job
from .partitions import videos_partitions


@dg.sensor(job=index_video_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def videos_folder_sensor(
    context: dg.SensorEvaluationContext, settings: TvingSettings, lancedb: LanceDBResource
) -> dg.SensorResult | dg.SkipReason:
    catalog = settings.catalog()
    folder = settings.paths.videos_dir
    listing = scan_video_folder(folder, settle_seconds=settings.sensor_settle_seconds)
    changes = catalog.changes_under(folder, listing)
    if changes.empty:
        return dg.SkipReason(f"no new, changed or removed videos in {folder}")

    budget = settings.sensor_max_runs_per_tick
    to_index = [*changes.new, *changes.changed][:budget]  # the rest waits for the next tick
    run_requests, added = [], []
    for state in to_index:
        entry = catalog.record(state)
        if state in changes.new:
            added.append(entry.video_id)
        run_requests.append(
            dg.RunRequest(
                partition_key=entry.video_id,
                # a run key is never reused: the file's size and mtime make each version unique
                run_key=f"{entry.video_id}:{entry.version}",
                tags={"tving/video": entry.name[:200]},
            )
        )
    removed = [e.video_id for e in changes.removed]
    for video_id in removed:
        lancedb.delete_video(settings, video_id)
        settings.remove_artifacts(video_id)
    catalog.remove(removed)

    partition_requests = []
    if added:
        partition_requests.append(videos_partitions.build_add_request(added))
    if removed:
        partition_requests.append(videos_partitions.build_delete_request(removed))
    pending = len(changes.new) + len(changes.changed) - len(to_index)
    context.log.info(
        f"{len(changes.new)} new, {len(changes.changed)} changed, {len(removed)} removed; "
        f"{len(run_requests)} runs requested, {pending} left for the next tick"
    )
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=partition_requests,
        cursor=json.dumps({"files": len(listing), "pending": pending}),
    )
