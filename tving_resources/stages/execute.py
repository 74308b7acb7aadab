"""Run one stage of one video in this process: the same function wherever it runs (a run's own
process, ``tving index``, the model worker)."""

from __future__ import annotations

from collections.abc import Callable

from tving_resources.models.runtime import ModelRuntime
from tving_resources.stages import content, media, table
from tving_resources.stages.outcome import StageOutcome, StageRequest
from tving_resources.stages.run import StageRun

STAGE_FUNCTIONS: dict[str, Callable[[StageRun], StageOutcome]] = {
    "video_metadata": media.video_metadata,
    "scenes": media.scenes,
    "keyframes": media.keyframes,
    "onscreen_text": content.onscreen_text,
    "faces": content.faces,
    "transcript": content.transcript,
    "captions": content.captions,
    "scene_vectors": content.scene_vectors,
    "scene_rows": table.scene_rows,
    "scene_index": table.scene_index,
}


def run_stage(request: StageRequest, runtime: ModelRuntime) -> StageOutcome:
    """Materialize ``request.asset`` for ``request.video_id`` with ``runtime``'s models.

    Raises:
        StageError: the stage failed for a reason the message gives (recorded in the catalog).
    """
    return STAGE_FUNCTIONS[request.asset](StageRun(request, runtime))
