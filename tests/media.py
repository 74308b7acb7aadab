"""Test media made here with ffmpeg (known hard cuts) and espeak-ng (known sentences), from real
photos that install with scikit-image. Nothing here is committed; everything is generated."""

from __future__ import annotations

import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")
SIZE = (480, 320)
FPS = 25


@dataclass(frozen=True)
class SpokenScene:
    photo: str
    sentence: str
    paraphrase: str  # an English query that says the same thing in other words
    korean_topic: str  # a Korean query about the sentence's topic


SPOKEN_SCENES = (
    SpokenScene(
        "coffee",
        "The chef is cooking fresh pasta in a busy restaurant kitchen.",
        "a cook preparing noodles for dinner guests",
        "요리사가 식당 주방에서 음식을 만든다",
    ),
    SpokenScene(
        "rocket",
        "Heavy rain is falling on the quiet city streets tonight.",
        "a stormy wet evening downtown",
        "비 오는 밤의 도시 거리",
    ),
    SpokenScene(
        "astronaut",
        "The football team celebrated their victory in the stadium.",
        "soccer players cheering after winning the match",
        "축구 선수들이 경기장에서 우승을 축하한다",
    ),
)


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def photo_png(name: str, folder: Path) -> Path:
    from PIL import Image
    from skimage import data

    path = folder / f"{name}.png"
    if not path.exists():
        Image.fromarray(getattr(data, name)()).convert("RGB").resize(SIZE).save(path)
    return path


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as handle:
        return handle.getnframes() / handle.getframerate()


