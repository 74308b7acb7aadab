"""The quality metrics on cases worked out by hand: ties, misses, empty result lists."""

import pytest

from query_app.evaluation.metrics import (
    add_cut_scores,
    cut_scores,
    first_rank,
    normalise_words,
    retrieval_scores,
    word_error_rate,
)


def test_first_rank_takes_the_first_of_several_targets_and_ties_by_order():
    assert first_rank(["a", "b", "c"], {"c", "b"}) == 2
    assert first_rank(["x", "x", "y"], "x") == 1  # a tie at the top: list order decides
    assert first_rank([], "x") is None
    assert first_rank(["a"], "z") is None


def test_recall_and_mrr_by_hand():
    # ranks 1, 3, missed, 6 -> R@1 1/4, R@5 2/4, R@10 3/4, MRR (1 + 1/3 + 0 + 1/6) / 4 = 0.375
    scores = retrieval_scores([1, 3, None, 6])
    assert scores.recall == {1: 0.25, 5: 0.5, 10: 0.75}
    assert scores.mrr == pytest.approx(0.375)
    assert scores.queries == 4


def test_no_queries_and_all_missed_are_zero_not_an_error():
    assert retrieval_scores([]).as_dict() == {
        "queries": 0,
        "recall@1": 0.0,
        "recall@5": 0.0,
        "recall@10": 0.0,
        "mrr": 0.0,
    }
    assert retrieval_scores([None, None]).mrr == 0.0


def test_cut_matching_uses_each_cut_once_within_the_tolerance():
    # found 1.0 and 1.1 both near expected 1.05: only one counts; 5.3 is 0.3 away (> 0.25): a miss
    scores = cut_scores([1.0, 1.1, 5.3], [1.05, 5.0], tolerance=0.25)
    assert (scores.true_positives, scores.false_positives, scores.false_negatives) == (1, 2, 1)
    assert scores.precision == pytest.approx(1 / 3) and scores.recall == pytest.approx(0.5)
    assert scores.f1 == pytest.approx(0.4)
    perfect = cut_scores([2.0], [2.2], tolerance=0.25)
    assert perfect.f1 == 1.0
    nothing = cut_scores([], [])
    assert (nothing.precision, nothing.recall) == (1.0, 1.0)  # nothing to find, nothing found: not a failure
    total = add_cut_scores([scores, perfect])
    assert (total.true_positives, total.false_positives, total.false_negatives) == (2, 2, 1)


def test_word_error_rate_ignores_case_and_punctuation():
    assert normalise_words("Hello, World!") == "hello world"
    assert word_error_rate(["the cat sat"], ["The cat, sat."]) == 0.0
    assert word_error_rate(["one two three four"], ["one three four five"]) == 0.5  # 1 deletion + 1 insertion
    assert word_error_rate([""], ["anything"]) == 0.0  # no reference words: left out
