"""Scene segmentation: PySceneDetect finds the cuts, a small policy turns them into scenes.

The policy is the seed system's, written once (the seed had three different rules feeding one
index): retry once with a lower threshold when a video yields fewer than ``min_scenes`` scenes or a
higher one past ``max_scenes``; merge scenes shorter than ``min_scene_seconds`` into a neighbour;
split scenes longer than ``max_scene_seconds`` evenly; optionally drop a trailing end card.
The resulting scenes always tile [0, covered_until) with no gap or overlap.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tving_resources.errors import UnreadableVideoError


@dataclass(frozen=True)
class SceneSettings:
    """Scene detection's settings (their defaults: ``tving_resources.settings.IndexSettings``)."""

    threshold: float
    min_scenes: int
    max_scenes: int
    min_scene_seconds: float
    max_scene_seconds: float
    exclude_last_seconds: float
    lower_threshold_factor: float = 0.6  # the retry thresholds (fixed, not settings)
    higher_threshold_factor: float = 1.5

    def __post_init__(self) -> None:
        if self.threshold <= 0 or self.min_scene_seconds < 0 or self.max_scene_seconds <= 0:
            raise ValueError("threshold and max_scene_seconds must be > 0, min_scene_seconds >= 0")
        if self.max_scene_seconds < 2 * self.min_scene_seconds:
            raise ValueError("max_scene_seconds must be at least twice min_scene_seconds")
        if self.exclude_last_seconds < 0:
            raise ValueError("exclude_last_seconds must be >= 0")


@dataclass(frozen=True)
class Scene:
    index: int
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class DetectionAttempt:
    threshold: float
    cuts: tuple[float, ...]

    @property
    def scene_count(self) -> int:
        return len(self.cuts) + 1


@dataclass(frozen=True)
class SceneDetection:
    scenes: tuple[Scene, ...]
    covered_until: float
    threshold_used: float
    attempts: tuple[DetectionAttempt, ...] = field(default_factory=tuple)


def detect_cuts(
    path: str | Path, threshold: float, min_scene_seconds: float, end_time: float | None = None
) -> list[float]:
    """Times (seconds) of hard cuts found by PySceneDetect's ContentDetector."""
    return detect_cuts_at(path, (threshold,), min_scene_seconds, end_time)[threshold]


def detect_cuts_at(
    path: str | Path, thresholds: Sequence[float], min_scene_seconds: float, end_time: float | None = None
) -> dict[float, list[float]]:
    """Cut times for several ContentDetector thresholds from one decoding of the video (decoding
    is most of the cost: a retry at another threshold used to decode the file again)."""
    from scenedetect import ContentDetector, SceneManager, VideoOpenFailure, open_video

    class CutRecorder(ContentDetector):
        """Keeps its own cuts (the manager merges those of all its detectors into one list). A
        follower takes each frame's score from the leader, which the manager runs first on the
        same frame: the colour conversion and pixel distances are computed once, not per threshold."""

        def __init__(self, leader: ContentDetector | None = None, **kwargs):
            super().__init__(**kwargs)
            self.leader = leader
            self.cut_times: list[float] = []

        def _calculate_frame_score(self, timecode, frame_img):
            score = getattr(self.leader, "_frame_score", None) if self.leader is not None else None
            return score if score is not None else super()._calculate_frame_score(timecode, frame_img)

        def process_frame(self, timecode, frame_img):
            self.cut_times += [cut.seconds for cut in super().process_frame(timecode, frame_img)]
            return []

        def post_process(self, timecode):
            self.cut_times += [cut.seconds for cut in super().post_process(timecode)]
            return []

    try:
        video = open_video(str(path))
    except (VideoOpenFailure, OSError) as exc:
        raise UnreadableVideoError(f"{Path(path).name}: scene detection cannot open the video ({exc})") from exc
    min_len_frames = max(1, round(min_scene_seconds * float(video.frame_rate)))
    manager = SceneManager()
    manager.auto_downscale = True
    first, *others = dict.fromkeys(thresholds)
    leader = CutRecorder(threshold=first, min_scene_len=min_len_frames)
    recorders = {first: leader} | {t: CutRecorder(leader, threshold=t, min_scene_len=min_len_frames) for t in others}
    for recorder in recorders.values():
        manager.add_detector(recorder)
    try:
        manager.detect_scenes(video, end_time=end_time, show_progress=False)
    except Exception as exc:  # OpenCV and the detectors raise many types on undecodable frames
        raise UnreadableVideoError(
            f"{Path(path).name}: scene detection could not read the frames ({type(exc).__name__}: {exc})"
        ) from exc
    return {t: sorted(set(r.cut_times)) for t, r in recorders.items()}


