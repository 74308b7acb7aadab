"""Speech to text with faster-whisper: segments with timestamps, the detected language, and the
text that overlaps any span of the video."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tving_resources.errors import ModelError, UnreadableVideoError


@dataclass(frozen=True)
class TranscriptSegment:
    start: float
    end: float
    text: str
    source: str = "speech"  # or "subtitles:<file or stream>"


@dataclass(frozen=True)
class Transcript:
    segments: tuple[TranscriptSegment, ...]
    language: str | None
    language_probability: float
    model_id: str
    audio_seconds: float

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments).strip()

    def text_between(self, start: float, end: float) -> str:
        """The text of every segment that overlaps [start, end)."""
        return " ".join(s.text for s in self.segments if s.end > start and s.start < end).strip()

    def sources_between(self, start: float, end: float) -> str:
        """Where the text of [start, end) came from: "speech", "subtitles", "speech+subtitles" or ""."""
        kinds = {s.source.split(":", 1)[0] for s in self.segments if s.end > start and s.start < end}
        return "+".join(k for k in ("speech", "subtitles") if k in kinds)

    @classmethod
    def silent(cls, model_id: str) -> Transcript:
        """The transcript of a video without an audio track."""
        return cls((), None, 0.0, model_id, 0.0)


class WhisperRecognizer:
    """A loaded ``faster_whisper.WhisperModel`` plus the decoding options of a profile."""

    def __init__(
        self,
        model: Any,
        model_id: str,
        beam_size: int = 1,
        vad_filter: bool = True,
        language: str | None = None,
        batch_size: int = 0,
        no_repeat_ngram_size: int = 4,
    ):
        self.model = model
        self.model_id = model_id
        self.beam_size = beam_size
        self.vad_filter = vad_filter
        self.language = language
        self.batch_size = batch_size
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self._batched = None

    def transcribe(
        self,
        path: str | Path,
        has_audio: bool = True,
        clip: tuple[float, float] | None = None,
    ) -> Transcript:
        """Transcribe a file's first audio track; ``clip`` limits it to [start, end) seconds.

        ``has_audio`` must come from the probe: faster-whisper fails with an IndexError deep in
        PyAV on a file without an audio stream, so such files never reach it.
        """
        if not has_audio:
            return Transcript.silent(self.model_id)
        options: dict[str, Any] = {
            "beam_size": self.beam_size,
            "language": self.language,
            "vad_filter": self.vad_filter,
            # Guards against Whisper's loops on music and noise ("Hmmmmmm...", a line repeated
            # to the end of the window), which also cost most of the decoding time on CPU:
            "condition_on_previous_text": False,
            "temperature": (0.0, 0.4, 0.8),
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
        }
        audio = _decode_audio(path, clip)  # only the clip's seconds
        try:
            if self.batch_size > 1:
                segments, info = self._batched_pipeline().transcribe(audio, batch_size=self.batch_size, **options)
            else:
                segments, info = self.model.transcribe(audio, **options)
            result = []
            for seg in segments:  # a generator: decoding happens while iterating
                text = seg.text.strip()
                if text and not _looks_hallucinated(seg):
                    result.append(TranscriptSegment(float(seg.start), float(seg.end), text))
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"{Path(path).name}: speech recognition failed ({exc})") from exc
        offset = clip[0] if clip else 0.0
        segments_out = tuple(TranscriptSegment(s.start + offset, s.end + offset, s.text) for s in result)
        language = info.language if info.language_probability > 0 else None  # nothing was heard
        return Transcript(segments_out, language, float(info.language_probability), self.model_id, float(info.duration))

    def _batched_pipeline(self):
        if self._batched is None:
            from faster_whisper import BatchedInferencePipeline

            self._batched = BatchedInferencePipeline(model=self.model)
        return self._batched


def whisper_model(location: str, **kwargs: Any):
    """A ``faster_whisper.WhisperModel`` that encodes each 30 s window once.

    When it detects the language, faster-whisper 1.2 encodes the first window to detect, then again
    to transcribe (a whole encoder pass per video). This subclass remembers the last
    window it encoded, and has language detection look at exactly the window transcription will
    (a clip shorter than 30 s loses its last feature frame there), so the second encoding is a
    cache hit. The cache compares the features themselves: if faster-whisper changes, it misses.
    """
    import numpy as np
    from faster_whisper import WhisperModel

    class OneEncodingWhisperModel(WhisperModel):
        _last_window: tuple[Any, Any] | None = None

        def encode(self, features):
            last = self._last_window
            if last is not None and last[0].shape == features.shape and np.array_equal(last[0], features):
                return last[1]
            encoded = super().encode(features)
            self._last_window = (np.array(features, copy=True), encoded)
            return encoded

        def detect_language(self, audio=None, features=None, *args, **kwargs):
            if features is not None and features.shape[-1] <= 1:
                return "en", 0.0, []  # the voice filter left nothing: no window to encode, no language
            if features is not None and features.shape[-1] <= self.feature_extractor.nb_max_frames:
                features = features[..., :-1]  # what generate_segments encodes of a short clip
            return super().detect_language(audio, features, *args, **kwargs)

    return OneEncodingWhisperModel(location, **kwargs)


def _looks_hallucinated(segment: Any) -> bool:
    """Whisper's own thresholds, applied per segment (it applies them per 30 s window only)."""
    if segment.compression_ratio > 2.4:  # highly repetitive text
        return True
    return segment.no_speech_prob > 0.6 and segment.avg_logprob < -1.0


def _decode_audio(path: str | Path, clip: tuple[float, float] | None):
    """16 kHz mono float32 samples of the file, or of ``clip`` = [start, end) seconds only (decoded
    from the nearest earlier keyframe: a 2-hour film's span costs its own seconds, not the film's)."""
    import av

    try:  # not faster_whisper.decode_audio: it runs gc.collect() twice a call (0.2 s in a big process)
        return _decode_span(str(path), *(clip or (0.0, math.inf)))
    except (av.error.FFmpegError, IndexError, ValueError) as exc:
        raise UnreadableVideoError(f"{Path(path).name}: cannot decode the audio track ({exc})") from exc


def _decode_span(path: str, start: float, end: float, rate: int = 16000):
    import av
    import numpy as np

    with av.open(path) as container:
        stream = container.streams.audio[0]
        if start > 0:
            container.seek(int(max(0.0, start - 1.0) * av.time_base), backward=True)  # a little before
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        chunks, first = [], None
        for frame in _skip_invalid(container.decode(stream)):
            if frame.time is None:
                continue
            if first is None:
                first = frame.time
            if frame.time >= end:
                break
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    if first is None:
        return np.zeros(0, dtype=np.float32)
    samples = np.concatenate(chunks).astype(np.float32) / 32768.0 if chunks else np.zeros(0, np.float32)
    lo = max(0, round((start - first) * rate))
    if math.isinf(end):
        return samples[lo:]
    return samples[lo : max(lo, round((end - first) * rate))]


def _skip_invalid(frames):
    """Frames, less those of corrupt packets (damaged bytes mid-file): the rest of the audio is
    still transcribed, as faster-whisper's own decoder does."""
    import av

    iterator = iter(frames)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue
