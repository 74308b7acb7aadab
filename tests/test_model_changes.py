"""Models change, the index stays (full profile, tiny random models): a new caption adapter or
speech model re-runs only the stages that depend on it; rows record the models that made them."""

import json

import pytest
from conftest import make_resources

from tving_assets.resources import ModelRuntimeResource
from tving_dev.tiny_models import build_whisper_ct2

pytestmark = pytest.mark.slow

CAPTION_DEPENDENT = {"captions", "scene_vectors", "scene_rows", "scene_index"}
TRANSCRIPT_DEPENDENT = {"transcript", *CAPTION_DEPENDENT}


@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_models, speech_clip, cuts_clip):
    """Two videos indexed with the full profile's tiny models."""
    from tving_assets.indexing import index_videos

    home = tmp_path_factory.mktemp("model-changes-home")
    resources = make_resources(home)
    resources["models"] = ModelRuntimeResource(profile="full", models_dir=str(tiny_models))
    results = index_videos([str(speech_clip[0]), str(cuts_clip[0])], resources)
    assert all(r.ok for r in results), [r.error for r in results]
    return {"home": home, "videos": {r.video_id: r.scenes for r in results}}


def _resources(library, tiny_models, **overrides):
    resources = make_resources(library["home"])
    resources["models"] = ModelRuntimeResource(profile="full", models_dir=str(tiny_models), model_overrides=overrides)
    return resources


def _rows(home, column: str) -> dict[str, set[str]]:
    from tving_resources.config import resolve_paths
    from tving_resources.store.scene_store import connect

    table = connect(resolve_paths(home=home).lancedb_uri).open_table("scenes_full")
    data = table.search().select(["video_id", column]).limit(None).to_arrow().to_pylist()
    found: dict[str, set[str]] = {}
    for row in data:
        found.setdefault(row["video_id"], set()).add(row[column])
    return found


def test_unchanged_models_leave_nothing_stale(library, tiny_models):
    from tving_assets.indexing import plan_stale

    plans = plan_stale(_resources(library, tiny_models))
    assert {p.video_id for p in plans} == set(library["videos"])
    assert not any(p.stale for p in plans), [p.reasons for p in plans]


def test_new_caption_adapter_reruns_only_caption_stages(library, tiny_models, tmp_path, frames_dataset, monkeypatch):
    import dagster as dg

    from tving_assets.assets.finetune import captioner_lora_adapter
    from tving_assets.indexing import index_stale, plan_stale

    adapter = tmp_path / "adapter"
    base = _resources(library, tiny_models)
    trained = dg.materialize(
        [captioner_lora_adapter],
        resources=base,
        run_config={"ops": {"captioner_lora_adapter": {"config": {
            "dataset": str(frames_dataset), "output_dir": str(adapter), "steps": 1,
            "frames_per_example": 2, "lora_rank": 4, "lora_alpha": 8}}}},
    )  # fmt: skip
    assert trained.success

    # the command line sees the same plan (the adapter from TVING_CAPTION_ADAPTER, as a user sets it)
    from click.testing import CliRunner

    from tving_cli.main import main as cli

    monkeypatch.setenv("TVING_MODELS_DIR", str(tiny_models))
    monkeypatch.setenv("TVING_CAPTION_ADAPTER", str(adapter))
    args = ["--home", str(library["home"]), "--profile", "full", "index", "--stale", "--dry-run", "--json"]
    out = CliRunner().invoke(cli, args)
    monkeypatch.delenv("TVING_CAPTION_ADAPTER")
    assert out.exit_code == 0, out.output
    planned = json.loads(out.output)
    assert not planned["results"] and len(planned["plans"]) == len(library["videos"])
    assert all(set(p["stages"]) == CAPTION_DEPENDENT for p in planned["plans"]), planned

    resources = _resources(library, tiny_models, caption_adapter=str(adapter))
    (plan, *_) = plan_stale(resources)
    assert set(plan.assets) == CAPTION_DEPENDENT and list(plan.reasons) == ["captions"]
    assert "adapter" in plan.reasons["captions"]

    _plans, results = index_stale(resources)
    assert len(results) == len(library["videos"]) and all(r.ok for r in results), [r.error for r in results]
    for result in results:  # from the run's step events: nothing before the captions ran
        assert set(result.stage_seconds) == CAPTION_DEPENDENT, result.stage_seconds
    counts = _rows(library["home"], "caption_model")
    assert set(counts) == set(library["videos"])  # the table kept every video
    for models in counts.values():
        assert models == {next(iter(models))} and next(iter(models)).endswith(f"+{adapter}")
    assert not any(p.stale for p in plan_stale(resources))

    # rolling back is the same change the other way
    _plans, results = index_stale(_resources(library, tiny_models))
    assert all(set(r.stage_seconds) == CAPTION_DEPENDENT for r in results)
    assert all("+" not in m for models in _rows(library["home"], "caption_model").values() for m in models)


