"""The indexing assets: one dynamic partition per video file, each stage a thin call into
``tving_resources.index.pipeline`` whose result is kept, versioned, in the video's artifact folder.

A stage whose inputs, settings and models are unchanged reuses its stored result (``skipped``
in the metadata). Rows are built and checked (``scene_rows`` and its blocking check) before
``scene_index`` commits them, so a failed check really keeps them out of the table.
"""

import dataclasses
from pathlib import Path

import dagster as dg
import pyarrow as pa

from tving_assets.assets.checks import (
    EVERY_SCENE_HAS_CAPTION,
    INDEX_ROWS_MATCH_SCENES,
    SCENE_ROWS_COMPLETE,
    SCENES_COVER_VIDEO,
    VECTORS_ARE_FINITE_UNIT_NORM,
    check_result,
)
from tving_assets.assets.partitions import videos_partitions
from tving_assets.assets.stage import VideoStage
from tving_assets.resources import LanceDBResource, ModelRuntimeResource, TvingSettings
from tving_resources.errors import ConfigError, MissingArtifactError
from tving_resources.index.faces import SceneFaces, detect_faces
from tving_resources.index.lifecycle import commit_video
from tving_resources.index.pipeline import (
    KeyframeSet,
    SceneCaptions,
    SceneTexts,
    SceneVectors,
    build_scene_rows,
    caption_scenes,
    check_scene_coverage,
    check_scene_rows,
    check_scene_vectors,
    embed_scenes,
    extract_keyframes,
    model_stamp,
    read_scene_texts,
    segment_video,
)
from tving_resources.media.scenes import SceneDetection
from tving_resources.media.subtitles import MODES as SUBTITLE_MODES
from tving_resources.media.subtitles import sidecar_signature, transcribe_with_subtitles
from tving_resources.media.video import VideoInfo, ensure_unchanged, fingerprint_file, probe_video, regular_file_stat
from tving_resources.models.wrappers.speech import Transcript
from tving_resources.store.schema import runtime_stamp
from tving_resources.store.tables import TableRegistry

GROUP = "video_indexing"
# On the cluster deployment each step goes to a Celery queue: `gpu` for the model-heavy steps (also
# a Dagster pool: one at a time per GPU), `cpu` for the rest. The tags mean nothing locally.
QUEUE_TAG = "dagster-celery/queue"
GPU_STEP = {"pool": "gpu", "op_tags": {QUEUE_TAG: "gpu"}}
CPU_STEP = {"op_tags": {QUEUE_TAG: "cpu"}}
_per_video = {"partitions_def": videos_partitions, "group_name": GROUP}


@dg.asset(**_per_video, **CPU_STEP, kinds={"ffmpeg"})
def video_metadata(
    context: dg.AssetExecutionContext, settings: TvingSettings, models: ModelRuntimeResource, lancedb: LanceDBResource
) -> dg.MaterializeResult:
    """Probe the file: duration, fps, size, audio track, content fingerprint; rejects broken files."""
    stage = VideoStage("video", context, settings, models, lancedb)
    with stage.guard():
        catalog = settings.catalog()
        path = Path(catalog.get(stage.video_id).path)
        before = regular_file_stat(path)  # missing, or a FIFO, device or folder: said so
        catalog.mark_indexing(stage.video_id, f"{before.st_size}-{before.st_mtime_ns}")
        limits = settings.media_limits()
        fingerprint = fingerprint_file(path)
        # the version this run indexes: the stat taken before the file was read
        seen = {"size_bytes": before.st_size, "mtime_ns": before.st_mtime_ns}

        def probe(_out: Path, _final: Path) -> VideoInfo:
            probed = probe_video(path, stage.video_id, fingerprint=fingerprint, limits=limits)
            ensure_unchanged(dataclasses.replace(probed, **seen))  # not the bytes fingerprinted: not stored
            return probed

        produced = stage.produce({"file": fingerprint}, stage.params(), probe, VideoInfo)
        info = produced.value
        if (info.size_bytes, info.mtime_ns, info.path) != (before.st_size, before.st_mtime_ns, str(path)):
            # the same bytes as a stored probe, touched or copied again since: later stages and
            # the catalog compare the file with the version this run indexes
            info = dataclasses.replace(info, **seen, path=str(path))
            stage.video.refresh("video", produced.key, info)
        ensure_unchanged(info)
        limits.check(info.name, info.width, info.height, info.duration)  # a probe stored under other limits
    return dg.MaterializeResult(
        metadata=stage.metadata(
            produced,
            path=dg.MetadataValue.path(info.path),
            duration_s=info.duration,
            fps=info.fps,
            resolution=f"{info.width}x{info.height}",
            has_audio=info.has_audio,
            fingerprint=info.fingerprint,
        ),
        data_version=dg.DataVersion(info.fingerprint),
    )


