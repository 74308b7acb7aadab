"""Fetch a profile's weights into the models folder, with each library's own download function
(``tving models pull``), and tell where each model would load from (``tving models list``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tving_resources.errors import ModelNotAvailableError
from tving_resources.models.profiles import ModelProfile
from tving_resources.models.sources import local_candidates


@dataclass(frozen=True)
class PlannedModel:
    role: str
    model_id: str
    target: Path  # where `pull` saves it, and where the runtime looks first
    kind: str  # hub-snapshot | faster-whisper | open_clip | lite

    @property
    def present(self) -> bool:
        return self.kind == "lite" or self.target.exists()


def plan(profile: ModelProfile, models_dir: Path) -> list[PlannedModel]:
    roles = {
        "speech": profile.speech_model,
        "captioner": profile.caption_model,
        "caption_adapter": profile.caption_adapter,
        "text_encoder": profile.text_model,
        "transcript_encoder": profile.transcript_model,
        "frame_encoder": profile.frame_model,
        "translator": profile.translation_model,
        "output_translator": profile.output_translation_model,
    }
    planned = []
    for role, model_id in roles.items():
        if not model_id:
            continue
        if model_id.startswith("lite/"):
            planned.append(PlannedModel(role, model_id, models_dir / model_id, "lite"))
        elif role == "frame_encoder":
            name, _, tag = model_id.partition("/")
            planned.append(PlannedModel(role, model_id, models_dir / "open_clip" / name / tag, "open_clip"))
        elif role == "speech":
            planned.append(PlannedModel(role, model_id, local_candidates(model_id, models_dir)[0], "faster-whisper"))
        else:
            planned.append(PlannedModel(role, model_id, local_candidates(model_id, models_dir)[0], "hub-snapshot"))
    return planned


def pull(item: PlannedModel, report: Callable[[str], None] = print) -> Path:
    """Download one model into ``item.target`` (nothing to do for lite models or present ones)."""
    if item.present:
        report(f"  {item.role:<17} {item.model_id}: already at {item.target if item.kind != 'lite' else 'PyPI'}")
        return item.target
    report(f"  {item.role:<17} {item.model_id}: downloading into {item.target} ...")
    try:
        if item.kind == "faster-whisper":
            from faster_whisper import download_model

            download_model(item.model_id, output_dir=str(item.target))
        elif item.kind == "open_clip":
            from huggingface_hub import snapshot_download
            from open_clip import get_pretrained_cfg

            name, _, tag = item.model_id.partition("/")
            repo = (get_pretrained_cfg(name, tag) or {}).get("hf_hub", "").strip("/")
            if not repo:
                raise ModelNotAvailableError(f"open_clip has no hub copy of {item.model_id!r}; download it by hand")
            snapshot_download(repo_id=repo, local_dir=str(item.target))
        else:
            from huggingface_hub import snapshot_download

            snapshot_download(repo_id=item.model_id, local_dir=str(item.target))
    except ModelNotAvailableError:
        raise
    except Exception as exc:  # the hub client raises many kinds; all mean the same to the user
        raise ModelNotAvailableError(
            f"could not download {item.model_id!r} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "is this machine online, and HF_HUB_OFFLINE unset?"
        ) from exc
    size = sum(f.stat().st_size for f in item.target.rglob("*") if f.is_file())
    report(f"  {item.role:<17} saved {size / 2**20:,.1f} MB in {item.target}")
    return item.target
