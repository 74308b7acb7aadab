"""The model worker for real (`tving worker` as its own process): a run's stages go to it and give
what the run's own process would have, with no model loaded in the run; a stage that fails there
fails that video alone, with the message it has in-process; the run's lock on its video is the
lock the worker's stage holds (a commit inside it does not wait for it), and a lock shared like
that stays held while either side holds it, even when the sender is killed; a client without
the key is refused; and when the worker is killed mid-way, the run runs its stages itself."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import make_resources

from tving_dev.local_cluster import spawn, stop_group, wait_for
from tving_resources.index.artifacts import ArtifactStore
from tving_resources.index.locks import adopted_lock, try_video_lock
from tving_resources.models.cache import MODEL_CACHE
from tving_resources.worker.client import WorkerAddress, WorkerClient, WorkerUnavailableError

pytestmark = pytest.mark.slow
TVING = str(Path(sys.executable).parent / "tving")
LOCK_TIMEOUT = 30  # a stage waiting for the run's own lock fails within this, rather than hanging


@pytest.fixture
def worker(tmp_path, monkeypatch):
    home = tmp_path / "home"
    env = {**os.environ, "TVING_HOME": str(home)}
    pid = spawn([TVING, "worker"], env, tmp_path / "worker.log")
    address = WorkerAddress.for_home(home)
    monkeypatch.setenv("TVING_HOME", str(home))  # the runs of this process find the worker of this home
    try:
        wait_for(lambda: WorkerClient(address).available(), 60, "the model worker")
        yield home, address, pid
    finally:
        stop_group(pid)


def _index(paths, home: Path):
    from tving_assets.indexing import index_videos

    resources = make_resources(home, video_lock_timeout_seconds=LOCK_TIMEOUT)
    return index_videos([str(p) for p in paths], resources, refresh_search_index=False)


def _stage_metadata(home: Path, video_id: str) -> dict[str, dict]:
    from tving_assets.assets.video import VIDEO_STAGES
    from tving_assets.instance import get_instance

    instance = get_instance(home)
    found = {}
    for asset in VIDEO_STAGES:
        event = instance.get_latest_materialization_event(asset.key)
        assert event is not None and event.dagster_event.partition == video_id
        found[asset.key.to_user_string()] = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    return found


def _rows(home: Path, video_id: str) -> pa.Table:
    from tving_resources.config import resolve_paths

    return ArtifactStore(resolve_paths(home=home).artifacts_dir, "lite").video(video_id).load("rows", pa.Table)


def test_stages_run_in_the_worker_and_give_what_the_run_would_have(worker, tmp_path, speech_clip, monkeypatch):
    home, _, pid = worker
    before = MODEL_CACHE.load_counts()
    (result,) = _index([speech_clip[0]], home)
    assert result.ok, result.error
    assert MODEL_CACHE.load_counts() == before  # nothing loaded in this (the run's) process
    stages = _stage_metadata(home, result.video_id)
    assert {m["model_worker"] for m in stages.values()} == {f"pid {pid}"}
    assert {m["process"].rsplit(":", 1)[1] for m in stages.values()} == {str(pid)}
    assert stages["scene_index"]["rows"] == result.scenes  # committed under the run's lock, no wait

    # the same file indexed in a home without a worker, in this process: the same rows
    alone = tmp_path / "alone"
    monkeypatch.setenv("TVING_HOME", str(alone))
    (local,) = _index([speech_clip[0]], alone)
    assert local.ok and local.video_id == result.video_id
    assert {m["model_worker"] for m in _stage_metadata(alone, local.video_id).values()} == {
        "none: the stage ran in this run's process"
    }
    remote_rows, local_rows = _rows(home, result.video_id), _rows(alone, local.video_id)
    for column in ("scene_id", "start", "end", "caption", "transcript", "thumbnails"):
        assert remote_rows.column(column).to_pylist() == local_rows.column(column).to_pylist(), column
    for column in ("caption_vector", "frame_vectors"):
        np.testing.assert_allclose(
            np.array(remote_rows.column(column).to_pylist(), dtype=np.float32),
            np.array(local_rows.column(column).to_pylist(), dtype=np.float32),
            atol=2e-3,
        )


def test_a_stage_failing_in_the_worker_fails_that_video_alone_with_its_own_message(
    worker, tmp_path, cuts_clip, broken_files, monkeypatch
):
    home, address, _ = worker
    broken, good = _index([broken_files["truncated"], cuts_clip[0]], home)
    assert good.ok and not broken.ok and broken.failed_stage == "video_metadata"
    assert WorkerClient(address).available()  # the worker lives on
    monkeypatch.setenv("TVING_HOME", str(tmp_path / "alone"))
    (alone,) = _index([broken_files["truncated"]], tmp_path / "alone")
    assert (broken.failed_stage, broken.error) == (alone.failed_stage, alone.error)


def test_a_run_whose_worker_is_killed_mid_way_runs_its_stages_itself(worker, cuts_clip):
    from tving_assets.indexing import index_videos

    home, _, pid = worker
    killed = []

    def on_stage(_result, stage: str, _index: int) -> None:
        if stage == "captions" and not killed:  # three stages in: the worker dies
            os.killpg(pid, signal.SIGKILL)
            killed.append(stage)

    resources = make_resources(home, video_lock_timeout_seconds=LOCK_TIMEOUT)
    (result,) = index_videos([str(cuts_clip[0])], resources, refresh_search_index=False, on_stage=on_stage)
    assert killed and result.ok, result.error
    stages = _stage_metadata(home, result.video_id)
    assert stages["video_metadata"]["model_worker"] == f"pid {pid}"
    assert stages["captions"]["model_worker"] == "none: the stage ran in this run's process"
    assert stages["scene_index"]["model_worker"] == "none: the stage ran in this run's process"
    assert stages["captions"]["model_loads"]  # loaded here instead


def test_a_client_without_the_key_is_refused(worker):
    _, address, _ = worker
    stranger = WorkerClient(WorkerAddress(address.name, address.key_file.with_name("other.key")))
    address.key_file.with_name("other.key").write_bytes(b"0" * 32)
    assert not stranger.available()
    with pytest.raises(WorkerUnavailableError):
        stranger.request("load_counts")
    assert WorkerClient(address).available()  # and the worker still serves those with the key


_HOLDER = textwrap.dedent(
    """
    import os, socket, sys, time
    from multiprocessing.reduction import sendfds
    from pathlib import Path
    from tving_resources.index.locks import held_descriptor, video_lock
    folder, video_id, sock_fd = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    with video_lock(folder, video_id, 5):
        sock = socket.socket(fileno=sock_fd)
        sendfds(sock, [held_descriptor(folder, video_id)])
        print("sent", flush=True)
        time.sleep(600)  # killed here, the lock held
    """
)


def _taken_elsewhere(folder: Path, video_id: str) -> bool:
    """Whether another process can take the lock now."""
    code = (
        "import sys; from pathlib import Path; from tving_resources.index.locks import try_video_lock\n"
        f"with try_video_lock(Path({str(folder)!r}), {video_id!r}) as taken: sys.exit(0 if taken else 3)"
    )
    return subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_a_lock_shared_over_a_socket_stays_held_until_both_sides_let_go(tmp_path):
    """What the worker does with a run's lock: the run sends the descriptor it holds its video's
    lock through; the worker's stage holds the same lock (re-entrant inside it), the run is
    killed meanwhile, and no other process gets the lock until the stage ends."""
    from multiprocessing.reduction import recvfds

    folder, video_id = tmp_path / "locks", "clip-0123456789"
    ours, theirs = socket.socketpair()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder), video_id, str(theirs.fileno())],
        pass_fds=[theirs.fileno()],
        stdout=subprocess.PIPE,
        text=True,
    )
    theirs.close()
    try:
        (fd,) = recvfds(ours, 1)
        assert holder.stdout.readline().strip() == "sent"
        assert not _taken_elsewhere(folder, video_id)  # the holder's lock
        with adopted_lock(folder, video_id, fd):
            with try_video_lock(folder, video_id) as again:
                assert again  # re-entrant for the adopting thread (the commit inside a stage)
            holder.kill()
            holder.wait(timeout=30)
            assert not _taken_elsewhere(folder, video_id)  # held through the shared descriptor
        assert _taken_elsewhere(folder, video_id)  # both let go: free
    finally:
        holder.kill()
        ours.close()


def test_the_worker_answers_an_unknown_request_with_an_error_not_a_crash(worker):
    _, address, _ = worker
    client = WorkerClient(address)
    with pytest.raises(Exception, match="does not know"):
        client.request("call", None)
    assert client.available()


def test_stage_metadata_of_a_plain_run_names_no_worker(tmp_path, cuts_clip, monkeypatch):
    """Without a worker (none runs for this home), the stages run in the run's process."""
    monkeypatch.setenv("TVING_HOME", str(tmp_path / "home"))
    (result,) = _index([cuts_clip[0]], tmp_path / "home")
    assert result.ok
    stages = _stage_metadata(tmp_path / "home", result.video_id)
    assert {m["process"].rsplit(":", 1)[1] for m in stages.values()} == {str(os.getpid())}
    assert {m["model_worker"] for m in stages.values()} == {"none: the stage ran in this run's process"}


