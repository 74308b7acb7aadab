"""Search results handed to the edit: their moments as clips, a reel, or a timeline.

The files themselves are cut by :mod:`tving_resources.edit.cuts` (ffmpeg) and the timelines
written by :mod:`tving_resources.edit.timeline` (OpenTimelineIO); this module finds what they
need: each result's source file, frame rate and length, from the video's committed results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from query_app.search.results import SearchResult
from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.config import Paths
from tving_resources.edit.cuts import Span
from tving_resources.edit.timeline import TimelineClip, build_timeline, write_timeline
from tving_resources.errors import MissingArtifactError, VideoNotRegisteredError
from tving_resources.ids import is_video_id, video_id_for
from tving_resources.index.artifacts import ArtifactStore
from tving_resources.media.video import VideoInfo


def indexed_video(paths: Paths, profile: str, video: str) -> VideoInfo:
    """What indexing recorded of ``video`` (an id, or the path of an indexed file)."""
    video_id = video if is_video_id(video) else video_id_for(Path(video))
    if not paths.catalog_exists() or VideoCatalog(paths.catalog_url).find(video_id) is None:
        raise VideoNotRegisteredError(f"{video}: not an indexed video (see `tving status`)")
    artifacts = ArtifactStore(paths.artifacts_dir, profile).video(video_id)
    key = artifacts.committed().get("video")
    if key is None:
        raise MissingArtifactError(f"{video}: not indexed yet with the {profile} profile; run `tving index` first")
    return artifacts.load("video", VideoInfo, key)


@dataclass(frozen=True)
class Pick:
    """A span chosen for the edit: a result's moment, or one picked on the web page."""

    video_id: str
    path: Path
    name: str
    start: float
    end: float
    caption: str = ""


def picks(results: Sequence[SearchResult]) -> list[Pick]:
    """Each result's moment (its scene when it has none), in result order."""
    found = []
    for r in results:
        start, end = (r.moment.start, r.moment.end) if r.moment else (r.start, r.end)
        found.append(Pick(r.video_id, Path(r.video_path), r.video_name, start, end, r.caption))
    return found


def spans(chosen: Sequence[Pick]) -> list[Span]:
    return [Span(p.path, p.start, p.end) for p in chosen]


def timeline_clips(
    paths: Paths, profile: str, chosen: Sequence[Pick], query: str, name_only: bool = False
) -> list[TimelineClip]:
    """Clips for a timeline; ``name_only``: media named by file name, not by path on this machine."""
    infos: dict[str, VideoInfo] = {}
    clips = []
    for pick in chosen:
        info = infos.get(pick.video_id) or indexed_video(paths, profile, pick.video_id)
        infos[pick.video_id] = info
        caption = " ".join(pick.caption.split())
        clips.append(
            TimelineClip(
                path=Path(pick.path.name) if name_only else pick.path,
                start=pick.start,
                end=pick.end,
                fps=info.fps,
                duration=info.duration,
                name=f"{pick.name} @ {pick.start:.1f}s: {caption}"[:200],
                note=f"{caption} | query: {query}" if query else caption,
            )
        )
    return clips


def timeline_text(
    paths: Paths, profile: str, chosen: Sequence[Pick], query: str, fmt: str, name_only: bool = False
) -> str:
    """The picks as a timeline in ``fmt`` (otio, edl, fcpxml), one clip each, in order."""
    clips = timeline_clips(paths, profile, chosen, query, name_only)
    title = f"tving: {query}"[:120] if query else "tving selection"
    return write_timeline(build_timeline(title, clips, marker=query[:120]), fmt)
