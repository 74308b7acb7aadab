"""Scores that mean something: a fused score turned into the probability that a result is
relevant, so that one minimum score means the same for every query.

Raw fused scores sit in a narrow band whatever the query (lite: 0.77-0.92 for "a cat" as for a
nonsense query), because a sentence encoder finds *something* similar in any library. What
separates a match from the best of nothing is how far a result stands above the query's other
candidates. The probability is a logistic function of the fused score and of that ``margin``
(fused score minus the median of the query's candidates), fitted by ``tving eval`` on the
labelled set's tuning half (:func:`fit`) and checked on its test half (docs/search.md). Within one
query the probability grows with the fused score (``a + b > 0``, enforced when fitting), so it
changes no ranking; across queries it does what a threshold needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_CANDIDATES_FOR_MARGIN = 8  # fewer (a narrow filter): the margin is measured from the default median


FEATURES = ("fused", "margin")  # the calibration of the fused score
RESCORE_FEATURES = ("caption", "transcript", "text", "fused", "margin")  # a second stage over every signal


@dataclass(frozen=True)
class Calibration:
    """p = sigmoid(sum of weight * feature + bias), over a candidate's scores (per signal, the
    fused score and its margin). Over :data:`FEATURES` only it keeps each query's order; over
    more it is also a second-stage ranking."""

    weights: dict[str, float]
    bias: float
    default_median: float  # the median used when a query has too few candidates to measure one

    def probabilities(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        z = self.bias + sum(w * np.asarray(scores[name], dtype=np.float64) for name, w in self.weights.items())
        return 1.0 / (1.0 + np.exp(-z))

    def as_dict(self) -> dict:
        return {"weights": dict(self.weights), "bias": self.bias, "default_median": self.default_median}


# Fitted with `tving eval --build` (the project's labelled set, tuning half, lite profile; figures
# and the test half's check in docs/search.md). The full profile has no labelled run here (no GPU,
# no weights): its scores stay the fused similarity, and its minimum score stays off.
CALIBRATIONS: dict[str, Calibration] = {
    "lite": Calibration({"fused": 17.467, "margin": 22.747}, bias=-17.496, default_median=0.761),
}


DEFAULT_MEDIAN = 0.75  # lite's typical candidate median, where no calibration says otherwise


def margins(fused: np.ndarray, calibration: Calibration | None) -> np.ndarray:
    """How far each candidate stands above the query's other candidates (their median; with too few
    candidates to measure one, the calibration's typical median)."""
    if len(fused) >= MIN_CANDIDATES_FOR_MARGIN:
        return fused - float(np.median(fused))
    return fused - (calibration.default_median if calibration is not None else DEFAULT_MEDIAN)


def fit(
    features: dict[str, Sequence[float]],
    relevant: Sequence[bool],
    names: Sequence[str] = FEATURES,
    default_median: float = 0.0,
    l2: float = 1e-2,
) -> Calibration:
    """Logistic regression (Newton's method, a little L2) of relevance on the named features."""
    x = np.column_stack([*(np.asarray(features[n], float) for n in names), np.ones(len(relevant))])
    y = np.asarray(relevant, float)
    penalty = np.diag([*([l2] * len(names)), 0.0])
    w = np.zeros(len(names) + 1)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        step = np.linalg.solve((x.T * (p * (1 - p))) @ x + penalty, x.T @ (p - y) + penalty @ w)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    weights = {n: round(float(v), 3) for n, v in zip(names, w[:-1], strict=True)}
    if set(names) == {"fused", "margin"} and weights["fused"] + weights["margin"] <= 0:
        weights["margin"] = round(-weights["fused"] + 1e-3, 3)  # never reorder a query's results
    return Calibration(weights, round(float(w[-1]), 3), round(default_median, 3))


def log_loss(calibration: Calibration, features: dict[str, Sequence[float]], relevant: Sequence[bool]) -> float:
    p = np.clip(calibration.probabilities({k: np.asarray(v, float) for k, v in features.items()}), 1e-9, 1 - 1e-9)
    y = np.asarray(relevant, float)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if len(y) else math.nan
