"""Timelines for editing programs, built with OpenTimelineIO and written by its adapters:
``otio`` (OpenTimelineIO's own JSON: DaVinci Resolve, and every OTIO tool), ``edl`` (CMX 3600:
Premiere Pro, Avid, Resolve) and ``fcpxml`` (Final Cut Pro X's XML; Resolve reads it too).

Each clip points at its source file (a ``file://`` URL) with the span as its source range at
the source's own frame rate, and carries a marker with its caption and the query. An EDL has
one frame rate for every event: the most common among the clips (others are rounded to it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

FORMATS = {"otio": "otio_json", "edl": "cmx_3600", "fcpxml": "fcpx_xml"}
SUFFIXES = {"otio": ".otio", "edl": ".edl", "fcpxml": ".fcpxml"}


@dataclass(frozen=True)
class TimelineClip:
    path: Path
    start: float  # seconds in the source
    end: float
    fps: float  # the source's frame rate
    duration: float  # the source's length (seconds)
    name: str  # what the editor sees: the video and the caption
    note: str = ""  # the marker's comment (the caption, the query)


FCPX_RATES = (23.98, 24.0, 25.0, 29.97, 30.0, 50.0, 59.94, 60.0)  # the rates Final Cut Pro X's format names


def _rate(fps: float) -> float:
    """Frame rates as editing programs write them (30000/1001 is 29.97)."""
    for ntsc, written in ((24000 / 1001, 23.98), (30000 / 1001, 29.97), (60000 / 1001, 59.94)):
        if abs(fps - ntsc) < 0.01:
            return written
    return float(round(fps)) if abs(fps - round(fps)) < 0.01 else fps


def build_timeline(name: str, clips: Sequence[TimelineClip], marker: str = ""):
    """An OpenTimelineIO timeline: one video track of ``clips`` in order."""
    import opentimelineio as otio

    timeline = otio.schema.Timeline(name=name)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    for clip in clips:
        rate = _rate(clip.fps)
        first = round(clip.start * rate)
        length = max(1, round(clip.end * rate) - first)
        reference = otio.schema.ExternalReference(
            target_url=otio.url_utils.url_from_filepath(str(clip.path)),
            available_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(round(clip.duration * rate), rate)
            ),
        )
        source = otio.opentime.TimeRange(
            otio.opentime.RationalTime(first, rate), otio.opentime.RationalTime(length, rate)
        )
        item = otio.schema.Clip(name=clip.name, media_reference=reference, source_range=source)
        item.markers.append(
            otio.schema.Marker(
                name=marker or clip.name,
                marked_range=otio.opentime.TimeRange(source.start_time, otio.opentime.RationalTime(0, rate)),
                color=otio.schema.MarkerColor.GREEN,
                metadata={"tving": {"note": clip.note}},
            )
        )
        item.metadata["tving"] = {"note": clip.note, "path": str(clip.path)}
        track.append(item)
    return timeline


def write_timeline(timeline, fmt: str) -> str:
    """The timeline as text in ``fmt`` (one of :data:`FORMATS`)."""
    import opentimelineio as otio

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    if fmt == "edl":
        rate = edl_rate(timeline)
        return otio.adapters.write_to_string(_rescaled(timeline, lambda _: rate), FORMATS[fmt], rate=rate)
    if fmt == "fcpxml":  # other rates are written without a frame duration, which nothing reads
        nearest = lambda r: min(FCPX_RATES, key=lambda known: abs(known - r))  # noqa: E731
        return otio.adapters.write_to_string(_rescaled(timeline, nearest), FORMATS[fmt])
    return otio.adapters.write_to_string(timeline, FORMATS[fmt])


def edl_rate(timeline) -> float:
    rates = Counter(clip.source_range.start_time.rate for clip in timeline.find_clips())
    return rates.most_common(1)[0][0] if rates else 25.0


def _rescaled(timeline, pick):
    """A copy whose clips count frames at ``pick(their rate)``."""
    import opentimelineio as otio

    copy = timeline.deepcopy()
    for clip in copy.find_clips():
        start, duration = clip.source_range.start_time, clip.source_range.duration
        rate = pick(start.rate)
        if rate == start.rate:
            continue
        clip.source_range = otio.opentime.TimeRange(start.rescaled_to(rate).round(), duration.rescaled_to(rate).round())
        ref = clip.media_reference
        if ref.available_range is not None:
            ref.available_range = otio.opentime.TimeRange(
                otio.opentime.RationalTime(0, rate), ref.available_range.duration.rescaled_to(rate).round()
            )
        for marker in clip.markers:
            marker.marked_range = otio.opentime.TimeRange(
                marker.marked_range.start_time.rescaled_to(rate).round(), otio.opentime.RationalTime(0, rate)
            )
    return copy
