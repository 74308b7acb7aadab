"""Per-video stage results on disk: ``<data_dir>/videos/<profile>/<video_id>/<stage>.json``
(+ thumbnails, vectors). Each model profile keeps its own results (transcripts, keyframe counts
and captions differ), so indexing with one profile never overwrites what another's table points
to. Assets pass results to the next stage through these files, so each stage can be
re-materialized alone, and the query app can read a video's scenes without Dagster.

Every write goes to a temporary name first and is renamed into place: a crashed stage never
leaves a half-written file behind for the next stage to read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TypeVar

import numpy as np
from pydantic import TypeAdapter

from .errors import MissingArtifactError, VideoNotRegisteredError
from .ids import is_video_id

T = TypeVar("T")


class ArtifactStore:
    def __init__(self, base: str | Path, profile: str):
        self.base = Path(base)  # thumbnails are recorded relative to this (profile included)
        self.profile = profile
        self.root = self.base / profile

    def relative(self, path: Path) -> str:
        """``path`` relative to :attr:`base`, as stored in the index and served by the web API."""
        return path.relative_to(self.base).as_posix()

    def video_dir(self, video_id: str) -> Path:
        if not is_video_id(video_id):
            raise VideoNotRegisteredError(f"{video_id!r} is not a valid video id")
        return self.root / video_id

    def path(self, video_id: str, name: str) -> Path:
        return self.video_dir(video_id) / name

    def exists(self, video_id: str, name: str) -> bool:
        return self.path(video_id, name).exists()

    def save(self, video_id: str, name: str, value: object) -> Path:
        target = self.path(video_id, f"{name}.json")
        payload = TypeAdapter(type(value)).dump_json(value, indent=1)
        _atomic_write_bytes(target, payload)
        return target

    def load(self, video_id: str, name: str, cls: type[T]) -> T:
        source = self.path(video_id, f"{name}.json")
        if not source.is_file():
            raise MissingArtifactError(
                f"{video_id}: no {name!r} result yet; materialize the {name} asset for this video first"
            )
        return TypeAdapter(cls).validate_json(source.read_bytes())

    def save_arrays(self, video_id: str, name: str, **arrays: np.ndarray) -> Path:
        target = self.path(video_id, f"{name}.npz")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, target)
        return target

    def load_arrays(self, video_id: str, name: str) -> dict[str, np.ndarray]:
        source = self.path(video_id, f"{name}.npz")
        if not source.is_file():
            raise MissingArtifactError(
                f"{video_id}: no {name!r} vectors yet; materialize the {name} asset for this video first"
            )
        with np.load(source) as data:
            return {key: data[key] for key in data.files}

    def staging_dir(self, video_id: str, name: str) -> Path:
        """A fresh folder to fill, then :meth:`publish_dir` swaps it in for ``name``."""
        staging = self.path(video_id, f".{name}.staging")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        return staging

    def publish_dir(self, video_id: str, name: str, staging: Path) -> Path:
        target = self.path(video_id, name)
        old = self.path(video_id, f".{name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        return target

    def remove_video(self, video_id: str) -> None:
        shutil.rmtree(self.video_dir(video_id), ignore_errors=True)


def _atomic_write_bytes(target: Path, payload: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(payload)
    os.replace(tmp, target)
