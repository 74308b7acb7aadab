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
from query_app.search.calibration import FEATURES, RESCORE_FEATURES, fit, log_loss
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
        # the ranking itself: no threshold, and every copy of a footage in its place (the project's set
        # shows one photo in several clips, with other speech; folded, a visual query's label would
        # be one copy among equals: the "folded" line of the summary counts the copies listed)
        results = engine.search(item.query, k=DEPTH, min_score=0.0, fold_duplicates=False).results
        latencies.append((time.perf_counter() - started) * 1000)
        rank = next((i for i, r in enumerate(results, 1) if _keys(r) & item.relevant), None)
        top = [
            {"video": r.video_name, "scene": r.scene_index, "score": round(r.score, 3), "thumbnail": r.thumbnail_path,
             "caption": r.caption}
            for r in results[:5]
        ]  # fmt: skip
        outcomes.append(QueryOutcome(item, rank, top, results[rank - 1].score if rank else None))
    return _report(name, outcomes, latencies)


def _copy_keys(result) -> set[str]:
    keys = set()
    for copy in result.duplicates:
        index = int(copy.scene_id.rsplit(":", 1)[1])
        keys |= {f"{copy.video_name}#{index}", f"{copy.video_id}#{index}"}
    return keys


def folded_scores(engine: SceneSearch, queries: Sequence[LabelledQuery]) -> dict:
    """Recall and MRR as a user sees folded results: a relevant scene shown, or listed in a shown
    result as the same footage, counts at that result's rank."""
    ranks = []
    for item in queries:
        results = engine.search(item.query, k=DEPTH, min_score=0.0, fold_duplicates=True).results
        ranks.append(next((i for i, r in enumerate(results, 1) if (_keys(r) | _copy_keys(r)) & item.relevant), None))
    return retrieval_scores(ranks).as_dict()


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
        # the defaults first: weights that only scale every score alike (0.6, 0.6, 0.6) rank the same,
        # and must not move the scores the calibration was fitted on
        grid = [(1.0, 1.0, 1.0), *itertools.product(WEIGHT_GRID, repeat=3)]
        for caption, transcript, text in grid:
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
    """The minimum score: the 3rd percentile of the relevant results' scores on the tuning half
    (it keeps 97% of them there); then, on the test half, the share of relevant results it keeps,
    and the share of queries about nothing in the index that it answers with "no good match"."""
    import numpy as np

    saved = engine.signals, engine.weights, engine.fusion
    _configure(engine, SIGNALS, engine.weights)
    try:
        scores = [o.hit_score for o in run_queries(engine, tune_half).outcomes if o.hit_score is not None]
        threshold = round(float(np.percentile(scores, 3)), 3) if scores else 0.0
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


def calibration_samples(
    engine: SceneSearch, queries: Sequence[LabelledQuery], nonsense: Sequence[str]
) -> tuple[dict[str, list[float]], list[bool]]:
    """Every result of each query (its signals' scores, fused score and margin) and whether it is
    relevant; every result of a query about nothing indexed is not."""
    features: dict[str, list[float]] = {name: [] for name in RESCORE_FEATURES}
    relevant: list[bool] = []
    asked = [(q.query, q.relevant) for q in queries] + [(text, frozenset()) for text in nonsense]
    for text, wanted in asked:
        for result in engine.search(text, k=DEPTH, min_score=0.0, fold_duplicates=False).results:
            for name in RESCORE_FEATURES:
                features[name].append(result.scores.get(name, 0.0))
            relevant.append(bool(_keys(result) & wanted))
    return features, relevant


