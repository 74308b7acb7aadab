"""Which stages of a video a model or settings change makes stale.

Every stage result records the settings and models that made it (``StageRecord.params``). A stage
is stale when the parameters it would run with now differ from those of its latest result, or
when it has no result; everything downstream of a stale stage is stale too. The same parameters,
hashed, are each asset's Dagster code version, so the UI marks the same partitions and stages.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tving_resources.errors import MissingArtifactError
from tving_resources.index.artifacts import STAGE_ASSETS, STAGES, VideoArtifacts

# The stage that commits rows to the table: it has no stored result of its own.
INDEX_STAGE = "index"
ALL_STAGES = (*STAGES, INDEX_STAGE)
ASSET_OF = {**STAGE_ASSETS, INDEX_STAGE: "scene_index"}
# stage -> the stages whose results it reads (the asset graph, by stage name)
UPSTREAM: dict[str, tuple[str, ...]] = {
    "video": (),
    "scenes": ("video",),
    "keyframes": ("scenes",),
    "ocr": ("keyframes",),
    "faces": ("keyframes",),
    "transcript": ("video",),
    "captions": ("keyframes", "transcript"),
    "vectors": ("captions", "ocr"),
    "rows": ("vectors", "faces"),
    INDEX_STAGE: ("rows",),
}


def normalized(params: Mapping[str, Any]) -> str:
    """Parameters as stored (JSON, keys sorted): tuples and lists compare equal."""
    return json.dumps(params, sort_keys=True, default=str)


def code_version(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(normalized(params).encode()).hexdigest()[:16]


def downstream(stages: Iterable[str]) -> list[str]:
    """``stages`` and everything that reads them, in pipeline order."""
    chosen = set(stages)
    for stage in ALL_STAGES:  # in order: upstream stages come first
        if chosen & set(UPSTREAM[stage]):
            chosen.add(stage)
    return [s for s in ALL_STAGES if s in chosen]


@dataclass(frozen=True)
class Staleness:
    """Why each stale stage of one video must run again."""

    video_id: str
    reasons: dict[str, str]  # stage -> why (its own change); downstream stages are added by `stages`

    @property
    def stages(self) -> list[str]:
        return downstream(self.reasons)

    @property
    def assets(self) -> list[str]:
        return [ASSET_OF[s] for s in self.stages]

    @property
    def stale(self) -> bool:
        return bool(self.reasons)


def stale_stages(video: VideoArtifacts, current: Mapping[str, Mapping[str, Any]]) -> Staleness:
    """Compare the parameters each stage would use now (``current``, stage -> params) with
    those recorded by its latest result."""
    reasons: dict[str, str] = {}
    for stage in STAGES:
        try:
            record = video.record(stage)
        except MissingArtifactError:
            reasons[stage] = "no result yet"
            continue
        now = current.get(stage, {})
        if normalized(record.params) != normalized(now):
            reasons[stage] = _difference(record.params, now)
    if not reasons:
        try:
            latest = video.lineage("rows")
        except MissingArtifactError:
            latest = {}
        if video.committed() != latest:
            reasons[INDEX_STAGE] = "the latest rows are not in the table"
    return Staleness(video.video_id, reasons)


def _difference(before: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    changed = [
        f"{k}: {before.get(k)!r} -> {now.get(k)!r}"
        for k in sorted(set(before) | set(now))
        if normalized({"v": before.get(k)}) != normalized({"v": now.get(k)})
    ]
    return "; ".join(changed) or "settings changed"
