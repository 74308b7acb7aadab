"""The whole pipeline on real media with the real lite models: one index per session
(see conftest.indexed_library), then the acceptance checks of issue 2 against it."""

import gc
import json

import pytest
from click.testing import CliRunner
from jiwer import wer
from media import SPOKEN_SCENES

from tving_resources.config import resolve_paths
from tving_resources.ids import video_id_for
from tving_resources.media.scenes import SceneDetection
from tving_resources.store.maintenance import inspect_tables

pytestmark = pytest.mark.slow


def _normalise(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum() or c.isspace())


GOOD = ("speech.mp4", "cuts.mp4", "bikes.mp4", "장면 테스트 clip.mp4")


def test_good_videos_indexed_and_bad_ones_fail_alone(indexed_library, broken_files):
    results = indexed_library["results"]
    for name in GOOD:
        assert results[name].ok, (name, results[name].error)
    expected_errors = {
        "notes.mp4": "not a readable video",
        "empty.mp4": "empty (0 bytes)",
        "truncated.mp4": "not a readable video",
        "truncated_faststart.mp4": "truncated",
        "audio only.mp4": "no video stream",
    }
    for name, words in expected_errors.items():
        assert not results[name].ok and results[name].failed_stage == "video_metadata"
        assert words in results[name].error and results[name].error.startswith(f"{name}: video_metadata failed: ")


def test_each_model_loaded_once_for_the_whole_call(indexed_library):
    loads = indexed_library["loads"]
    assert set(loads) == {
        "speech:lite/faster-whisper-base:cpu:int8",
        "captioner:lite/efficientnet-lite0:cpu",
        "text:lite/multilingual-e5-small",
        "ocr:tesseract:kor+eng",
        "faces:lite/dlib-resnet-v1",
    }
    assert all(count == 1 for count in loads.values()), loads


def test_index_holds_exactly_the_good_videos_scenes(indexed_library, library_search):
    store = library_search.store
    artifacts = resolve_paths(home=indexed_library["home"]).artifacts_dir
    total = 0
    for result in indexed_library["results"].values():
        if result.ok:
            assert store.count(result.video_id) == result.scenes > 0
            total += result.scenes
            rows = store.scenes_of(result.video_id)
            assert [r["scene_index"] for r in rows] == list(range(result.scenes))
            for row in rows:
                assert row["caption"] and len(row["thumbnails"]) == 3
                assert all((artifacts / t).is_file() for t in row["thumbnails"])
                assert row["start"] <= min(row["keyframe_times"]) <= max(row["keyframe_times"]) <= row["end"]
        elif result.video_id:
            assert store.count(result.video_id) == 0  # nothing half-written
    assert store.count() == total


def test_cuts_found_within_a_quarter_second(indexed_library, cuts_clip):
    result = indexed_library["results"]["cuts.mp4"]
    from tving_resources.index.artifacts import ArtifactStore

    store = ArtifactStore(resolve_paths(home=indexed_library["home"]).artifacts_dir, "lite")
    detection = store.video(result.video_id).load("scenes", SceneDetection)
    starts = [s.start for s in detection.scenes[1:]]
    assert len(starts) == len(cuts_clip[1])
    assert all(abs(a - b) <= 0.25 for a, b in zip(starts, cuts_clip[1], strict=True)), starts


def test_each_spoken_scene_carries_its_sentence(indexed_library, library_search):
    rows = library_search.store.scenes_of(indexed_library["results"]["speech.mp4"].video_id)
    assert len(rows) == len(SPOKEN_SCENES)
    for row, scene in zip(rows, SPOKEN_SCENES, strict=True):
        assert wer(_normalise(scene.sentence), _normalise(row["transcript"])) <= 0.3, row["transcript"]
        assert row["has_transcript"] and row["language"] == "en"


@pytest.mark.parametrize("index", range(len(SPOKEN_SCENES)))
def test_paraphrase_query_returns_its_scene_first(indexed_library, library_search, index):
    scene = SPOKEN_SCENES[index]
    response = library_search.search(scene.paraphrase, k=5)
    top = response.results[0]
    assert top.video_name == "speech.mp4" and top.scene_index == index, [
        (r.video_name, r.scene_index, r.scores) for r in response.results
    ]


@pytest.mark.parametrize("index", range(len(SPOKEN_SCENES)))
def test_korean_query_finds_the_english_speech_topic(indexed_library, library_search, index):
    scene = SPOKEN_SCENES[index]
    response = library_search.search(scene.korean_topic, k=5, min_score=0.0)  # the ranking, nothing hidden
    hits = [(r.video_name, r.scene_index) for r in response.results]
    assert ("speech.mp4", index) in hits, hits


