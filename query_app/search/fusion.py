"""Scoring: fusing the signals' scores into one, the best frame of a scene."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class FusionWeights:
    caption: float = 1.0
    transcript: float = 1.0
    text: float = 1.0  # full-text (BM25) signal
    frame: float = 0.0  # weight of the best-frame score in the scene score


def fuse_max(scores: dict[str, np.ndarray], weights: FusionWeights) -> np.ndarray:
    """The strongest weighted signal wins: a signal with no match cannot drown a strong one."""
    parts = [getattr(weights, name) * s for name, s in scores.items() if getattr(weights, name) > 0]
    return np.max(parts, axis=0)


def fuse_sum(scores: dict[str, np.ndarray], weights: FusionWeights) -> np.ndarray:
    total = sum(getattr(weights, name) for name in scores) or 1.0
    return sum(getattr(weights, name) * s for name, s in scores.items()) / total


def fuse_rrf(scores: dict[str, np.ndarray], weights: FusionWeights, k: int = 60) -> np.ndarray:
    """Reciprocal-rank fusion over the candidate set (ranks within each signal)."""
    fused = np.zeros(len(next(iter(scores.values()))), dtype=np.float64)
    for name, s in scores.items():
        ranks = np.empty(len(s))
        ranks[np.argsort(-s, kind="stable")] = np.arange(1, len(s) + 1)
        fused += getattr(weights, name) / (k + ranks)
    return fused


FUSION_METHODS: dict[str, Callable[[dict[str, np.ndarray], FusionWeights], np.ndarray]] = {
    "max": fuse_max,
    "sum": fuse_sum,
    "rrf": fuse_rrf,
}
DEFAULT_FUSION = "max"


def vector_matrix(column: pa.ChunkedArray) -> np.ndarray:
    """A fixed-size-list column of vectors (stored as float16, or float32 in older tables) as an
    (n, dim) float32 matrix, without Python lists (numpy multiplies float16 without BLAS: slowly)."""
    array = column.combine_chunks()
    values = array.flatten().to_numpy(zero_copy_only=False).reshape(len(array), array.type.list_size)
    return values.astype(np.float32, copy=False)


def best_frames(column: pa.ChunkedArray, fvec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per scene: the best frame's similarity to the query, and that frame's position."""
    lists = column.combine_chunks()
    sims = vector_matrix(pa.chunked_array([lists.flatten()])) @ fvec if len(lists.flatten()) else np.zeros(0)
    offsets = lists.offsets.to_numpy()
    best_scores = np.zeros(len(lists), dtype=np.float32)
    best_index = np.zeros(len(lists), dtype=np.int64)
    for i in range(len(lists)):
        lo, hi = offsets[i], offsets[i + 1]
        if hi > lo:
            j = int(np.argmax(sims[lo:hi]))
            best_scores[i], best_index[i] = sims[lo + j], j
    return best_scores, best_index


def best_frame(frame_vectors: pa.Array, fvec: np.ndarray) -> tuple[float, int]:
    """(similarity, position) of the frame closest to the query among one scene's frames."""
    if len(frame_vectors) == 0:
        return 0.0, 0
    sims = vector_matrix(pa.chunked_array([frame_vectors])) @ fvec
    best = int(np.argmax(sims))
    return float(sims[best]), best


def squash_bm25(score: float, scale: float = 5.0) -> float:
    """Map an unbounded BM25 score to [0, 1) so it is comparable with cosine similarities."""
    return 1.0 - math.exp(-max(score, 0.0) / scale)
