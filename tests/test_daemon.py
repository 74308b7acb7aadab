"""The local deployment for real: a Dagster daemon on the `local` dagster.yaml watches the videos
folder; its sensor batches the videos, the batch runs index them, each model loads once per
batch, a broken video fails alone; the command line and the UI see the same instance."""

import json
import os
import shutil
from pathlib import Path

import dagster as dg
import pytest
from media import photo_png, still_segment

from tving_resources.catalog import VideoCatalog
from tving_resources.config import resolve_paths
from tving_resources.local_cluster import BIN, spawn, stop_group, wait_for

pytestmark = pytest.mark.slow
OLD = 1_000_000_000


def _library(folder: Path, speech_clip: Path, broken: Path) -> list[Path]:
    """12 files: 10 short generated clips, one with speech, one broken."""
    videos = folder / "videos"
    videos.mkdir(parents=True)
    sources = folder / "sources"
    sources.mkdir()
    files = []
    for i, photo in enumerate(["chelsea", "coffee", "rocket", "astronaut", "camera"] * 2):
        out = videos / f"clip {i:02d} {photo}.mp4"
        still_segment(photo_png(photo, sources), 1.0 + 0.2 * i, out)
        files.append(out)
    files.append(shutil.copyfile(speech_clip, videos / "spoken.mp4"))
    files.append(shutil.copyfile(broken, videos / "broken.mp4"))
    for f in files:
        os.utime(f, ns=(OLD, OLD))  # settled long ago
    return files


def test_sensor_batches_through_the_local_daemon(tmp_path, speech_clip, broken_files):
    home = tmp_path / "home"
    files = _library(home, speech_clip[0], broken_files["truncated"])
    paths = resolve_paths(home=home).ensure()
    from tving_assets.instance import dagster_home, get_instance

    env = {
        **os.environ,
        "TVING_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home(home)),  # the local deployment's dagster.yaml
        "TVING_SENSOR_INTERVAL_SECONDS": "2",
        "HF_HUB_OFFLINE": "1",
    }
    catalog = VideoCatalog(paths.catalog_url)

    def settled() -> bool:
        states = [catalog.find(e.video_id) for e in catalog.entries()]
        if len(states) != len(files) or any(s.state not in ("indexed", "failed") for s in states):
            return False
        # a video is "indexed" once committed, a moment before its run ends: wait for the runs too
        # (stopping the daemon's group earlier interrupts a run that has done all its work)
        batches = get_instance(home).get_runs(filters=dg.RunsFilter(job_name="index_batch_job"))
        return bool(batches) and all(r.is_finished for r in batches)

    command = [str(BIN / "dagster-daemon"), "run", "-m", "tving_assets.definitions"]
    daemon = spawn(command, env, tmp_path / "daemon.log", cwd=tmp_path)
    try:
        wait_for(settled, 300, "the daemon to index the library")
    except TimeoutError:
        print((tmp_path / "daemon.log").read_text()[-5000:])
        raise
    finally:
        stop_group(daemon)  # the daemon and the runs it launched
    entries = {Path(e.path).name: e for e in catalog.entries()}
    assert entries["broken.mp4"].state == "failed" and "video_metadata failed" in entries["broken.mp4"].error
    assert all(e.state == "indexed" for name, e in entries.items() if name != "broken.mp4")

    instance = get_instance(home)  # the one the daemon used: <home>/dagster
    batches = instance.get_runs(filters=dg.RunsFilter(job_name="index_batch_job"))
    assert batches and all(r.status == dg.DagsterRunStatus.SUCCESS for r in batches)
    loads: dict[str, int] = {}
    videos = 0
    for run in batches:
        (record,) = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_OUTPUT)
        meta = record.dagster_event.step_output_data.metadata
        videos += meta["videos"].value
        for model, n in meta["model_loads"].value.items():
            loads[model] = loads.get(model, 0) + n
    assert videos == 12
    assert loads and all(n / videos <= 0.25 for n in loads.values()), loads  # each model: once per batch
    per_video = instance.get_runs(filters=dg.RunsFilter(job_name="index_video"))
    failed = [r for r in per_video if r.status == dg.DagsterRunStatus.FAILURE]
    reasons = [
        (r.tags.get("dagster/partition"), [e.message for e in instance.all_logs(r.run_id) if e.level >= 40][:3])
        for r in failed
    ]
    assert len(per_video) == 12 and len(failed) == 1, reasons
    # the batch run's step captured its process's output; the runs inside it were not captured again
    logs = dagster_home(home) / "storage"
    assert all(list((logs / r.run_id).rglob("*.out")) for r in batches)
    assert not any((logs / r.run_id).exists() for r in per_video)
    print(json.dumps({"model_loads": loads, "videos": videos}))


def test_cli_runs_show_in_the_ui_that_tving_ui_opens(tmp_path, broken_files):
    """`tving index` records its runs in <home>/dagster; `tving ui` serves that same instance."""
    from click.testing import CliRunner

    from query_app.cli import main
    from query_app.dagster_status import DagsterStatusClient
    from tving_resources.local_cluster import accepts, free_port

    home = tmp_path / "home"
    out = CliRunner().invoke(main, ["--home", str(home), "index", str(broken_files["empty"]), "--json"])
    assert out.exit_code == 1  # the file failed, and its run was recorded
    (result,) = json.loads(out.output)
    port = free_port()
    env = {**os.environ, "TVING_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    ui = spawn([str(BIN / "tving"), "ui", "--port", str(port)], env, tmp_path / "ui.log", cwd=tmp_path)
    try:
        wait_for(lambda: accepts(port), 120, "tving ui")
        client = DagsterStatusClient(f"http://127.0.0.1:{port}", timeout=30)
        wait_for(lambda: client.index_runs()["reachable"], 60, "the UI's GraphQL API")
        (video,) = client.index_runs()["videos"]
        assert video["video_id"] == result["video_id"] and video["status"] == "FAILURE"
        assert result["run_id"] in video["run_url"]
    finally:
        stop_group(ui)
