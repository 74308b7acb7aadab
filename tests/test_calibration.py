"""Calibrated scores and the query-vector cache, on their own (the figures they give on the
labelled set are tests/test_eval.py's)."""

from __future__ import annotations

import numpy as np

from query_app.search.calibration import FEATURES, Calibration, fit, log_loss, margins
from query_app.search.query_cache import QueryVectorCache


def test_fit_recovers_a_known_logistic_relation():
    rng = np.random.default_rng(0)
    fused = rng.uniform(0.7, 0.95, 4000)
    margin = rng.uniform(-0.05, 0.15, 4000)
    truth = Calibration({"fused": 10.0, "margin": 30.0}, bias=-10.0, default_median=0.8)
    p = truth.probabilities({"fused": fused, "margin": margin})
    relevant = rng.uniform(size=4000) < p
    fitted = fit({"fused": fused, "margin": margin}, relevant, FEATURES, default_median=0.8)
    assert abs(fitted.weights["margin"] - 30.0) < 6 and abs(fitted.weights["fused"] - 10.0) < 6
    worse = Calibration({"fused": 0.0, "margin": 0.0}, bias=0.0, default_median=0.8)
    features = {"fused": fused, "margin": margin}
    assert log_loss(fitted, features, relevant) < log_loss(worse, features, relevant)


def test_calibrated_scores_keep_a_querys_order_and_separate_a_standout():
    calibration = Calibration({"fused": 17.5, "margin": 22.7}, bias=-17.5, default_median=0.76)
    standout = np.array([0.88, 0.815, 0.81, 0.809, 0.808, 0.806, 0.805, 0.80, 0.80, 0.79])
    flat = np.array([0.806, 0.802, 0.801, 0.799, 0.793, 0.79, 0.79, 0.789, 0.788, 0.787])
    for fused in (standout, flat):
        p = calibration.probabilities({"fused": fused, "margin": margins(fused, calibration)})
        assert list(np.argsort(-p, kind="stable")) == list(np.argsort(-fused, kind="stable"))
    best_standout = calibration.probabilities({"fused": standout, "margin": margins(standout, calibration)})[0]
    best_flat = calibration.probabilities({"fused": flat, "margin": margins(flat, calibration)})[0]
    assert best_standout > 0.3 > 0.1 > best_flat  # the same raw band, very different meaning
    # a narrow filter leaves few candidates: the margin is taken from the default median
    few = np.array([0.85, 0.80])
    assert np.allclose(margins(few, calibration), few - 0.76)


def test_fit_never_reverses_a_querys_order():
    fused = np.array([0.8, 0.9, 0.7, 0.85])
    margin = np.array([0.0, 0.1, -0.1, 0.05])
    fitted = fit({"fused": fused, "margin": margin}, [True, False, True, False], FEATURES)
    assert fitted.weights["fused"] + fitted.weights["margin"] > 0


def test_the_query_cache_encodes_each_text_once_per_model():
    calls: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    cache = QueryVectorCache(size=2)
    first = cache.encode("m1", ["a cat", "a dog"], encode)
    again = cache.encode("m1", ["a dog", "a cat"], encode)
    assert calls == [["a cat", "a dog"]] and np.array_equal(again, first[::-1])
    cache.encode("m2", ["a cat"], encode)  # another model: its own vectors
    assert calls[-1] == ["a cat"]
    cache.encode("m1", ["a bird"], encode)  # two entries at most: the least recently used left
    cache.encode("m1", ["a dog"], encode)
    assert calls[-1] == ["a dog"] and cache.hits == 2
