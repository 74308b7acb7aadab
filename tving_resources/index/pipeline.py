"""The indexing stages as plain functions over typed results: what each Dagster asset calls.

Each function takes the results of the stages before it and returns its own; reading and writing
them is the caller's business (:class:`tving_resources.index.artifacts.ArtifactStore` for the assets).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from tving_resources.index.duplicates import join_hashes, keyframe_hash
from tving_resources.media.scenes import SceneDetection, SceneSettings, detect_scenes
from tving_resources.media.settings import KeyframeSettings
from tving_resources.media.video import FrameReader, VideoInfo, keyframe_times, load_rgb, save_jpeg
from tving_resources.models.wrappers.captioning import Captioner, ClassScores, SceneFrames
from tving_resources.models.wrappers.embedding import FrameEncoder, TextEncoder
from tving_resources.models.wrappers.speech import Transcript
from tving_resources.store.schema import ModelStamp, scene_id, scene_schema


@dataclass(frozen=True)
class Keyframe:
    scene_index: int
    timestamp: float
    thumbnail: str  # relative to the artifacts base: "<profile>/<video_id>/keyframes/<key>/s0003_k1.jpg"


@dataclass(frozen=True)
class KeyframeSet:
    per_scene: int
    frames: tuple[Keyframe, ...]

    def of_scene(self, scene_index: int) -> list[Keyframe]:
        return [f for f in self.frames if f.scene_index == scene_index]


@dataclass(frozen=True)
class SceneCaption:
    scene_index: int
    caption: str
    transcript: str
    frame_descriptions: tuple[str, ...]
    # a label captioner's top classes per frame, (class index, probability); () from other captioners
    frame_classes: tuple[ClassScores, ...] = ()


@dataclass(frozen=True)
class SceneCaptions:
    model_id: str
    scenes: tuple[SceneCaption, ...]


@dataclass(frozen=True)
class SceneTexts:
    """On-screen text per scene (empty strings where none was read), and what read it."""

    model_id: str
    texts: tuple[str, ...]
    confidences: tuple[float, ...]

    @classmethod
    def empty(cls, scenes: int, model_id: str = "off") -> SceneTexts:
        return cls(model_id, ("",) * scenes, (0.0,) * scenes)


@dataclass(frozen=True)
class SceneVectors:
    caption: np.ndarray  # (scenes, text_dim)
    transcript: np.ndarray  # (scenes, text_dim); zero rows where a scene has no speech
    frames: np.ndarray  # (scenes, keyframes per scene, frame_dim)
    text_model: str
    frame_model: str
    transcript_model: str = ""  # "" : the text encoder made the transcript vectors too

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "caption": self.caption,
            "transcript": self.transcript,
            "frames": self.frames,
            "models": np.array([self.text_model, self.frame_model, self.transcript_model]),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> SceneVectors:
        text_model, frame_model, *rest = (str(m) for m in arrays["models"])
        transcript_model = rest[0] if rest else ""
        return cls(arrays["caption"], arrays["transcript"], arrays["frames"], text_model, frame_model, transcript_model)


def segment_video(info: VideoInfo, settings: SceneSettings) -> SceneDetection:
    return detect_scenes(info.path, info.duration, settings)


def extract_keyframes(
    info: VideoInfo, detection: SceneDetection, out_dir: Path, thumbnail_prefix: str, settings: KeyframeSettings
) -> KeyframeSet:
    """K frames per scene at segment midpoints, decoded in one sorted pass, saved as JPEGs in
    ``out_dir``; each thumbnail is recorded as ``thumbnail_prefix/<name>`` (where the folder will
    be once published, relative to the artifacts base)."""
    times = [
        (scene.index, t)
        for scene in detection.scenes
        for t in keyframe_times(scene.start, scene.end, settings.per_scene)
    ]
    reader = FrameReader(info.path, (info.width, info.height), max_side=settings.max_side)
    images = reader.frames_at([t for _, t in times])
    frames, per_scene_count = [], {}
    for (scene_index, t), image in zip(times, images, strict=True):
        k = per_scene_count[scene_index] = per_scene_count.get(scene_index, -1) + 1
        name = f"s{scene_index:04d}_k{k}.jpg"
        save_jpeg(image, out_dir / name, settings.max_side, settings.jpeg_quality)
        frames.append(Keyframe(scene_index, round(t, 3), f"{thumbnail_prefix}/{name}"))
    return KeyframeSet(settings.per_scene, tuple(frames))


def read_scene_texts(
    detection: SceneDetection, keyframes: KeyframeSet, reader, thumbnails_root: Path, frames_per_scene: int = 1
) -> SceneTexts:
    """Each scene's on-screen text from its middle keyframe(s) (titles and captions stay up for
    seconds: the middle frames see them; reading every keyframe costs a Tesseract pass each)."""
    from tving_resources.models.wrappers.ocr import scene_text

    chosen = []
    for scene in detection.scenes:
        frames = keyframes.of_scene(scene.index)
        middle = len(frames) // 2
        chosen.append(frames[max(0, middle - frames_per_scene // 2) :][:frames_per_scene])
    # every frame of the video in one call: the reader spreads them over its engines
    flat = reader.read([load_rgb(thumbnails_root / f.thumbnail) for frames in chosen for f in frames])
    texts, confidences = [], []
    start = 0
    for frames in chosen:
        results, start = flat[start : start + len(frames)], start + len(frames)
        texts.append(scene_text(results))
        kept = [r.confidence for r in results if r.lines]
        confidences.append(round(sum(kept) / len(kept), 1) if kept else 0.0)
    return SceneTexts(reader.model_id, tuple(texts), tuple(confidences))


def scene_transcripts(detection: SceneDetection, transcript: Transcript) -> list[str]:
    return [transcript.text_between(s.start, s.end) for s in detection.scenes]


def caption_scenes(
    detection: SceneDetection,
    keyframes: KeyframeSet,
    transcript: Transcript,
    captioner: Captioner,
    thumbnails_root: Path,
    batch_size: int = 8,
    on_batch: Callable[[int, int], None] | None = None,
) -> SceneCaptions:
    """One caption per scene from its keyframes (and its transcript, for captioners that read it)."""
    texts = scene_transcripts(detection, transcript)
    results: list[SceneCaption] = []
    scenes = list(detection.scenes)
    for start in range(0, len(scenes), batch_size):
        batch = scenes[start : start + batch_size]
        inputs = [
            SceneFrames(
                s.index,
                tuple(load_rgb(thumbnails_root / f.thumbnail) for f in keyframes.of_scene(s.index)),
                texts[s.index],
            )
            for s in batch
        ]
        for scene, out in zip(batch, captioner.caption(inputs), strict=True):
            results.append(
                SceneCaption(
                    scene.index, out.caption.strip(), texts[scene.index], out.frame_descriptions, out.frame_classes
                )
            )
        if on_batch:
            on_batch(min(start + batch_size, len(scenes)), len(scenes))
    return SceneCaptions(captioner.model_id, tuple(results))


def caption_with_text(caption: str, onscreen: str) -> str:
    """What the caption vector embeds: what is seen, and the text written on screen."""
    return f"{caption}\nOn screen: {' / '.join(onscreen.splitlines())}" if onscreen else caption


def embed_scenes(
    captions: SceneCaptions,
    keyframes: KeyframeSet,
    text_encoder: TextEncoder,
    frame_encoder: FrameEncoder,
    thumbnails_root: Path,
    onscreen: SceneTexts | None = None,
    transcript_encoder: TextEncoder | None = None,
) -> SceneVectors:
    """Caption vectors (what is seen, with the on-screen text), transcript vectors (with
    ``transcript_encoder`` when the profile has a multilingual one), frame vectors."""
    onscreen = onscreen or SceneTexts.empty(len(captions.scenes))
    caption_vecs = text_encoder.encode_passages(
        [caption_with_text(c.caption, t) for c, t in zip(captions.scenes, onscreen.texts, strict=True)]
    )
    speech_encoder = transcript_encoder or text_encoder
    transcript_vecs = speech_encoder.encode_passages([c.transcript for c in captions.scenes])
    k = keyframes.per_scene
    if frame_encoder.uses_frame_descriptions and all(c.frame_classes for c in captions.scenes):
        flat = frame_encoder.encode_classes([f for c in captions.scenes for f in c.frame_classes])
    elif frame_encoder.uses_frame_descriptions:  # captions stored before the classes were kept
        flat = frame_encoder.encode_descriptions([d for c in captions.scenes for d in c.frame_descriptions])
    else:
        flat = frame_encoder.encode_images([load_rgb(thumbnails_root / f.thumbnail) for f in keyframes.frames])
    frames = flat.reshape(len(captions.scenes), k, frame_encoder.dim).astype(np.float32)
    separate = speech_encoder.model_id if speech_encoder is not text_encoder else ""
    return SceneVectors(caption_vecs, transcript_vecs, frames, text_encoder.model_id, frame_encoder.model_id, separate)


def model_stamp(profile: str, vectors: SceneVectors, captions: SceneCaptions, transcript: Transcript) -> ModelStamp:
    """The models that produced a video's results (what its rows will be stamped with)."""
    return ModelStamp(
        profile=profile,
        text_model=vectors.text_model,
        text_dim=int(vectors.caption.shape[1]),
        frame_model=vectors.frame_model,
        frame_dim=int(vectors.frames.shape[2]),
        caption_model=captions.model_id,
        speech_model=transcript.model_id,
        transcript_model=vectors.transcript_model,
        transcript_dim=int(vectors.transcript.shape[1]) if vectors.transcript_model else 0,
    )