@dg.asset(**_per_video, **CPU_STEP, deps=[video_metadata], kinds={"pyscenedetect"}, check_specs=[SCENES_COVER_VIDEO])
def scenes(
    context: dg.AssetExecutionContext, settings: TvingSettings, models: ModelRuntimeResource, lancedb: LanceDBResource
) -> dg.MaterializeResult:
    """Scenes from PySceneDetect cuts with the retry, merge, split and end-card rules."""
    stage = VideoStage("scenes", context, settings, models, lancedb)
    with stage.guard():
        video_key = stage.video.key_of("video")
        info = stage.video.load("video", VideoInfo, video_key)
        scene_settings = settings.scene_settings()
        produced = stage.produce(
            {"video": video_key},
            stage.params(),
            stage.reading_file(info, lambda _out, _final: segment_video(info, scene_settings)),
            SceneDetection,
        )
    detection = produced.value
    return dg.MaterializeResult(
        metadata=stage.metadata(
            produced,
            scenes=len(detection.scenes),
            threshold_used=detection.threshold_used,
            attempts=[f"threshold {a.threshold:g}: {a.scene_count} scenes" for a in detection.attempts],
            covered_until_s=detection.covered_until,
        ),
        check_results=[
            check_result(SCENES_COVER_VIDEO, check_scene_coverage(detection), stage, scenes=len(detection.scenes))
        ],
    )


@dg.asset(**_per_video, **CPU_STEP, deps=[scenes], kinds={"decord"})
def keyframes(
    context: dg.AssetExecutionContext, settings: TvingSettings, models: ModelRuntimeResource, lancedb: LanceDBResource
) -> dg.MaterializeResult:
    """K frames per scene, decoded in one sorted batch, saved as JPEG thumbnails."""
    stage = VideoStage("keyframes", context, settings, models, lancedb)
    with stage.guard():
        chain = stage.video.lineage("scenes")
        info = stage.video.load("video", VideoInfo, chain["video"])
        detection = stage.video.load("scenes", SceneDetection, chain["scenes"])
        frame_settings = settings.keyframe_settings(models.runtime.profile.keyframes_per_scene)
        produced = stage.produce(
            chain,
            stage.params(),
            stage.reading_file(
                info,
                lambda out, final: extract_keyframes(
                    info, detection, out, stage.artifacts.relative(final), frame_settings
                ),
            ),
            KeyframeSet,
        )
    return dg.MaterializeResult(
        metadata=stage.metadata(
            produced,
            keyframes=len(produced.value.frames),
            per_scene=produced.value.per_scene,
            folder=dg.MetadataValue.path(str(stage.video.result_dir("keyframes", produced.key))),
        )
    )


@dg.asset(**_per_video, **CPU_STEP, deps=[keyframes], kinds={"tesseract"})
def onscreen_text(
    context: dg.AssetExecutionContext, settings: TvingSettings, models: ModelRuntimeResource, lancedb: LanceDBResource
) -> dg.MaterializeResult:
    """Text on screen (titles, captions, signs) read from each scene's middle keyframe with
    Tesseract (Korean + English); lines under the confidence floor are dropped."""
    stage = VideoStage("ocr", context, settings, models, lancedb)
    video, runtime = stage.video, models.runtime
    with stage.guard():
        chain = video.lineage("keyframes")
        detection = video.load("scenes", SceneDetection, chain["scenes"])
        frames = video.load("keyframes", KeyframeSet, chain["keyframes"])
        reader = runtime.text_reader()
        produced = stage.produce(
            {"keyframes": chain["keyframes"]},
            stage.params(),
            lambda _out, _final: (
                read_scene_texts(detection, frames, reader, stage.artifacts.base, runtime.config.ocr_frames_per_scene)
                if reader is not None
                else SceneTexts.empty(len(detection.scenes))
            ),
            SceneTexts,
        )
    texts = produced.value
    found = [(i, t) for i, t in enumerate(texts.texts) if t]
    sample = "\n".join(f"| {i} | {t.replace(chr(10), ' / ')[:120]} |" for i, t in found[:10])
    return dg.MaterializeResult(
        metadata=stage.metadata(
            produced,
            scenes_with_text=len(found),
            model=texts.model_id,
            sample=dg.MetadataValue.md(f"| scene | text |\n|---|---|\n{sample}"),
        )
    )


