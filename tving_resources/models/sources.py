"""Where a model's weights come from: a local folder, the models folder, or the Hugging Face hub.

A model is named by a hub id (``WhereIsAI/UAE-Large-V1``) or a folder. The models folder
(``TVING_MODELS_DIR``) is searched first, at ``<models>/<hub id>``; this is also where
``tving models pull`` saves downloads, so a machine without a hub (like the ones the tests run on)
loads exactly what a connected machine fetched. When the weights are missing and the hub cannot be
reached the error names the model, every place looked, and the command that fetches it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tving_resources.errors import ModelNotAvailableError

T = TypeVar("T")
PULL_HINT = "tving models pull --profile full"


def hub_offline() -> bool:
    flags = (os.environ.get(v, "").strip().lower() for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(flag in ("1", "true", "yes") for flag in flags)


@dataclass(frozen=True)
class ModelSource:
    """Where one model will be loaded from."""

    model_id: str  # as configured
    role: str  # speech, captioner, ... (for messages)
    local_path: Path | None  # a folder that exists, or None: use the hub id
    looked_in: tuple[Path, ...]

    @property
    def location(self) -> str:
        """What to hand to the library's loader: the folder, or the hub id."""
        return str(self.local_path) if self.local_path else self.model_id

    def not_available(self, cause: object = None) -> ModelNotAvailableError:
        places = "\n".join(f"  - {p}" for p in self.looked_in) or "  (no local candidates)"
        reason = f" ({cause})" if cause else ""
        hub = "the hub is off (HF_HUB_OFFLINE=1)" if hub_offline() else "the hub could not be reached"
        return ModelNotAvailableError(
            f"{self.role} model {self.model_id!r} is not on this machine{reason}.\n"
            f"Looked in:\n{places}\nand {hub}. On a connected machine run `{PULL_HINT}` "
            f"(it saves into the models folder), then copy that folder here and set TVING_MODELS_DIR."
        )


def local_candidates(model_id: str, models_dir: Path) -> tuple[Path, ...]:
    as_path = Path(model_id).expanduser()
    if as_path.is_absolute() or model_id.startswith((".", "~")):
        return (as_path,)
    return (models_dir / model_id, models_dir / model_id.replace("/", "--"))


def resolve(model_id: str, models_dir: Path, role: str) -> ModelSource:
    """Find ``model_id`` locally, else plan to use the hub (refused up front when offline)."""
    candidates = local_candidates(model_id, models_dir)
    for candidate in candidates:
        if candidate.exists():
            return ModelSource(model_id, role, candidate, candidates)
    source = ModelSource(model_id, role, None, candidates)
    if hub_offline() or Path(model_id).expanduser().is_absolute():
        raise source.not_available()
    return source


def load_with(source: ModelSource, loader: Callable[[str], T]) -> T:
    """Run ``loader(location)``; a failure to fetch weights from the hub becomes the clear error."""
    try:
        return loader(source.location)
    except (OSError, ValueError, RuntimeError) as exc:
        if source.local_path is not None:
            raise  # the weights are here; this is another problem and should surface as is
        raise source.not_available(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from exc
