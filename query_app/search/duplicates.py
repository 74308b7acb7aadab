"""Duplicate footage at query time: which candidates show the same footage (the groups the
``duplicate_footage`` asset keeps in the catalog), and the copies listed beside a result."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import PurePath

from query_app.search.results import DuplicateRef
from tving_resources.catalog.duplicates import DuplicateRegistry
from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.config import Paths


class DuplicateIndex:
    """The duplicate groups of one profile's index."""

    def __init__(self, profile: str, paths: Paths):
        self.profile, self.paths = profile, paths
        self._registry: DuplicateRegistry | None = None
        self._lock = threading.Lock()

    def registry(self) -> DuplicateRegistry | None:
        """None before anything was indexed."""
        if self._registry is None and self.paths.catalog_exists():
            with self._lock:
                if self._registry is None:
                    self._registry = DuplicateRegistry(VideoCatalog(self.paths.catalog_url))
        return self._registry

    def groups_of(self, scene_ids: Sequence[str]) -> dict[str, str]:
        """scene id -> group id, for the scenes that belong to a group."""
        registry = self.registry()
        return registry.groups_of(self.profile, scene_ids) if registry and scene_ids else {}

    def copies(self, shown: dict[str, str]) -> dict[str, tuple[DuplicateRef, ...]]:
        """For each shown scene (scene id -> its group id): the other scenes of its group."""
        registry = self.registry()
        if registry is None or not shown:
            return {}
        members = registry.members(self.profile, sorted(set(shown.values())))
        return {
            scene: tuple(
                DuplicateRef(
                    m.scene_id,
                    m.video_id,
                    PurePath(m.video_path).name,
                    m.video_path,
                    round(m.start, 3),
                    round(m.end, 3),
                )
                for m in members.get(group, [])
                if m.scene_id != scene
            )
            for scene, group in shown.items()
        }