@dg.asset(**_per_video, **CPU_STEP, deps=[keyframes], kinds={"dlib"})
def faces(
    context: dg.AssetExecutionContext, settings: TvingSettings, models: ModelRuntimeResource, lancedb: LanceDBResource
) -> dg.MaterializeResult:
    """Faces in each scene's keyframes (dlib: detected, aligned, a 128-d descriptor and a face
    thumbnail each); none stored with `faces: false` on the models resource."""
    stage = VideoStage("faces", context, settings, models, lancedb)
    video, runtime = stage.video, models.runtime
    with stage.guard():
        chain = video.lineage("keyframes")
        frames = video.load("keyframes", KeyframeSet, chain["keyframes"])
        produced = stage.produce(
            {"keyframes": chain["keyframes"]},
            stage.params(),
            lambda out, final: (
                detect_faces(
                    stage.video_id,
                    frames,
                    runtime.face_encoder(),
                    stage.artifacts.base,
                    out,
                    stage.artifacts.relative(final),
                )
                if runtime.config.faces
                else SceneFaces.off()
            ),
            SceneFaces,
        )
    found = produced.value
    return dg.MaterializeResult(
        metadata=stage.metadata(
            produced,
            faces=len(found.faces),
            scenes_with_faces=len({f.scene_index for f in found.faces}),
            model=found.model_id or "off",
        )
    )


@dg.asset(**_per_video, **GPU_STEP, deps=[video_metadata], kinds={"whisper"})
def transcript(
    context: dg.AssetExecutionContext, settings: TvingSettings, models: ModelRuntimeResource, lancedb: LanceDBResource
) -> dg.MaterializeResult:
    """Speech segments with timestamps and language (faster-whisper + VAD); empty without audio."""
    stage = VideoStage("transcript", context, settings, models, lancedb)
    with stage.guard():
        video_key = stage.video.key_of("video")
        info = stage.video.load("video", VideoInfo, video_key)
        mode = settings.subtitles
        if mode not in SUBTITLE_MODES:
            raise ConfigError(f"subtitles must be one of {', '.join(SUBTITLE_MODES)}, not {mode!r}")
        inputs = {"video": video_key, "sidecars": sidecar_signature(info.path) if mode != "off" else ""}
        produced = stage.produce(
            inputs,
            stage.params(),
            stage.reading_file(info, lambda _out, _final: transcribe_with_subtitles(info, models.runtime, mode)),
            Transcript,
        )
    result = produced.value
    return dg.MaterializeResult(
        metadata=stage.metadata(
            produced,
            segments=len(result.segments),
            language=result.language or "none",
            characters=len(result.text),
            model=result.model_id,
            audio_s=result.audio_seconds,
            preview=dg.MetadataValue.text(result.text[:500]),
        )
    )


