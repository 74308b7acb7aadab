"""Asset checks, evaluated inside the step of the asset they check (one step per stage instead
of two: each step costs a Celery task on the cluster and tens of milliseconds locally).

The blocking ones stop a video before bad data reaches the index; ``scene_rows_complete`` runs
on the rows before ``scene_index`` commits them. ``index_rows_match_scenes`` runs after the
commit, so it only reports. A failed blocking check is recorded in the catalog like a failed stage.
"""

import dagster as dg

from tving_assets.assets.stage import VideoStage

SCENES_COVER_VIDEO = dg.AssetCheckSpec(
    "scenes_cover_video",
    asset="scenes",
    blocking=True,
    description="Scenes tile the video from 0 to its end (less any excluded end card): no gap, no overlap.",
)
EVERY_SCENE_HAS_CAPTION = dg.AssetCheckSpec("every_scene_has_caption", asset="captions", blocking=True)
VECTORS_ARE_FINITE_UNIT_NORM = dg.AssetCheckSpec(
    "vectors_are_finite_unit_norm",
    asset="scene_vectors",
    blocking=True,
    description="Finite, unit-norm vectors of the encoders' declared dimensions (zero = no transcript).",
)
SCENE_ROWS_COMPLETE = dg.AssetCheckSpec(
    "scene_rows_complete",
    asset="scene_rows",
    blocking=True,
    description="One row per scene, in order, every thumbnail on disk: checked before the commit.",
)
INDEX_ROWS_MATCH_SCENES = dg.AssetCheckSpec(
    "index_rows_match_scenes",
    asset="scene_index",
    description="After the commit: the table holds as many rows for this video as it has scenes.",
)
CHECK_SPECS = (
    SCENES_COVER_VIDEO,
    EVERY_SCENE_HAS_CAPTION,
    VECTORS_ARE_FINITE_UNIT_NORM,
    SCENE_ROWS_COMPLETE,
    INDEX_ROWS_MATCH_SCENES,
)


def check_result(spec: dg.AssetCheckSpec, problems: list[str], stage: VideoStage, **metadata) -> dg.AssetCheckResult:
    result = dg.AssetCheckResult(
        check_name=spec.name,
        passed=not problems,
        description="; ".join(problems[:5]) if problems else None,
        metadata={"problems": len(problems), **metadata},
    )
    if problems and spec.blocking:
        stage.record_check_failure(spec.name, result.description)
    return result
