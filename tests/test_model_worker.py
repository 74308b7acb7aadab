"""The model worker for real (`tving worker` as its own process): a run's models come from it,
a failing call fails alone, a client without the key is refused, and when the worker is killed
mid-way the run loads the model itself and goes on with the same answers."""

import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from tving_dev.local_cluster import spawn, stop_group, wait_for
from tving_resources.errors import UnreadableVideoError
from tving_resources.models.cache import MODEL_CACHE
from tving_resources.models.remote import WorkerAddress, WorkerClient, WorkerUnavailableError
from tving_resources.models.runtime import ModelRuntime

TVING = str(Path(sys.executable).parent / "tving")


@pytest.fixture
def worker(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "TVING_HOME": str(home)}
    pid = spawn([TVING, "worker"], env, tmp_path / "worker.log")
    address = WorkerAddress.for_home(home)
    try:
        wait_for(lambda: WorkerClient(address).available(), 60, "the model worker")
        yield address, pid
    finally:
        stop_group(pid)


def test_a_run_uses_the_workers_models_and_survives_its_death(worker, tmp_path):
    address, pid = worker
    local = ModelRuntime().text_encoder()
    texts = ["a cat on a sofa", "비 오는 밤의 도시 거리"]
    expected = local.encode_passages(texts)

    MODEL_CACHE.clear()
    before = MODEL_CACHE.load_counts()
    client = WorkerClient(address)
    runtime = ModelRuntime(worker=client)
    encoder = runtime.text_encoder()
    assert encoder.model_id == local.model_id and encoder.dim == local.dim
    np.testing.assert_allclose(encoder.encode_passages(texts), expected, atol=1e-5)
    assert MODEL_CACHE.load_counts() == before  # nothing loaded in this process
    assert any(key.startswith("text:") for key in client.load_counts())

    # a call that fails inside the worker fails here, with its own error; the worker lives on
    with pytest.raises(UnreadableVideoError):
        runtime.speech().transcribe(str(tmp_path / "missing.mp4"), has_audio=True)
    np.testing.assert_allclose(encoder.encode_passages(texts), expected, atol=1e-5)

    os.killpg(pid, signal.SIGKILL)  # the worker dies between two calls of a run
    np.testing.assert_allclose(encoder.encode_passages(texts), expected, atol=1e-5)
    assert client.gone and MODEL_CACHE.load_counts() != before  # loaded here instead


def test_a_client_without_the_key_is_refused(worker):
    address, _ = worker
    stranger = WorkerClient(WorkerAddress(address.name, address.key_file.with_name("other.key")))
    address.key_file.with_name("other.key").write_bytes(b"0" * 32)
    assert not stranger.available()
    with pytest.raises(WorkerUnavailableError):
        stranger.request("load_counts")
    assert WorkerClient(address).available()  # and the worker still serves those with the key