def test_new_speech_model_reruns_only_transcript_stages(library, tiny_models, tmp_path):
    from tving_assets.indexing import index_stale, plan_stale
    from tving_cli.main import main as cli

    other_whisper = build_whisper_ct2(tmp_path / "other-whisper")
    resources = _resources(library, tiny_models, speech=str(other_whisper))
    assert all(set(p.assets) == TRANSCRIPT_DEPENDENT for p in plan_stale(resources))

    _plans, results = index_stale(resources)
    assert all(r.ok for r in results), [r.error for r in results]
    for result in results:
        assert set(result.stage_seconds) == TRANSCRIPT_DEPENDENT, result.stage_seconds
    speech = _rows(library["home"], "speech_model")
    assert set(speech) == set(library["videos"]) and all(m == {str(other_whisper)} for m in speech.values())

    # status shows rows per model
    from click.testing import CliRunner

    out = CliRunner().invoke(cli, ["--home", str(library["home"]), "--profile", "full", "status", "--json"])
    assert out.exit_code == 0, out.output
    per_model = json.loads(out.output)["rows_per_model"]["scenes_full"]
    assert per_model["speech_model"] == {str(other_whisper): sum(library["videos"].values())}

    _plans, results = index_stale(_resources(library, tiny_models))  # roll back
    assert all(r.ok and set(r.stage_seconds) == TRANSCRIPT_DEPENDENT for r in results)


@pytest.fixture
def frames_dataset(tmp_path, sample_videos):
    from PIL import Image

    from tving_resources.media.video import FrameReader, probe_video

    info = probe_video(sample_videos["bikes.mp4"], "bikes-0000000000")
    frame = FrameReader(info.path, (info.width, info.height), max_side=128).frames_at([1.0])[0]
    Image.fromarray(frame).save(tmp_path / "frame.jpg")
    dataset = tmp_path / "captions.jsonl"
    record = {"image": "frame.jpg", "conversations": [{"from": "human", "value": "<image>\nDescribe."},
                                                      {"from": "gpt", "value": "People ride bikes."}]}  # fmt: skip
    dataset.write_text(json.dumps(record))
    return dataset


