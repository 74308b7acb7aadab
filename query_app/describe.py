"""Video-to-text: any span of a video -> its frames and speech -> the profile's captioner -> words.

Frame-accurate: the frames are decoded at exact times inside [start, end) (no snapping to
keyframes or scenes), and the speech is transcribed from that span's audio only, so a sentence
spoken outside the span cannot leak into the description.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.config import Paths, resolve_paths
from tving_resources.errors import TvingError, VideoNotRegisteredError
from tving_resources.ids import is_video_id
from tving_resources.media.video import FrameReader, VideoInfo, keyframe_times, probe_video
from tving_resources.models.runtime import ModelRuntime
from tving_resources.models.wrappers.captioning import SceneFrames

MAX_SPAN_SECONDS = 600.0
LANGUAGES = ("en", "ko")


class DescribeError(TvingError, ValueError):
    """The span or the options are invalid; the message says how."""


@dataclass(frozen=True)
class Description:
    video_id: str | None
    video_name: str
    start: float
    end: float
    language: str
    text: str  # the description, in ``language``
    caption: str  # the captioner's English sentence
    transcript: str  # the speech inside the span
    frame_times: tuple[float, ...]
    models: dict[str, str]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class VideoDescriber:
    def __init__(self, runtime: ModelRuntime | None = None, paths: Paths | None = None):
        self.runtime = runtime or ModelRuntime()
        self.paths = paths or resolve_paths()

    def resolve(self, video: str) -> tuple[str | None, Path]:
        """An indexed video id (looked up in the catalog) or a path to any video file."""
        if is_video_id(video) and self.paths.catalog_exists():
            entry = VideoCatalog(self.paths.catalog_url).find(video)
            if entry is not None:
                return entry.video_id, Path(entry.path)
        path = Path(video).expanduser()
        if path.is_file():
            return None, path
        raise VideoNotRegisteredError(f"{video!r} is neither an indexed video id nor a video file")

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages this profile can describe in (Korean needs an English-to-Korean model)."""
        return LANGUAGES if self.runtime.profile.output_translation_model else ("en",)

    def describe(
        self,
        video: str | Path,
        start: float,
        end: float,
        language: str = "en",
        frames: int | None = None,
    ) -> Description:
        """Describe [start, end) seconds of ``video`` (an indexed video id or a file path)."""
        if language not in LANGUAGES:
            raise DescribeError(f"language must be one of {', '.join(LANGUAGES)}")
        if not (0 <= start < end) or end - start > MAX_SPAN_SECONDS:
            raise DescribeError(
                f"invalid span {start}..{end} s: need 0 <= start < end and at most {MAX_SPAN_SECONDS:.0f} s"
            )
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        video_id, path = self.resolve(str(video))
        info = probe_video(path, video_id or "adhoc-0000000000", fingerprint=False)
        if start >= info.duration:
            raise DescribeError(f"the span starts at {start} s but {path.name} lasts {info.duration:.2f} s")
        end = min(end, info.duration)
        count = frames or self.runtime.profile.keyframes_per_scene
        if not 1 <= count <= 32:
            raise DescribeError("frames must be between 1 and 32")
        times = keyframe_times(start, end, count)
        images = self._frames(info, times)
        timings["frames"] = _ms(clock)

        clock = time.perf_counter()
        speech = self.runtime.speech().transcribe(path, has_audio=info.has_audio, clip=(start, end))
        transcript = speech.text
        timings["speech"] = _ms(clock)

        clock = time.perf_counter()
        captioner = self.runtime.captioner()
        caption = captioner.caption([SceneFrames(0, tuple(images), transcript)])[0].caption
        english = caption if getattr(captioner, "reads_transcript", False) else _with_speech(caption, transcript)
        timings["caption"] = _ms(clock)

        clock = time.perf_counter()
        text = english if language == "en" else self._to_korean(english)
        timings["translate"] = _ms(clock)
        return Description(
            video_id=video_id,
            video_name=path.name,
            start=round(start, 3),
            end=round(end, 3),
            language=language,
            text=text,
            caption=caption,
            transcript=transcript,
            frame_times=tuple(round(t, 3) for t in times),
            models={
                "captioner": captioner.model_id,
                "speech": speech.model_id,
                "translator": (self.runtime.profile.output_translation_model or "") if language == "ko" else "",
            },
            timings_ms=timings,
        )

    def _frames(self, info: VideoInfo, times: list[float]) -> list[Image.Image]:
        reader = FrameReader(info.path, (info.width, info.height), max_side=512)
        return [Image.fromarray(frame) for frame in reader.frames_at(times)]

    def _to_korean(self, text: str) -> str:
        translator = self.runtime.output_translator()
        if translator is None:
            raise DescribeError(
                f"Korean descriptions need an English-to-Korean translation model, which the "
                f"{self.runtime.profile.name!r} profile does not have; use the full profile "
                f"(TVING_PROFILE=full) or ask for English (language=en)"
            )
        return translator.translate([text])[0]


def _with_speech(caption: str, transcript: str) -> str:
    """Captioners that do not read the transcript (lite) get the speech quoted after the caption."""
    return f'{caption} Someone says: "{transcript}"' if transcript else caption


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
