"""Bad files fail alone, clearly, once: a fuzz corpus of 30+ malformed or unusual inputs made
from real media is indexed in one call; a good file that turns broken loses its rows; the sensor
does not ask again for a broken version; `tving status`, `/failures` and the library page list
the failures."""

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from conftest import make_resources
from fuzz_media import make_fuzz_corpus

from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.config import resolve_paths
from tving_resources.ids import video_id_for
from tving_resources.index.lifecycle import display_name
from tving_resources.store.scene_store import connect
from tving_resources.store.schema import table_name_for

pytestmark = pytest.mark.slow


def rows_by_video(home: Path) -> dict[str, int]:
    db = connect(resolve_paths(home=home).lancedb_uri)
    if table_name_for("lite") not in db.list_tables().tables:
        return {}
    ids = db.open_table(table_name_for("lite")).search().select(["video_id"]).limit(None).to_arrow()
    counts: dict[str, int] = {}
    for video_id in ids.column("video_id").to_pylist():
        counts[video_id] = counts.get(video_id, 0) + 1
    return counts


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, speech_clip, cuts_clip):
    from tving_assets.indexing import index_videos

    folder = tmp_path_factory.mktemp("fuzz")
    cases = make_fuzz_corpus(folder / "corpus", speech_clip[0])
    good = folder / "corpus" / "a good clip.mp4"
    shutil.copyfile(cuts_clip[0], good)
    home = folder / "home"
    results = index_videos([str(c.path) for c in cases] + [str(good)], make_resources(home), refresh_search_index=False)
    return {"cases": cases, "results": {r.path: r for r in results}, "home": home, "good": good}


def test_corpus_is_big_and_varied(fuzzed):
    cases = fuzzed["cases"]
    assert len(cases) >= 30
    assert sum(c.valid for c in cases) >= 10 and sum(not c.valid for c in cases) >= 20


def test_unusual_valid_inputs_are_indexed(fuzzed):
    counts = rows_by_video(fuzzed["home"])
    for case in (c for c in fuzzed["cases"] if c.valid):
        result = fuzzed["results"][str(case.path.resolve())]
        assert result.ok, (case.what, result.error)
        assert counts.get(result.video_id, 0) == result.scenes > 0, case.what


def test_broken_inputs_fail_alone_naming_file_and_stage(fuzzed):
    from tving_assets.indexing import STAGE_NAMES

    counts = rows_by_video(fuzzed["home"])
    catalog = VideoCatalog(resolve_paths(home=fuzzed["home"]).catalog_path)
    for case in (c for c in fuzzed["cases"] if not c.valid):
        result = fuzzed["results"][str(case.path.resolve())]
        assert not result.ok, case.what
        assert result.failed_stage in STAGE_NAMES, (case.what, result.failed_stage)
        prefix = f"{display_name(case.path.name)}: {result.failed_stage} failed: "
        assert result.error.startswith(prefix) and len(result.error) > len(prefix) + 10, (case.what, result.error)
        assert "Traceback" not in result.error and "DECORDError" not in result.error
        assert counts.get(result.video_id, 0) == 0, case.what  # nothing of a failed video
        entry = catalog.get(result.video_id)
        assert (entry.state, entry.failed_stage, entry.error) == ("failed", result.failed_stage, result.error)
    assert fuzzed["results"][str(fuzzed["good"].resolve())].ok  # the good file of the same call


def test_status_api_and_library_page_list_failures(fuzzed, monkeypatch):
    from fastapi.testclient import TestClient

    from query_app.web.app import create_app
    from tving_cli.main import main
    from tving_cli.output import failure_cause

    home = fuzzed["home"]
    broken = [fuzzed["results"][str(c.path.resolve())] for c in fuzzed["cases"] if not c.valid]
    monkeypatch.setenv("TVING_HOME", str(home))
    status = json.loads(CliRunner().invoke(main, ["status", "--json"]).output)
    assert {f["video_id"]: f["error"] for f in status["failed_videos"]} == {r.video_id: r.error for r in broken}
    text = CliRunner().invoke(main, ["status"]).output
    cause = failure_cause(broken[0].error, broken[0].path, broken[0].failed_stage)  # without name and stage
    assert f"failed videos ({len(broken)}" in text and f"at {broken[0].failed_stage}: {cause}\n" in text
    client = TestClient(
        create_app(paths=resolve_paths(home=home), warm_up_in_background=False),
        base_url="http://localhost",
        headers={"Accept-Language": "en"},
    )
    assert {f["error"] for f in client.get("/failures").json()} == {r.error for r in broken}
    page = client.get("/library").text
    assert f"Failed videos ({len(broken)})" in page and "video_metadata" in page


def test_a_good_file_that_turns_broken_loses_its_rows(tmp_path, cuts_clip):
    from tving_assets.indexing import index_videos

    clip = tmp_path / "clip.mp4"
    shutil.copyfile(cuts_clip[0], clip)
    home = tmp_path / "home"
    resources = make_resources(home)
    (first,) = index_videos([str(clip)], resources, refresh_search_index=False)
    assert first.ok and rows_by_video(home)[first.video_id] == 4
    clip.write_bytes(clip.read_bytes()[:5000])  # overwritten by a broken copy
    (second,) = index_videos([str(clip)], resources, refresh_search_index=False)
    assert not second.ok and second.failed_stage == "video_metadata"
    assert first.video_id not in rows_by_video(home)  # its rows described content that is gone
    assert not (resolve_paths(home=home).artifacts_dir / "lite" / first.video_id).exists()


def test_sensor_asks_once_for_a_broken_version(tmp_path, broken_files):
    from tving_assets.automation.sensors import videos_folder_sensor
    from tving_assets.definitions import build_definitions

    home = tmp_path / "home"
    videos = resolve_paths(home=home).videos_dir
    videos.mkdir(parents=True)
    broken = videos / "broken.mp4"
    shutil.copyfile(broken_files["truncated"], broken)
    resources = make_resources(home, sensor_settle_seconds=0)
    definitions = build_definitions(resources)
    instance = dg.DagsterInstance.ephemeral()
    cursor = None

    def tick():
        nonlocal cursor
        with dg.build_sensor_context(
            cursor=cursor, resources=resources, definitions=definitions, instance=instance
        ) as context:
            result = videos_folder_sensor(context)
        cursor = result.cursor
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return result

    (request,) = tick().run_requests
    run = definitions.resolve_job_def("index_video").execute_in_process(
        partition_key=request.partition_key, instance=instance, raise_on_error=False
    )
    assert not run.success
    entry = VideoCatalog(resolve_paths(home=home).catalog_path).get(video_id_for(broken))
    assert entry.state == "failed" and "not a readable video" in entry.error
    assert not tick().run_requests and not tick().run_requests  # the same broken version: not again
    broken.write_bytes(broken.read_bytes() + b"\0")  # the file changed: try it again
    assert [r.partition_key for r in tick().run_requests] == [request.partition_key]
