"""Subtitles a video already has: streams inside the file (mov_text, SubRip, WebVTT, ASS) and
sidecar files next to it (``clip.srt``, ``clip.ko.srt``, ``.vtt``, ``.ass``), parsed with pysubs2.

They are used beside speech recognition (default), instead of it, or not at all (setting
``subtitles``: beside | instead | off); every transcript segment records its source.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tving_resources.errors import UnreadableVideoError
from tving_resources.models.wrappers.speech import Transcript, TranscriptSegment

SIDECAR_EXTENSIONS = (".srt", ".vtt", ".ass", ".ssa")
MODES = ("beside", "instead", "off")


@dataclass(frozen=True)
class SubtitleTrack:
    source: str  # "sidecar:<file name>" or "stream:<index>"
    language: str | None
    segments: tuple[TranscriptSegment, ...]


def sidecar_files(video: str | Path) -> list[Path]:
    """``<stem>.srt`` and ``<stem>.<language>.srt`` (any sidecar extension) beside the video."""
    path = Path(video)
    found = []
    for candidate in sorted(path.parent.glob(f"{glob_escape(path.stem)}.*")):
        suffixes = candidate.name[len(path.stem) :].split(".")[1:]  # ["ko", "srt"] or ["srt"]
        if candidate.suffix.lower() in SIDECAR_EXTENSIONS and len(suffixes) <= 2 and candidate.is_file():
            found.append(candidate)
    return found


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def sidecar_signature(video: str | Path) -> str:
    """Changes when a sidecar file is added, removed or rewritten (part of the transcript's key)."""
    digest = hashlib.sha1()
    for file in sidecar_files(video):
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def read_subtitles(video: str | Path) -> list[SubtitleTrack]:
    """Every subtitle track of ``video``: sidecar files, then the streams inside the file."""
    import pysubs2

    path = Path(video)
    tracks = []
    for file in sidecar_files(path):
        try:
            subs = pysubs2.load(str(file), encoding="utf-8")
        except (pysubs2.Pysubs2Error, UnicodeDecodeError, ValueError) as exc:
            raise UnreadableVideoError(f"{file.name}: not a readable subtitle file ({exc})") from exc
        parts = file.name[len(path.stem) :].split(".")[1:]
        language = parts[0] if len(parts) == 2 else None
        tracks.append(SubtitleTrack(f"sidecar:{file.name}", language, _segments(subs, f"subtitles:{file.name}")))
    for index, language in _subtitle_streams(path):
        text = subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-i", str(path), "-map", f"0:s:{index}", "-f", "srt", "-"],
            capture_output=True, timeout=300,
        ).stdout.decode("utf-8", "replace")  # fmt: skip
        if text.strip():
            subs = pysubs2.SSAFile.from_string(text, format_="srt")
            tracks.append(SubtitleTrack(f"stream:{index}", language, _segments(subs, f"subtitles:stream {index}")))
    return tracks


def _subtitle_streams(path: Path) -> list[tuple[int, str | None]]:
    import av

    try:
        with av.open(str(path)) as container:
            return [(i, s.metadata.get("language")) for i, s in enumerate(container.streams.subtitles)]
    except av.error.FFmpegError:
        return []


def _segments(subs, source: str) -> tuple[TranscriptSegment, ...]:
    out = []
    for event in subs:
        if event.is_comment:
            continue
        text = " ".join(event.plaintext.split())
        if text:
            out.append(TranscriptSegment(event.start / 1000, event.end / 1000, text, source))
    return tuple(out)


def with_subtitles(speech: Transcript | None, tracks: list[SubtitleTrack], model_id: str) -> Transcript:
    """The speech transcript (None: not run) joined with the subtitle tracks, in time order."""
    segments = [*(speech.segments if speech else ()), *(s for t in tracks for s in t.segments)]
    segments.sort(key=lambda s: (s.start, s.end))
    language = speech.language if speech and speech.language else next((t.language for t in tracks if t.language), None)
    return Transcript(
        tuple(segments),
        language,
        speech.language_probability if speech else 0.0,
        model_id,
        speech.audio_seconds if speech else 0.0,
    )


def transcribe_with_subtitles(info, runtime, mode: str) -> Transcript:
    """The transcript stage: speech recognition, subtitles, or both (``mode``)."""
    tracks = read_subtitles(info.path) if mode != "off" else []
    speech = None
    if mode != "instead" or not tracks:
        speech = runtime.speech().transcribe(info.path, has_audio=info.has_audio)
    if not tracks:
        return speech
    # the speech model's id either way: each segment records its own source
    return with_subtitles(speech, tracks, speech.model_id if speech else runtime.profile.speech_model)
