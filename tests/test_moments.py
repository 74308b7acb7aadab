"""Moments: one long shot (no cut) over which six sentences are spoken at known times; a query
about each sentence answers with the part of the shot where it is said."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from media import LONG_SHOT_SENTENCES, make_long_shot

from tving_cli.main import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def long_shot(tmp_path_factory):
    from conftest import make_resources

    from tving_assets.indexing import index_videos

    folder = tmp_path_factory.mktemp("long-shot")
    clip, spans = make_long_shot(folder / "media")
    home = folder / "home"
    # one scene for the whole shot: no split of long scenes either
    (result,) = index_videos([str(clip)], make_resources(home, max_scene_seconds=600.0))
    assert result.ok and result.scenes == 1, (result.error, result.scenes)
    return {"home": home, "clip": clip, "spans": spans, "video_id": result.video_id}


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    overlap = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return overlap / (max(a[1], b[1]) - min(a[0], b[0]))


def test_a_query_answers_with_the_moment_its_sentence_is_said(long_shot):
    from query_app.search import SceneSearch
    from tving_resources.config import resolve_paths

    engine = SceneSearch(paths=resolve_paths(home=long_shot["home"]))
    hits, seen = 0, []
    for (_, query), span in zip(LONG_SHOT_SENTENCES, long_shot["spans"], strict=True):
        (result,) = engine.search(query, k=1, min_score=0.0).results  # one scene: the moment is the question
        moment = result.moment
        assert result.start <= moment.start < moment.end <= result.end  # never beyond the scene
        assert moment.start <= result.timestamp <= moment.end  # the frame shown lies inside it
        assert moment.end - moment.start <= 10.0
        seen.append(
            (query, span, (moment.start, moment.end), moment.source, round(iou(span, (moment.start, moment.end)), 2))
        )
        hits += iou(span, (moment.start, moment.end)) >= 0.5
    assert result.end - result.start > 30  # one long scene: whole scenes would never pass
    assert hits >= 5, seen


def test_the_cli_prints_the_moment_and_json_carries_it(long_shot):
    runner = CliRunner()
    query = LONG_SHOT_SENTENCES[2][1]
    out = runner.invoke(main, ["--home", str(long_shot["home"]), "search", query, "-k", "1", "--json"])
    assert out.exit_code == 0, out.output
    (result,) = json.loads(out.output)["results"]
    assert set(result["moment"]) == {"start", "end", "source"} and result["moment"]["source"] == "speech"
    text = runner.invoke(main, ["--home", str(long_shot["home"]), "search", query, "-k", "1"])
    assert "moment:" in text.output and "(speech)" in text.output
