"""Cutting spans of videos with ffmpeg: one span to a file (``tving clip``), many to one reel
(``tving reel``). ffmpeg reads and writes in a stream: no video is ever held in memory here.

A clip is re-encoded from an exact seek (``-ss`` before ``-i`` decodes from the keyframe before
and drops frames up to the start), so it starts on the frame asked for and lasts the span to a
frame; a copy of the stream could only start on a keyframe. A reel brings every span to one
size, frame rate and audio format first (letterboxed, silence where a source has no audio), so
the parts join without another encode.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tving_resources.errors import TvingError

MAX_CLIP_SECONDS = 3600.0
REEL_SIZE = (1280, 720)
REEL_FPS = 25
AUDIO_RATE = 48000
_VIDEO = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
_AUDIO = ["-c:a", "aac", "-b:a", "160k", "-ar", str(AUDIO_RATE), "-ac", "2"]


class CutError(TvingError):
    """A span could not be cut: the message names the file and says why."""


@dataclass(frozen=True)
class Span:
    """Seconds ``start`` to ``end`` of the video at ``path``."""

    path: Path
    start: float
    end: float
    fd: int | None = None  # an open descriptor of the checked file, read instead of the path

    @property
    def source(self) -> str:
        return f"/dev/fd/{self.fd}" if self.fd is not None else str(self.path)

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return (self.fd,) if self.fd is not None else ()

    def check(self, duration: float | None = None) -> Span:
        if not (0 <= self.start < self.end):
            raise CutError(f"{self.path.name}: need 0 <= start < end (got {self.start}, {self.end})")
        if self.end - self.start > MAX_CLIP_SECONDS:
            raise CutError(f"{self.path.name}: a span is at most {MAX_CLIP_SECONDS:.0f} s")
        if duration is not None and self.start >= duration:
            raise CutError(f"{self.path.name}: starts at {self.start} s, after the video's end ({duration:.2f} s)")
        end = min(self.end, duration) if duration is not None else self.end
        return Span(self.path, self.start, end, self.fd)


def ffmpeg_path() -> str:
    found = shutil.which("ffmpeg")
    if not found:
        raise CutError("ffmpeg is not installed (scripts/setup.sh installs it)")
    return found


def has_audio(source: str | Path, pass_fds: Sequence[int] = ()) -> bool:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries", "stream=index", "-of", "json", str(source)],
        capture_output=True, text=True, check=False, pass_fds=tuple(pass_fds),
    )  # fmt: skip
    return done.returncode == 0 and bool(json.loads(done.stdout or "{}").get("streams"))


def _run(args: list[str], what: str, pass_fds: Sequence[int] = ()) -> None:
    done = subprocess.run(
        args, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, pass_fds=tuple(pass_fds)
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise CutError(f"{what}: ffmpeg failed: {last[:300]}")


def cut_clip(span: Span, out: Path) -> Path:
    """``span`` to ``out`` (MP4, H.264 and AAC): frame-accurate, with the source's first audio
    stream."""
    args = [ffmpeg_path(), "-v", "error", "-nostdin", "-y", "-ss", f"{span.start:.6f}", "-i", span.source,
            "-t", f"{span.end - span.start:.6f}", "-map", "0:v:0", "-map", "0:a:0?", *_VIDEO, *_AUDIO,
            "-movflags", "+faststart", "-avoid_negative_ts", "make_zero", str(out)]  # fmt: skip
    _run(args, span.path.name, span.pass_fds)
    return out


def _reel_part(span: Span, out: Path, size: tuple[int, int], fps: int) -> None:
    width, height = size
    picture = (f"[0:v]scale={width}:{height}:force_original_aspect_ratio=decrease,"
               f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps},format=yuv420p[v]")  # fmt: skip
    length = f"{span.end - span.start:.6f}"
    args = [ffmpeg_path(), "-v", "error", "-nostdin", "-y", "-ss", f"{span.start:.6f}", "-t", length,
            "-i", span.source]  # fmt: skip
    if has_audio(span.source, span.pass_fds):
        sound = ["-map", "0:a:0", "-af", f"aresample={AUDIO_RATE},aformat=channel_layouts=stereo,apad"]
    else:
        args += ["-f", "lavfi", "-t", length, "-i", f"anullsrc=r={AUDIO_RATE}:cl=stereo"]
        sound = ["-map", "1:a"]
    args += ["-filter_complex", picture, "-map", "[v]", *sound, "-t", length, *_VIDEO, *_AUDIO,
             "-video_track_timescale", str(fps * 1000), str(out)]  # fmt: skip
    _run(args, span.path.name, span.pass_fds)


def make_reel(
    spans: Sequence[Span],
    out: Path,
    size: tuple[int, int] = REEL_SIZE,
    fps: int = REEL_FPS,
    progress: Callable[[int, Span], None] | None = None,
) -> Path:
    """The spans one after another in one MP4 at ``size`` and ``fps`` (in order; one ffmpeg at a
    time, each part an MP4 in a temporary folder beside ``out``, joined without re-encoding)."""
    if not spans:
        raise CutError("nothing to put in the reel")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".reel-", dir=out.parent) as tmp:
        parts = []
        for i, span in enumerate(spans):
            part = Path(tmp) / f"part{i:04d}.mp4"
            _reel_part(span, part, size, fps)
            parts.append(part)
            if progress:
                progress(i, span)
        listing = Path(tmp) / "parts.txt"
        listing.write_text("".join(f"file '{p.name}'\n" for p in parts))
        _run([ffmpeg_path(), "-v", "error", "-nostdin", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
              "-c", "copy", "-movflags", "+faststart", str(out)], "the reel")  # fmt: skip
    return out


def probe_duration(path: str | Path, stream: str = "v:0") -> float:
    """Seconds of ``stream`` of the file (ffprobe)."""
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries", "stream=duration", "-of", "json",
         str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    info = json.loads(done.stdout)["streams"][0]
    return float(info["duration"])
