"""Measure search quality on labelled queries, per signal and per fusion method.

The default fusion was chosen with this: on the project's labelled set (see
``tests/test_search_quality.py``) each method is scored by mean reciprocal rank (MRR), hit@1 and
recall@5, against each signal alone. ``tving eval LABELS.jsonl`` runs it on your own index.

A labels file has one JSON object per line::

    {"query": "a chef cooking pasta", "relevant": ["clip.mp4#2", "other-0123456789#0"]}

where each relevant scene is ``<video file name or video id>#<scene index>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tving_resources.errors import ConfigError

from .search import FUSION_METHODS, FusionWeights, SceneSearch

# Each signal alone (max over a single weighted signal), then every fusion method.
SINGLE_SIGNALS = {
    "caption only": FusionWeights(caption=1, transcript=0, text=0),
    "transcript only": FusionWeights(caption=0, transcript=1, text=0),
    "full-text only": FusionWeights(caption=0, transcript=0, text=1),
}


@dataclass(frozen=True)
class LabelledQuery:
    query: str
    relevant: frozenset[str]  # "<video name or id>#<scene index>"


@dataclass
class Scores:
    mrr: float = 0.0
    hit_at_1: float = 0.0
    recall_at_5: float = 0.0
    per_query: dict[str, float] = field(default_factory=dict)  # reciprocal rank per query

    def as_dict(self) -> dict[str, float]:
        return {"mrr": round(self.mrr, 3), "hit@1": round(self.hit_at_1, 3), "recall@5": round(self.recall_at_5, 3)}


def load_labels(path: str | Path) -> list[LabelledQuery]:
    queries = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            queries.append(LabelledQuery(item["query"], frozenset(item["relevant"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{number}: expected {{'query': ..., 'relevant': [...]}} ({exc})") from exc
    if not queries:
        raise ConfigError(f"{path}: no labelled queries")
    return queries


def score_method(engine: SceneSearch, queries: list[LabelledQuery], depth: int = 20) -> Scores:
    scores = Scores()
    for item in queries:
        results = engine.search(item.query, k=depth).results
        keys = [({f"{r.video_name}#{r.scene_index}", f"{r.video_id}#{r.scene_index}"}) for r in results]
        ranks = [i for i, names in enumerate(keys, start=1) if names & item.relevant]
        reciprocal = 1.0 / ranks[0] if ranks else 0.0
        scores.per_query[item.query] = reciprocal
        scores.mrr += reciprocal
        scores.hit_at_1 += 1.0 if ranks and ranks[0] == 1 else 0.0
        found = {name for names in keys[:5] for name in names} & item.relevant
        scores.recall_at_5 += len(found) / len(item.relevant)
    n = len(queries)
    scores.mrr, scores.hit_at_1, scores.recall_at_5 = scores.mrr / n, scores.hit_at_1 / n, scores.recall_at_5 / n
    return scores


def compare_methods(engine: SceneSearch, queries: list[LabelledQuery]) -> dict[str, Scores]:
    """Scores of every single signal and every fusion method, on the same engine and index."""
    original = (engine.fusion, engine.weights)
    results: dict[str, Scores] = {}
    try:
        for name, weights in SINGLE_SIGNALS.items():
            engine.fusion, engine.weights = "max", weights
            results[name] = score_method(engine, queries)
        for method in FUSION_METHODS:
            engine.fusion, engine.weights = method, FusionWeights()
            results[f"fusion: {method}"] = score_method(engine, queries)
    finally:
        engine.fusion, engine.weights = original
    return results