@pytest.mark.parametrize("given", [None, "ACTIVE"])
def test_the_worker_lets_idle_openmp_threads_sleep_unless_told_otherwise(monkeypatch, tmp_path, given):
    """Several runs' stages go at once in the worker: the text encoder's idle OpenMP threads must
    sleep rather than spin on the cores the others need (set before any model loads)."""
    from click.testing import CliRunner

    from tving_cli import main as cli
    from tving_resources.worker import server

    monkeypatch.setenv("OMP_WAIT_POLICY", given or "")  # restored after the test
    if given is None:
        monkeypatch.delenv("OMP_WAIT_POLICY")
    seen = []

    class Recording(server.ModelWorker):
        def serve_forever(self) -> None:
            seen.append(os.environ.get("OMP_WAIT_POLICY"))

        def warm_up(self) -> None:
            pass

    monkeypatch.setattr(server, "ModelWorker", Recording)
    monkeypatch.setattr(signal, "signal", lambda *_: None)  # its SIGTERM handler stays out of pytest
    result = CliRunner().invoke(cli.main, ["--home", str(tmp_path / "home"), "worker"])
    assert result.exit_code == 0, result.output
    assert seen == [given or "PASSIVE"]


_THIN_RUN = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import tving_assets.definitions  # what a run's process imports first: the code location
    from tving_resources.catalog.video_catalog import VideoCatalog
    from tving_resources.config import resolve_paths
    from tving_resources.models.runtime import ModelRuntime
    from tving_resources.settings import IndexSettings
    from tving_resources.stages.outcome import StageRequest
    from tving_resources.worker.client import WorkerAddress, WorkerClient, effective_config, execute_stage
    paths = resolve_paths().ensure()
    video_id = VideoCatalog(paths.catalog_url).register(Path(sys.argv[1])).video_id
    runtime, settings = ModelRuntime(), IndexSettings()
    request = StageRequest("video_metadata", video_id, settings, effective_config(runtime), paths,
                           paths.lancedb_uri, settings.media_limits())
    outcome = execute_stage(request, runtime, WorkerClient(WorkerAddress.for_home(paths.home)))
    heavy = [m for m in ("numpy", "pyarrow", "lancedb", "scenedetect", "av", "decord", "torch") if m in sys.modules]
    print(json.dumps({"worker_pid": outcome.worker_pid, "duration": outcome.metadata["duration_s"], "heavy": heavy}))
    """
)


def test_a_run_whose_stages_the_worker_runs_loads_none_of_their_libraries(worker, cuts_clip):
    """What makes a daemon-launched run cheap: its process imports the code location and asks;
    NumPy, Arrow, LanceDB and the decoders stay in the worker, loaded once."""
    import json

    home, _, pid = worker
    env = {**os.environ, "TVING_HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", _THIN_RUN, str(cuts_clip[0])], env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["worker_pid"] == pid and answer["duration"] > 0
    assert answer["heavy"] == [], answer