def still_segment(image: Path, seconds: float, out: Path, audio: Path | None = None) -> None:
    """A clip of one photo, slowly zooming (so it is not a single frozen frame), with optional audio."""
    frames = round(seconds * FPS)
    video = (
        f"scale={SIZE[0] * 2}:{SIZE[1] * 2},zoompan=z='min(zoom+0.0008,1.1)':d={frames}:s={SIZE[0]}x{SIZE[1]}"
        f":fps={FPS},format=yuv420p"
    )
    args = ["ffmpeg", "-y", "-loglevel", "error", "-loop", "1", "-i", str(image)]
    if audio is not None:
        args += ["-i", str(audio), "-af", "apad", "-c:a", "aac", "-ar", "16000"]
    args += ["-vf", video, "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS)]
    if audio is not None:
        args += ["-t", f"{frames / FPS:.3f}"]
    args.append(str(out))
    run(*args)


def concat(parts: list[Path], out: Path) -> None:
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    run("ffmpeg", "-y", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(out))
    listing.unlink()
    for part in parts:
        part.unlink()


def make_cuts_clip(folder: Path, seconds: tuple[float, ...] = (3.0, 2.5, 3.5, 3.0)) -> tuple[Path, list[float]]:
    """Four photos back to back, no audio; returns the clip and its known cut times."""
    parts = []
    for i, (name, length) in enumerate(zip(PHOTOS, seconds, strict=False)):
        part = folder / f"cut_part{i}.mp4"
        still_segment(photo_png(name, folder), length, part)
        parts.append(part)
    out = folder / "cuts.mp4"
    concat(parts, out)
    whole_frames = [round(s * FPS) / FPS for s in seconds]
    return out, [float(t) for t in np.cumsum(whole_frames)[:-1]]


def make_speech_clip(folder: Path) -> tuple[Path, list[tuple[float, float]]]:
    """One photo per spoken sentence (espeak-ng), cut at sentence boundaries.

    Returns the clip and each sentence's (start, end) scene span.
    """
    parts, spans, t = [], [], 0.0
    for i, scene in enumerate(SPOKEN_SCENES):
        wav = folder / f"sentence{i}.wav"
        run("espeak-ng", "-s", "150", "-w", str(wav), scene.sentence)
        length = round((wav_seconds(wav) + 1.0) * FPS) / FPS  # speech plus a pause, whole frames
        part = folder / f"speech_part{i}.mp4"
        still_segment(photo_png(scene.photo, folder), length, part, audio=wav)
        parts.append(part)
        spans.append((t, t + length))
        t += length
    out = folder / "speech.mp4"
    concat(parts, out)
    return out, spans


def make_audio_only(folder: Path) -> Path:
    out = folder / "audio only.mp4"
    run(
        "ffmpeg",
        "-y",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=2",
        "-c:a",
        "aac",
        str(out),
    )
    return out


def make_broken_files(folder: Path, good_video: Path) -> dict[str, Path]:
    text = folder / "notes.mp4"
    text.write_text("this is a text file, not a video\n")
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    data = good_video.read_bytes()
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    # moov atom first (+faststart): the header is whole, the media data is cut short
    faststart = folder / "faststart_full.mp4"
    run(
        "ffmpeg",
        "-y",
        "-loglevel",
        "error",
        "-i",
        str(good_video),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        str(faststart),
    )
    truncated_fast = folder / "truncated_faststart.mp4"
    truncated_fast.write_bytes(faststart.read_bytes()[: faststart.stat().st_size // 2])
    faststart.unlink()
    return {"text": text, "empty": empty, "truncated": truncated, "truncated_faststart": truncated_fast}


def copy_as(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return target


MESSI = Path("/usr/share/doc/opencv-doc/examples/data/messi5.jpg")  # Debian's opencv-doc
ASTRONAUT_FACE = (179, 83, 266, 170)  # where dlib finds the face in skimage's astronaut (512 px)
MESSI_FACE = (225, 94, 261, 130)  # and in messi5.jpg (548 x 342; found with one upsampling)


def face_picture(name: str, folder: Path, zoom: float = 1.0, shift: tuple[float, float] = (0.0, 0.0),
                 brightness: float = 1.0, mirror: bool = False) -> Path:  # fmt: skip
    """A SIZE picture around a real face: ``zoom`` (the face's share of the frame grows with it),
    ``shift`` (the face off centre, as a share of the frame), ``brightness``, ``mirror``."""
    from PIL import Image, ImageEnhance, ImageOps
    from skimage import data

    if name == "astronaut":
        source, face = Image.fromarray(data.astronaut()).convert("RGB"), ASTRONAUT_FACE
    else:
        source, face = Image.open(MESSI).convert("RGB"), MESSI_FACE
    size = max(face[2] - face[0], face[3] - face[1])
    cx, cy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
    # a window SIZE-shaped, the face filling ~zoom/3 of its height, moved by shift
    height = size * 3.0 / zoom
    width = height * SIZE[0] / SIZE[1]
    left = cx - width / 2 - shift[0] * width
    top = cy - height / 2 - shift[1] * height
    picture = source.crop((int(left), int(top), int(left + width), int(top + height))).resize(SIZE)
    if mirror:
        picture = ImageOps.mirror(picture)
    if brightness != 1.0:
        picture = ImageEnhance.Brightness(picture).enhance(brightness)
    tag = f"{name}-z{zoom}-s{shift[0]}_{shift[1]}-b{brightness}-m{int(mirror)}"
    out = folder / f"{tag}.png"
    picture.save(out)
    return out


def make_people_clips(folder: Path) -> dict[str, Path]:
    """Three clips of still scenes with hard cuts: the astronaut in two of them (other zoom,
    position, brightness, mirrored), another person (Messi, from opencv-doc) in the third, and
    scenes without a face (coffee, a rocket)."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = folder / "parts"
    parts.mkdir(exist_ok=True)
    plans = {
        "anchor one.mp4": [face_picture("astronaut", parts), photo_png("coffee", parts),
                           face_picture("astronaut", parts, zoom=1.3, mirror=True, brightness=1.25)],
        "anchor two.mp4": [photo_png("rocket", parts),
                           face_picture("astronaut", parts, zoom=0.8, shift=(0.12, 0.05), brightness=0.7)],
        "another person.mp4": [face_picture("messi", parts), photo_png("coffee", parts)],
    }  # fmt: skip
    clips = {}
    for name, pictures in plans.items():
        segments = []
        for i, picture in enumerate(pictures):
            segment = parts / f"{Path(name).stem}-{i}.mp4"
            still_segment(picture, 2.5, segment)
            segments.append(segment)
        concat(segments, folder / name)
        clips[name] = folder / name
    return clips


LONG_SHOT_SENTENCES = (
    ("The chef is cooking fresh pasta in a busy restaurant kitchen.", "a cook preparing noodles for dinner guests"),
    ("Heavy rain is falling on the quiet city streets tonight.", "a stormy wet evening downtown"),
    ("The football team celebrated their victory in the stadium.", "soccer players cheering after winning the match"),
    ("A doctor examined the patient in the hospital emergency room.", "a physician treating a sick person"),
    ("The children are building a sandcastle on the sunny beach.", "kids playing with sand by the sea"),
    ("The old train arrived late at the mountain station.", "a railway journey through the hills"),
)


def make_long_shot(folder: Path, gap: float = 1.5) -> tuple[Path, list[tuple[float, float]]]:
    """One shot of one photo (no cut) over which the sentences of LONG_SHOT_SENTENCES are spoken
    one after another, ``gap`` seconds apart; returns the clip and each sentence's (start, end)."""
    folder.mkdir(parents=True, exist_ok=True)
    spans, t = [], gap
    parts = []
    for i, (sentence, _) in enumerate(LONG_SHOT_SENTENCES):
        wav = folder / f"long{i}.wav"
        run("espeak-ng", "-s", "150", "-w", str(wav), sentence)
        length = wav_seconds(wav)
        spans.append((round(t, 3), round(t + length, 3)))
        t += length + gap
        parts.append(wav)
    # the sentences placed at their start times on one silent track
    inputs, filters = [], []
    for i, (wav, (start, _)) in enumerate(zip(parts, spans, strict=True)):
        inputs += ["-i", str(wav)]
        filters.append(f"[{i}:a]adelay={round(start * 1000)}:all=1[a{i}]")
    mix = "".join(f"[a{i}]" for i in range(len(parts)))
    filters.append(f"{mix}amix=inputs={len(parts)}:normalize=0,apad=whole_dur={t:.3f}[out]")
    audio = folder / "long.wav"
    run("ffmpeg", "-y", "-loglevel", "error", *inputs, "-filter_complex", ";".join(filters), "-map", "[out]",
        "-ar", "16000", "-ac", "1", str(audio))  # fmt: skip
    out = folder / "long shot.mp4"
    still_segment(photo_png("chelsea", folder), round(t * FPS) / FPS, out, audio=audio)
    return out, spans
