"""Blocking checks: a bad stage result stops the run before it reaches the index."""

import dagster as dg

from tving_resources.pipeline import (
    SceneCaptions,
    SceneVectors,
    check_scene_coverage,
    check_scene_vectors,
    model_stamp,
)
from tving_resources.resources import LanceDBResource, ModelRuntimeResource, TvingSettings
from tving_resources.scenes import SceneDetection
from tving_resources.speech import Transcript
from tving_resources.store import ModelStamp

from .assets import captions, scene_index, scene_vectors, scenes


def _result(problems: list[str], **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems[:5]) if problems else None,
        metadata={"problems": len(problems), **metadata},
    )


@dg.asset_check(asset=scenes, blocking=True)
def scenes_cover_video(
    context: dg.AssetCheckExecutionContext, settings: TvingSettings, models: ModelRuntimeResource
) -> dg.AssetCheckResult:
    """Scenes tile the video from 0 to its end (less any excluded end card): no gap, no overlap."""
    detection = settings.artifacts(models.profile_name).load(context.partition_key, "scenes", SceneDetection)
    return _result(check_scene_coverage(detection), scenes=len(detection.scenes))


@dg.asset_check(asset=captions, blocking=True)
def every_scene_has_caption(
    context: dg.AssetCheckExecutionContext, settings: TvingSettings, models: ModelRuntimeResource
) -> dg.AssetCheckResult:
    result = settings.artifacts(models.profile_name).load(context.partition_key, "captions", SceneCaptions)
    empty = [c.scene_index for c in result.scenes if not c.caption.strip()]
    return _result([f"scenes without caption: {empty[:10]}"] if empty else [], captions=len(result.scenes))


@dg.asset_check(asset=scene_vectors, blocking=True)
def vectors_are_finite_unit_norm(
    context: dg.AssetCheckExecutionContext, settings: TvingSettings, models: ModelRuntimeResource
) -> dg.AssetCheckResult:
    """Finite, unit-norm vectors of the encoders' declared dimensions (zero = no transcript)."""
    artifacts = settings.artifacts(models.profile_name)
    video_id = context.partition_key
    vectors = SceneVectors.from_arrays(artifacts.load_arrays(video_id, "vectors"))
    result = artifacts.load(video_id, "captions", SceneCaptions)
    stamp: ModelStamp = models.runtime.stamp()
    return _result(check_scene_vectors(vectors, result, stamp), text_dim=stamp.text_dim, frame_dim=stamp.frame_dim)


@dg.asset_check(asset=scene_index, blocking=True)
def index_rows_match_scenes(
    context: dg.AssetCheckExecutionContext,
    settings: TvingSettings,
    models: ModelRuntimeResource,
    lancedb: LanceDBResource,
) -> dg.AssetCheckResult:
    video_id = context.partition_key
    artifacts = settings.artifacts(models.profile_name)
    expected = len(artifacts.load(video_id, "scenes", SceneDetection).scenes)
    # the stamp of this video's own results: counting rows needs no model loaded
    stamp = model_stamp(
        models.profile_name,
        SceneVectors.from_arrays(artifacts.load_arrays(video_id, "vectors")),
        artifacts.load(video_id, "captions", SceneCaptions),
        artifacts.load(video_id, "transcript", Transcript),
    )
    found = lancedb.store(settings, stamp).count(video_id)
    problems = [] if found == expected else [f"the index holds {found} rows for {expected} scenes"]
    return _result(problems, expected=expected, found=found)


VIDEO_CHECKS = (scenes_cover_video, every_scene_has_caption, vectors_are_finite_unit_norm, index_rows_match_scenes)
