"""The local deployment for real: a Dagster daemon on the `local` dagster.yaml watches the videos
folder; its sensor asks for one run per video, Dagster's queue launches them, the model worker
keeps the models loaded across them, a broken video fails alone; the command line and the UI see
the same instance."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest
from media import photo_png, still_segment

from tving_dev.local_cluster import BIN, spawn, stop_group, wait_for
from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.config import resolve_paths

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


def _longer_clip(speech_clip: Path, out: Path, times: int = 4) -> Path:
    """The speech clip ``times`` over: a run long enough for a second request to arrive meanwhile."""
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{speech_clip}'\n" for _ in range(times)))
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
                    "-c", "copy", str(out)], check=True)  # fmt: skip
    return out


def test_the_daemon_runs_one_queued_run_per_video_with_warm_models(tmp_path, speech_clip, broken_files):
    """The sensor asks for one `index_video` run per video; Dagster's queue launches each as its
    own process, never two runs of one video at once; the runs use the model worker's models (each
    loaded once for the library, none in a run's process); a broken video fails alone."""
    home = tmp_path / "home"
    files = _library(home, speech_clip[0], broken_files["truncated"])
    long_one = _longer_clip(speech_clip[0], tmp_path / "long.mp4", times=12)
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

    def runs() -> list:
        return [r.dagster_run for r in get_instance(home).get_run_records(dg.RunsFilter(job_name="index_video"))]

    def settled(expected: int) -> bool:
        states = [catalog.find(e.video_id) for e in catalog.entries()]
        if len(states) != expected or any(s.state not in ("indexed", "failed") for s in states):
            return False
        # a video is "indexed" once committed, a moment before its run ends: wait for the runs too
        return bool(runs()) and all(r.is_finished for r in runs())

    worker = spawn([str(BIN / "tving"), "worker"], env, tmp_path / "worker.log", cwd=tmp_path)
    daemon = spawn([str(BIN / "dagster-daemon"), "run", "-m", "tving_assets.definitions"], env,
                   tmp_path / "daemon.log", cwd=tmp_path)  # fmt: skip
    try:
        wait_for(lambda: settled(len(files)), 420, "the daemon to index the library")
        # a long video, then a new version of it while its first run is still going
        target = paths.videos_dir / "long.mp4"
        shutil.copyfile(long_one, target)
        os.utime(target, ns=(OLD, OLD))
        wait_for(lambda: any(r.tags.get("tving/video") == "long.mp4" and r.status.value == "STARTED" for r in runs()),
                 120, "the long video's run to start")  # fmt: skip
        time.sleep(4)  # into its stages: the change is seen when the stage reading the file ends
        shutil.copyfile(speech_clip[0], target)
        os.utime(target, ns=(OLD, OLD))
        wait_for(lambda: sum(r.tags.get("tving/video") == "long.mp4" for r in runs()) == 2, 60, "a second request")
        wait_for(lambda: settled(len(files) + 1), 300, "both runs of the long video")
        from tving_resources.worker.client import WorkerAddress, WorkerClient

        worker_loads = WorkerClient(WorkerAddress.for_home(home)).load_counts()
    except TimeoutError:
        print((tmp_path / "daemon.log").read_text()[-5000:])
        raise
    finally:
        stop_group(daemon)  # the daemon and the runs it launched
        stop_group(worker)
    entries = {Path(e.path).name: e for e in catalog.entries()}
    assert entries["broken.mp4"].state == "failed" and "video_metadata failed" in entries["broken.mp4"].error
    assert all(e.state == "indexed" for name, e in entries.items() if name != "broken.mp4")

    instance = get_instance(home)  # the one the daemon used: <home>/dagster
    records = instance.get_run_records(dg.RunsFilter(job_name="index_video"))
    assert len(records) == len(files) + 2
    # launched by the sensor, through the queue, each under its video's partition
    assert all(r.dagster_run.tags.get("dagster/sensor_name") == "videos_folder_sensor" for r in records)
    assert len({r.dagster_run.tags["dagster/partition"] for r in records}) == len(files) + 1
    failed = {r.dagster_run.run_id: r.dagster_run.tags["tving/video"] for r in records
              if r.dagster_run.status == dg.DagsterRunStatus.FAILURE}  # fmt: skip
    # never two runs of one video at once: the second waited in the queue until the first ended
    first, second = sorted((r for r in records if r.dagster_run.tags["tving/video"] == "long.mp4"),
                           key=lambda r: r.create_timestamp)  # fmt: skip
    # the broken file fails alone; the first long run may fail too: its file changed under it
    assert set(failed.values()) <= {"broken.mp4", "long.mp4"} and "broken.mp4" in failed.values()
    assert second.dagster_run.run_id not in failed
    # asked for while the first ran, or, when the first stopped at once on the change, within the
    # sensor's next ticks (2 s apart here): CI saw the first run end 1.6 s before the request
    assert second.create_timestamp.timestamp() < first.end_time + 3 * 2
    assert second.start_time >= first.end_time  # never at once
    # each model loaded once, in the model worker; none in the runs' own processes
    videos = len(files) + 1
    assert worker_loads and all(n / videos <= 0.1 for n in worker_loads.values()), worker_loads
    for record in instance.fetch_materializations(dg.AssetKey("captions"), limit=100).records:
        metadata = record.event_log_entry.asset_materialization.metadata
        assert metadata["model_loads"].value == {}, metadata["model_loads"]
        assert metadata["model_worker"].value.startswith("pid ")
    print(json.dumps({"worker_model_loads": worker_loads, "videos": videos}))


