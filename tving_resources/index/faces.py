"""The faces stage: every face in each scene's keyframes, aligned and described (128-d), with a
face thumbnail; what the people asset groups and the face search looks through."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.config import Paths
from tving_resources.index.pipeline import KeyframeSet
from tving_resources.media.video import load_rgb, save_jpeg
from tving_resources.store.faces import FACE_DIM, face_schema
from tving_resources.store.schema import scene_id


@dataclass(frozen=True)
class FaceRecord:
    face_id: str  # "<video id>:<scene>:<keyframe>:<n>": stable while the video's keyframes are
    scene_index: int
    timestamp: float  # of the keyframe it was found in
    box: tuple[int, int, int, int]  # left, top, right, bottom in the keyframe thumbnail's pixels
    score: float
    embedding: tuple[float, ...]
    thumbnail: str  # relative to the artifacts base, like keyframe thumbnails


@dataclass(frozen=True)
class SceneFaces:
    model_id: str  # "" when faces are off
    faces: tuple[FaceRecord, ...]

    @classmethod
    def off(cls) -> SceneFaces:
        return cls("", ())

    def of_scene(self, scene_index: int) -> list[FaceRecord]:
        return [f for f in self.faces if f.scene_index == scene_index]

    def embeddings(self) -> np.ndarray:
        return np.asarray([f.embedding for f in self.faces], dtype=np.float32).reshape(len(self.faces), -1)


def detect_faces(
    video_id: str, keyframes: KeyframeSet, encoder, thumbnails_root: Path, out_dir: Path, thumbnail_prefix: str
) -> SceneFaces:
    """The faces of every keyframe; each face's aligned thumbnail saved in ``out_dir`` and recorded
    as ``thumbnail_prefix/<name>`` (where it will be once published)."""
    records = []
    per_scene: dict[int, int] = {}
    for frame in keyframes.frames:
        k = per_scene[frame.scene_index] = per_scene.get(frame.scene_index, -1) + 1
        image = np.asarray(load_rgb(thumbnails_root / frame.thumbnail))
        for n, face in enumerate(encoder.faces(image)):
            name = f"s{frame.scene_index:04d}_k{k}_f{n}.jpg"
            save_jpeg(face.chip, out_dir / name, max_side=face.chip.shape[0], quality=90)
            records.append(
                FaceRecord(
                    face_id=f"{video_id}:{frame.scene_index:05d}:{k}:{n}",
                    scene_index=frame.scene_index,
                    timestamp=frame.timestamp,
                    box=tuple(int(v) for v in face.box),
                    score=float(face.score),
                    embedding=tuple(round(float(v), 6) for v in face.embedding),
                    thumbnail=f"{thumbnail_prefix}/{name}",
                )
            )
    return SceneFaces(encoder.model_id, tuple(records))


def face_rows(video_id: str, faces: SceneFaces) -> pa.Table:
    """A video's faces as rows of the faces table."""
    records = faces.faces
    return pa.table(
        {
            "face_id": [f.face_id for f in records],
            "video_id": [video_id] * len(records),
            "scene_id": [scene_id(video_id, f.scene_index) for f in records],
            "scene_index": pa.array([f.scene_index for f in records], pa.int32()),
            "timestamp": [f.timestamp for f in records],
            "box": pa.array([list(f.box) for f in records], pa.list_(pa.int32(), 4)),
            "score": pa.array([f.score for f in records], pa.float32()),
            "embedding": pa.array([list(f.embedding) for f in records], pa.list_(pa.float32(), FACE_DIM)),
            "thumbnail": [f.thumbnail for f in records],
            "model_id": [faces.model_id] * len(records),
        },
        schema=face_schema(),
    )


@dataclass(frozen=True)
class FacesDeleted:
    tables: int  # faces tables dropped (one per profile)
    videos: int  # videos whose face results and thumbnails were deleted
    people: int  # people forgotten, names included


def delete_every_face(paths: Paths, catalog: VideoCatalog, lock_timeout: float | None = 600.0) -> FacesDeleted:
    """Every face of every profile: the faces tables, each video's face results and thumbnails
    (under its lock, so no run is writing them), and the people with their names. Indexing
    again with faces on finds them again; with faces off (``TVING_FACES=0``) nothing is stored."""
    from tving_resources.catalog.people import PeopleRegistry
    from tving_resources.index.artifacts import ArtifactStore
    from tving_resources.index.locks import video_lock
    from tving_resources.store.scene_store import connect, list_table_names

    db = connect(paths.lancedb_uri)
    tables = [name for name in list_table_names(db) if name.startswith("faces_")]
    for name in tables:
        db.drop_table(name)
    videos = 0
    profiles = [p.name for p in paths.artifacts_dir.iterdir() if p.is_dir()] if paths.artifacts_dir.is_dir() else []
    for profile in profiles:
        store = ArtifactStore(paths.artifacts_dir, profile)
        for video_id in store.video_ids():
            folder = store.video(video_id).folder / "faces"
            if folder.is_dir():
                with video_lock(paths.locks_dir, video_id, lock_timeout):
                    shutil.rmtree(folder, ignore_errors=True)
                videos += 1
    people = PeopleRegistry(catalog).forget_everyone()
    return FacesDeleted(len(tables), videos, people)
