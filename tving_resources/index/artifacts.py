"""Per-video stage results on disk, versioned so that nothing changes under live rows.

::

    <data>/videos/<profile>/<video_id>/
        head.json          the latest result of each stage: what the next stage reads
        committed.json     the results behind the rows now in the table (written after the commit)
        <stage>/<key>/     one result, never modified once published: record.json (its lineage)
                           + result.json | vectors.npz | rows.arrow (+ thumbnails for keyframes)
        .staging/          results being written; renamed into place only when whole

A result's key is a hash of its inputs' keys, the stage's settings and the models that made it,
so an unchanged input is found and reused instead of recomputed, and a changed one is written
beside the old version. Thumbnails live inside their keyframes result, so the rows in the table
point at files that stay put until a newer version's rows are committed; only then is the old
version removed (:meth:`VideoArtifacts.prune`). A crash leaves at worst an unpublished staging
folder or an unreferenced version, which the maintenance asset collects.

Each model profile keeps its own results (``<profile>/``), so indexing with one profile never
touches what another profile's table points to.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

from tving_resources.errors import MissingArtifactError, VideoNotRegisteredError
from tving_resources.files import atomic_write_bytes
from tving_resources.ids import is_video_id
from tving_resources.index.failpoints import failpoint

T = TypeVar("T")

STAGES = ("video", "scenes", "keyframes", "ocr", "faces", "transcript", "captions", "vectors", "rows")
# The Dagster asset that produces each stage's results (for messages a user can act on).
STAGE_ASSETS = {
    "video": "video_metadata",
    "scenes": "scenes",
    "keyframes": "keyframes",
    "ocr": "onscreen_text",
    "faces": "faces",
    "transcript": "transcript",
    "captions": "captions",
    "vectors": "scene_vectors",
    "rows": "scene_rows",
}
_HEAD, _COMMITTED, _RECORD, _STAGING = "head.json", "committed.json", "record.json", ".staging"


@dataclass(frozen=True)
class StageRecord:
    """How one result was made: the keys of its inputs, its settings and models."""

    stage: str
    key: str
    inputs: dict[str, str]
    params: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    run_id: str | None = None


@dataclass(frozen=True)
class Produced(Generic[T]):
    value: T
    key: str
    reused: bool  # found from an earlier run with the same inputs, settings and models


def stage_key(stage: str, inputs: dict[str, str], params: dict[str, Any]) -> str:
    payload = json.dumps({"stage": stage, "inputs": inputs, "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class ArtifactStore:
    """Every video's results for one model profile."""

    def __init__(self, base: str | Path, profile: str):
        self.base = Path(base)  # thumbnails are recorded relative to this (profile included)
        self.profile = profile
        self.root = self.base / profile

    def relative(self, path: Path) -> str:
        """``path`` relative to :attr:`base`, as stored in the index and served by the web API."""
        return path.relative_to(self.base).as_posix()

    def video(self, video_id: str) -> VideoArtifacts:
        return VideoArtifacts(self, video_id)

    def video_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and is_video_id(p.name))

    def remove_video(self, video_id: str) -> None:
        shutil.rmtree(self.video(video_id).folder, ignore_errors=True)


