"""Full-profile captions from a vision-language chat model (transformers), optionally with a peft
LoRA adapter, and the LoRA fine-tuning that produces such adapters.

The prompt lives here, once: :func:`scene_messages` builds it for inference and for training
alike (the seed trained with one prompt and captioned with another).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from tving_resources.errors import ConfigError
from tving_resources.models.gpu import map_in_batches
from tving_resources.models.wrappers.captioning import CaptionResult, SceneFrames

INSTRUCTION = (
    "Describe this movie scene in one or two English sentences: who is in it, what they are doing, "
    "and where. Use the speech only as context."
)
SPEECH_OPEN, SPEECH_CLOSE = "[Speech in this scene]", "[End of speech]"


def scene_messages(frame_count: int, transcript: str = "") -> list[dict[str, Any]]:
    """The one chat prompt for a scene: each frame marked, then the speech, then the instruction.

    The images themselves are passed to the processor in the same order as the markers.
    """
    content: list[dict[str, Any]] = []
    for i in range(frame_count):
        content.append({"type": "text", "text": f"Frame {i + 1}:"})
        content.append({"type": "image"})
    if transcript.strip():
        content.append({"type": "text", "text": f"\n{SPEECH_OPEN}\n{transcript.strip()}\n{SPEECH_CLOSE}\n"})
    content.append({"type": "text", "text": INSTRUCTION})
    return [{"role": "user", "content": content}]


def prompt_text(processor: Any, frame_count: int, transcript: str) -> str:
    return processor.apply_chat_template(
        scene_messages(frame_count, transcript), tokenize=False, add_generation_prompt=True
    )


class VLMCaptioner:
    """Batched, greedy captions from an image-text-to-text model (+ LoRA adapter)."""

    reads_transcript = True

    def __init__(
        self,
        model: Any,
        processor: Any,
        model_id: str,
        batch_size: int = 4,
        max_new_tokens: int = 64,
    ):
        self.model = model
        self.processor = processor
        self.model_id = model_id
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens

    def caption(self, scenes: Sequence[SceneFrames]) -> list[CaptionResult]:
        captions = map_in_batches(list(scenes), self.batch_size, self._caption_batch, f"captions ({self.model_id})")
        return [CaptionResult(text, ()) for text in captions]

    def _caption_batch(self, scenes: Sequence[SceneFrames]) -> list[str]:
        import torch

        texts = [prompt_text(self.processor, len(s.images), s.transcript) for s in scenes]
        images = [image for s in scenes for image in s.images]
        inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        inputs = _to_model(inputs, self.model)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        generated = out[:, inputs["input_ids"].shape[1] :]
        return [" ".join(t.split()) for t in self.processor.batch_decode(generated, skip_special_tokens=True)]


def _to_model(inputs: Any, model: Any) -> Any:
    """Move a processor's output to the model's device; floating tensors to its dtype."""
    device, dtype = model.device, next(model.parameters()).dtype
    moved = {}
    for key, value in inputs.items():
        if hasattr(value, "to"):
            value = value.to(device)
            if value.is_floating_point():
                value = value.to(dtype)
        moved[key] = value
    return moved


def load_vlm(location: str, device: str, dtype: Any, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """Model and processor from a folder or hub id; left padding for batched generation."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(location, trust_remote_code=trust_remote_code)
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(
        location, dtype=dtype, attn_implementation="sdpa", trust_remote_code=trust_remote_code
    )
    return model.to(device).eval(), processor


def attach_adapter(model: Any, adapter_dir: str | Path, merge: bool = True) -> Any:
    """A peft LoRA adapter on top of the base model (merged for inference speed)."""
    from peft import PeftModel

    folder = Path(adapter_dir)
    if not (folder / "adapter_config.json").is_file():
        raise ConfigError(f"{folder} is not a LoRA adapter folder (no adapter_config.json)")
    wrapped = PeftModel.from_pretrained(model, str(folder))
    return (wrapped.merge_and_unload() if merge else wrapped).eval()


