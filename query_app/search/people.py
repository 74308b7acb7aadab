"""Who is seen where: the people of a scene, a person's scenes, everyone with their counts.

Faces come from the faces table (``faces_<profile>``, written when a video's rows are committed),
people from the catalog's registry (the ``people`` asset groups the faces; users name and merge).
This module reads both and never loads a model; searching by a face photo is in
:mod:`query_app.search.faces`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from query_app.search.results import PersonRef, QueryError, SearchResult
from tving_resources.catalog.people import PeopleRegistry, Person, PersonNotFoundError
from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.config import Paths
from tving_resources.store.faces import FaceStore
from tving_resources.store.scene_store import connect, list_table_names
from tving_resources.store.tables import TableRegistry

SCENE_COLUMNS = ("scene_id", "video_id", "video_path", "start", "end")


@dataclass(frozen=True)
class PersonSummary:
    """One person as `tving people` and ``GET /people`` show them."""

    id: str
    name: str | None
    faces: int
    scene_count: int
    video_count: int
    thumbnail: str  # the person's clearest face, relative to the artifacts folder
    scenes: tuple[dict[str, Any], ...]  # {video_id, video_path, start, end}, by video path and time

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["scenes"] = list(self.scenes)
        return data


class PeopleIndex:
    """The people of one profile's index."""

    def __init__(self, uri: str, profile: str, paths: Paths):
        self.uri, self.profile, self.paths = uri, profile, paths
        self.faces = FaceStore(uri, profile)
        self._registry: PeopleRegistry | None = None
        self._lock = threading.Lock()

    def registry(self) -> PeopleRegistry | None:
        """None before anything was indexed (no catalog: nobody to know)."""
        if self._registry is None and self.paths.catalog_exists():
            with self._lock:
                if self._registry is None:
                    self._registry = PeopleRegistry(VideoCatalog(self.paths.catalog_url))
        return self._registry

    def people_in_scenes(self, scene_ids: Sequence[str]) -> dict[str, tuple[PersonRef, ...]]:
        """scene id -> the people whose faces its keyframes show (named first, then by id)."""
        if not scene_ids or not self.faces.exists():
            return {}
        registry = self.registry()
        if registry is None:
            return {}
        faces = self.faces.faces_of_scenes(list(dict.fromkeys(scene_ids)))
        owners = registry.people_of_faces(faces.column("face_id").to_pylist())
        seen: dict[str, dict[str, Person]] = defaultdict(dict)
        for face, scene in zip(faces.column("face_id").to_pylist(), faces.column("scene_id").to_pylist(), strict=True):
            if face in owners:
                seen[scene][owners[face].person_id] = owners[face]
        return {
            scene: tuple(PersonRef(p.person_id, p.name) for p in sorted(people.values(), key=_order))
            for scene, people in seen.items()
        }

    def with_people(self, results: Sequence[SearchResult]) -> tuple[SearchResult, ...]:
        """The results, each listing the people seen in its scene."""
        people = self.people_in_scenes([r.scene_id for r in results])
        return tuple(dataclasses.replace(r, people=people.get(r.scene_id, ())) for r in results)

    def find(self, name_or_id: str) -> Person:
        """A person by id or name; :class:`QueryError` saying what exists when nobody matches."""
        registry = self.registry()
        if registry is None:
            raise QueryError("nothing is indexed yet, so no people are known")
        try:
            return registry.find(name_or_id)
        except PersonNotFoundError as exc:
            raise QueryError(str(exc)) from exc

    def scene_ids_of(self, person: Person) -> list[str]:
        """The scenes where the person's faces were seen, in id order (= video, then time)."""
        registry = self.registry()
        faces = self.faces.faces_by_id(registry.faces_of(person.person_id) if registry else [])
        return sorted(set(faces.column("scene_id").to_pylist()))

    def people(self) -> list[PersonSummary]:
        """Everyone, most scenes first: counts, a face thumbnail, and the scenes (read without
        loading any model)."""
        registry = self.registry()
        if registry is None or not self.faces.exists():
            return []
        everyone = {p.person_id: p for p in registry.people()}
        by_person: dict[str, list[str]] = defaultdict(list)
        for face, person in registry.assignments().items():
            if person in everyone:
                by_person[person].append(face)
        faces = self.faces.faces_by_id([f for fs in by_person.values() for f in fs])
        rows = {r["face_id"]: r for r in faces.select(["face_id", "scene_id", "score", "thumbnail"]).to_pylist()}
        scene_rows = self.scene_spans({r["scene_id"] for r in rows.values()})
        summaries = []
        for person_id, face_ids in by_person.items():
            mine = [rows[f] for f in face_ids if f in rows]
            if not mine:
                continue
            scenes = [scene_rows[s] for s in sorted({r["scene_id"] for r in mine}) if s in scene_rows]
            person = everyone[person_id]
            summaries.append(
                PersonSummary(
                    id=person_id,
                    name=person.name,
                    faces=len(mine),
                    scene_count=len(scenes),
                    video_count=len({s["video_id"] for s in scenes}),
                    thumbnail=max(mine, key=lambda r: r["score"])["thumbnail"],
                    scenes=tuple(sorted(scenes, key=lambda s: (s["video_path"], s["start"]))),
                )
            )
        return sorted(summaries, key=lambda p: (-p.scene_count, p.name is None, p.name or "", p.id))

    def scene_spans(self, scene_ids: set[str]) -> dict[str, dict[str, Any]]:
        """scene id -> {video_id, video_path, start, end} for the scenes still in the live table."""
        db = connect(self.uri)
        name = TableRegistry(self.uri).live_name(self.profile)
        if not scene_ids or name not in list_table_names(db):
            return {}
        quoted = ", ".join(f"'{s}'" for s in sorted(scene_ids))
        rows = db.open_table(name).search().where(f"scene_id IN ({quoted})").select(list(SCENE_COLUMNS))
        return {r["scene_id"]: {k: r[k] for k in SCENE_COLUMNS[1:]} for r in rows.limit(None).to_arrow().to_pylist()}


def _order(person: Person) -> tuple:
    return (person.name is None, (person.name or "").casefold(), person.person_id)