@dg.asset(
    **_per_video, **GPU_STEP, deps=[keyframes, transcript], kinds={"pytorch"}, check_specs=[EVERY_SCENE_HAS_CAPTION]
)
def captions(
    context: dg.AssetExecutionContext, settings: TvingSettings, models: ModelRuntimeResource, lancedb: LanceDBResource
) -> dg.MaterializeResult:
    """One caption per scene from its keyframes, with the scene's transcript stored beside it."""
    stage = VideoStage("captions", context, settings, models, lancedb)
    video = stage.video
    with stage.guard():
        chain = video.lineage("keyframes")
        speech_key = video.key_of("transcript")
        if video.record("transcript", speech_key).inputs.get("video") != chain["video"]:
            raise MissingArtifactError(
                f"{stage.video_id}: keyframes and transcript come from different versions of the file; "
                "materialize both (or the whole index_video job) again"
            )
        produced = stage.produce(
            {"keyframes": chain["keyframes"], "scenes": chain["scenes"], "transcript": speech_key},
            stage.params(),
            lambda _out, _final: caption_scenes(
                video.load("scenes", SceneDetection, chain["scenes"]),
                video.load("keyframes", KeyframeSet, chain["keyframes"]),
                video.load("transcript", Transcript, speech_key),
                models.runtime.captioner(),
                stage.artifacts.base,
                batch_size=models.caption_batch_size,
            ),
            SceneCaptions,
        )
    result = produced.value
    sample = "\n".join(f"| {c.scene_index} | {c.caption} |" for c in result.scenes[:10])
    empty = [c.scene_index for c in result.scenes if not c.caption.strip()]
    problems = [f"scenes without caption: {empty[:10]}"] if empty else []
    return dg.MaterializeResult(
        metadata=stage.metadata(
            produced,
            captions=len(result.scenes),
            model=result.model_id,
            sample=dg.MetadataValue.md(f"| scene | caption |\n|---|---|\n{sample}"),
        ),
        check_results=[check_result(EVERY_SCENE_HAS_CAPTION, problems, stage, captions=len(result.scenes))],
    )


@dg.asset(
    **_per_video,
    **GPU_STEP,
    deps=[captions, onscreen_text],
    kinds={"numpy"},
    check_specs=[VECTORS_ARE_FINITE_UNIT_NORM],
)
def scene_vectors(
    context: dg.AssetExecutionContext, settings: TvingSettings, models: ModelRuntimeResource, lancedb: LanceDBResource
) -> dg.MaterializeResult:
    """Unit-norm text vectors of caption and transcript, and one vector per keyframe."""
    stage = VideoStage("vectors", context, settings, models, lancedb)
    video, runtime = stage.video, models.runtime
    with stage.guard():
        chain = video.lineage("captions")
        ocr_key = video.key_of("ocr")
        if video.record("ocr", ocr_key).inputs.get("keyframes") != chain["keyframes"]:
            raise MissingArtifactError(
                f"{stage.video_id}: the on-screen text and the captions come from different keyframes; "
                "materialize onscreen_text (or the whole index_video job) again"
            )
        produced = stage.produce(
            {"captions": chain["captions"], "keyframes": chain["keyframes"], "ocr": ocr_key},
            stage.params(),
            lambda _out, _final: embed_scenes(
                video.load("captions", SceneCaptions, chain["captions"]),
                video.load("keyframes", KeyframeSet, chain["keyframes"]),
                runtime.text_encoder(),
                runtime.frame_encoder(),
                stage.artifacts.base,
                video.load("ocr", SceneTexts, ocr_key),
                runtime.transcript_encoder(),
            ),
            SceneVectors,
        )
    vectors = produced.value
    stamp = runtime_stamp(runtime)  # the encoders' declared dimensions
    problems = check_scene_vectors(vectors, video.load("captions", SceneCaptions, chain["captions"]), stamp)
    return dg.MaterializeResult(
        metadata=stage.metadata(
            produced,
            scenes=int(vectors.caption.shape[0]),
            text_dim=int(vectors.caption.shape[1]),
            frame_vectors=int(vectors.frames.shape[0] * vectors.frames.shape[1]),
            frame_dim=int(vectors.frames.shape[2]),
            text_model=vectors.text_model,
            frame_model=vectors.frame_model,
        ),
        check_results=[
            check_result(
                VECTORS_ARE_FINITE_UNIT_NORM, problems, stage, text_dim=stamp.text_dim, frame_dim=stamp.frame_dim
            )
        ],
    )


