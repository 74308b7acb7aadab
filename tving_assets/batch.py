"""Index a batch of videos in one run: the local deployment's answer to "every run is a new
process, so every video reloads every model".

The sensor groups new and changed videos into batches (``sensor_batch_size``); one
``index_batch`` run then executes an ``index_video`` run per video inside its own process (real
runs, each visible in the UI under its partition, tagged with the batch run's id), so each model
loads once per batch while a bad video still fails alone. On the cluster deployment the batch
size is 1: Celery workers keep models loaded between steps instead.
"""

import os
import socket

import dagster as dg
from pydantic import Field

from tving_resources.models import MODEL_CACHE
from tving_resources.resources import LanceDBResource, ModelRuntimeResource, TvingSettings


class IndexBatchConfig(dg.Config):
    video_ids: list[str] = Field(description="registered video ids (partitions of `videos`) to index")


@dg.op
def index_batch_op(
    context: dg.OpExecutionContext,
    config: IndexBatchConfig,
    settings: TvingSettings,
    models: ModelRuntimeResource,
    lancedb: LanceDBResource,
) -> dg.Output[None]:
    from .indexing import run_index_jobs  # (imports the definitions this module is part of)
    from .instance import uncaptured

    catalog = settings.catalog()
    videos = [(e.path, e.video_id) for e in map(catalog.find, config.video_ids) if e is not None]
    loads_before = MODEL_CACHE.load_counts()
    with uncaptured(context.instance) as instance:  # this step's capture holds their output
        results = run_index_jobs(
            videos,
            {"settings": settings, "models": models, "lancedb": lancedb},
            instance,
            tags={"tving/source": "sensor", "tving/batch_run": context.run_id},
        )
    loads = {k: v - loads_before.get(k, 0) for k, v in MODEL_CACHE.load_counts().items() if v > loads_before.get(k, 0)}
    failed = [r for r in results if not r.ok]
    for r in failed:
        context.log.warning(f"{r.video_id} failed at {r.failed_stage}: {r.error}")
    return dg.Output(
        None,
        metadata={
            "videos": len(results),
            "indexed": len(results) - len(failed),
            "failed": [f"{r.video_id}: {r.error}" for r in failed],
            "model_loads": loads,
            "model_loads_per_video": round(sum(loads.values()) / max(1, len(results)), 3),
            "process": f"{socket.gethostname()}:{os.getpid()}",
            "runs": [r.run_id for r in results],
        },
    )


@dg.job(description="Index several videos in one process (one index_video run each): models load once per batch.")
def index_batch_job():
    index_batch_op()


def index_batch_run_config(video_ids: list[str]) -> dict:
    return {"ops": {"index_batch_op": {"config": {"video_ids": list(video_ids)}}}}
