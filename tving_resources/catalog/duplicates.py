"""Which scenes show the same footage, per profile, kept in the catalog's database: written whole
by the ``duplicate_footage`` asset, read by search (to fold a group into its best result)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tving_resources.catalog.video_catalog import VideoCatalog

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS duplicate_scenes (profile TEXT NOT NULL, scene_id TEXT NOT NULL, "
    "group_id TEXT NOT NULL, video_id TEXT NOT NULL, video_path TEXT NOT NULL, "
    "start_s DOUBLE PRECISION NOT NULL, end_s DOUBLE PRECISION NOT NULL, PRIMARY KEY (profile, scene_id))",
    "CREATE INDEX IF NOT EXISTS duplicate_scenes_group ON duplicate_scenes (profile, group_id)",
)
_CHUNK = 500


@dataclass(frozen=True)
class DuplicateScene:
    """A scene of a duplicate group, as search lists it beside the group's best result."""

    scene_id: str
    video_id: str
    video_path: str
    start: float
    end: float

    def to_dict(self) -> dict:
        return {
            "scene_id": self.scene_id,
            "video_id": self.video_id,
            "video_path": self.video_path,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
        }


class DuplicateRegistry:
    def __init__(self, catalog: VideoCatalog):
        self._catalog = catalog
        with catalog.transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    def replace(self, profile: str, groups: Mapping[str, Sequence[DuplicateScene]]) -> None:
        """The profile's groups (group id -> scenes), all at once: one transaction, so readers see
        the old groups or the new."""
        rows = [
            {
                "p": profile,
                "s": scene.scene_id,
                "g": group_id,
                "v": scene.video_id,
                "path": scene.video_path,
                "a": scene.start,
                "b": scene.end,
            }
            for group_id, scenes in groups.items()
            for scene in scenes
        ]
        with self._catalog.transaction() as conn:
            conn.execute("DELETE FROM duplicate_scenes WHERE profile = :p", {"p": profile})
            if rows:
                conn.executemany(
                    "INSERT INTO duplicate_scenes (profile, scene_id, group_id, video_id, video_path, start_s, end_s) "
                    "VALUES (:p, :s, :g, :v, :path, :a, :b)",
                    rows,
                )

    def groups_of(self, profile: str, scene_ids: Sequence[str]) -> dict[str, str]:
        """scene id -> its group id (scenes in no group are left out)."""
        ids = list(dict.fromkeys(scene_ids))
        found: dict[str, str] = {}
        with self._catalog.transaction() as conn:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ", ".join(f":s{i}" for i in range(len(chunk)))
                rows = conn.execute(
                    f"SELECT scene_id, group_id FROM duplicate_scenes WHERE profile = :p AND scene_id IN ({marks})",
                    {"p": profile, **{f"s{i}": s for i, s in enumerate(chunk)}},
                ).fetchall()
                found.update(dict(rows))
        return found

    def members(self, profile: str, group_ids: Sequence[str] | None = None) -> dict[str, list[DuplicateScene]]:
        """group id -> its scenes (by scene id); every group when ``group_ids`` is None."""
        query = (
            "SELECT group_id, scene_id, video_id, video_path, start_s, end_s FROM duplicate_scenes WHERE profile = :p"
        )
        found: dict[str, list[DuplicateScene]] = defaultdict(list)
        with self._catalog.transaction() as conn:
            if group_ids is None:
                batches = [conn.execute(query, {"p": profile}).fetchall()]
            else:
                ids = list(dict.fromkeys(group_ids))
                batches = []
                for start in range(0, len(ids), _CHUNK):
                    chunk = ids[start : start + _CHUNK]
                    marks = ", ".join(f":g{i}" for i in range(len(chunk)))
                    batches.append(
                        conn.execute(
                            f"{query} AND group_id IN ({marks})",
                            {"p": profile, **{f"g{i}": g for i, g in enumerate(chunk)}},
                        ).fetchall()
                    )
        for rows in batches:
            for group, *scene in rows:
                found[group].append(DuplicateScene(*scene))
        return {g: sorted(scenes, key=lambda s: s.scene_id) for g, scenes in found.items()}

    def forget_video(self, video_id: str) -> None:
        """A removed video's scenes leave their groups; a group left with one scene is no group."""
        with self._catalog.transaction() as conn:
            conn.execute("DELETE FROM duplicate_scenes WHERE video_id = :v", {"v": video_id})
            conn.execute(
                "DELETE FROM duplicate_scenes WHERE (profile, group_id) IN (SELECT profile, group_id FROM "
                "duplicate_scenes GROUP BY profile, group_id HAVING COUNT(*) < 2)"
            )