def test_results_carry_every_field(library_search):
    response = library_search.search("football", k=3, min_score=0.0)
    assert len(response.results) == 3
    first = response.results[0]
    assert first.start <= first.timestamp <= first.end
    assert first.thumbnail_path.endswith(".jpg")
    assert set(first.scores) == {"caption", "transcript", "text", "frame", "fused", "margin"}
    payload = response.to_dict()["results"][0]
    assert {"video_id", "video_path", "start", "end", "timestamp", "thumbnail_path", "score", "caption",
            "transcript_snippet"} <= set(payload)  # fmt: skip


def test_reindexing_a_video_keeps_the_row_count(indexed_library, library_search, speech_clip):
    from tving_assets.indexing import index_videos

    video_id = video_id_for(speech_clip[0])
    before_rows, before_total = library_search.store.count(video_id), library_search.store.count()
    frozen = []  # during the run, the start-up heap is left out of garbage collections; after it, not
    (result,) = index_videos(
        [str(speech_clip[0])],
        indexed_library["resources"],
        refresh_search_index=False,
        on_stage=lambda *_: frozen.append(gc.get_freeze_count()),
    )
    assert result.ok
    assert frozen and min(frozen) > 100_000 and gc.get_freeze_count() == 0
    assert library_search.store.count(video_id) == before_rows
    assert library_search.store.count() == before_total


def test_hangul_name_with_spaces_is_searchable(indexed_library, library_search):
    result = indexed_library["results"]["장면 테스트 clip.mp4"]
    hits = library_search.search("a cat", k=5, video_ids=[result.video_id]).results
    assert hits and all(h.video_name == "장면 테스트 clip.mp4" for h in hits)


def test_cli_search_json_and_status(indexed_library, monkeypatch):
    from tving_cli.main import main

    monkeypatch.setenv("TVING_HOME", str(indexed_library["home"]))
    runner = CliRunner()
    out = runner.invoke(main, ["search", SPOKEN_SCENES[2].paraphrase, "-k", "2", "--min-score", "0", "--json"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    assert len(payload["results"]) == 2 and payload["results"][0]["video_name"] == "speech.mp4"
    status = json.loads(runner.invoke(main, ["status", "--json"]).output)
    (table,) = status["tables"]
    assert table["videos"] == len(GOOD) and table["models"]["profile"] == "lite"
    assert table["scenes"] == sum(indexed_library["results"][n].scenes for n in GOOD)
    text = runner.invoke(main, ["search", "rain"]).output
    assert "Top " in text and "frame @" in text and "labels (automatic):" in text
    bad = runner.invoke(main, ["search", "x", "--video", "x' OR '1'='1"])
    assert bad.exit_code == 2 and "invalid video id" in bad.output
    assert inspect_tables(resolve_paths(home=indexed_library["home"]).lancedb_uri)


def test_frame_weight_adds_the_best_frame_score(indexed_library, library_search):
    from query_app.search import FusionWeights, SceneSearch

    engine = SceneSearch(paths=library_search.paths, weights=FusionWeights(frame=0.5))
    for result in engine.search("a cat", k=3, min_score=0.0).results:
        s = result.scores  # the fused score before calibration
        assert s["fused"] == pytest.approx(max(s["caption"], s["transcript"], s["text"]) + 0.5 * s["frame"], abs=2e-4)


def test_stale_plan_covers_indexed_videos_and_follows_settings(indexed_library):
    """Nothing is stale right after indexing; failed files are left to the sensor; a scene
    setting makes every stage from scenes on stale, nothing before it."""
    from conftest import make_resources

    from tving_assets.indexing import plan_stale

    indexed = {r.video_id for r in indexed_library["results"].values() if r.ok}
    plans = plan_stale(indexed_library["resources"])
    assert {p.video_id for p in plans} == indexed and not any(p.stale for p in plans)
    changed = make_resources(indexed_library["home"], scene_threshold=31.0)
    for plan in plan_stale(changed):
        assert list(plan.reasons) == ["scenes"] and "threshold: 27.0 -> 31.0" in plan.reasons["scenes"]
        assert plan.assets == [
            "scenes", "keyframes", "onscreen_text", "faces", "captions", "scene_vectors", "scene_rows", "scene_index"
        ]  # fmt: skip
