"""Scene search: a Korean or English query -> the top-k frames, each explaining its score.

1. Korean queries are translated to English when the profile's text encoder is English-only.
2. Candidate scenes come from three signals: caption vectors, transcript vectors, and full-text
   search over caption + transcript.
3. Every candidate gets all three scores (vector similarities are recomputed exactly from the
   stored vectors, so a scene found by one signal is not penalised for missing another's list),
   and the scores are fused (see :data:`FUSION_METHODS`; the default was chosen by measurement,
   see ``query_app.evaluate``).
4. The best frame of each scene is chosen by its frame vectors; one result per scene.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa

from tving_resources.config import Paths, resolve_paths
from tving_resources.runtime import ModelRuntime
from tving_resources.store import SceneFilter, SceneStore

# What a candidate row carries: vectors to score it, and what a result shows.
DISPLAY_COLUMNS = [
    "scene_id", "video_id", "video_name", "video_path", "scene_index", "start", "end", "caption", "transcript",
    "keyframe_times", "thumbnails",
]  # fmt: skip
ROW_COLUMNS = [c for c in DISPLAY_COLUMNS if c != "scene_id"] + ["caption_vector", "transcript_vector", "frame_vectors"]
MAX_QUERY_CHARS = 500
MAX_K = 50
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
_SNIPPET_CHARS = 240


def has_hangul(text: str) -> bool:
    return bool(_HANGUL.search(text))


@dataclass(frozen=True)
class FusionWeights:
    caption: float = 1.0
    transcript: float = 1.0
    text: float = 1.0  # full-text (BM25) signal
    frame: float = 0.0  # weight of the best-frame score in the scene score

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


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


@dataclass(frozen=True)
class SearchResult:
    rank: int
    score: float
    scene_id: str
    video_id: str
    video_name: str
    video_path: str
    scene_index: int
    start: float
    end: float
    timestamp: float  # of the chosen frame
    thumbnail: str  # relative to the artifacts folder (what the web API serves)
    thumbnail_path: str  # absolute path on this machine
    caption: str
    transcript_snippet: str
    scores: dict[str, float]  # per signal: caption, transcript, text, frame

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SearchResponse:
    query: str
    query_used: str  # the translated text when the query was translated
    translated: bool
    fusion: str
    results: tuple[SearchResult, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "query_used": self.query_used,
            "translated": self.translated,
            "fusion": self.fusion,
            "results": [r.to_dict() for r in self.results],
            "timings_ms": self.timings_ms,
        }


class QueryError(ValueError):
    """The query or its options are invalid; the message says how."""


class SceneSearch:
    """Loads the query-side models once; answers many queries (thread-safe reads)."""

    def __init__(
        self,
        runtime: ModelRuntime | None = None,
        paths: Paths | None = None,
        lancedb_uri: str | None = None,
        fusion: str = DEFAULT_FUSION,
        weights: FusionWeights | None = None,
        candidates: int = 30,
    ):
        if fusion not in FUSION_METHODS:
            raise QueryError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSION_METHODS)}")
        self.runtime = runtime or ModelRuntime()
        self.paths = paths or resolve_paths()
        self.uri = lancedb_uri or self.paths.lancedb_uri
        self.fusion = fusion
        self.weights = weights or FusionWeights()
        self.candidates = candidates
        self._store: SceneStore | None = None
        self._pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="tving-search")

    # ------------------------------------------------------------------ setup
    @property
    def store(self) -> SceneStore:
        if self._store is None:
            self._store = SceneStore(self.uri, self.runtime.stamp())
        return self._store

    def warm_up(self) -> dict[str, float]:
        """Load the query-side models and open the table; seconds per step."""
        spent = self.runtime.warm_up(("text_encoder", "frame_encoder", "translator"))
        started = time.perf_counter()
        self.store.table()
        spent["table"] = time.perf_counter() - started
        self.search("warm up", k=1)  # first query pays one-off costs (index files, thread pools)
        return spent

    # ----------------------------------------------------------------- search
    def search(
        self,
        query: str,
        k: int = 5,
        video_ids: Sequence[str] = (),
        start: float | None = None,
        end: float | None = None,
        per_video: int | None = None,
    ) -> SearchResponse:
        query = (query or "").strip()
        if not query:
            raise QueryError("the query is empty")
        if len(query) > MAX_QUERY_CHARS:
            raise QueryError(f"the query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}")
        if not 1 <= k <= MAX_K:
            raise QueryError(f"k must be between 1 and {MAX_K}")
        if per_video is not None and per_video < 1:
            raise QueryError("per_video must be at least 1")
        try:
            where = SceneFilter(tuple(video_ids), start, end).to_where()
        except ValueError as exc:
            raise QueryError(str(exc)) from exc
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        query_used, translated = self._translate(query)
        text_encoder, frame_encoder = self.runtime.text_encoder(), self.runtime.frame_encoder()
        qvec = text_encoder.encode_query(query_used)
        fvec = (
            qvec if frame_encoder.encode_query is text_encoder.encode_query else frame_encoder.encode_query(query_used)
        )
        timings["encode"] = _ms(clock)

        clock = time.perf_counter()
        n = max(self.candidates, k * 4)
        store = self.store
        # Every signal's query returns the columns needed to score and show a scene, so no
        # second lookup is needed (it cost more than the searches themselves at 100k rows).
        jobs = [
            self._pool.submit(store.vector_search, "caption_vector", qvec, n, where, ROW_COLUMNS),
            self._pool.submit(store.vector_search, "transcript_vector", qvec, n, where, ROW_COLUMNS),
            self._pool.submit(store.text_search, query_used, n, where, ROW_COLUMNS),
        ]
        found = [job.result() for job in jobs]
        timings["candidates"] = _ms(clock)

        clock = time.perf_counter()
        candidates = _unique_rows([t.select(["scene_id", *ROW_COLUMNS]) for t in found if t.num_rows])
        if candidates.num_rows == 0:
            timings["total"] = round(sum(timings.values()), 2)
            return SearchResponse(query, query_used, translated, self.fusion, (), timings)
        bm25 = dict(zip(found[2].column("scene_id").to_pylist(), found[2].column("bm25").to_pylist(), strict=True))
        scene_ids = candidates.column("scene_id").to_pylist()
        scores = {
            "caption": _matrix(candidates.column("caption_vector")) @ qvec,
            "transcript": _matrix(candidates.column("transcript_vector")) @ qvec,
            "text": np.array([_squash_bm25(bm25.get(sid, 0.0)) for sid in scene_ids], dtype=np.float32),
        }
        fused = FUSION_METHODS[self.fusion](scores, self.weights)
        frame_scores, best_frames = _best_frames(candidates.column("frame_vectors"), fvec)
        if self.weights.frame > 0:
            fused = fused + self.weights.frame * frame_scores
        order = np.argsort(-fused, kind="stable")
        video_ids = candidates.column("video_id").to_pylist()
        chosen: list[int] = []
        per_video_count: dict[str, int] = {}
        for i in order:
            if per_video and per_video_count.get(video_ids[i], 0) >= per_video:
                continue
            per_video_count[video_ids[i]] = per_video_count.get(video_ids[i], 0) + 1
            chosen.append(int(i))
            if len(chosen) == k:
                break
        shown = candidates.take(chosen).select(DISPLAY_COLUMNS).to_pylist()
        results = []
        for rank, (i, row) in enumerate(zip(chosen, shown, strict=True), start=1):
            signal = {name: round(float(values[i]), 4) for name, values in scores.items()}
            signal["frame"] = round(float(frame_scores[i]), 4)
            results.append(self._result(rank, float(fused[i]), row, int(best_frames[i]), signal, query_used))
        timings["rank"] = _ms(clock)
        timings["total"] = round(sum(timings.values()), 2)
        return SearchResponse(query, query_used, translated, self.fusion, tuple(results), timings)

    def _translate(self, query: str) -> tuple[str, bool]:
        translator = self.runtime.translator() if has_hangul(query) else None
        if translator is None:
            return query, False
        return translator.translate([query])[0], True

    def _result(self, rank: int, score: float, row: dict, frame: int, scores: dict, query: str) -> SearchResult:
        thumbnails = row["thumbnails"] or [""]
        times = row["keyframe_times"] or [row["start"]]
        frame = min(frame, len(thumbnails) - 1)
        return SearchResult(
            rank=rank,
            score=round(score, 4),
            scene_id=row["scene_id"],
            video_id=row["video_id"],
            video_name=row["video_name"],
            video_path=row["video_path"],
            scene_index=row["scene_index"],
            start=round(row["start"], 3),
            end=round(row["end"], 3),
            timestamp=round(times[frame], 3),
            thumbnail=thumbnails[frame],
            thumbnail_path=str(self.paths.artifacts_dir / thumbnails[frame]) if thumbnails[frame] else "",
            caption=row["caption"],
            transcript_snippet=snippet(row["transcript"], query),
            scores=scores,
        )


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    """A fixed-size-list column of vectors as an (n, dim) float32 matrix, without Python lists."""
    array = column.combine_chunks()
    return array.flatten().to_numpy(zero_copy_only=False).reshape(len(array), array.type.list_size)


def _best_frames(column: pa.ChunkedArray, fvec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per scene: the best frame's similarity to the query, and that frame's position."""
    lists = column.combine_chunks()
    sims = _matrix(pa.chunked_array([lists.flatten()])) @ fvec if len(lists.flatten()) else np.zeros(0)
    offsets = lists.offsets.to_numpy()
    best_scores = np.zeros(len(lists), dtype=np.float32)
    best_index = np.zeros(len(lists), dtype=np.int64)
    for i in range(len(lists)):
        lo, hi = offsets[i], offsets[i + 1]
        if hi > lo:
            j = int(np.argmax(sims[lo:hi]))
            best_scores[i], best_index[i] = sims[lo + j], j
    return best_scores, best_index


def _unique_rows(tables: list[pa.Table]) -> pa.Table:
    """Concatenate candidate tables, keeping the first row of each scene."""
    if not tables:
        return pa.table({"scene_id": pa.array([], pa.string())})
    merged = pa.concat_tables(tables)
    first: dict[str, int] = {}
    for i, sid in enumerate(merged.column("scene_id").to_pylist()):
        first.setdefault(sid, i)
    return merged.take(list(first.values()))


def _squash_bm25(score: float, scale: float = 5.0) -> float:
    """Map an unbounded BM25 score to [0, 1) so it is comparable with cosine similarities."""
    return 1.0 - math.exp(-max(score, 0.0) / scale)


def snippet(text: str, query: str, width: int = _SNIPPET_CHARS) -> str:
    """Up to ``width`` characters of ``text`` around the first query word found in it."""
    text = " ".join((text or "").split())
    if len(text) <= width:
        return text
    lowered = text.lower()
    hits = [lowered.find(w) for w in re.findall(r"\w{3,}", query.lower())]
    hits = [h for h in hits if h >= 0]
    start = max(0, min(hits) - width // 3) if hits else 0
    end = min(len(text), start + width)
    return ("…" if start else "") + text[start:end].strip() + ("…" if end < len(text) else "")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
