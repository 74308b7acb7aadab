"""What every per-video asset does: ask for its stage (:mod:`tving_resources.stages`) to be run,
by the model worker while one runs and in this process otherwise, and turn the stage's outcome
into a materialization."""

from __future__ import annotations

from typing import Any

import dagster as dg

from tving_assets.resources import LanceDBResource, ModelRuntimeResource, TvingSettings
from tving_resources.errors import TvingError
from tving_resources.models.cache import MODEL_CACHE
from tving_resources.stages.outcome import CHECK_NAMED, Meta, StageOutcome, StageRequest


def materialize_stage(
    context: dg.AssetExecutionContext,
    settings: TvingSettings,
    models: ModelRuntimeResource,
    lancedb: LanceDBResource,
) -> dg.MaterializeResult:
    """The asset of ``context`` for its video partition. A stage that fails raises dg.Failure
    with one message naming the file, the stage and the cause (already in the catalog); a bug's
    error is raised as it is."""
    from tving_resources.worker.client import effective_config, execute_stage

    runtime = models.runtime
    request = StageRequest(
        asset=context.asset_key.to_user_string(),
        video_id=context.partition_key,
        settings=settings.index_settings(),
        runtime=effective_config(runtime),
        paths=settings.paths,
        lancedb_uri=lancedb.resolved_uri(settings),
        limits=settings.media_limits(),
        run_id=context.run.run_id,
    )
    try:
        outcome = execute_stage(request, runtime, models.worker)
    except TvingError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    for line in outcome.logs:
        context.log.info(line)
    return dg.MaterializeResult(
        metadata=_metadata(outcome),
        check_results=[_check_result(check) for check in outcome.checks] or None,
        data_version=dg.DataVersion(outcome.data_version) if outcome.data_version else None,
    )


def _metadata(outcome: StageOutcome) -> dict[str, Any]:
    metadata = {name: _value(value) for name, value in outcome.metadata.items()}
    if "rows" in metadata:
        metadata["dagster/row_count"] = metadata["rows"]
    # models loaded by this run's own process (none when the model worker ran the stage)
    metadata["model_loads"] = dg.MetadataValue.json(MODEL_CACHE.load_counts())
    metadata["model_worker"] = (
        f"pid {outcome.worker_pid}" if outcome.worker_pid else "none: the stage ran in this run's process"
    )
    return metadata


def _value(value: Any) -> Any:
    if not isinstance(value, Meta):
        return value
    kinds = {
        "path": dg.MetadataValue.path,
        "md": dg.MetadataValue.md,
        "text": dg.MetadataValue.text,
        "json": dg.MetadataValue.json,
    }
    return kinds[value.kind](value.value)


def _check_result(check) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=CHECK_NAMED[check.name].asset,
        check_name=check.name,
        passed=check.passed,
        description=check.description,
        metadata=check.metadata,
    )