def test_new_text_encoder_builds_beside_the_live_table_then_switches(library, tiny_models, tmp_path):
    """Runs last in this module: it moves the library to another vector space."""
    import threading

    from click.testing import CliRunner

    from query_app.search import SceneSearch
    from tving_assets.indexing import index_stale, plan_stale
    from tving_cli.main import main as cli
    from tving_dev.tiny_models import build_bert
    from tving_resources.config import resolve_paths
    from tving_resources.models.runtime import ModelRuntime, RuntimeConfig

    home = library["home"]
    uri = resolve_paths(home=home).lancedb_uri
    wider = build_bert(tmp_path / "bert-48", hidden_size=48)  # another encoder, another dimension
    resources = _resources(library, tiny_models, text_encoder=str(wider))
    plans = plan_stale(resources)
    assert all(set(p.assets) == {"scene_vectors", "scene_rows", "scene_index"} for p in plans)

    # a server started before the change keeps searching the whole time
    engine = SceneSearch(ModelRuntime(RuntimeConfig(profile="full", models_dir=str(tiny_models))), lancedb_uri=uri)
    answers: list[tuple[str, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def search_loop() -> None:
        while not stop.is_set():
            try:
                response = engine.search("a person speaks", k=3)
                answers.append((engine.store.table_name, len(response.results)))
            except BaseException as exc:  # any failure fails the test
                errors.append(exc)

    def tables_json() -> dict:
        out = CliRunner().invoke(cli, ["--home", str(home), "tables", "--json"])
        assert out.exit_code == 0, out.output
        return json.loads(out.output)

    loop = threading.Thread(target=search_loop, daemon=True)
    loop.start()
    try:
        first, *rest = [p.video_id for p in plans]
        _plans, results = index_stale(resources, [first])
        assert all(r.ok for r in results), [r.error for r in results]
        state = tables_json()
        (rebuild,) = state["rebuilds"].values()
        assert (rebuild["videos_done"], rebuild["videos_total"]) == (1, len(library["videos"]))
        roles = {t["table"]: t["role"] for t in state["tables"]}
        assert roles["scenes_full"] == "live" and roles[rebuild["building"]] == "building"
        answered_before = len(answers)
        while len(answers) < answered_before + 3 and not errors:  # still answering, from the old table
            threading.Event().wait(0.05)
        assert all(name == "scenes_full" for name, _ in answers)

        _plans, results = index_stale(resources, rest)
        assert all(r.ok for r in results), [r.error for r in results]
        switched = len(answers)
        while len(answers) < switched + 3 and not errors:
            threading.Event().wait(0.05)
    finally:
        stop.set()
        loop.join(timeout=60)
    assert not errors, errors
    assert answers and all(n > 0 for _, n in answers), "a search came back empty"
    new_table = rebuild["building"]
    assert answers[-1][0] == new_table  # the running engine moved to the new table by itself
    assert engine.encoders.text_encoder().dim == 48

    state = tables_json()
    roles = {t["table"]: t["role"] for t in state["tables"]}
    assert roles == {new_table: "live", "scenes_full": "retired"} and not state["rebuilds"]
    refused = CliRunner().invoke(cli, ["--home", str(home), "tables", "drop", new_table])
    assert refused.exit_code != 0 and "live table" in refused.output

    # rolling back: the old encoder's rows go to its retired table, which turns live again
    _plans, results = index_stale(_resources(library, tiny_models))
    assert all(r.ok and set(r.stage_seconds) == {"scene_vectors", "scene_rows", "scene_index"} for r in results)
    roles = {t["table"]: t["role"] for t in tables_json()["tables"]}
    assert roles == {"scenes_full": "live", new_table: "retired"}
    assert engine.search("a person speaks", k=3).results and engine.store.table_name == "scenes_full"
    dropped = CliRunner().invoke(cli, ["--home", str(home), "tables", "drop", new_table])
    assert dropped.exit_code == 0, dropped.output
    assert {t["table"] for t in tables_json()["tables"]} == {"scenes_full"}


def test_full_profile_finds_korean_speech_with_a_korean_query(tmp_path, tiny_models, cuts_clip, speech_clip):
    """A clip whose transcript is Korean (from a Korean subtitle file beside it) is found by a
    Korean query in the full profile: transcripts in the multilingual encoder's space, the query
    encoded as written for that signal, Korean full text through the n-gram index."""
    import shutil

    from query_app.search import SceneSearch
    from tving_assets.indexing import index_videos
    from tving_resources.config import resolve_paths
    from tving_resources.models.runtime import ModelRuntime, RuntimeConfig
    from tving_resources.store.maintenance import inspect_tables

    folder = tmp_path / "videos"
    folder.mkdir()
    news = folder / "news.mp4"
    shutil.copyfile(cuts_clip[0], news)
    (folder / "news.ko.srt").write_text(
        "1\n00:00:00,000 --> 00:00:30,000\n오늘 서울 날씨는 종일 비가 내리겠습니다\n", encoding="utf-8"
    )
    home = tmp_path / "home"
    resources = make_resources(home)
    resources["models"] = ModelRuntimeResource(profile="full", models_dir=str(tiny_models))
    results = index_videos([str(news), str(speech_clip[0])], resources)
    assert all(r.ok for r in results), [r.error for r in results]
    (table,) = inspect_tables(resolve_paths(home=home).lancedb_uri)
    assert (table.stamp.transcript_model, table.stamp.transcript_dim) == ("intfloat/multilingual-e5-large", 24)
    assert table.stamp.text_dim == 32  # captions stay in the English encoder's space

    engine = SceneSearch(
        ModelRuntime(RuntimeConfig(profile="full", models_dir=str(tiny_models))),
        lancedb_uri=resolve_paths(home=home).lancedb_uri,
    )
    response = engine.search("서울 날씨", k=3)
    assert response.translated  # the caption signal still gets the English translation
    top = response.results[0]
    assert top.video_id == results[0].video_id and "서울" in top.transcript_snippet, response.to_dict()
    assert top.scores["text"] > 0