def calibrate(
    engine: SceneSearch,
    tune_half: Sequence[LabelledQuery],
    test_half: Sequence[LabelledQuery],
    nonsense: Sequence[str],
    evaluation: Evaluation,
) -> None:
    """Fit the calibration (fused score and margin) and a second stage over every signal on the
    tuning half (with half the queries about nothing); report both on the test half, each with
    the minimum score it supports."""
    import numpy as np

    tune_nonsense, test_nonsense = list(nonsense[::2]), list(nonsense[1::2])
    saved = engine.calibration
    try:
        engine.calibration = None
        evaluation.min_score = choose_min_score(engine, tune_half, test_half, test_nonsense)
        features, relevant = calibration_samples(engine, tune_half, tune_nonsense)
        median = float(np.median(np.subtract(features["fused"], features["margin"]))) if relevant else 0.0
        fitted = {
            "calibrated (max)": fit(features, relevant, FEATURES, median),
            "second stage": fit(features, relevant, RESCORE_FEATURES, median),
        }
        test_features, test_relevant = calibration_samples(engine, test_half, test_nonsense)
        evaluation.calibrations = {}
        for name, calibration in fitted.items():
            engine.calibration = calibration
            evaluation.methods[name] = run_queries(engine, test_half, name)
            evaluation.calibrations[name] = {
                **calibration.as_dict(),
                "test_log_loss": round(log_loss(calibration, test_features, test_relevant), 4),
                "min_score": choose_min_score(engine, tune_half, test_half, test_nonsense),
            }
    finally:
        engine.calibration = saved


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
    folded: dict | None = None  # fused (max), copies of a footage folded
    min_score: dict | None = None  # of the raw fused score
    calibrations: dict[str, dict] = field(default_factory=dict)  # fitted on the tuning half, checked on the test
    indexing_seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "weights": self.weights.__dict__,
            "tune_mrr": self.tune_mrr,
            "methods": {k: v.as_dict() for k, v in self.methods.items()},
            "cuts": self.cuts,
            "speech": self.speech,
            "korean_full_text": self.korean_full_text,
            "folded": self.folded,
            "min_score": self.min_score,
            "calibrations": self.calibrations,
            "indexing_seconds": self.indexing_seconds,
        }


def evaluate(
    engine: SceneSearch, queries: Sequence[LabelledQuery], tune: bool = True, nonsense: Sequence[str] = ()
) -> Evaluation:
    tune_half = [q for q in queries if q.split == "tune"]
    test_half = [q for q in queries if q.split != "tune"] or list(queries)
    saved = engine.calibration
    engine.calibration = None  # the signals and fusions first, on raw scores (ranking is the same)
    try:
        weights, tune_mrr = tune_weights(engine, tune_half) if tune and tune_half else (engine.weights, 0.0)
        evaluation = Evaluation(weights, tune_mrr, compare(engine, test_half, weights))
        evaluation.korean_full_text = korean_full_text(engine, test_half)
        evaluation.folded = folded_scores(engine, test_half)
    finally:
        engine.calibration = saved
    if tune_half:
        engine.weights = weights
        calibrate(engine, tune_half, test_half, nonsense, evaluation)
    return evaluation


def _min_score_line(name: str, m: dict) -> str:
    return (
        f"  {name:<18} {m['min_score']:<6}: keeps {m['test_relevant_kept']} of the relevant results; "
        f"'no good match' for {m['nonsense_no_match']} of {m['nonsense_queries']} queries about nothing indexed"
    )


def kind_table(evaluation: Evaluation, before: str = "fused (max)") -> list[str]:
    """R@1, R@5 and MRR per kind and language: the raw fusion (before) beside each fitted method."""
    after = [name for name in evaluation.calibrations if name in evaluation.methods]
    if before not in evaluation.methods or not after:
        return []
    names = [before, *after]
    lines = ["per kind and language (R@1 / R@5 / MRR): " + " | ".join(names)]
    groups = {**evaluation.methods[before].by_kind, **evaluation.methods[before].by_language}
    for group in [*sorted(evaluation.methods[before].by_kind), *sorted(evaluation.methods[before].by_language)]:
        cells = []
        for name in names:
            report = evaluation.methods[name]
            scores = report.by_kind.get(group) or report.by_language.get(group)
            cells.append(f"{scores.recall[1]:.2f} / {scores.recall[5]:.2f} / {scores.mrr:.2f}")
        lines.append(f"  {group:<10} ({groups[group].queries:>2})  " + " | ".join(cells))
    return lines


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
    if evaluation.folded:
        f = evaluation.folded
        lines.append(
            f"fused (max) with copies of a footage folded (a relevant scene shown or listed as a copy): "
            f"R@1 {f['recall@1']:.3f} R@5 {f['recall@5']:.3f} MRR {f['mrr']:.3f}"
        )
    lines += kind_table(evaluation)
    if evaluation.min_score:
        lines.append(
            "minimum score (3rd percentile of the relevant results' scores on the tuning half), on the test half:"
        )
        lines.append(_min_score_line("raw fused score", evaluation.min_score))
        for name, fitted in evaluation.calibrations.items():
            lines.append(_min_score_line(name, fitted["min_score"]))
            lines.append(
                f"    {name}: weights {fitted['weights']} bias {fitted['bias']} median {fitted['default_median']}; "
                f"test log loss {fitted['test_log_loss']}"
            )
    if evaluation.speech:
        lines.append(
            f"speech: word error rate {evaluation.speech['wer']} over {evaluation.speech['sentences']} sentences"
        )
    return "\n".join(lines)