def build_scene_rows(
    info: VideoInfo,
    detection: SceneDetection,
    keyframes: KeyframeSet,
    transcript: Transcript,
    captions: SceneCaptions,
    vectors: SceneVectors,
    stamp: ModelStamp,
    onscreen: SceneTexts | None = None,
    thumbnails_root: Path | None = None,
) -> pa.Table:
    """The LanceDB rows of one video, in the shared schema (keyframe hashes from the thumbnails
    under ``thumbnails_root``; none without it)."""
    now = datetime.now(UTC)
    onscreen = onscreen or SceneTexts.empty(len(detection.scenes))
    rows = []
    for scene, cap, text in zip(detection.scenes, captions.scenes, onscreen.texts, strict=True):
        frames = keyframes.of_scene(scene.index)
        rows.append(
            {
                "scene_id": scene_id(info.video_id, scene.index),
                "video_id": info.video_id,
                "video_path": info.path,
                "video_name": info.name,
                "video_duration": info.duration,
                "scene_index": scene.index,
                "start": scene.start,
                "end": scene.end,
                "caption": cap.caption,
                "transcript": cap.transcript,
                "ocr_text": text,
                "transcript_source": transcript.sources_between(scene.start, scene.end),
                "search_text": "\n".join(t for t in (cap.caption, cap.transcript, text) if t),
                "search_text_ngram": "\n".join(t for t in (cap.caption, cap.transcript, text) if t),
                "language": transcript.language,
                "has_transcript": bool(cap.transcript),
                "caption_vector": vectors.caption[scene.index].astype(np.float16),
                "transcript_vector": vectors.transcript[scene.index].astype(np.float16),
                "frame_vectors": list(vectors.frames[scene.index].astype(np.float16)),
                "keyframe_times": [f.timestamp for f in frames],
                "thumbnails": [f.thumbnail for f in frames],
                # hashed from the thumbnails here, not while decoding keyframes: a new rows stage
                # re-runs alone (`tving index --stale`), where a new keyframes stage would re-run
                # every stage after it for every video already indexed
                "keyframe_hashes": (
                    join_hashes([keyframe_hash(load_rgb(thumbnails_root / f.thumbnail)) for f in frames])
                    if thumbnails_root is not None
                    else ""
                ),
                "fingerprint": info.fingerprint,
                "caption_model": captions.model_id,
                "text_model": vectors.text_model,
                "frame_model": vectors.frame_model,
                "speech_model": transcript.model_id,
                "ocr_model": onscreen.model_id,
                "indexed_at": now,
            }
        )
    return pa.Table.from_pylist(rows, schema=scene_schema(stamp))


