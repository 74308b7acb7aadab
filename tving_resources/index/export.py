"""A video's transcript and scene list for other tools (``tving export``): subtitles (SRT,
WebVTT, written by pysubs2) and the scene list with captions (CSV, JSON, and a CMX 3600 EDL for
editing tools, written by OpenTimelineIO: see :mod:`tving_resources.edit.timeline`)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from tving_resources.index.pipeline import SceneCaptions, SceneTexts
from tving_resources.media.scenes import SceneDetection
from tving_resources.media.video import VideoInfo
from tving_resources.models.wrappers.speech import Transcript

SUBTITLE_FORMATS = ("srt", "vtt")
SCENE_FORMATS = ("csv", "json", "edl")
FORMATS = SUBTITLE_FORMATS + SCENE_FORMATS


@dataclass(frozen=True)
class IndexedVideo:
    """What export needs of one indexed video (its committed results)."""

    info: VideoInfo
    scenes: SceneDetection
    captions: SceneCaptions
    transcript: Transcript
    onscreen: SceneTexts | None = None


def export(video: IndexedVideo, fmt: str) -> str:
    if fmt in SUBTITLE_FORMATS:
        return subtitles(video.transcript, fmt)
    if fmt not in SCENE_FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    rows = scene_list(video)
    if fmt == "json":
        return json.dumps({"video": video.info.name, "duration": video.info.duration, "scenes": rows},
                          ensure_ascii=False, indent=1)  # fmt: skip
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["scene"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    return edl(video.info, rows)


def scene_list(video: IndexedVideo) -> list[dict]:
    texts = video.onscreen.texts if video.onscreen else ("",) * len(video.scenes.scenes)
    return [
        {"scene": s.index, "start": round(s.start, 3), "end": round(s.end, 3), "caption": c.caption,
         "transcript": c.transcript, "onscreen_text": t}
        for s, c, t in zip(video.scenes.scenes, video.captions.scenes, texts, strict=True)
    ]  # fmt: skip


def subtitles(transcript: Transcript, fmt: str) -> str:
    import pysubs2

    subs = pysubs2.SSAFile()
    for segment in transcript.segments:
        subs.append(
            pysubs2.SSAEvent(start=round(segment.start * 1000), end=round(segment.end * 1000), text=segment.text)
        )
    return subs.to_string(fmt)


def edl(info: VideoInfo, rows: list[dict]) -> str:
    """CMX 3600: one event per scene of the video, the caption as its clip name's comment."""
    from pathlib import Path

    from tving_resources.edit.timeline import TimelineClip, build_timeline, write_timeline

    clips = [
        TimelineClip(Path(info.path), row["start"], row["end"], info.fps, info.duration,
                     f"{info.name} scene {row['scene']}", " ".join(row["caption"].split()))
        for row in rows
    ]  # fmt: skip
    return write_timeline(build_timeline(info.name, clips), "edl")


def load_indexed_video(paths, profile: str, video: str) -> IndexedVideo:
    """The committed results of ``video`` (a video id or a file path) in ``profile``'s artifacts."""
    from pathlib import Path

    from tving_resources.catalog.video_catalog import VideoCatalog
    from tving_resources.errors import MissingArtifactError, VideoNotRegisteredError
    from tving_resources.ids import is_video_id, video_id_for
    from tving_resources.index.artifacts import ArtifactStore

    video_id = video if is_video_id(video) else video_id_for(Path(video))
    if not paths.catalog_exists() or VideoCatalog(paths.catalog_url).find(video_id) is None:
        raise VideoNotRegisteredError(f"{video}: not an indexed video (see `tving status`)")
    artifacts = ArtifactStore(paths.artifacts_dir, profile).video(video_id)
    chain = artifacts.committed()
    if not chain:
        raise MissingArtifactError(f"{video}: not indexed yet with the {profile} profile; run `tving index` first")
    return IndexedVideo(
        artifacts.load("video", VideoInfo, chain["video"]),
        artifacts.load("scenes", SceneDetection, chain["scenes"]),
        artifacts.load("captions", SceneCaptions, chain["captions"]),
        artifacts.load("transcript", Transcript, chain["transcript"]),
        artifacts.load("ocr", SceneTexts, chain["ocr"]) if "ocr" in chain else None,
    )