@dg.asset(**_per_video, **CPU_STEP, deps=[scene_vectors, faces], kinds={"pyarrow"}, check_specs=[SCENE_ROWS_COMPLETE])
def scene_rows(
    context: dg.AssetExecutionContext, settings: TvingSettings, models: ModelRuntimeResource, lancedb: LanceDBResource
) -> dg.MaterializeResult:
    """This video's rows for the scene table, built and checked here, committed by scene_index."""
    stage = VideoStage("rows", context, settings, models, lancedb)
    video = stage.video
    with stage.guard():
        chain = video.lineage("vectors")

        def build(_out, _final) -> pa.Table:
            info = video.load("video", VideoInfo, chain["video"])
            speech = video.load("transcript", Transcript, chain["transcript"])
            scene_captions = video.load("captions", SceneCaptions, chain["captions"])
            vectors = video.load("vectors", SceneVectors, chain["vectors"])
            stamp = model_stamp(models.profile_name, vectors, scene_captions, speech)
            detection = video.load("scenes", SceneDetection, chain["scenes"])
            frames = video.load("keyframes", KeyframeSet, chain["keyframes"])
            texts = video.load("ocr", SceneTexts, chain["ocr"])
            return build_scene_rows(
                info, detection, frames, speech, scene_captions, vectors, stamp, texts, stage.artifacts.base
            )

        faces_key = video.key_of("faces")
        produced = stage.produce({"vectors": chain["vectors"], "faces": faces_key}, stage.params(), build, pa.Table)
        detection = video.load("scenes", SceneDetection, chain["scenes"])
    rows = produced.value
    problems = check_scene_rows(rows, detection, stage.artifacts.base)
    return dg.MaterializeResult(
        metadata=stage.metadata(produced, rows=rows.num_rows, **{"dagster/row_count": rows.num_rows}),
        check_results=[
            check_result(SCENE_ROWS_COMPLETE, problems, stage, expected=len(detection.scenes), rows=rows.num_rows)
        ],
    )


@dg.asset(
    **_per_video,
    **CPU_STEP,
    deps=[scene_rows],
    kinds={"lancedb"},
    pool="tving_lancedb_writer",
    check_specs=[INDEX_ROWS_MATCH_SCENES],
)
def scene_index(
    context: dg.AssetExecutionContext, settings: TvingSettings, models: ModelRuntimeResource, lancedb: LanceDBResource
) -> dg.MaterializeResult:
    """This video's rows in the LanceDB scene table, replaced in one commit; then the results of
    the version they replace (thumbnails included) are removed."""
    stage = VideoStage("index", context, settings, models, lancedb)
    video = stage.video
    with stage.guard():
        chain = video.lineage("rows")
        stamp = model_stamp(
            models.profile_name,
            video.load("vectors", SceneVectors, chain["vectors"]),
            video.load("captions", SceneCaptions, chain["captions"]),
            video.load("transcript", Transcript, chain["transcript"]),
        )
        store = lancedb.store(settings, stamp)
        report = commit_video(
            video, store, settings.catalog(), settings.paths.locks_dir, settings.video_lock_timeout_seconds
        )
        found = store.count(stage.video_id)
        registry = TableRegistry(store.uri)
        progress = registry.progress(models.profile_name)
        switch = registry.switch_if_complete(models.profile_name, progress)  # a new vector space, now complete
    if switch:
        context.log.info(f"search now answers from {switch.live}; {switch.retired} is retired (tving tables drop)")
    rebuild = (
        {"rebuild_videos": f"{progress.videos_done}/{progress.videos_total}", "rebuild_rows": progress.rows_done}
        if progress
        else {}
    )
    problems = [] if found == report.rows else [f"the index holds {found} rows for {report.rows} scenes"]
    return dg.MaterializeResult(
        check_results=[check_result(INDEX_ROWS_MATCH_SCENES, problems, stage, expected=report.rows, found=found)],
        metadata={
            "rows": report.rows,
            "skipped": report.skipped,
            "old_results_removed": report.pruned,
            "table": store.table_name,
            "uri": store.uri,
            "table_rows": store.count(),
            "live_table": switch.live if switch else registry.live_name(models.profile_name),
            **rebuild,
            "dagster/row_count": report.rows,
            "seconds": stage.timer.seconds,
        },
    )


VIDEO_STAGES = (
    video_metadata, scenes, keyframes, onscreen_text, faces, transcript, captions, scene_vectors, scene_rows,
    scene_index
)  # fmt: skip
