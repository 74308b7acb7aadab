"""Search by example: an image (a photo, a still), or a scene's own frames ("more like this").

The example becomes one vector in the frame vectors' space: the lite profile describes the image
with its captioner and embeds the description (the space its frame vectors live in), the full
profile embeds it with CLIP. Scenes are ranked by their best frame's similarity. Candidates come
from the caption vectors' index where frames and captions share a space (lite); otherwise (CLIP
frames, text captions) every scene's frames are compared, a scan that grows with the table.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from PIL import Image

from query_app.search.engine import SceneSearch
from query_app.search.fusion import best_frames
from query_app.search.results import DISPLAY_COLUMNS, SHOW_COLUMNS, QueryError, SearchResponse, elapsed_ms
from tving_resources.store.scene_store import is_scene_id

SCENE_ID_CHARS = 16  # ":" and 5 digits after the video id


def parse_scene_id(scene_id: str) -> str:
    """A scene id (``<video id>:<5 digits>``), checked: it goes into a filter string."""
    if not is_scene_id(scene_id):
        raise QueryError(f"invalid scene id {scene_id[:80]!r} (expected <video id>:<5 digits>)")
    return scene_id


class SimilarSearch:
    def __init__(self, engine: SceneSearch):
        self.engine = engine

    def by_image(self, image: Image.Image, **options: Any) -> SearchResponse:
        clock = time.perf_counter()
        fvec = self.engine.encoders.frame_encoder().encode_images([image.convert("RGB")])[0]
        return self._search(fvec, "an image", options, {"encode": elapsed_ms(clock)})

    def by_scene(self, scene_id: str, **options: Any) -> SearchResponse:
        """Scenes like ``scene_id`` (itself left out), from its own frame vectors."""
        scene_id = parse_scene_id(scene_id)
        rows = self.engine.store.table().search().where(f"scene_id = '{scene_id}'").select(["frame_vectors"])
        found = rows.limit(1).to_arrow()
        if found.num_rows == 0:
            raise QueryError(f"no scene {scene_id!r} in the index")
        frames = np.asarray(found.column("frame_vectors")[0].as_py(), dtype=np.float32)
        fvec = frames.mean(axis=0)
        fvec /= np.linalg.norm(fvec) or 1.0
        return self._search(fvec, f"scenes like {scene_id}", options, {}, exclude=scene_id)

    def _search(
        self, fvec: np.ndarray, label: str, options: dict, timings: dict, exclude: str | None = None
    ) -> SearchResponse:
        engine = self.engine
        # the profile's minimum score is a probability of relevance, calibrated for text queries
        # only: an example's frame similarity has no such default
        options = {**options, "min_score": options.get("min_score") or 0.0}
        request = engine.prepare(label, **options)  # validates k, filters, per_video
        store = engine.store.snapshot()
        clock = time.perf_counter()
        n = max(engine.candidates, 4 * request.k)
        present = set(store.table().schema.names)
        columns = [c for c in SHOW_COLUMNS if c in present]
        if engine.encoders.frame_encoder().queries_in_text_space:
            hits = store.vector_search_batch("caption_vector", fvec, n, request.where)
            rows = store.take_rows(hits.column("_rowid").to_pylist(), columns)
        else:
            query = store.table().search().select(columns).limit(None)
            rows = (query.where(request.where) if request.where else query).to_arrow()
        timings["candidates"] = elapsed_ms(clock)
        scores, best = best_frames(rows.column("frame_vectors"), fvec) if rows.num_rows else (np.zeros(0), None)
        shown = rows.select([c for c in DISPLAY_COLUMNS if c in present]).to_pylist()
        results, per_video = [], {}
        for i in np.argsort(-scores, kind="stable"):
            row = shown[i]
            if row["scene_id"] == exclude:
                continue
            if scores[i] < request.min_score:
                break
            if request.per_video and per_video.get(row["video_id"], 0) >= request.per_video:
                continue
            per_video[row["video_id"]] = per_video.get(row["video_id"], 0) + 1
            score = float(scores[i])
            results.append(engine.result_from_row(len(results) + 1, score, row, int(best[i]), {"frame": score}, ""))
            if len(results) == request.k:
                break
        timings["rank"] = elapsed_ms(clock)
        return SearchResponse(label, label, False, "frame", engine.people.with_people(results), timings)
