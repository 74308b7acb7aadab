"""Search quality on a labelled query set over the session's real index: the default fusion must
beat the best single signal (this is how the default was chosen; see query_app.evaluate)."""

import pytest
from media import SPOKEN_SCENES

from query_app.evaluate import LabelledQuery, compare_methods
from query_app.search import DEFAULT_FUSION

pytestmark = pytest.mark.slow
CUTS, COPY, SPEECH, BIKES = "cuts.mp4", "장면 테스트 clip.mp4", "speech.mp4", "bikes.mp4"


def labelled_queries() -> list[LabelledQuery]:
    def q(text, *relevant):
        return LabelledQuery(text, frozenset(relevant))

    spoken = [q(s.paraphrase, f"{SPEECH}#{i}") for i, s in enumerate(SPOKEN_SCENES)]
    korean = [q(s.korean_topic, f"{SPEECH}#{i}") for i, s in enumerate(SPOKEN_SCENES)]
    return [
        *spoken,
        *korean,
        q("pasta", f"{SPEECH}#0"),
        q("stadium victory", f"{SPEECH}#2"),
        q("quiet streets tonight", f"{SPEECH}#1"),
        # what is seen: the photos behind the generated clips, the sample's vehicles
        q("a cat", f"{CUTS}#0", f"{COPY}#0"),
        q("고양이", f"{CUTS}#0", f"{COPY}#0"),
        q("a cup of espresso", f"{CUTS}#1", f"{COPY}#1", f"{SPEECH}#0"),
        q("커피 한 잔", f"{CUTS}#1", f"{COPY}#1", f"{SPEECH}#0"),
        q("a missile or rocket", f"{CUTS}#2", f"{COPY}#2", f"{SPEECH}#1"),
        q("motor scooters and bicycles in the street", *(f"{BIKES}#{i}" for i in range(1, 5))),
    ]


@pytest.fixture(scope="module")
def comparison(library_search):
    return compare_methods(library_search, labelled_queries())


def test_default_fusion_beats_every_single_signal(comparison):
    report = {name: s.as_dict() for name, s in comparison.items()}
    for name, scores in report.items():  # shown with `pytest -s`: the figures quoted in README
        print(f"{name:<20} MRR {scores['mrr']:.3f}  hit@1 {scores['hit@1']:.3f}  recall@5 {scores['recall@5']:.3f}")
    default = comparison[f"fusion: {DEFAULT_FUSION}"]
    best_single = max((s for name, s in comparison.items() if "only" in name), key=lambda s: s.mrr)
    assert default.mrr > best_single.mrr, report
    assert default.recall_at_5 >= best_single.recall_at_5, report


def test_max_fusion_is_not_drowned_by_a_missing_signal(comparison):
    """The trial's finding: rank fusion lets signals that found nothing outvote a strong match."""
    assert comparison["fusion: max"].mrr >= comparison["fusion: rrf"].mrr


def test_evaluation_counts_ranks_correctly(library_search):
    from query_app.evaluate import score_method

    top = library_search.search(SPOKEN_SCENES[0].paraphrase, k=1).results[0]
    first = LabelledQuery(SPOKEN_SCENES[0].paraphrase, frozenset({f"{top.video_name}#{top.scene_index}"}))
    nowhere = LabelledQuery("xyzzy", frozenset({"missing.mp4#0"}))
    scores = score_method(library_search, [first, nowhere])
    assert scores.mrr == pytest.approx(0.5) and scores.hit_at_1 == pytest.approx(0.5)