# ----------------------------------------------------------------------------- fine-tuning
@dataclass(frozen=True)
class TrainingExample:
    images: tuple[Image.Image, ...]
    transcript: str
    caption: str


@dataclass
class TrainingReport:
    steps: int
    losses: list[float]
    seconds: float
    trainable_parameters: int
    examples: int
    adapter_dir: str
    base_model: str
    settings: dict[str, Any] = field(default_factory=dict)


def read_training_records(path: str | Path) -> list[dict[str, Any]]:
    """JSONL records in one of three forms (see :func:`record_caption`)."""
    records = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise ConfigError(f"{path}:{number}: not JSON ({exc})") from exc
    if not records:
        raise ConfigError(f"{path}: no training records")
    return records


def record_caption(record: dict[str, Any]) -> str:
    """The target caption of a record.

    - ``{"video": PATH, "start": S, "end": E, "caption": TEXT}`` (a clip; start/end optional)
    - ``{"scene": "<video id>#<scene index>", "caption": TEXT}`` (an indexed scene)
    - the original system's conversation format: ``{"video" | "image": ..., "conversations":
      [{"from": "human", "value": ...}, {"from": "gpt", "value": TEXT}]}`` — the human turn is
      replaced by this project's prompt, so training and inference prompts are the same.
    """
    if "caption" in record:
        return str(record["caption"]).strip()
    for turn in record.get("conversations", []):
        if turn.get("from") in ("gpt", "assistant") and str(turn.get("value", "")).strip():
            return str(turn["value"]).strip()
    raise ConfigError(f"record without a caption or a gpt/assistant turn: {str(record)[:200]}")


def train_lora(
    model: Any,
    processor: Any,
    examples: Sequence[TrainingExample],
    adapter_dir: str | Path,
    steps: int,
    learning_rate: float = 1e-4,
    rank: int = 16,
    alpha: int = 32,
    target_modules: Sequence[str] = ("q_proj", "v_proj"),
    base_model: str = "",
) -> TrainingReport:
    """LoRA on the language model's attention projections; loss on the caption tokens only."""
    import torch
    from peft import LoraConfig, get_peft_model

    if not examples:
        raise ConfigError("no training examples")
    started = time.perf_counter()
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.05, target_modules=list(target_modules),
                        task_type="CAUSAL_LM")  # fmt: skip
    peft_model = get_peft_model(model, config)
    peft_model.train()
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate)
    eos = processor.tokenizer.eos_token or ""
    losses: list[float] = []
    for step in range(steps):
        example = examples[step % len(examples)]
        prompt = prompt_text(processor, len(example.images), example.transcript)
        images = list(example.images) or None
        full = processor(text=[prompt + example.caption + eos], images=images, return_tensors="pt")
        prompt_len = processor(text=[prompt], images=images, return_tensors="pt")["input_ids"].shape[1]
        labels = full["input_ids"].clone()
        labels[:, :prompt_len] = -100  # learn the caption, not the prompt
        batch = _to_model(full, peft_model)  # keeps mm_token_type_ids: Qwen2-VL needs it every step
        loss = peft_model(**batch, labels=labels.to(peft_model.device)).loss
        if not math.isfinite(loss.item()):
            raise ConfigError(f"training diverged at step {step} (loss {loss.item()}); lower the learning rate")
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(round(loss.item(), 5))
    peft_model.eval()
    folder = Path(adapter_dir)
    folder.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(folder))
    report = TrainingReport(
        steps=steps,
        losses=losses,
        seconds=round(time.perf_counter() - started, 2),
        trainable_parameters=sum(p.numel() for p in trainable),
        examples=len(examples),
        adapter_dir=str(folder),
        base_model=base_model,
        settings={"learning_rate": learning_rate, "rank": rank, "alpha": alpha, "target_modules": list(target_modules)},
    )
    (folder / "training_metrics.json").write_text(json.dumps(report.__dict__, indent=1))
    return report
