"""Scene search: a Korean or English query -> the top-k frames, each explaining its score.

1. Korean queries are translated to English when the profile's text encoder is English-only.
2. Candidate scenes come from three signals: caption vectors, transcript vectors, and full-text
   search over caption + transcript.
3. Every candidate gets all three scores (vector similarities are recomputed exactly from the
   stored vectors, so a scene found by one signal is not penalised for missing another's list),
   and the scores are fused (see :data:`FUSION_METHODS`; the default was chosen by measurement,
   see ``query_app.evaluation.evaluate``).
4. The best frame of each scene is chosen by its frame vectors; one result per scene.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import threadpoolctl

from query_app.search.calibration import CALIBRATIONS, Calibration
from query_app.search.duplicates import DuplicateIndex
from query_app.search.fusion import (
    DEFAULT_FUSION,
    FUSION_METHODS,
    FusionWeights,
    best_frame,
    best_frames,
    squash_bm25,
    vector_matrix,
)
from query_app.search.moments import MomentFinder
from query_app.search.people import PeopleIndex
from query_app.search.query_cache import QueryVectorCache
from query_app.search.ranking import pick, result_from_row, score_candidates
from query_app.search.results import (
    DEFAULT_MIN_SCORE,
    DISPLAY_COLUMNS,
    MAX_K,
    MAX_QUERY_CHARS,
    SCORE_COLUMNS,
    SHOW_COLUMNS,
    SIGNALS,
    WEAK_SCORE,
    QueryError,
    SearchRequest,
    SearchResponse,
    SearchResult,
    elapsed_ms,
    has_hangul,
)
from tving_resources.config import Paths, fold_duplicates_from_env, resolve_paths
from tving_resources.models.runtime import ModelRuntime
from tving_resources.store.scene_store import (
    AnnSettings,
    SceneFilter,
    SceneStore,
    connect,
    list_table_names,
    table_stamp,
)
from tving_resources.store.schema import runtime_stamp
from tving_resources.store.tables import TableRegistry


@dataclass
class _EncodedBatch:
    requests: list[SearchRequest]
    texts: list[str]  # after translation
    translated: list[bool]
    qvecs: np.ndarray
    fvecs: np.ndarray
    text_jobs: list[Future]  # full-text searches, already running
    n: int  # candidates per signal
    timings: dict[str, float]
    store: SceneStore  # the table version every read of the batch uses
    tvecs: np.ndarray  # query vectors in the transcript vectors' space (qvecs unless it has its own)


class SceneSearch:
    """Loads the query-side models once; answers many queries, alone or in batches.

    Batches matter on small CPUs: a LanceDB query has a fixed cost of several milliseconds, and
    one batched vector query for many query vectors costs little more than one for a single
    vector. :class:`SearchBatcher` groups concurrent requests (the web server's) into batches.
    """

    def __init__(
        self,
        runtime: ModelRuntime | None = None,
        paths: Paths | None = None,
        lancedb_uri: str | None = None,
        fusion: str = DEFAULT_FUSION,
        weights: FusionWeights | None = None,
        candidates: int = 30,
        ann: AnnSettings | None = None,
        signals: Sequence[str] = SIGNALS,
        fold_duplicates: bool | None = None,
        calibration: Calibration | str | None = "profile",
    ):
        if fusion not in FUSION_METHODS:
            raise QueryError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSION_METHODS)}")
        self.runtime = runtime or ModelRuntime()
        self.paths = paths or resolve_paths()
        self.uri = lancedb_uri or self.paths.lancedb_uri
        self.fusion = fusion
        self.weights = weights or FusionWeights()
        self.candidates = candidates
        self.ann = ann or AnnSettings()
        unknown = set(signals) - set(SIGNALS)
        if unknown or not signals:
            raise QueryError(f"signals must be among {', '.join(SIGNALS)}")
        self.signals = tuple(signals)  # which signals gather candidates (all three, or one for evaluation)
        self.people = PeopleIndex(self.uri, self.runtime.profile.name, self.paths)
        self.moments = MomentFinder(self.paths, self.runtime.profile.name)
        self.duplicates = DuplicateIndex(self.runtime.profile.name, self.paths)
        self.query_vectors = QueryVectorCache()
        # scores as probabilities of relevance, where the profile has a fitted calibration
        self.calibration = CALIBRATIONS.get(self.runtime.profile.name) if calibration == "profile" else calibration
        # copies of one footage fold into the best by default (TVING_FOLD_DUPLICATES); per query too
        self.fold_duplicates = fold_duplicates_from_env() if fold_duplicates is None else fold_duplicates
        self._live: tuple[SceneStore, ModelRuntime] | None = None  # the live table, its encoders
        self._registry = TableRegistry(self.uri)
        self._registry_signature: float | None = None
        self._store_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tving-search")
        # The matrix products here are small; OpenBLAS's threads would then spin-wait on both cores
        # and slow the query encoder's own threads down 2x (measured). One BLAS thread is enough.
        threadpoolctl.threadpool_limits(1, user_api="blas")

    # ------------------------------------------------------------------ setup
    @property
    def store(self) -> SceneStore:
        """The live scene table. While a new vector space is being built beside it, search keeps
        answering from the live table with that table's own encoders; when the registry switches
        tables, the next query opens the new one."""
        return self._live_table()[0]

    @property
    def encoders(self) -> ModelRuntime:
        """The runtime whose text and frame encoders made the live table's vectors."""
        return self._live_table()[1]

    def _live_table(self) -> tuple[SceneStore, ModelRuntime]:
        signature = self._registry.signature()  # one stat per batch
        live = self._live
        if live is None or signature != self._registry_signature:
            with self._store_lock:
                if self._live is None or signature != self._registry_signature:
                    self._live = self._open_live_table()
                    self._registry_signature = signature
                live = self._live
        return live

    def _open_live_table(self) -> tuple[SceneStore, ModelRuntime]:
        name = self._registry.live_name(self.runtime.profile.name)
        stamp = table_stamp(self.uri, name)
        if stamp is None or stamp.profile != self.runtime.profile.name:
            # no table yet, or another profile's: the store says so in words when first read
            return SceneStore(self.uri, runtime_stamp(self.runtime), ann=self.ann), self.runtime
        mine = runtime_stamp(self.runtime)  # loads the configured encoders (the queries need them anyway)
        if stamp.query_mismatch(mine) is None:
            return SceneStore(self.uri, stamp, table_name=name, ann=self.ann), self.runtime
        # the configured encoders are new; the live table is still of the old ones: load those
        overrides = dict(self.runtime.config.model_overrides)
        for role, before, now in (
            ("text_encoder", stamp.text_model, mine.text_model),
            ("frame_encoder", stamp.frame_model, mine.frame_model),
            ("transcript_encoder", stamp.transcript_model, mine.transcript_model),
        ):
            if before and before != now:
                overrides[role] = before
        encoders = ModelRuntime(self.runtime.config.model_copy(update={"model_overrides": overrides}))
        return SceneStore(self.uri, stamp, table_name=name, ann=self.ann), encoders

    def has_index(self) -> bool:
        """Whether any profile's scene table exists (known without loading any model; another
        profile's table is the store's to explain when it is read)."""
        try:
            return any(name.startswith("scenes_") for name in list_table_names(connect(self.uri)))
        except (OSError, ValueError, RuntimeError):
            return False

    def warm_up(self) -> dict[str, float]:
        """Load the query-side models and open the table; seconds per step."""
        started = time.perf_counter()
        self.store.table()
        opened = time.perf_counter() - started
        spent = {**self.encoders.warm_up(("text_encoder", "frame_encoder", "translator")), "table": opened}
        self.search("warm up", k=1)  # first query pays one-off costs (index files, thread pools)
        return spent

    # ----------------------------------------------------------------- search
    def prepare(
        self,
        query: str,
        k: int = 5,
        video_ids: Sequence[str] = (),
        start: float | None = None,
        end: float | None = None,
        per_video: int | None = None,
        min_score: float | None = None,
        person: str | None = None,
        fold_duplicates: bool | None = None,
    ) -> SearchRequest:
        """Validate a query and its options; raises :class:`QueryError` with a readable message.
        ``min_score`` None: the profile's default (:data:`DEFAULT_MIN_SCORE`); ``person`` (a name
        or an id): only the scenes where that person is seen; ``fold_duplicates`` None: the
        engine's setting."""
        query = (query or "").strip()
        if not query:
            raise QueryError("the query is empty")
        if len(query) > MAX_QUERY_CHARS:
            raise QueryError(f"the query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}")
        if not 1 <= k <= MAX_K:
            raise QueryError(f"k must be between 1 and {MAX_K}")
        if per_video is not None and per_video < 1:
            raise QueryError("per_video must be at least 1")
        if min_score is None:
            min_score = DEFAULT_MIN_SCORE.get(self.runtime.profile.name, 0.0)
        if not (math.isfinite(min_score) and 0.0 <= min_score <= 1.0):
            raise QueryError("min_score must be between 0 and 1")
        try:
            scene_ids = tuple(self.people.scene_ids_of(self.people.find(person))) if person else None
            where = SceneFilter(tuple(video_ids), start, end, scene_ids).to_where()
        except ValueError as exc:
            raise QueryError(str(exc)) from exc
        fold = self.fold_duplicates if fold_duplicates is None else fold_duplicates
        return SearchRequest(query, k, where, per_video, min_score, fold)

    def search(self, query: str, **options: Any) -> SearchResponse:
        """One query; ``options`` are those of :meth:`prepare` (k, video_ids, start, end, per_video)."""
        return self.search_batch([self.prepare(query, **options)])[0]

    def search_batch(self, requests: Sequence[SearchRequest]) -> list[SearchResponse]:
        """Answer prepared requests together; each answer is what it would be alone."""
        return self._answer(self._encode(requests))

    def _encode(self, requests: Sequence[SearchRequest]) -> _EncodedBatch:
        """First half of a batch: translation, full-text queries (started first: they need no
        vectors, so they run while the encoder works) and query vectors."""
        clock = time.perf_counter()
        translated = self._translate([r.query for r in requests])
        texts = [t for t, _ in translated]
        n = max(self.candidates, 4 * max(r.k for r in requests))
        live_store, encoders = self._live_table()
        store = live_store.snapshot()  # every read of this batch sees one version of the table
        # Full text: a Korean query as written (the n-gram index reads Hangul), else the English text
        full_text = [r.query if has_hangul(r.query) else texts[i] for i, r in enumerate(requests)]
        text_jobs = (
            [self._pool.submit(store.text_search, full_text[i], n, r.where) for i, r in enumerate(requests)]
            if "text" in self.signals
            else []
        )
        text_encoder, frame_encoder = encoders.text_encoder(), encoders.frame_encoder()
        cache = self.query_vectors
        qvecs = cache.encode(text_encoder.model_id, texts, text_encoder.encode_queries)
        # lite frame vectors live in the text encoder's space: the query vector serves both
        fvecs = (
            qvecs
            if frame_encoder.queries_in_text_space
            else cache.encode(frame_encoder.model_id, texts, frame_encoder.encode_queries)
        )
        # transcripts in a multilingual space of their own (full profile): the query as written
        if live_store.stamp.transcript_model:
            transcripts = encoders.transcript_encoder()
            tvecs = cache.encode(transcripts.model_id, [r.query for r in requests], transcripts.encode_queries)
        else:
            tvecs = qvecs
        timings = {"batch_size": len(requests), "encode": elapsed_ms(clock)}
        return _EncodedBatch(
            list(requests), texts, [t for _, t in translated], qvecs, fvecs, text_jobs, n, timings, store, tvecs
        )

    def _answer(self, batch: _EncodedBatch) -> list[SearchResponse]:
        """Second half: nearest neighbours (one batched query per filter and column), scores
        for every candidate on every signal, fusion, best frames."""
        clock = time.perf_counter()
        hits = self._candidates(batch)
        timings = {**batch.timings, "candidates": elapsed_ms(clock)}

        clock = time.perf_counter()
        # Two small reads instead of one big one: the scoring columns of every candidate, then
        # what a result shows (and its frame vectors) for the chosen few only.
        score_columns = SCORE_COLUMNS + (["frame_vectors"] if self.weights.frame > 0 else [])
        rows, position = self._take_rows(
            batch.store, {row_id for request_hits in hits for row_id, _ in request_hits}, score_columns
        )
        # every candidate against every query of the batch, in two matrix products
        caption_sims = vector_matrix(rows.column("caption_vector")) @ batch.qvecs.T
        transcript_sims = vector_matrix(rows.column("transcript_vector")) @ batch.tvecs.T
        video_ids = rows.column("video_id").to_pylist()
        scene_ids = rows.column("scene_id").to_pylist()
        # scene -> its duplicate group, for the candidates of requests that fold copies together
        groups = self.duplicates.groups_of(scene_ids) if any(r.fold_duplicates for r in batch.requests) else {}
        row_groups = [groups.get(scene) for scene in scene_ids]
        ranked = [
            pick(
                request,
                *self._score(i, rows, position, hits[i], caption_sims, transcript_sims, batch.fvecs[i]),
                video_ids,
                row_groups,
            )
            for i, request in enumerate(batch.requests)
        ]
        picked = {row_id for picks in ranked for row_id, _, _ in picks}
        present = set(batch.store.table().schema.names)  # tables from before a column was added lack it
        shown, shown_position = self._take_rows(batch.store, picked, [c for c in SHOW_COLUMNS if c in present])
        shown_rows = shown.select([c for c in DISPLAY_COLUMNS if c in present]).to_pylist()
        frames = shown.column("frame_vectors").combine_chunks()
        timings["rank"] = elapsed_ms(clock)
        timings["total"] = round(sum(v for k, v in timings.items() if k != "batch_size"), 2)

        people = self.people.people_in_scenes([row["scene_id"] for row in shown_rows])
        copies = self.duplicates.copies(
            {r["scene_id"]: groups[r["scene_id"]] for r in shown_rows if r["scene_id"] in groups}
        )
        live_store, encoders = self._live_table()
        passages = encoders.transcript_encoder() if live_store.stamp.transcript_model else encoders.text_encoder()
        responses = []
        for i, request in enumerate(batch.requests):
            results = []
            for row_id, score, signals in ranked[i]:
                j = shown_position[row_id]  # same table version as the candidates: always there
                frame_score, frame = best_frame(frames[j].values, batch.fvecs[i])
                signals = {**signals, "frame": frame_score}
                result = self.result_from_row(len(results) + 1, score, shown_rows[j], frame, signals, batch.texts[i])
                result = self.moments.place(result, batch.tvecs[i], passages)
                folded = copies.get(result.scene_id, ()) if request.fold_duplicates else ()
                results.append(
                    dataclasses.replace(
                        result,
                        people=people.get(result.scene_id, ()),
                        duplicates=folded,
                        weak=score < WEAK_SCORE.get(self.runtime.profile.name, 0.0),
                    )
                )
            responses.append(
                SearchResponse(
                    request.query, batch.texts[i], batch.translated[i], self.fusion, tuple(results), dict(timings)
                )
            )
        return responses

    def _candidates(self, batch: _EncodedBatch) -> list[list]:
        """Per request: (row id, bm25 or None) of its candidate scenes, from the three signals."""
        store = batch.store
        groups: dict[str | None, list[int]] = {}
        for i, request in enumerate(batch.requests):
            groups.setdefault(request.where, []).append(i)
        query_vectors = {"caption": batch.qvecs, "transcript": batch.tvecs}
        vector_jobs = [
            (
                members,
                self._pool.submit(
                    store.vector_search_batch, f"{signal}_vector", query_vectors[signal][members], batch.n, where
                ),
            )
            for where, members in groups.items()
            for signal in ("caption", "transcript")
            if signal in self.signals
        ]
        hits: list[list] = [[] for _ in batch.requests]
        for members, job in vector_jobs:
            table = job.result()
            for query_index, row_id in zip(
                table.column("query_index").to_pylist(), table.column("_rowid").to_pylist(), strict=True
            ):
                hits[members[query_index]].append((row_id, None))
        for i, job in enumerate(batch.text_jobs):
            table = job.result()
            hits[i].extend(zip(table.column("_rowid").to_pylist(), table.column("bm25").to_pylist(), strict=True))
        return hits

    @staticmethod
    def _take_rows(store: SceneStore, row_ids: set[int], columns: list[str]) -> tuple[pa.Table, dict[int, int]]:
        table = store.take_rows(sorted(row_ids), columns)
        position = {row_id: i for i, row_id in enumerate(table.column("_rowid").to_pylist())}
        return table, position

    def _score(
        self,
        query_index: int,
        rows: pa.Table,
        position: dict[int, int],
        hits: list[tuple[int, float | None]],
        caption_sims: np.ndarray,
        transcript_sims: np.ndarray,
        fvec: np.ndarray,
    ) -> tuple[list[int], np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """One query's candidates: their row ids and positions, per-signal scores, final scores."""
        row_ids = list(dict.fromkeys(row_id for row_id, _ in hits if row_id in position))
        rows_at = np.array([position[row_id] for row_id in row_ids], dtype=np.int64)
        bm25 = {row_id: score for row_id, score in hits if score is not None}
        scores = {
            "caption": caption_sims[rows_at, query_index],
            "transcript": transcript_sims[rows_at, query_index],
            "text": np.array([squash_bm25(bm25.get(row_id, 0.0)) for row_id in row_ids], dtype=np.float32),
        }
        frames = None
        if self.weights.frame > 0 and row_ids:
            frames = best_frames(rows.take(rows_at).column("frame_vectors"), fvec)[0]
        final = score_candidates(scores, self.fusion, self.weights, self.calibration, frames)
        return row_ids, rows_at, scores, final

    def _translate(self, queries: list[str]) -> list[tuple[str, bool]]:
        """(text to search, translated?) per query: Korean queries of a batch are translated
        together, and only when the text encoder cannot read Korean itself."""
        korean = [i for i, q in enumerate(queries) if has_hangul(q)]
        translator = self.runtime.translator() if korean else None
        result = [(q, False) for q in queries]
        if translator is not None:
            for i, english in zip(korean, translator.translate([queries[i] for i in korean]), strict=True):
                result[i] = (english, True)
        return result

    def result_from_row(
        self, rank: int, score: float, row: dict, frame: int, signals: dict[str, float], query: str
    ) -> SearchResult:
        return result_from_row(rank, score, row, frame, signals, query, self.paths.artifacts_dir)
