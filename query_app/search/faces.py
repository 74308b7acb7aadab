"""Search by a face: the scenes where the one face of a photo appears, and a person's scenes.

The photo's face is encoded by the profile's face encoder (the one that encoded the library's
faces); the nearest faces in the faces table within the grouping threshold are the matches, and
each scene scores 1 − the distance of its nearest face.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from PIL import Image

from query_app.search.engine import SceneSearch
from query_app.search.results import DISPLAY_COLUMNS, QueryError, SearchResponse, SearchResult, elapsed_ms
from tving_resources.catalog.people import Person
from tving_resources.index.people import FACE_THRESHOLD

SMALL_PHOTO = 1600  # longest side (pixels) below which a photo with no face found is looked at twice as large
FACE_CANDIDATES = 1000  # nearest faces looked at: enough for 5-50 scenes even when a person fills many


class FaceSearch:
    def __init__(self, engine: SceneSearch):
        self.engine = engine

    def by_face(self, image: Image.Image, k: int = 5, per_video: int | None = None) -> SearchResponse:
        """The scenes where the face of ``image`` appears, nearest first; a photo with no face or
        with several is refused with a message saying what to send instead."""
        self.engine.prepare("a face", k=k, per_video=per_video)  # validates k and per_video
        clock = time.perf_counter()
        encoder, pixels = self.engine.encoders.face_encoder(), np.asarray(image.convert("RGB"))
        found = encoder.faces(pixels)
        if not found and max(pixels.shape[:2]) <= SMALL_PHOTO:
            found = encoder.faces(pixels, upsample=encoder.upsample + 1)  # a small face in a small photo
        if not found:
            raise QueryError(
                "no face found in the photo: send one where a face is seen from the front, "
                "at least about 40 pixels high"
            )
        if len(found) > 1:
            raise QueryError(f"the photo shows {len(found)} faces: crop it to the one person you are looking for")
        timings = {"encode": elapsed_ms(clock)}
        clock = time.perf_counter()
        nearest = self.engine.people.faces.nearest(found[0].embedding, FACE_CANDIDATES, max_distance=FACE_THRESHOLD)
        best: dict[str, float] = {}
        scenes = nearest.column("scene_id").to_pylist()
        for scene, distance in zip(scenes, nearest.column("distance").to_pylist(), strict=True):
            best[scene] = min(distance, best.get(scene, distance))
        ordered = sorted(best, key=best.__getitem__)
        results = self.scene_results(ordered, k, per_video, {s: 1.0 - d for s, d in best.items()}, "face")
        timings["rank"] = elapsed_ms(clock)
        return SearchResponse("a face", "a face", False, "face", self.engine.people.with_people(results), timings)

    def scenes_of(self, person: Person, k: int = 5, per_video: int | None = None) -> SearchResponse:
        """A person's scenes, with no query: in video and time order."""
        self.engine.prepare("a person", k=k, per_video=per_video)
        ordered = self.engine.people.scene_ids_of(person)
        results = self.scene_results(ordered, k, per_video, dict.fromkeys(ordered, 1.0), "person")
        label = f"scenes of {person.label}"
        return SearchResponse(label, label, False, "person", self.engine.people.with_people(results), {})

    def scene_results(
        self, scene_ids: Sequence[str], k: int, per_video: int | None, scores: dict[str, float], signal: str
    ) -> list[SearchResult]:
        """Results for ``scene_ids`` in that order, each shown by its middle keyframe."""
        store = self.engine.store
        if not scene_ids or not store.exists():
            return []
        present = set(store.table().schema.names)
        quoted = ", ".join(f"'{s}'" for s in scene_ids)
        query = store.table().search().where(f"scene_id IN ({quoted})")
        found = query.select([c for c in DISPLAY_COLUMNS if c in present]).limit(None).to_arrow()
        rows = {r["scene_id"]: r for r in found.to_pylist()}
        results: list[SearchResult] = []
        per: dict[str, int] = defaultdict(int)
        for scene in scene_ids:
            row = rows.get(scene)
            if row is None or (per_video and per[row["video_id"]] >= per_video):
                continue
            per[row["video_id"]] += 1
            score = round(float(scores.get(scene, 0.0)), 4)
            frame = len(row["thumbnails"] or [""]) // 2
            results.append(self.engine.result_from_row(len(results) + 1, score, row, frame, {signal: score}, ""))
            if len(results) == k:
                break
        return results