class StageTimer:
    """Wall-clock seconds of a block, for asset metadata."""

    def __enter__(self) -> StageTimer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = round(time.perf_counter() - self.started, 3)


def check_scene_vectors(vectors: SceneVectors, captions: SceneCaptions, stamp: ModelStamp) -> list[str]:
    """Problems that would put bad vectors in the index (empty list: all good)."""
    problems = []
    n = len(captions.scenes)
    expected = {
        "caption": (n, stamp.text_dim),
        "transcript": (n, stamp.transcript_space[1]),
    }
    for name, shape in expected.items():
        array = getattr(vectors, name)
        if array.shape != shape:
            problems.append(f"{name} vectors have shape {array.shape}, expected {shape}")
    if vectors.frames.ndim != 3 or vectors.frames.shape[0] != n or vectors.frames.shape[2] != stamp.frame_dim:
        problems.append(f"frame vectors have shape {vectors.frames.shape}, expected ({n}, K, {stamp.frame_dim})")
    if problems:
        return problems
    for name, array in (("caption", vectors.caption), ("transcript", vectors.transcript), ("frame", vectors.frames)):
        if not np.all(np.isfinite(array)):
            problems.append(f"{name} vectors hold NaN or infinite values")
    norms = {
        "caption": np.linalg.norm(vectors.caption, axis=-1),
        "frame": np.linalg.norm(vectors.frames, axis=-1).ravel(),
    }
    for name, values in norms.items():
        if not np.allclose(values, 1.0, atol=1e-3):
            problems.append(f"{name} vectors are not unit-norm (norms {values.min():.3f}..{values.max():.3f})")
    for cap, vec in zip(captions.scenes, vectors.transcript, strict=True):
        norm = float(np.linalg.norm(vec))
        want = 1.0 if cap.transcript else 0.0
        if abs(norm - want) > 1e-3:
            problems.append(f"scene {cap.scene_index}: transcript vector norm {norm:.3f}, expected {want:.0f}")
            break
    for cap in captions.scenes:
        if not cap.caption:
            problems.append(f"scene {cap.scene_index} has an empty caption")
            break
    return problems