def plan_scenes(cuts: list[float], duration: float, settings: SceneSettings) -> tuple[list[Scene], float]:
    """Turn cut times into scenes covering [0, duration - exclude_last_seconds). Pure function."""
    covered = duration - settings.exclude_last_seconds
    if covered <= 0:
        covered = duration  # never exclude a whole (very short) video
    bounds = [0.0, *sorted(c for c in set(cuts) if 0.0 < c < covered), covered]
    spans = [[a, b] for a, b in itertools.pairwise(bounds) if b > a]
    spans = _merge_short(spans, settings.min_scene_seconds)
    scenes: list[Scene] = []
    for start, end in spans:
        pieces = max(1, math.ceil((end - start) / settings.max_scene_seconds - 1e-9))
        step = (end - start) / pieces
        for i in range(pieces):
            piece_end = end if i == pieces - 1 else start + (i + 1) * step
            scenes.append(Scene(len(scenes), start + i * step, piece_end))
    return scenes, covered


def _merge_short(spans: list[list[float]], min_seconds: float) -> list[list[float]]:
    """Merge spans shorter than ``min_seconds`` into their shorter neighbour, shortest first."""
    spans = [list(s) for s in spans]
    while len(spans) > 1:
        lengths = [b - a for a, b in spans]
        i = min(range(len(spans)), key=lengths.__getitem__)
        if lengths[i] >= min_seconds:
            break
        if i == 0:
            j = 1
        elif i == len(spans) - 1:
            j = i - 1
        else:
            j = i - 1 if lengths[i - 1] <= lengths[i + 1] else i + 1
        lo, hi = min(i, j), max(i, j)
        spans[lo : hi + 1] = [[spans[lo][0], spans[hi][1]]]
    return spans


def detect_scenes(path: str | Path, duration: float, settings: SceneSettings) -> SceneDetection:
    """Detect cuts (with the one-retry rule) and plan scenes."""
    end_time = duration - settings.exclude_last_seconds if settings.exclude_last_seconds else None
    lower = settings.threshold * settings.lower_threshold_factor
    higher = settings.threshold * settings.higher_threshold_factor
    # the retry thresholds are run in the same pass (one decoding); used only as the rule says
    cuts = detect_cuts_at(path, (settings.threshold, lower, higher), settings.min_scene_seconds, end_time)
    first = DetectionAttempt(settings.threshold, tuple(cuts[settings.threshold]))
    attempts = [first]
    retry_threshold = None
    if first.scene_count < settings.min_scenes:
        retry_threshold = lower
    elif first.scene_count > settings.max_scenes:
        retry_threshold = higher
    chosen = first
    if retry_threshold is not None:
        retry = DetectionAttempt(retry_threshold, tuple(cuts[retry_threshold]))
        attempts.append(retry)
        if _distance_to_range(retry.scene_count, settings) < _distance_to_range(first.scene_count, settings):
            chosen = retry
    scenes, covered = plan_scenes(list(chosen.cuts), duration, settings)
    return SceneDetection(tuple(scenes), covered, chosen.threshold, tuple(attempts))


def _distance_to_range(count: int, settings: SceneSettings) -> int:
    return max(0, settings.min_scenes - count, count - settings.max_scenes)
