"""Quality metrics as pure functions: retrieval (recall@k, MRR), scene cuts (precision, recall,
F1 at a tolerance) and speech (word error rate, with jiwer when installed)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RetrievalScores:
    queries: int
    recall: dict[int, float]  # k -> share of queries whose target is in the top k
    mrr: float  # mean of 1/rank of the target (0 when not found)

    def as_dict(self) -> dict[str, float]:
        return {"queries": self.queries, **{f"recall@{k}": v for k, v in self.recall.items()}, "mrr": self.mrr}


def first_rank(ranked: Sequence[Hashable], targets: set[Hashable] | Hashable) -> int | None:
    """1-based rank of the first target in ``ranked`` (ties are broken by list order), or None."""
    wanted = targets if isinstance(targets, set) else {targets}
    for i, item in enumerate(ranked, 1):
        if item in wanted:
            return i
    return None


def retrieval_scores(ranks: Sequence[int | None], ks: Sequence[int] = (1, 5, 10)) -> RetrievalScores:
    """Scores from each query's rank of its target (None: not returned). No queries: all zero."""
    n = len(ranks)
    if n == 0:
        return RetrievalScores(0, {k: 0.0 for k in ks}, 0.0)
    recall = {k: round(sum(1 for r in ranks if r is not None and r <= k) / n, 4) for k in ks}
    mrr = round(sum(1.0 / r for r in ranks if r is not None) / n, 4)
    return RetrievalScores(n, recall, mrr)


@dataclass(frozen=True)
class CutScores:
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        expected = self.true_positives + self.false_negatives
        return self.true_positives / expected if expected else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4), "f1": round(self.f1, 4),
                "tp": self.true_positives, "fp": self.false_positives, "fn": self.false_negatives}  # fmt: skip


def cut_scores(found: Sequence[float], expected: Sequence[float], tolerance: float = 0.25) -> CutScores:
    """Match found cut times to annotated ones, each used at most once, nearest first, within
    ``tolerance`` seconds."""
    pairs = sorted((abs(f - e), i, j) for i, f in enumerate(found) for j, e in enumerate(expected))
    used_f, used_e = set(), set()
    for gap, i, j in pairs:
        if gap > tolerance:
            break
        if i not in used_f and j not in used_e:
            used_f.add(i)
            used_e.add(j)
    tp = len(used_f)
    return CutScores(tp, len(found) - tp, len(expected) - tp)


def add_cut_scores(scores: Sequence[CutScores]) -> CutScores:
    return CutScores(
        sum(s.true_positives for s in scores),
        sum(s.false_positives for s in scores),
        sum(s.false_negatives for s in scores),
    )


def normalise_words(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER (edits over reference words) after lower-casing and dropping punctuation."""
    import jiwer

    refs = [normalise_words(r) for r in references]
    hyps = [normalise_words(h) for h in hypotheses]
    keep = [(r, h) for r, h in zip(refs, hyps, strict=True) if r]
    if not keep:
        return 0.0
    return round(float(jiwer.wer([r for r, _ in keep], [h for _, h in keep])), 4)
