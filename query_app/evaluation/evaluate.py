"""Search quality on labelled queries (``tving eval``): recall@1/5/10 and MRR, overall, per
query language and kind, for each signal truly alone (candidates gathered by that signal only)
and fused; fusion weights tuned on one half of the labels and reported on the other; scene cuts
(precision, recall, F1) and speech (word error rate) when the labels carry them.

A labels file (JSONL) has one query per line::

    {"query": "a chef cooking pasta", "relevant": ["clip.mp4#2"], "language": "en", "kind": "spoken",
     "split": "test"}

where each relevant scene is ``<video file name or video id>#<scene index>``; ``language``,
``kind`` and ``split`` are optional. The project's own labelled set is built by
:mod:`query_app.evaluation.labelled_set` (``tving eval --build DIR``).
"""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from query_app.evaluation.metrics import RetrievalScores, retrieval_scores
from query_app.search import SIGNALS, FusionWeights, SceneSearch
from tving_resources.errors import ConfigError

DEPTH = 10  # results looked at per query
DEFAULT_WEIGHTS = FusionWeights()
WEIGHT_GRID = (0.6, 0.8, 1.0)


@dataclass(frozen=True)
class LabelledQuery:
    query: str
    relevant: frozenset[str]  # "<video name or id>#<scene index>"
    language: str = "en"
    kind: str = "any"
    split: str = "test"


@dataclass
class QueryOutcome:
    query: LabelledQuery
    rank: int | None
    top: list[dict]  # the first results: video, scene, score, thumbnail
    hit_score: float | None = None  # the fused score of the relevant result, when found


@dataclass
class MethodReport:
    name: str
    overall: RetrievalScores
    by_language: dict[str, RetrievalScores]
    by_kind: dict[str, RetrievalScores]
    outcomes: list[QueryOutcome] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "overall": self.overall.as_dict(),
            "by_language": {k: v.as_dict() for k, v in self.by_language.items()},
            "by_kind": {k: v.as_dict() for k, v in self.by_kind.items()},
        }


