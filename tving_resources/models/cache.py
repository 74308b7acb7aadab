"""A process-wide cache of loaded models, with load counters.

Dagster re-creates resources for every run, so models kept on a resource instance would load again
for every run of a CLI call or a sensor burst. This cache is what makes "each model loaded once per
process" true; its counters let tests assert it instead of assuming it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ModelCache:
    def __init__(self) -> None:
        self._models: dict[str, Any] = {}
        self._loads: Counter[str] = Counter()
        self._lock = threading.RLock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, key: str, loader: Callable[[], T]) -> T:
        """The model cached under ``key``, loading it with ``loader`` the first time.

        A load holds only its own key's lock: a model that takes seconds to load (the web
        server's describe models) never stalls a thread asking for another, loaded one.
        """
        with self._lock:
            if key in self._models:
                return self._models[key]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._models:  # loaded by another thread meanwhile
                    return self._models[key]
            model = loader()
            with self._lock:
                self._models[key] = model
                self._loads[key] += 1
            return model

    def load_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._loads)

    def clear(self) -> None:
        """Forget every model (tests; freeing memory). Counters are kept: they count loads."""
        with self._lock:
            self._models.clear()


MODEL_CACHE = ModelCache()
