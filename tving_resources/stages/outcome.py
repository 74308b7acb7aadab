"""What a stage is asked to do and what it answers: plain, picklable values, so a stage runs the
same in a run's own process and in the model worker (:mod:`tving_resources.worker`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tving_resources.config import Paths
from tving_resources.media.settings import MediaLimits
from tving_resources.models.runtime import RuntimeConfig
from tving_resources.settings import IndexSettings

# asset -> the folder of its versioned results (scene_index keeps none: it commits)
STAGE_OF_ASSET = {
    "video_metadata": "video",
    "scenes": "scenes",
    "keyframes": "keyframes",
    "onscreen_text": "ocr",
    "faces": "faces",
    "transcript": "transcript",
    "captions": "captions",
    "scene_vectors": "vectors",
    "scene_rows": "rows",
    "scene_index": "index",
}


@dataclass(frozen=True)
class Check:
    """A check of one stage's result, evaluated in that stage. A failed blocking check stops the
    video there (and is recorded in the catalog like a failed stage)."""

    name: str
    asset: str
    blocking: bool
    description: str | None = None


CHECKS = (
    Check(
        "scenes_cover_video",
        "scenes",
        True,
        "Scenes tile the video from 0 to its end (less any excluded end card): no gap, no overlap.",
    ),
    Check("every_scene_has_caption", "captions", True),
    Check(
        "vectors_are_finite_unit_norm",
        "scene_vectors",
        True,
        "Finite, unit-norm vectors of the encoders' declared dimensions (zero = no transcript).",
    ),
    Check(
        "scene_rows_complete",
        "scene_rows",
        True,
        "One row per scene, in order, every thumbnail on disk: checked before the commit.",
    ),
    Check(
        "index_rows_match_scenes",
        "scene_index",
        False,
        "After the commit: the table holds as many rows for this video as it has scenes.",
    ),
)
CHECK_NAMED = {c.name: c for c in CHECKS}


@dataclass(frozen=True)
class StageRequest:
    """One stage of one video, with everything the asking process resolved from its own
    environment (folders, limits, the models' configuration), so that whoever runs it computes
    exactly what that process would have."""

    asset: str  # the asset it materializes: a key of STAGE_OF_ASSET
    video_id: str
    settings: IndexSettings
    runtime: RuntimeConfig  # profile, models folder and adapter filled in
    paths: Paths
    lancedb_uri: str
    limits: MediaLimits
    run_id: str | None = None


@dataclass(frozen=True)
class Meta:
    """A metadata value of another kind than text or number: ``path``, ``md``, ``text`` or ``json``."""

    kind: str
    value: Any


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    problems: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def description(self) -> str | None:
        return "; ".join(self.problems[:5]) if self.problems else None


@dataclass(frozen=True)
class StageOutcome:
    """What a stage produced, for the asset's materialization: its metadata (plain values or
    :class:`Meta`), its checks, a data version, and lines for the run's log."""

    metadata: dict[str, Any]
    checks: tuple[CheckOutcome, ...] = ()
    data_version: str | None = None
    logs: tuple[str, ...] = ()
    worker_pid: int | None = None  # set by the model worker when it ran the stage
