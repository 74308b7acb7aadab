"""The indexing assets: one dynamic partition per video file, each stage a thin call into
``tving_resources.pipeline`` whose result is kept in the per-video artifact folder."""

import dagster as dg

from tving_resources.pipeline import (
    KeyframeSet,
    SceneCaptions,
    SceneVectors,
    StageTimer,
    build_scene_rows,
    caption_scenes,
    embed_scenes,
    extract_keyframes,
    model_stamp,
    segment_video,
)
from tving_resources.resources import LanceDBResource, ModelRuntimeResource, TvingSettings
from tving_resources.scenes import SceneDetection
from tving_resources.speech import Transcript
from tving_resources.store import refresh_all_indexes
from tving_resources.video import VideoInfo, probe_video

from .errors import user_errors_as_failures
from .partitions import videos_partitions

GROUP = "video_indexing"
_per_video = {"partitions_def": videos_partitions, "group_name": GROUP}


@dg.asset(**_per_video, kinds={"ffmpeg"})
def video_metadata(
    context: dg.AssetExecutionContext, settings: TvingSettings, models: ModelRuntimeResource
) -> dg.MaterializeResult:
    """Probe the file: duration, fps, size, audio track, content fingerprint; rejects broken files."""
    video_id = context.partition_key
    with user_errors_as_failures(), StageTimer() as timer:
        entry = settings.catalog().get(video_id)
        info = probe_video(entry.path, video_id)
        settings.artifacts(models.profile_name).save(video_id, "video", info)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(info.path),
            "duration_s": info.duration,
            "fps": info.fps,
            "resolution": f"{info.width}x{info.height}",
            "has_audio": info.has_audio,
            "fingerprint": info.fingerprint,
            "seconds": timer.seconds,
        },
        data_version=dg.DataVersion(info.fingerprint),
    )


@dg.asset(**_per_video, deps=[video_metadata], kinds={"pyscenedetect"})
def scenes(
    context: dg.AssetExecutionContext, settings: TvingSettings, models: ModelRuntimeResource
) -> dg.MaterializeResult:
    """Scenes from PySceneDetect cuts with the retry, merge, split and end-card rules."""
    video_id = context.partition_key
    artifacts = settings.artifacts(models.profile_name)
    with user_errors_as_failures(), StageTimer() as timer:
        info = artifacts.load(video_id, "video", VideoInfo)
        detection = segment_video(info, settings.scene_settings())
        artifacts.save(video_id, "scenes", detection)
    return dg.MaterializeResult(
        metadata={
            "scenes": len(detection.scenes),
            "threshold_used": detection.threshold_used,
            "attempts": [f"threshold {a.threshold:g}: {a.scene_count} scenes" for a in detection.attempts],
            "covered_until_s": detection.covered_until,
            "seconds": timer.seconds,
        }
    )


@dg.asset(**_per_video, deps=[scenes], kinds={"decord"})
def keyframes(
    context: dg.AssetExecutionContext, settings: TvingSettings, models: ModelRuntimeResource
) -> dg.MaterializeResult:
    """K frames per scene, decoded in one sorted batch, saved as JPEG thumbnails."""
    video_id = context.partition_key
    artifacts = settings.artifacts(models.profile_name)
    with user_errors_as_failures(), StageTimer() as timer:
        info = artifacts.load(video_id, "video", VideoInfo)
        detection = artifacts.load(video_id, "scenes", SceneDetection)
        frame_set = extract_keyframes(
            info, detection, artifacts, settings.keyframe_settings(models.runtime.profile.keyframes_per_scene)
        )
        artifacts.save(video_id, "keyframes", frame_set)
    return dg.MaterializeResult(
        metadata={
            "keyframes": len(frame_set.frames),
            "per_scene": frame_set.per_scene,
            "folder": dg.MetadataValue.path(str(artifacts.path(video_id, "keyframes"))),
            "seconds": timer.seconds,
        }
    )


@dg.asset(**_per_video, deps=[video_metadata], kinds={"whisper"})
def transcript(
    context: dg.AssetExecutionContext, settings: TvingSettings, models: ModelRuntimeResource
) -> dg.MaterializeResult:
    """Speech segments with timestamps and language (faster-whisper + VAD); empty without audio."""
    video_id = context.partition_key
    artifacts = settings.artifacts(models.profile_name)
    with user_errors_as_failures(), StageTimer() as timer:
        info = artifacts.load(video_id, "video", VideoInfo)
        result = models.runtime.speech().transcribe(info.path, has_audio=info.has_audio)
        artifacts.save(video_id, "transcript", result)
    return dg.MaterializeResult(
        metadata={
            "segments": len(result.segments),
            "language": result.language or "none",
            "characters": len(result.text),
            "model": result.model_id,
            "audio_s": result.audio_seconds,
            "seconds": timer.seconds,
            "preview": dg.MetadataValue.text(result.text[:500]),
        }
    )


