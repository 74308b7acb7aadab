"""The code location: ``dagster dev`` in the repository root loads it through workspace.yaml."""

import warnings

import dagster as dg

from tving_assets.assets.finetune import captioner_lora_adapter
from tving_assets.assets.search import duplicate_footage, people, search_index, search_quality
from tving_assets.assets.video import VIDEO_STAGES
from tving_assets.automation.schedules import nightly_search_index_refresh
from tving_assets.automation.sensors import videos_folder_sensor
from tving_assets.instance import keep_connections_of_dagster_home
from tving_assets.jobs import finetune_captioner_job, index_video_job, refresh_search_indexes_job, remove_video_job
from tving_assets.resources import LanceDBResource, ModelRuntimeResource, TvingSettings
from tving_resources.config import deployment
from tving_resources.index.staleness import ASSET_OF, code_version
from tving_resources.settings import stage_params

# Dagster's own notice, raised inside Dagster whenever a sensor is bound to resources (we pass no
# owners): nothing for a user of this project to act on.
warnings.filterwarnings("ignore", message="Parameter `owners` of initializer `SensorDefinition.__init__`")


def build_resources(
    settings: TvingSettings | None = None,
    models: ModelRuntimeResource | None = None,
    lancedb: LanceDBResource | None = None,
) -> dict[str, dg.ConfigurableResource]:
    return {
        "settings": settings or TvingSettings(),
        "models": models or ModelRuntimeResource(),
        "lancedb": lancedb or LanceDBResource(),
    }


def build_definitions(
    resources: dict[str, dg.ConfigurableResource] | None = None, automation: bool = True
) -> dg.Definitions:
    """Everything of the code location, bound to ``resources`` (default: from the environment);
    without the sensor and schedule when ``automation`` is False (the command line runs jobs)."""
    resources = resources or build_resources()
    return dg.Definitions(
        assets=[
            *versioned_stages(resources),
            search_index,
            people,
            duplicate_footage,
            search_quality,
            captioner_lora_adapter,
        ],
        jobs=[index_video_job, refresh_search_indexes_job, finetune_captioner_job, remove_video_job],
        sensors=[videos_folder_sensor] if automation else [],
        schedules=[nightly_search_index_refresh] if automation else [],
        resources=resources,
        executor=executor(),
    )


def versioned_stages(resources: dict[str, dg.ConfigurableResource]) -> list[dg.AssetsDefinition]:
    """The per-video assets, each with a code version hashed from the models and settings that
    decide its result: after a model change the UI marks exactly the stale stages of each
    partition, and "Materialize stale" re-runs only those (``tving index --stale`` alike)."""
    params = stage_params(resources["settings"], resources["models"].runtime)
    stage_of = {asset: stage for stage, asset in ASSET_OF.items()}

    def with_version(spec: dg.AssetSpec) -> dg.AssetSpec:
        stage = stage_of[spec.key.to_user_string()]
        return spec.replace_attributes(code_version=code_version(params.get(stage, {})))

    return dg.map_asset_specs(with_version, list(VIDEO_STAGES))


def executor() -> dg.ExecutorDefinition:
    """Locally one process per run, so the steps of a run share each loaded model (the
    multiprocess executor would load every model again in every step). On the cluster
    deployment Dagster's Celery executor: each step goes to a worker that keeps its models."""
    if deployment() == "cluster":
        from dagster_celery import celery_executor

        broker = {"env": "TVING_CELERY_BROKER"}
        return celery_executor.configured({"broker": broker, "backend": broker}, name="celery")
    return dg.in_process_executor


# a run process the daemon launches imports this module before it executes: its events, and the
# sensor ticks of the code server, go through kept SQLite connections
keep_connections_of_dagster_home()
defs = build_definitions()
