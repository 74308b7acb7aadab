"""Checks. The blocking ones stop a video before bad data reaches the index: they run on a
stage's result and before the commit (``scene_rows_complete`` gates ``scene_index``).
``index_rows_match_scenes`` runs after the commit, so it only reports."""

import dagster as dg
import pyarrow as pa

from tving_resources.lifecycle import display_name
from tving_resources.pipeline import (
    SceneCaptions,
    SceneVectors,
    check_scene_coverage,
    check_scene_rows,
    check_scene_vectors,
    model_stamp,
)
from tving_resources.resources import LanceDBResource, ModelRuntimeResource, TvingSettings
from tving_resources.scenes import SceneDetection
from tving_resources.speech import Transcript
from tving_resources.store import ModelStamp

from .assets import QUEUE_TAG, captions, scene_index, scene_rows, scene_vectors, scenes

_CPU = {QUEUE_TAG: "cpu"}


def _result(problems: list[str], **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems[:5]) if problems else None,
        metadata={"problems": len(problems), **metadata},
    )


def _blocking(
    context: dg.AssetCheckExecutionContext, settings: TvingSettings, problems: list[str], **metadata
) -> dg.AssetCheckResult:
    """A blocking check's result; a failure is recorded in the catalog like a stage's."""
    result = _result(problems, **metadata)
    if problems:
        catalog = settings.catalog()
        entry = catalog.find(context.partition_key)
        if entry is not None:
            asset = context.check_specs[0].asset_key.to_user_string()
            name = display_name(entry.name)
            catalog.mark_failed(entry.video_id, asset, f"{name}: {asset} failed: check: {result.description}")
    return result


def _video(context: dg.AssetCheckExecutionContext, settings: TvingSettings, models: ModelRuntimeResource):
    return settings.artifacts(models.profile_name).video(context.partition_key)


@dg.asset_check(asset=scenes, blocking=True, op_tags=_CPU)
def scenes_cover_video(
    context: dg.AssetCheckExecutionContext, settings: TvingSettings, models: ModelRuntimeResource
) -> dg.AssetCheckResult:
    """Scenes tile the video from 0 to its end (less any excluded end card): no gap, no overlap."""
    detection = _video(context, settings, models).load("scenes", SceneDetection)
    return _blocking(context, settings, check_scene_coverage(detection), scenes=len(detection.scenes))


@dg.asset_check(asset=captions, blocking=True, op_tags=_CPU)
def every_scene_has_caption(
    context: dg.AssetCheckExecutionContext, settings: TvingSettings, models: ModelRuntimeResource
) -> dg.AssetCheckResult:
    result = _video(context, settings, models).load("captions", SceneCaptions)
    empty = [c.scene_index for c in result.scenes if not c.caption.strip()]
    problems = [f"scenes without caption: {empty[:10]}"] if empty else []
    return _blocking(context, settings, problems, captions=len(result.scenes))


@dg.asset_check(asset=scene_vectors, blocking=True, op_tags={QUEUE_TAG: "gpu"})  # loads the encoders
def vectors_are_finite_unit_norm(
    context: dg.AssetCheckExecutionContext, settings: TvingSettings, models: ModelRuntimeResource
) -> dg.AssetCheckResult:
    """Finite, unit-norm vectors of the encoders' declared dimensions (zero = no transcript)."""
    video = _video(context, settings, models)
    chain = video.lineage("vectors")
    vectors = video.load("vectors", SceneVectors, chain["vectors"])
    result = video.load("captions", SceneCaptions, chain["captions"])
    stamp: ModelStamp = models.runtime.stamp()
    problems = check_scene_vectors(vectors, result, stamp)
    return _blocking(context, settings, problems, text_dim=stamp.text_dim, frame_dim=stamp.frame_dim)


@dg.asset_check(asset=scene_rows, blocking=True, op_tags=_CPU)
def scene_rows_complete(
    context: dg.AssetCheckExecutionContext, settings: TvingSettings, models: ModelRuntimeResource
) -> dg.AssetCheckResult:
    """One row per scene, in order, every thumbnail on disk: checked before the commit."""
    video = _video(context, settings, models)
    chain = video.lineage("rows")
    rows = video.load("rows", pa.Table, chain["rows"])
    detection = video.load("scenes", SceneDetection, chain["scenes"])
    base = settings.artifacts(models.profile_name).base
    problems = check_scene_rows(rows, detection, base)
    return _blocking(context, settings, problems, expected=len(detection.scenes), rows=rows.num_rows)


@dg.asset_check(asset=scene_index, op_tags=_CPU)
def index_rows_match_scenes(
    context: dg.AssetCheckExecutionContext,
    settings: TvingSettings,
    models: ModelRuntimeResource,
    lancedb: LanceDBResource,
) -> dg.AssetCheckResult:
    """After the commit: the table holds as many rows for this video as its committed version has
    scenes (another writer or a restore could change that)."""
    video = _video(context, settings, models)
    chain = video.committed()
    if not chain:
        return _result(["no committed version of this video"], expected=0, found=0)
    expected = len(video.load("scenes", SceneDetection, chain["scenes"]).scenes)
    # the stamp of this video's own results: counting rows needs no model loaded
    stamp = model_stamp(
        models.profile_name,
        video.load("vectors", SceneVectors, chain["vectors"]),
        video.load("captions", SceneCaptions, chain["captions"]),
        video.load("transcript", Transcript, chain["transcript"]),
    )
    found = lancedb.store(settings, stamp).count(context.partition_key)
    problems = [] if found == expected else [f"the index holds {found} rows for {expected} scenes"]
    return _result(problems, expected=expected, found=found)


VIDEO_CHECKS = (
    scenes_cover_video,
    every_scene_has_caption,
    vectors_are_finite_unit_norm,
    scene_rows_complete,
    index_rows_match_scenes,
)