@dg.asset(**_per_video, deps=[keyframes, transcript], kinds={"pytorch"})
def captions(
    context: dg.AssetExecutionContext, settings: TvingSettings, models: ModelRuntimeResource
) -> dg.MaterializeResult:
    """One caption per scene from its keyframes, with the scene's transcript stored beside it."""
    video_id = context.partition_key
    artifacts = settings.artifacts(models.profile_name)
    with user_errors_as_failures(), StageTimer() as timer:
        result = caption_scenes(
            artifacts.load(video_id, "scenes", SceneDetection),
            artifacts.load(video_id, "keyframes", KeyframeSet),
            artifacts.load(video_id, "transcript", Transcript),
            models.runtime.captioner(),
            artifacts.base,
            batch_size=models.caption_batch_size,
        )
        artifacts.save(video_id, "captions", result)
    sample = "\n".join(f"| {c.scene_index} | {c.caption} |" for c in result.scenes[:10])
    return dg.MaterializeResult(
        metadata={
            "captions": len(result.scenes),
            "model": result.model_id,
            "seconds": timer.seconds,
            "sample": dg.MetadataValue.md(f"| scene | caption |\n|---|---|\n{sample}"),
        }
    )


@dg.asset(**_per_video, deps=[captions], kinds={"numpy"})
def scene_vectors(
    context: dg.AssetExecutionContext, settings: TvingSettings, models: ModelRuntimeResource
) -> dg.MaterializeResult:
    """Unit-norm text vectors of caption and transcript, and one vector per keyframe."""
    video_id = context.partition_key
    artifacts = settings.artifacts(models.profile_name)
    runtime = models.runtime
    with user_errors_as_failures(), StageTimer() as timer:
        vectors = embed_scenes(
            artifacts.load(video_id, "captions", SceneCaptions),
            artifacts.load(video_id, "keyframes", KeyframeSet),
            runtime.text_encoder(),
            runtime.frame_encoder(),
            artifacts.base,
        )
        artifacts.save_arrays(video_id, "vectors", **vectors.to_arrays())
    return dg.MaterializeResult(
        metadata={
            "scenes": int(vectors.caption.shape[0]),
            "text_dim": int(vectors.caption.shape[1]),
            "frame_vectors": int(vectors.frames.shape[0] * vectors.frames.shape[1]),
            "frame_dim": int(vectors.frames.shape[2]),
            "text_model": vectors.text_model,
            "frame_model": vectors.frame_model,
            "seconds": timer.seconds,
        }
    )


@dg.asset(**_per_video, deps=[scene_vectors], kinds={"lancedb"}, pool="tving_lancedb_writer")
def scene_index(
    context: dg.AssetExecutionContext,
    settings: TvingSettings,
    models: ModelRuntimeResource,
    lancedb: LanceDBResource,
) -> dg.MaterializeResult:
    """This video's rows in the LanceDB scene table, replaced in one commit."""
    video_id = context.partition_key
    artifacts = settings.artifacts(models.profile_name)
    with user_errors_as_failures(), StageTimer() as timer:
        info = artifacts.load(video_id, "video", VideoInfo)
        detection = artifacts.load(video_id, "scenes", SceneDetection)
        speech = artifacts.load(video_id, "transcript", Transcript)
        scene_captions = artifacts.load(video_id, "captions", SceneCaptions)
        vectors = SceneVectors.from_arrays(artifacts.load_arrays(video_id, "vectors"))
        stamp = model_stamp(models.profile_name, vectors, scene_captions, speech)
        rows = build_scene_rows(
            info, detection, artifacts.load(video_id, "keyframes", KeyframeSet), speech, scene_captions, vectors, stamp
        )
        store = lancedb.store(settings, stamp)
        written = store.replace_video(video_id, rows)
    return dg.MaterializeResult(
        metadata={
            "rows": written,
            "table": store.table_name,
            "uri": store.uri,
            "table_rows": store.count(),
            "seconds": timer.seconds,
        }
    )


@dg.asset(group_name="search", deps=[scene_index], kinds={"lancedb"}, pool="tving_lancedb_writer")
def search_index(settings: TvingSettings, lancedb: LanceDBResource) -> dg.MaterializeResult:
    """Full-text index (and ANN indexes once a table is large) of every scene table; compaction."""
    with user_errors_as_failures():
        reports = refresh_all_indexes(lancedb.resolved_uri(settings))
    return dg.MaterializeResult(
        metadata={
            "tables": [r["table"] for r in reports],
            "rows": sum(r["rows"] for r in reports),
            "built": [f"{r['table']}.{c}" for r in reports for c in r["built"]],
            "seconds": round(sum(r["seconds"] for r in reports), 3),
        }
    )


VIDEO_STAGES = (video_metadata, scenes, keyframes, transcript, captions, scene_vectors, scene_index)
