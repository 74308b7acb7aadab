"""Training examples for the captioner's LoRA adapter, from a JSONL file (formats: see
:func:`tving_resources.models.wrappers.vlm.record_caption`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from tving_resources.errors import ConfigError
from tving_resources.index.artifacts import ArtifactStore
from tving_resources.media.video import FrameReader, keyframe_times, load_rgb, probe_video
from tving_resources.models.wrappers.vlm import TrainingExample, read_training_records, record_caption


def load_examples(path: str | Path, frames: int, artifacts: ArtifactStore | None = None) -> list[TrainingExample]:
    source = Path(path)
    return [_example(record, source.parent, frames, artifacts) for record in read_training_records(source)]


def _example(record: dict[str, Any], base: Path, frames: int, artifacts: ArtifactStore | None) -> TrainingExample:
    caption = record_caption(record)
    transcript = str(record.get("transcript", "")).strip()
    if "scene" in record:
        return _scene_example(str(record["scene"]), caption, artifacts)
    if "video" in record:
        video = _resolve(base, record["video"])
        info = probe_video(video, "train-0000000000", fingerprint=False)
        start = float(record.get("start", 0.0))
        end = min(float(record.get("end", info.duration)), info.duration)
        if not 0 <= start < end:
            raise ConfigError(f"{video.name}: invalid span {start}..{end} in a training record")
        reader = FrameReader(video, (info.width, info.height), max_side=512)
        images = tuple(Image.fromarray(f) for f in reader.frames_at(keyframe_times(start, end, frames)))
        return TrainingExample(images, transcript, caption)
    if "image" in record or "images" in record:
        names = record.get("images") or record["image"]
        names = [names] if isinstance(names, str) else list(names)
        images = tuple(load_rgb(_resolve(base, n)) for n in names)
        return TrainingExample(images, transcript, caption)
    raise ConfigError(f"training record needs 'video', 'image(s)' or 'scene': {str(record)[:200]}")


def _scene_example(reference: str, caption: str, artifacts: ArtifactStore | None) -> TrainingExample:
    from tving_resources.index.pipeline import KeyframeSet, SceneCaptions

    video_id, _, index = reference.rpartition("#")
    if artifacts is None or not index.isdigit():
        raise ConfigError(f"scene reference {reference!r}: expected '<video id>#<scene index>' of an indexed video")
    video = artifacts.video(video_id)
    chain = video.committed() or video.head()  # the indexed version, else the latest results
    keyframes = video.load("keyframes", KeyframeSet, chain.get("keyframes")).of_scene(int(index))
    if not keyframes:
        raise ConfigError(f"scene reference {reference!r}: no such scene")
    transcript = ""
    if "captions" in chain:
        scenes = video.load("captions", SceneCaptions, chain["captions"]).scenes
        transcript = next((s.transcript for s in scenes if s.scene_index == int(index)), "")
    images = tuple(load_rgb(artifacts.base / f.thumbnail) for f in keyframes)
    return TrainingExample(images, transcript, caption)


def _resolve(base: Path, name: str) -> Path:
    path = Path(name).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise ConfigError(f"training record refers to a missing file: {path}")
    return path