class VideoArtifacts:
    """One video's results. Writers hold the video's lock (:mod:`tving_resources.index.locks`)."""

    def __init__(self, store: ArtifactStore, video_id: str):
        if not is_video_id(video_id):
            raise VideoNotRegisteredError(f"{video_id!r} is not a valid video id")
        self.store = store
        self.video_id = video_id
        self.folder = store.root / video_id

    # ------------------------------------------------------------------ head
    def head(self) -> dict[str, str]:
        return _read_json(self.folder / _HEAD) or {}

    def key_of(self, stage: str) -> str:
        key = self.head().get(stage)
        if key is None or not self.result_dir(stage, key).is_dir():
            raise MissingArtifactError(
                f"{self.video_id}: no {stage!r} result yet; materialize the {STAGE_ASSETS[stage]} asset "
                "for this video first"
            )
        return key

    def _set_head(self, stage: str, key: str) -> None:
        atomic_write_bytes(self.folder / _HEAD, json.dumps({**self.head(), stage: key}, indent=1).encode())

    # --------------------------------------------------------------- results
    def result_dir(self, stage: str, key: str) -> Path:
        return self.folder / stage / key

    def record(self, stage: str, key: str | None = None) -> StageRecord:
        key = key or self.key_of(stage)
        data = _read_json(self.result_dir(stage, key) / _RECORD)
        if data is None:
            raise MissingArtifactError(f"{self.video_id}: the {stage} result {key} is incomplete")
        return StageRecord(**data)

    def load(self, stage: str, cls: type[T], key: str | None = None) -> T:
        folder = self.result_dir(stage, key or self.key_of(stage))
        return _load_value(folder, cls)

    def produce(
        self,
        stage: str,
        inputs: dict[str, str],
        params: dict[str, Any],
        compute: Callable[[Path, Path], T],
        cls: type[T],
        run_id: str | None = None,
    ) -> Produced[T]:
        """The result of ``stage`` for these inputs, settings and models: reused when it exists,
        else ``compute(staging_dir, final_dir)`` writes it (files it makes go in ``staging_dir``;
        ``final_dir`` is where they will be once published). Either way it becomes the head."""
        key = stage_key(stage, inputs, params)
        final = self.result_dir(stage, key)
        reused = final.is_dir()
        if reused:
            value = _load_value(final, cls)
        else:
            staging = self.folder / _STAGING / f"{stage}-{uuid.uuid4().hex[:12]}"
            staging.mkdir(parents=True)
            try:
                value = compute(staging, final)
                _save_value(staging, value)
                record = StageRecord(stage, key, dict(inputs), dict(params), round(time.time(), 3), run_id)
                (staging / _RECORD).write_text(json.dumps(asdict(record), indent=1, default=str))
                final.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.rename(staging, final)  # atomic: the result is whole or absent
                except OSError:
                    if not final.is_dir():
                        raise
                    shutil.rmtree(staging)  # published meanwhile with the same inputs: same content
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        self._set_head(stage, key)
        failpoint(f"stage:{stage}")
        return Produced(value, key, reused)

    def refresh(self, stage: str, key: str, value: Any) -> None:
        """Replace a stored result's value by one that describes the same content afresh (the
        probe of a file that was touched or copied again: same bytes, new modification time).
        Readers see the old value or the new one, never half of one."""
        final = self.result_dir(stage, key)
        staging = final / f".refresh-{uuid.uuid4().hex[:12]}"
        staging.mkdir()
        try:
            _save_value(staging, value)
            for item in staging.iterdir():
                os.replace(item, final / item.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def lineage(self, stage: str, key: str | None = None) -> dict[str, str]:
        """``{stage: key}`` of this result and every result it was made from."""
        chain: dict[str, str] = {}
        todo = [(stage, key or self.key_of(stage))]
        while todo:
            name, k = todo.pop()
            if chain.get(name) == k:
                continue
            chain[name] = k
            todo.extend((s, v) for s, v in self.record(name, k).inputs.items() if s in STAGES)
        return chain

    # ---------------------------------------------------------------- commit
    def committed(self) -> dict[str, str]:
        """The lineage of the rows last committed to the table (empty: none yet)."""
        return _read_json(self.folder / _COMMITTED) or {}

    def mark_committed(self, chain: dict[str, str]) -> None:
        atomic_write_bytes(self.folder / _COMMITTED, json.dumps(chain, indent=1).encode())

    def prune(self, keep: Iterable[dict[str, str]], keep_files: Iterable[str] = ()) -> int:
        """Remove every result not in ``keep`` (chains of ``{stage: key}``), staging folders, and
        files of the pre-versioning layout; files in ``keep_files`` (paths relative to the store's
        base, e.g. thumbnails rows still point to) stay. Returns the entries removed."""
        kept = {(s, k) for chain in keep for s, k in chain.items()}
        protected = {self.store.base / f for f in keep_files}
        removed = 0
        if not self.folder.is_dir():
            return 0
        for entry in sorted(self.folder.iterdir()):
            if entry.name in (_HEAD, _COMMITTED):
                continue
            if entry.is_dir() and entry.name in STAGES:
                for result in sorted(entry.iterdir()):
                    if result.is_dir() and (entry.name, result.name) in kept:
                        continue
                    if result in protected or (result.is_dir() and any(p.parent == result for p in protected)):
                        continue
                    _remove(result)
                    removed += 1
                    failpoint("commit:cleanup")  # an old version half removed
            else:  # staging folders, and results of the layout before versions
                if entry not in protected:
                    _remove(entry)
                    removed += 1
        return removed


# ---------------------------------------------------------------- encoding
def _save_value(folder: Path, value: Any) -> None:
    import pyarrow as pa

    if isinstance(value, pa.Table):
        import pyarrow.ipc as ipc

        with ipc.new_file(str(folder / "rows.arrow"), value.schema) as writer:
            writer.write_table(value)
    elif hasattr(value, "to_arrays"):
        import numpy as np

        with (folder / "vectors.npz").open("wb") as handle:
            np.savez(handle, **value.to_arrays())
    else:
        (folder / "result.json").write_bytes(_adapter(type(value)).dump_json(value, indent=1))


@functools.cache
def _adapter(cls: type) -> TypeAdapter:
    """One adapter per result type a process: building one generates its schema (a few
    milliseconds each time, and a run reads and writes several results)."""
    return TypeAdapter(cls)


def _load_value(folder: Path, cls: type[T]) -> T:
    import pyarrow as pa

    if cls is pa.Table:
        import pyarrow.ipc as ipc

        with ipc.open_file(str(folder / "rows.arrow")) as reader:
            return reader.read_all()  # type: ignore[return-value]
    if hasattr(cls, "from_arrays"):
        import numpy as np

        with np.load(folder / "vectors.npz") as data:
            return cls.from_arrays({k: data[k] for k in data.files})  # type: ignore[attr-defined]
    return _adapter(cls).validate_json((folder / "result.json").read_bytes())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
