"""Machine translation with transformers seq2seq models (MarianMT: opus-mt-ko-en for Korean
queries when the text encoder reads English only; an en->ko model for Korean descriptions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tving_resources.models.gpu import map_in_batches


class Translator:
    def __init__(self, model: Any, tokenizer: Any, model_id: str, batch_size: int = 16, max_new_tokens: int = 256):
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens

    def translate(self, texts: Sequence[str]) -> list[str]:
        return map_in_batches(list(texts), self.batch_size, self._batch, f"translation ({self.model_id})")

    def _batch(self, texts: Sequence[str]) -> list[str]:
        import torch

        inputs = self.tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True, max_length=512)
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens)
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


def load_translator(location: str, model_id: str, device: str, dtype: Any, batch_size: int = 16) -> Translator:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(location)
    model = AutoModelForSeq2SeqLM.from_pretrained(location, dtype=dtype).to(device).eval()
    return Translator(model, tokenizer, model_id, batch_size=batch_size)
