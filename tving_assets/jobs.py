import dagster as dg
from pydantic import Field

from tving_assets.assets.finetune import captioner_lora_adapter
from tving_assets.assets.partitions import videos_partitions
from tving_assets.assets.search import duplicate_footage, people, search_index
from tving_assets.assets.video import GROUP
from tving_assets.errors import user_errors_as_failures
from tving_assets.resources import LanceDBResource, TvingSettings

# All stages of one video in one run and one process (the executor is set on Definitions), so
# each model loads once per run rather than once per step.
index_video_job = dg.define_asset_job(
    "index_video",
    selection=dg.AssetSelection.groups(GROUP),
    description="Index one video file: metadata, scenes, keyframes, transcript, captions, vectors, rows, commit.",
)

refresh_search_indexes_job = dg.define_asset_job(
    "refresh_search_indexes",
    selection=dg.AssetSelection.assets(search_index, people, duplicate_footage),
    description=(
        "The search indexes, the new faces grouped into people, and scenes of the same footage grouped "
        "(after indexing, and nightly)."
    ),
)

finetune_captioner_job = dg.define_asset_job(
    "finetune_captioner",
    selection=dg.AssetSelection.assets(captioner_lora_adapter),
    description="Train the captioner's LoRA adapter (full profile) from a JSONL dataset.",
)


class RemoveVideoConfig(dg.Config):
    video_id: str = Field(description="the video to remove from the index")
    only_if_missing: bool = Field(default=True, description="keep the video if its file is back")


@dg.op(
    retry_policy=dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL),
    tags={"dagster-celery/queue": "cpu"},
)
def remove_video_op(
    context: dg.OpExecutionContext, config: RemoveVideoConfig, settings: TvingSettings, lancedb: LanceDBResource
) -> dg.Output[None]:
    """Delete a removed file's rows (every profile), results, catalog entry and partition.

    Requested by the sensor once the file has been absent for `sensor_absent_ticks` ticks; runs
    under the video's lock, so it never interleaves with a run indexing the same video.
    """
    from tving_resources.index.lifecycle import remove_video

    with user_errors_as_failures():
        report = remove_video(
            config.video_id,
            settings.catalog(),
            lancedb.resolved_uri(settings),
            settings.all_artifacts(),
            settings.paths.locks_dir,
            only_if_missing=config.only_if_missing,
            lock_timeout=settings.video_lock_timeout_seconds,
        )
    if report.removed and context.instance.has_dynamic_partition(videos_partitions.name, config.video_id):
        context.instance.delete_dynamic_partition(videos_partitions.name, config.video_id)
    context.log.info(f"{config.video_id}: {report.reason}")
    return dg.Output(None, metadata={"video_id": config.video_id, "removed": report.removed, "reason": report.reason})


@dg.job(description="Remove one video from the index (its file is gone): rows, results, catalog entry, partition.")
def remove_video_job():
    remove_video_op()


def remove_video_run_config(video_id: str, only_if_missing: bool = True) -> dict:
    return {"ops": {"remove_video_op": {"config": {"video_id": video_id, "only_if_missing": only_if_missing}}}}
