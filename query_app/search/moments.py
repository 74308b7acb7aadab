"""Moments: the part of a result's scene that matches, not the whole scene.

- **speech**: when the scene's speech (or subtitles) is what matched best, the transcript
  segment nearest the query in the transcript vectors' space, joined by its neighbours while they
  are nearly as near and the whole stays under :data:`MAX_SECONDS`;
- **picture**: otherwise, :data:`PICTURE_SECONDS` around the chosen frame.

A moment never leaves its scene and always holds the result's frame time. The transcript
segments come from the video's committed transcript result (the same the rows were built
from); their vectors are computed once per video and process, then kept (:data:`CACHED_VIDEOS`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np

from query_app.search.results import Moment, SearchResult
from tving_resources.config import Paths
from tving_resources.errors import TvingError
from tving_resources.index.artifacts import ArtifactStore
from tving_resources.models.wrappers.speech import Transcript

MAX_SECONDS = 10.0  # the longest moment
PICTURE_SECONDS = 4.0  # a picture moment: this long around the frame
NEAR_ENOUGH = 0.03  # a neighbouring segment joins when its similarity is within this of the best
CACHED_VIDEOS = 256


@dataclass(frozen=True)
class _Speech:
    starts: np.ndarray
    ends: np.ndarray
    vectors: np.ndarray  # one per segment, normalised (rows of zeros for blank text)


class MomentFinder:
    """Moments for one profile's results; thread-safe (the web server searches from threads)."""

    def __init__(self, paths: Paths, profile: str):
        self.artifacts = ArtifactStore(paths.artifacts_dir, profile)
        self._speech: OrderedDict[tuple[str, str], _Speech | None] = OrderedDict()
        self._lock = threading.Lock()

    def speech_of(self, video_id: str, encoder) -> _Speech | None:
        """The video's transcript segments and their vectors (None: no transcript)."""
        try:
            video = self.artifacts.video(video_id)
            key = video.committed().get("transcript")
        except (TvingError, OSError, ValueError):
            return None
        if key is None:
            return None
        cache_key = (video_id, key)
        with self._lock:
            if cache_key in self._speech:
                self._speech.move_to_end(cache_key)
                return self._speech[cache_key]
        try:
            transcript = video.load("transcript", Transcript, key)
        except (TvingError, OSError, ValueError):
            return None
        segments = [s for s in transcript.segments if s.text.strip()]
        speech = (
            _Speech(
                np.array([s.start for s in segments]),
                np.array([s.end for s in segments]),
                np.asarray(encoder.encode_passages([s.text for s in segments]), dtype=np.float32),
            )
            if segments
            else None
        )
        with self._lock:
            self._speech[cache_key] = speech
            while len(self._speech) > CACHED_VIDEOS:
                self._speech.popitem(last=False)
        return speech

    def place(self, result: SearchResult, query_vector: np.ndarray | None, encoder) -> SearchResult:
        """``result`` with its moment: speech when what was said matched best, else the picture."""
        spoken = max(result.scores.get("transcript", 0.0), result.scores.get("text", 0.0))
        seen = max(result.scores.get("caption", 0.0), result.scores.get("frame", 0.0))
        if query_vector is not None and spoken > 0 and spoken >= seen:
            speech = self.speech_of(result.video_id, encoder)
            moment = speech_moment(speech, query_vector, result.start, result.end) if speech else None
            if moment is not None:
                return with_frame_inside(result, moment)
        return replace(result, moment=picture_moment(result.timestamp, result.start, result.end))


def speech_moment(speech: _Speech, query_vector: np.ndarray, start: float, end: float) -> Moment | None:
    """The segments of [start, end) nearest the query, joined while nearly as near (≤ MAX_SECONDS)."""
    inside = np.flatnonzero((speech.ends > start) & (speech.starts < end))
    if not len(inside):
        return None
    similarity = speech.vectors[inside] @ np.asarray(query_vector, dtype=np.float32)
    best = int(np.argmax(similarity))
    first = last = best

    def span(a: int, b: int) -> float:
        return min(end, speech.ends[inside[b]]) - max(start, speech.starts[inside[a]])

    while True:
        grown = False
        for step in (-1, 1):
            i = (first if step < 0 else last) + step
            if 0 <= i < len(inside) and similarity[i] >= similarity[best] - NEAR_ENOUGH:
                a, b = (i, last) if step < 0 else (first, i)
                if span(a, b) <= MAX_SECONDS:
                    first, last, grown = a, b, True
        if not grown:
            break
    moment_start = max(start, float(speech.starts[inside[first]]))
    moment_end = min(end, float(speech.ends[inside[last]]), moment_start + MAX_SECONDS)
    return Moment(round(moment_start, 3), round(moment_end, 3), "speech")


def picture_moment(timestamp: float, start: float, end: float) -> Moment:
    """PICTURE_SECONDS around ``timestamp``, moved (not cut) to stay inside [start, end]."""
    length = min(PICTURE_SECONDS, end - start)
    moment_start = min(max(start, timestamp - length / 2), end - length)
    return Moment(round(moment_start, 3), round(moment_start + length, 3), "picture")


def with_frame_inside(result: SearchResult, moment: Moment) -> SearchResult:
    """The result showing a time inside its moment: the keyframe there if one is, else the
    moment's middle (the thumbnail stays the nearest keyframe's)."""
    timestamp = result.timestamp
    if not moment.start <= timestamp <= moment.end:
        timestamp = round((moment.start + moment.end) / 2, 3)
    return replace(result, moment=moment, timestamp=timestamp)
