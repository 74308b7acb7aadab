"""The indexing assets: one dynamic partition per video file, each stage one asset whose work is
a library function (:mod:`tving_resources.stages`), run by the model worker while one runs (its
models and libraries loaded once for every run) and in the run's own process otherwise. Each
stage's result is kept, versioned, in the video's artifact folder.

A stage whose inputs, settings and models are unchanged reuses its stored result (``skipped``
in the metadata). Rows are built and checked (``scene_rows`` and its blocking check) before
``scene_index`` commits them, so a failed check really keeps them out of the table.
"""

import dagster as dg

from tving_assets.assets.checks import checks_of
from tving_assets.assets.partitions import videos_partitions
from tving_assets.assets.stage import materialize_stage
from tving_assets.resources import LanceDBResource, ModelRuntimeResource, TvingSettings

GROUP = "video_indexing"
# On the cluster deployment each step goes to a Celery queue: `gpu` for the model-heavy steps (also
# a Dagster pool: one at a time per GPU), `cpu` for the rest. The tags mean nothing locally.
QUEUE_TAG = "dagster-celery/queue"
GPU_STEP = {"pool": "gpu", "op_tags": {QUEUE_TAG: "gpu"}}
CPU_STEP = {"op_tags": {QUEUE_TAG: "cpu"}}


def _stage(name: str, deps: list, kinds: set[str], step: dict, description: str, **extra) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        partitions_def=videos_partitions,
        group_name=GROUP,
        deps=deps,
        kinds=kinds,
        check_specs=checks_of(name),
        description=description,
        **step,
        **extra,
    )
    def stage_asset(
        context: dg.AssetExecutionContext,
        settings: TvingSettings,
        models: ModelRuntimeResource,
        lancedb: LanceDBResource,
    ) -> dg.MaterializeResult:
        return materialize_stage(context, settings, models, lancedb)

    return stage_asset


video_metadata = _stage(
    "video_metadata", [], {"ffmpeg"}, CPU_STEP,
    "Probe the file: duration, fps, size, audio track, content fingerprint; rejects broken files.",
)  # fmt: skip
scenes = _stage(
    "scenes", [video_metadata], {"pyscenedetect"}, CPU_STEP,
    "Scenes from PySceneDetect cuts with the retry, merge, split and end-card rules.",
)  # fmt: skip
keyframes = _stage(
    "keyframes", [scenes], {"decord"}, CPU_STEP,
    "K frames per scene, decoded in one sorted batch, saved as JPEG thumbnails.",
)  # fmt: skip
onscreen_text = _stage(
    "onscreen_text", [keyframes], {"tesseract"}, CPU_STEP,
    "Text on screen (titles, captions, signs) read from each scene's middle keyframe with Tesseract (Korean + "
    "English); lines under the confidence floor are dropped.",
)  # fmt: skip
faces = _stage(
    "faces", [keyframes], {"dlib"}, CPU_STEP,
    "Faces in each scene's keyframes (dlib: detected, aligned, a 128-d descriptor and a face thumbnail each); "
    "none stored with `faces: false` on the models resource.",
)  # fmt: skip
transcript = _stage(
    "transcript", [video_metadata], {"whisper"}, GPU_STEP,
    "Speech segments with timestamps and language (faster-whisper + VAD); empty without audio.",
)  # fmt: skip
captions = _stage(
    "captions", [keyframes, transcript], {"pytorch"}, GPU_STEP,
    "One caption per scene from its keyframes, with the scene's transcript stored beside it.",
)  # fmt: skip
scene_vectors = _stage(
    "scene_vectors", [captions, onscreen_text], {"numpy"}, GPU_STEP,
    "Unit-norm text vectors of caption and transcript, and one vector per keyframe.",
)  # fmt: skip
scene_rows = _stage(
    "scene_rows", [scene_vectors, faces], {"pyarrow"}, CPU_STEP,
    "This video's rows for the scene table, built and checked here, committed by scene_index.",
)  # fmt: skip
scene_index = _stage(
    "scene_index", [scene_rows], {"lancedb"}, CPU_STEP,
    "This video's rows in the LanceDB scene table, replaced in one commit; then the results of the version "
    "they replace (thumbnails included) are removed.",
    pool="tving_lancedb_writer",
)  # fmt: skip

VIDEO_STAGES = (
    video_metadata, scenes, keyframes, onscreen_text, faces, transcript, captions, scene_vectors, scene_rows,
    scene_index
)  # fmt: skip
