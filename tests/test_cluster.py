"""The cluster deployment on this machine, for real: PostgreSQL (instance storage, catalog) and
Redis (Celery broker) on loopback, a Dagster daemon and two Celery workers (queue `gpu`, queue
`cpu`). The sample videos are dropped into the watched folder and the sensor indexes them; the
table must equal the local deployment's, and each worker must have loaded each model once."""

import os
import shutil
from collections import defaultdict
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from conftest import make_resources

from tving_dev.local_cluster import LocalCluster, postgres_bin, running_cluster, wait_for
from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.errors import ConfigError
from tving_resources.store.scene_store import connect
from tving_resources.store.schema import table_name_for

pytestmark = pytest.mark.slow
OLD = 1_000_000_000
COMPARED = ("start", "end", "caption", "transcript", "language", "keyframe_times", "fingerprint", "video_name")
VECTORS = ("caption_vector", "transcript_vector", "frame_vectors")


def servers_missing() -> str | None:
    try:
        postgres_bin()
    except ConfigError as exc:
        return str(exc)
    return None if shutil.which("redis-server") else "redis-server is not installed"


def table(home: Path) -> dict[tuple[str, int], dict]:
    rows = connect(str(home / "data" / "lancedb")).open_table(table_name_for("lite")).search().limit(None)
    return {(r["video_name"], r["scene_index"]): r for r in rows.to_arrow().to_pylist()}


@pytest.mark.skipif(servers_missing() is not None, reason=f"cannot run the servers: {servers_missing()}")
def test_sensor_indexes_the_samples_through_the_cluster(tmp_path, sample_videos, monkeypatch):
    from tving_assets.indexing import index_videos

    local_home = tmp_path / "local"
    results = index_videos([str(p) for p in sample_videos.values()], make_resources(local_home))
    assert all(r.ok for r in results)
    expected = table(local_home)

    root = tmp_path / "cluster"
    with running_cluster(root, webserver_port=None, sensor_interval=2) as env:
        videos = Path(env["TVING_HOME"]) / "videos"
        videos.mkdir(parents=True, exist_ok=True)
        for source in sample_videos.values():
            shutil.copyfile(source, videos / source.name)
            os.utime(videos / source.name, ns=(OLD, OLD))
        catalog = VideoCatalog(env["TVING_CATALOG_URL"])

        def done() -> bool:
            entries = catalog.entries()
            return len(entries) == len(sample_videos) and all(e.state in ("indexed", "failed") for e in entries)

        try:
            wait_for(done, 600, "the cluster to index the samples", interval=2)
        except TimeoutError:
            for log in sorted((root / "logs").glob("*.log")):
                print(log.name, log.read_text()[-3000:])
            raise
        assert {e.name: (e.state, e.error) for e in catalog.entries()} == {
            name: ("indexed", None) for name in sample_videos
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        instance = dg.DagsterInstance.get()  # the cluster's: PostgreSQL storage
        processes: dict[str, dict[str, int]] = defaultdict(dict)
        steps: dict[str, set[str]] = defaultdict(set)
        for asset in ("video_metadata", "scenes", "transcript", "captions", "scene_vectors", "scene_rows"):
            for record in instance.fetch_materializations(dg.AssetKey(asset), limit=100).records:
                metadata = record.asset_materialization.metadata
                process = metadata["process"].value
                steps[asset].add(process)
                for model, count in metadata["model_loads"].value.items():
                    processes[process][model] = max(processes[process].get(model, 0), count)
        gpu = steps["transcript"] | steps["captions"] | steps["scene_vectors"]
        cpu = steps["video_metadata"] | steps["scenes"] | steps["scene_rows"]
        assert len(gpu) == 1 and len(cpu) == 1 and gpu != cpu, steps  # one worker per queue
        (gpu_process,) = gpu
        assert len(processes[gpu_process]) == 3, processes  # speech, captioner, text encoder
        assert all(count == 1 for counts in processes.values() for count in counts.values()), processes
        actual = table(Path(env["TVING_HOME"]))
    assert LocalCluster(root).status() == {}  # every server and worker stopped

    assert actual.keys() == expected.keys()
    for key, row in actual.items():
        assert all(row[c] == expected[key][c] for c in COMPARED), key
        for column in VECTORS:
            assert np.allclose(np.asarray(row[column]), np.asarray(expected[key][column]), atol=1e-4), (key, column)
