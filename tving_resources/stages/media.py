"""The stages that read the video file: its probe, its scenes, its keyframes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tving_resources.index.pipeline import KeyframeSet, check_scene_coverage, extract_keyframes, segment_video
from tving_resources.media.scenes import SceneDetection
from tving_resources.media.video import VideoInfo, ensure_unchanged, fingerprint_file, probe_video, regular_file_stat
from tving_resources.stages.outcome import Meta, StageOutcome
from tving_resources.stages.run import StageRun


def video_metadata(run: StageRun) -> StageOutcome:
    """Probe the file: duration, fps, size, audio track, content fingerprint; rejects broken files."""
    with run.guard():
        catalog = run.catalog
        path = Path(catalog.get(run.video_id).path)
        before = regular_file_stat(path)  # missing, or a FIFO, device or folder: said so
        catalog.mark_indexing(run.video_id, f"{before.st_size}-{before.st_mtime_ns}")
        limits = run.request.limits
        fingerprint = fingerprint_file(path)
        # the version this run indexes: the stat taken before the file was read
        seen = {"size_bytes": before.st_size, "mtime_ns": before.st_mtime_ns}

        def probe(_out: Path, _final: Path) -> VideoInfo:
            probed = probe_video(path, run.video_id, fingerprint=fingerprint, limits=limits)
            ensure_unchanged(dataclasses.replace(probed, **seen))  # not the bytes fingerprinted: not stored
            return probed

        produced = run.produce({"file": fingerprint}, run.params(), probe, VideoInfo)
        info = produced.value
        if (info.size_bytes, info.mtime_ns, info.path) != (before.st_size, before.st_mtime_ns, str(path)):
            # the same bytes as a stored probe, touched or copied again since: later stages and
            # the catalog compare the file with the version this run indexes
            info = dataclasses.replace(info, **seen, path=str(path))
            run.video.refresh("video", produced.key, info)
        ensure_unchanged(info)
        limits.check(info.name, info.width, info.height, info.duration)  # a probe stored under other limits
    metadata = run.metadata(
        produced,
        path=Meta("path", info.path),
        duration_s=info.duration,
        fps=info.fps,
        resolution=f"{info.width}x{info.height}",
        has_audio=info.has_audio,
        fingerprint=info.fingerprint,
    )
    return run.outcome(metadata, data_version=info.fingerprint)


def scenes(run: StageRun) -> StageOutcome:
    """Scenes from PySceneDetect cuts with the retry, merge, split and end-card rules."""
    with run.guard():
        video_key = run.video.key_of("video")
        info = run.video.load("video", VideoInfo, video_key)
        scene_settings = run.settings.scene_settings()
        produced = run.produce(
            {"video": video_key},
            run.params(),
            run.reading_file(info, lambda _out, _final: segment_video(info, scene_settings)),
            SceneDetection,
        )
    detection = produced.value
    metadata = run.metadata(
        produced,
        scenes=len(detection.scenes),
        threshold_used=detection.threshold_used,
        attempts=[f"threshold {a.threshold:g}: {a.scene_count} scenes" for a in detection.attempts],
        covered_until_s=detection.covered_until,
    )
    check = run.check("scenes_cover_video", check_scene_coverage(detection), scenes=len(detection.scenes))
    return run.outcome(metadata, (check,))


def keyframes(run: StageRun) -> StageOutcome:
    """K frames per scene, decoded in one sorted batch, saved as JPEG thumbnails."""
    with run.guard():
        chain = run.video.lineage("scenes")
        info = run.video.load("video", VideoInfo, chain["video"])
        detection = run.video.load("scenes", SceneDetection, chain["scenes"])
        frame_settings = run.settings.keyframe_settings(run.runtime.profile.keyframes_per_scene)
        produced = run.produce(
            chain,
            run.params(),
            run.reading_file(
                info,
                lambda out, final: extract_keyframes(
                    info, detection, out, run.artifacts.relative(final), frame_settings
                ),
            ),
            KeyframeSet,
        )
    metadata = run.metadata(
        produced,
        keyframes=len(produced.value.frames),
        per_scene=produced.value.per_scene,
        folder=Meta("path", str(run.video.result_dir("keyframes", produced.key))),
    )
    return run.outcome(metadata)
