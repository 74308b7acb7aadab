"""Recent query vectors, kept: a page reloaded, "more results", a shared link or a popular query
is encoded once (encoding is the largest part of a search's CPU time on a small machine)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

CACHED_QUERIES = 4096  # ~6 MB of 384-d vectors


class QueryVectorCache:
    """Least-recently-used query vectors per encoder (the model id is part of the key, so a new
    model never answers from an old one's vectors)."""

    def __init__(self, size: int = CACHED_QUERIES):
        self.size = size
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def encode(self, model_id: str, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """The vectors of ``texts``: cached ones reused, the others encoded together."""
        found: dict[int, np.ndarray] = {}
        with self._lock:
            for i, text in enumerate(texts):
                vector = self._vectors.get((model_id, text))
                if vector is not None:
                    self._vectors.move_to_end((model_id, text))
                    found[i] = vector
            self.hits += len(found)
            self.misses += len(texts) - len(found)
        missing = [i for i in range(len(texts)) if i not in found]
        if missing:
            fresh = encode([texts[i] for i in missing])
            with self._lock:
                for i, vector in zip(missing, fresh, strict=True):
                    found[i] = vector
                    self._vectors[(model_id, texts[i])] = vector
                    if len(self._vectors) > self.size:
                        self._vectors.popitem(last=False)
        return np.stack([found[i] for i in range(len(texts))]) if texts else np.zeros((0, 0), np.float32)