def load_labels(path: str | Path) -> list[LabelledQuery]:
    queries = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            queries.append(
                LabelledQuery(
                    item["query"],
                    frozenset(item["relevant"]),
                    item.get("language", "en"),
                    item.get("kind", "any"),
                    item.get("split", "test"),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{number}: expected {{'query': ..., 'relevant': [...]}} ({exc})") from exc
    if not queries:
        raise ConfigError(f"{path}: no labelled queries")
    return queries


def _keys(result) -> set[str]:
    return {f"{result.video_name}#{result.scene_index}", f"{result.video_id}#{result.scene_index}"}


def run_queries(engine: SceneSearch, queries: Sequence[LabelledQuery], name: str = "fused") -> MethodReport:
    outcomes, latencies = [], []
    for item in queries:
        started = time.perf_counter()
        results = engine.search(item.query, k=DEPTH).results
        latencies.append((time.perf_counter() - started) * 1000)
        rank = next((i for i, r in enumerate(results, 1) if _keys(r) & item.relevant), None)
        top = [
            {"video": r.video_name, "scene": r.scene_index, "score": round(r.score, 3), "thumbnail": r.thumbnail_path,
             "caption": r.caption}
            for r in results[:5]
        ]  # fmt: skip
        outcomes.append(QueryOutcome(item, rank, top, results[rank - 1].score if rank else None))
    return _report(name, outcomes, latencies)


def _report(name: str, outcomes: list[QueryOutcome], latencies: list[float]) -> MethodReport:
    by_language: dict[str, list] = defaultdict(list)
    by_kind: dict[str, list] = defaultdict(list)
    for o in outcomes:
        by_language[o.query.language].append(o.rank)
        by_kind[o.query.kind].append(o.rank)
    return MethodReport(
        name,
        retrieval_scores([o.rank for o in outcomes]),
        {k: retrieval_scores(v) for k, v in sorted(by_language.items())},
        {k: retrieval_scores(v) for k, v in sorted(by_kind.items())},
        outcomes,
        latencies,
    )


def _configure(engine: SceneSearch, signals: Sequence[str], weights: FusionWeights, fusion: str = "max"):
    engine.signals, engine.weights, engine.fusion = tuple(signals), weights, fusion


def compare(engine: SceneSearch, queries: Sequence[LabelledQuery], weights: FusionWeights) -> dict[str, MethodReport]:
    """Each signal alone (it alone gathers and scores the candidates), then the fusion methods."""
    saved = (engine.signals, engine.weights, engine.fusion)
    reports: dict[str, MethodReport] = {}
    try:
        for signal in SIGNALS:
            alone = FusionWeights(**{s: (1.0 if s == signal else 0.0) for s in SIGNALS})
            _configure(engine, (signal,), alone)
            reports[f"{signal} alone"] = run_queries(engine, queries, f"{signal} alone")
        for method in ("max", "sum", "rrf"):
            _configure(engine, SIGNALS, weights, method)
            reports[f"fused ({method})"] = run_queries(engine, queries, f"fused ({method})")
    finally:
        engine.signals, engine.weights, engine.fusion = saved
    return reports


def tune_weights(engine: SceneSearch, queries: Sequence[LabelledQuery]) -> tuple[FusionWeights, float]:
    """The weights (max fusion) with the best MRR on ``queries`` (the tuning half)."""
    saved = (engine.signals, engine.weights, engine.fusion)
    best, best_mrr = DEFAULT_WEIGHTS, -1.0
    try:
        for caption, transcript, text in itertools.product(WEIGHT_GRID, repeat=3):
            weights = FusionWeights(caption=caption, transcript=transcript, text=text)
            _configure(engine, SIGNALS, weights)
            mrr = run_queries(engine, queries).overall.mrr
            if mrr > best_mrr + 1e-9:
                best, best_mrr = weights, mrr
    finally:
        engine.signals, engine.weights, engine.fusion = saved
    return best, best_mrr


def choose_min_score(
    engine: SceneSearch, tune_half: Sequence[LabelledQuery], test_half: Sequence[LabelledQuery], nonsense: Sequence[str]
) -> dict:
    """The minimum score: the 5th percentile of the relevant results' scores on the tuning half
    (it keeps 95% of them there); then, on the test half, the share of relevant results it keeps,
    and the share of queries about nothing in the index that it answers with "no good match"."""
    import numpy as np

    saved = engine.signals, engine.weights, engine.fusion
    _configure(engine, SIGNALS, engine.weights)
    try:
        scores = [o.hit_score for o in run_queries(engine, tune_half).outcomes if o.hit_score is not None]
        threshold = round(float(np.percentile(scores, 5)), 3) if scores else 0.0
        kept = [o.hit_score >= threshold for o in run_queries(engine, test_half).outcomes if o.hit_score is not None]
        empty = [not engine.search(q, k=5, min_score=threshold).results for q in nonsense]
    finally:
        engine.signals, engine.weights, engine.fusion = saved
    return {
        "min_score": threshold,
        "test_relevant_kept": round(sum(kept) / len(kept), 3) if kept else None,
        "nonsense_no_match": round(sum(empty) / len(empty), 3) if empty else None,
        "nonsense_queries": len(nonsense),
    }


def korean_full_text(engine: SceneSearch, queries: Sequence[LabelledQuery]) -> dict[str, dict]:
    """Korean queries, full-text alone, through each index: word tokens (what English needs) and
    character n-grams (what Korean particles and compounds need)."""
    from tving_resources.store.schema import FTS_COLUMN, NGRAM_FTS_COLUMN

    korean = [q for q in queries if q.language == "ko"]
    out = {}
    for label, column in (("words", FTS_COLUMN), ("n-grams", NGRAM_FTS_COLUMN)):
        ranks = []
        for q in korean:
            found = engine.store.text_search(
                q.query, DEPTH, None, ["video_name", "video_id", "scene_index"], column=column
            )
            names, ids = found.column("video_name").to_pylist(), found.column("video_id").to_pylist()
            scenes = found.column("scene_index").to_pylist()
            keys = [{f"{n}#{i}", f"{v}#{i}"} for n, v, i in zip(names, ids, scenes, strict=True)]
            ranks.append(next((j for j, k in enumerate(keys, 1) if k & q.relevant), None))
        out[label] = retrieval_scores(ranks).as_dict()
    return out


@dataclass
class Evaluation:
    weights: FusionWeights
    tune_mrr: float
    methods: dict[str, MethodReport]  # on the test half
    cuts: dict | None = None
    speech: dict | None = None
    korean_full_text: dict | None = None
    min_score: dict | None = None
    indexing_seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "weights": self.weights.__dict__,
            "tune_mrr": self.tune_mrr,
            "methods": {k: v.as_dict() for k, v in self.methods.items()},
            "cuts": self.cuts,
            "speech": self.speech,
            "korean_full_text": self.korean_full_text,
            "min_score": self.min_score,
            "indexing_seconds": self.indexing_seconds,
        }


def evaluate(
    engine: SceneSearch, queries: Sequence[LabelledQuery], tune: bool = True, nonsense: Sequence[str] = ()
) -> Evaluation:
    tune_half = [q for q in queries if q.split == "tune"]
    test_half = [q for q in queries if q.split != "tune"] or list(queries)
    weights, tune_mrr = tune_weights(engine, tune_half) if tune and tune_half else (engine.weights, 0.0)
    evaluation = Evaluation(weights, tune_mrr, compare(engine, test_half, weights))
    evaluation.korean_full_text = korean_full_text(engine, test_half)
    if tune_half:
        engine.weights = weights
        evaluation.min_score = choose_min_score(engine, tune_half, test_half, nonsense)
    return evaluation


def summary(evaluation: Evaluation) -> str:
    lines = [
        f"fusion weights tuned on the tuning half: {evaluation.weights.__dict__} (MRR {evaluation.tune_mrr:.3f} there)",
        "test half:",
        f"  {'method':<16} {'queries':>7} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR':>6}   R@5 by language / by kind",
    ]
    for name, report in evaluation.methods.items():
        o = report.overall
        langs = " ".join(f"{k} {v.recall[5]:.2f}" for k, v in report.by_language.items())
        kinds = " ".join(f"{k} {v.recall[5]:.2f}" for k, v in report.by_kind.items())
        lines.append(
            f"  {name:<16} {o.queries:>7} {o.recall[1]:>6.3f} {o.recall[5]:>6.3f} {o.recall[10]:>6.3f} "
            f"{o.mrr:>6.3f}   {langs} / {kinds}"
        )
    if evaluation.cuts:
        c = evaluation.cuts
        lines.append(
            f"scene cuts at {c['tolerance_s']} s: precision {c['precision']} recall {c['recall']} F1 {c['f1']}"
        )
    if evaluation.korean_full_text:
        k = evaluation.korean_full_text
        words, grams = k["words"], k["n-grams"]
        lines.append(
            f"Korean queries, full-text alone: word tokens R@5 {words['recall@5']:.3f} MRR {words['mrr']:.3f}; "
            f"n-grams R@5 {grams['recall@5']:.3f} MRR {grams['mrr']:.3f}"
        )
    if evaluation.min_score:
        m = evaluation.min_score
        lines.append(
            f"minimum score {m['min_score']} (5th percentile of relevant scores, tuning half): keeps "
            f"{m['test_relevant_kept']} of the test half's relevant results; answers {m['nonsense_no_match']} of "
            f"{m['nonsense_queries']} queries about nothing indexed with 'no good match'"
        )
    if evaluation.speech:
        lines.append(
            f"speech: word error rate {evaluation.speech['wer']} over {evaluation.speech['sentences']} sentences"
        )
    return "\n".join(lines)