def check_scene_coverage(detection: SceneDetection, tolerance: float = 1e-6) -> list[str]:
    """Scenes must tile [0, covered_until) in order, with no gap or overlap."""
    problems = []
    scenes = detection.scenes
    if not scenes:
        return ["no scenes"]
    if abs(scenes[0].start) > tolerance:
        problems.append(f"first scene starts at {scenes[0].start:.3f} s, not 0")
    for a, b in itertools.pairwise(scenes):
        if b.start - a.end > tolerance:
            problems.append(f"gap of {b.start - a.end:.3f} s between scenes {a.index} and {b.index}")
        elif a.end - b.start > tolerance:
            problems.append(f"scenes {a.index} and {b.index} overlap by {a.end - b.start:.3f} s")
    if abs(scenes[-1].end - detection.covered_until) > tolerance:
        problems.append(f"last scene ends at {scenes[-1].end:.3f} s, not {detection.covered_until:.3f} s")
    if [s.index for s in scenes] != list(range(len(scenes))):
        problems.append("scene indexes are not 0..n-1 in order")
    if any(s.end <= s.start for s in scenes):
        problems.append("a scene has no duration")
    return problems


def check_scene_rows(rows: pa.Table, detection: SceneDetection, thumbnails_root: Path) -> list[str]:
    """Problems that would put incomplete rows in the index (empty list: all good)."""
    problems = []
    expected = len(detection.scenes)
    if rows.num_rows != expected:
        problems.append(f"{rows.num_rows} rows for {expected} scenes")
    indexes = rows.column("scene_index").to_pylist()
    if indexes != list(range(len(indexes))):
        problems.append("scene indexes are not 0..n-1 in order")
    missing = [t for ts in rows.column("thumbnails").to_pylist() for t in ts if not (thumbnails_root / t).is_file()]
    if missing:
        problems.append(f"{len(missing)} thumbnails missing on disk (first: {missing[0]})")
    if any(not c for c in rows.column("caption").to_pylist()):
        problems.append("a row has an empty caption")
    return problems