def test_cli_runs_show_in_the_ui_that_tving_ui_opens(tmp_path, broken_files):
    """`tving index` records its runs in <home>/dagster; `tving ui` serves that same instance."""
    from click.testing import CliRunner

    from query_app.web.dagster_status import DagsterStatusClient
    from tving_cli.main import main
    from tving_dev.local_cluster import accepts, free_port

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
        # the banner and the sensor's description name the watched folder
        assert f"watching {home / 'videos'}:" in (tmp_path / "ui.log").read_text()
        wait_for(lambda: client.index_runs()["daemon_running"], 60, "the daemon's first heartbeat")
        sensor = client.ask(
            '{ sensorOrError(sensorSelector: {repositoryName: "__repository__", repositoryLocationName:'
            ' "tving_assets.definitions", sensorName: "videos_folder_sensor"}) { ... on Sensor { description } } }',
            {},
        )["sensorOrError"]
        assert sensor["description"].startswith(f"Watches {home / 'videos'} "), sensor
    finally:
        stop_group(ui)


def _worker_pid(home: Path) -> int | None:
    from tving_resources.worker.client import WorkerAddress, WorkerClient, WorkerUnavailableError

    try:
        return WorkerClient(WorkerAddress.for_home(home)).request("ping")
    except WorkerUnavailableError:
        return None


def test_ctrl_c_stops_everything_tving_ui_started(tmp_path):
    """Ctrl-C (SIGINT to the terminal's process group) stops `tving ui` and every process it
    started: the webserver, the daemon, their code servers, the model worker (which, killed
    before, was started again while the UI stayed up)."""
    import signal

    import psutil

    from tving_dev.local_cluster import accepts, free_port
    from tving_resources.worker.client import WorkerAddress, WorkerClient

    home = tmp_path / "home"
    port = free_port()
    env = {**os.environ, "TVING_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    ui = spawn([str(BIN / "tving"), "ui", "--port", str(port)], env, tmp_path / "ui.log", cwd=tmp_path)
    try:
        wait_for(lambda: accepts(port), 120, "the Dagster UI")
        wait_for(lambda: WorkerClient(WorkerAddress.for_home(home)).available(), 60, "the model worker")
        # a model worker that dies (a stage crashed it) is started again; the UI stays up
        first = WorkerClient(WorkerAddress.for_home(home)).request("ping")
        os.killpg(os.getpgid(first), signal.SIGKILL)
        wait_for(lambda: _worker_pid(home) not in (None, first), 60, "the model worker to be started again")
        assert (
            accepts(port)
            and "model worker stopped (exit code -9); starting it again" in (tmp_path / "ui.log").read_text()
        )
        started = psutil.Process(ui).children(recursive=True)
        assert len(started) >= 3, started  # dagster dev and what it runs, the worker
        os.killpg(ui, signal.SIGINT)
        _gone, alive = psutil.wait_procs([psutil.Process(ui), *started], timeout=60)
        assert not alive, [(p.pid, p.cmdline()) for p in alive]
        assert not WorkerClient(WorkerAddress.for_home(home)).available()
    finally:
        stop_group(ui)
