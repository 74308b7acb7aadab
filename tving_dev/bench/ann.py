"""ANN index choice by measurement (``tving bench ann``): a scene table of N synthetic rows whose
vectors have the structure of real ones, each candidate index built on ``caption_vector`` and
timed, every (nprobes, refine) setting measured for recall@10 against exact search and for
latency; then the best setting end to end through the real search, and the seed's brute-force loop
over the same rows beside it.

Vectors: uniformly random unit vectors would time the worst case of any ANN index (no
neighbourhoods at all), which no caption or transcript embedding has. Here each row lies between
two real multilingual-e5 passage embeddings of generated sentences (a random mix, plus a little
noise), so rows live where real embeddings live, with neighbourhoods but no heaps of
near-duplicates. Queries are e5 query embeddings of other generated phrases.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tving_dev.bench.measure import peak_rss_mb, percentile
from tving_dev.bench.search import SyntheticText, synthetic_scene_columns

CANDIDATES = {
    "ivf_pq": lambda n: ("IvfPq", {"num_partitions": _partitions(n), "num_sub_vectors": 96}),
    "ivf_hnsw_sq": lambda n: ("IvfHnswSq", {"num_partitions": max(1, _partitions(n) // 4)}),
    "ivf_rq": lambda n: ("IvfRq", {"num_partitions": _partitions(n)}),
}


def _partitions(rows: int) -> int:
    return max(16, int(np.sqrt(rows)))  # LanceDB's own rule of thumb


def _anchors(runtime, count: int, cache: Path) -> tuple[np.ndarray, list[str]]:
    words = SyntheticText(seed=7)
    texts = [words.sentence(6, 14) for _ in range(count)]
    if cache.is_file():
        return np.load(cache), texts
    vectors = runtime.text_encoder().encode_passages(texts)
    np.save(cache, vectors)
    return vectors, texts


def build_table(uri: str, rows: int, runtime, folder: Path, anchors: int = 20_000, seed: int = 0) -> dict:
    """The synthetic table (reused when it holds ``rows`` rows already)."""
    import pyarrow as pa

    from tving_resources.store.maintenance import refresh_table_indexes
    from tving_resources.store.scene_store import SceneStore
    from tving_resources.store.schema import runtime_stamp, scene_schema

    stamp = runtime_stamp(runtime)
    store = SceneStore(uri, stamp)
    if store.exists() and store.count() == rows:
        return {"rows": rows, "reused": True}
    if store.exists():
        store.db.drop_table(store.table_name)
    base, texts = _anchors(runtime, anchors, folder / f"anchors-{anchors}.npy")
    rng = np.random.default_rng(seed)
    schema = scene_schema(stamp)
    table = store.table(create=True)
    k, dim = runtime.profile.keyframes_per_scene, stamp.text_dim
    started = time.perf_counter()

    def embedded(which: np.ndarray) -> np.ndarray:
        """A point between two real embeddings (a scene is rarely a copy of another) plus noise."""
        other = rng.integers(0, len(base), len(which))
        w = rng.uniform(0.3, 0.7, (len(which), 1)).astype(np.float32)
        v = w * base[which] + (1 - w) * base[other]
        v += rng.standard_normal((len(which), dim), dtype=np.float32) * (0.2 / np.sqrt(dim))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    for offset in range(0, rows, 20_000):
        n = min(20_000, rows - offset)
        ids = np.arange(offset, offset + n)
        a, b = rng.integers(0, len(base), n), rng.integers(0, len(base), n)
        frames = embedded(np.repeat(a, k)).reshape(n, k, dim)
        columns = synthetic_scene_columns(
            ids, stamp, [texts[j] for j in a], [texts[j] for j in b], embedded(a), embedded(b), frames
        )
        table.add(pa.table(columns, schema=schema))
    written = time.perf_counter() - started
    started = time.perf_counter()
    refresh_table_indexes(table, ann_min_rows=rows + 1)  # full-text and scalar indexes only
    return {
        "rows": rows,
        "reused": False,
        "write_s": round(written, 1),
        "fts_scalar_s": round(time.perf_counter() - started, 1),
    }


def _queries(folder: Path, count: int, seed: int = 99) -> np.ndarray:
    """Held-out points drawn like the rows (as ANN benchmarks do): recall is a property of the
    index on this data, measured where queries have real neighbourhoods."""
    cache = sorted(folder.glob("anchors-*.npy"))[-1]
    base = np.load(cache)
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(base), count), rng.integers(0, len(base), count)
    w = rng.uniform(0.3, 0.7, (count, 1)).astype(np.float32)
    v = (
        w * base[a]
        + (1 - w) * base[b]
        + rng.standard_normal((count, base.shape[1]), dtype=np.float32) * (0.2 / np.sqrt(base.shape[1]))
    )
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _exact(table, queries: np.ndarray, k: int = 10) -> list[list[str]]:
    data = table.search().select(["scene_id", "caption_vector"]).limit(None).to_arrow()
    ids = np.asarray(data.column("scene_id").to_pylist())
    vectors = data.column("caption_vector").combine_chunks().values.to_numpy().reshape(len(ids), -1)
    scores = vectors @ queries.T  # (rows, queries)
    top = np.argpartition(-scores, k, axis=0)[:k].T
    return [list(ids[t[np.argsort(-scores[t, i])]]) for i, t in enumerate(top)]


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def tune(table, uri: str, table_name: str, queries: np.ndarray, exact: list[list[str]], configs, probes, refines):
    import lancedb.index as lance_index

    results = []
    for name in configs:
        cls_name, params = CANDIDATES[name](table.count_rows())
        indices = Path(uri) / f"{table_name}.lance" / "_indices"
        before = _folder_bytes(indices)
        started = time.perf_counter()
        table.create_index("caption_vector", config=getattr(lance_index, cls_name)(distance_type="dot", **params),
                           replace=True)  # fmt: skip
        build = time.perf_counter() - started
        size = _folder_bytes(indices) - before
        for nprobes in probes:
            for refine in refines:
                latencies, hits = [], 0
                for q, truth in zip(queries, exact, strict=True):
                    t0 = time.perf_counter()
                    query = table.search(q, vector_column_name="caption_vector").distance_type("dot").nprobes(nprobes)
                    if refine > 1:
                        query = query.refine_factor(refine)
                    found = query.limit(10).select(["scene_id", "_distance"]).to_arrow().column("scene_id").to_pylist()
                    latencies.append((time.perf_counter() - t0) * 1000)
                    hits += len(set(found) & set(truth))
                results.append(
                    {
                        "index": name, "params": params, "build_s": round(build, 1), "index_mb": round(size / 2**20, 1),
                        "nprobes": nprobes, "refine": refine, "recall@10": round(hits / (10 * len(queries)), 4),
                        "p50_ms": round(statistics.median(latencies), 2),
                        "p95_ms": round(percentile(latencies, 95), 2),
                    }
                )  # fmt: skip
    return results


def seed_loop_ms(table, queries: np.ndarray, count: int = 3) -> float:
    """The seed's search: every row's vector compared in a Python loop (its pickled list of
    vectors), over the same rows (one array's row views: no copy of a million vectors)."""
    column = table.search().select(["caption_vector"]).limit(None).to_arrow().column("caption_vector")
    matrix = column.combine_chunks().values.to_numpy().reshape(len(column), -1)
    vectors = list(matrix)
    times = []
    for q in queries[:count]:
        t0 = time.perf_counter()
        scores = [float(v @ q) for v in vectors]
        sorted(range(len(scores)), key=scores.__getitem__, reverse=True)[:5]
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def run_ann_benchmark(
    rows: int = 1_000_000,
    queries: int = 200,
    db_dir: str | None = None,
    configs: tuple[str, ...] = tuple(CANDIDATES),
    probes: tuple[int, ...] = (20, 50, 100),
    refines: tuple[int, ...] = (1, 10),
    min_recall: float = 0.95,
) -> dict:
    from tving_resources.models.runtime import ModelRuntime
    from tving_resources.store.scene_store import SceneStore
    from tving_resources.store.schema import TEXT_COLUMNS, runtime_stamp

    runtime = ModelRuntime()
    folder = Path(db_dir or f"/tmp/tving-bench-ann-{rows}")
    folder.mkdir(parents=True, exist_ok=True)
    uri = str(folder / "lancedb")
    built = build_table(uri, rows, runtime, folder, anchors=max(1000, min(20_000, rows // 50)))
    store = SceneStore(uri, runtime_stamp(runtime))
    table = store.table()
    qvecs = _queries(folder, queries)
    started = time.perf_counter()
    exact = _exact(table, qvecs)
    exact_ms = (time.perf_counter() - started) * 1000 / queries
    grid = tune(table, uri, store.table_name, qvecs, exact, configs, probes, refines)
    (folder / "grid.json").write_text(json.dumps(grid, indent=1))  # kept if a later step fails
    good = [g for g in grid if g["recall@10"] >= min_recall]
    best = min(good or grid, key=lambda g: (g["p50_ms"], -g["recall@10"]) if good else (-g["recall@10"], g["p50_ms"]))
    # the chosen index on both text columns, then the real search in a fresh process (its own memory)
    import lancedb.index as lance_index

    cls_name, params = CANDIDATES[best["index"]](rows)
    started = time.perf_counter()
    for column in TEXT_COLUMNS:
        table.create_index(column, config=getattr(lance_index, cls_name)(distance_type="dot", **params), replace=True)
    both_build = time.perf_counter() - started
    env = {**os.environ, "TVING_BENCH_NPROBES": str(best["nprobes"]), "TVING_BENCH_REFINE": str(best["refine"])}
    out = subprocess.run(
        [sys.executable, "-m", "tving_dev.bench.ann", "search", uri, str(queries)], env=env, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    end_to_end = json.loads(out.stdout.strip().splitlines()[-1])
    seed_ms = seed_loop_ms(table, qvecs)
    disk = sum(f.stat().st_size for f in Path(uri).rglob("*") if f.is_file())
    report = {
        "rows": rows,
        "table": built,
        "disk_gb": round(disk / 2**30, 2),
        "exact_numpy_ms_per_query": round(exact_ms, 2),
        "grid": grid,
        "chosen": best,
        "both_columns_build_s": round(both_build, 1),
        "search": end_to_end,
        "seed_loop_ms": round(seed_ms, 1),
        "seed_loop_vs_search": round(seed_ms / end_to_end["p50_ms"], 1),
        "bench_peak_rss_mb": round(peak_rss_mb(), 1),
    }
    lines = [f"{rows} rows ({report['disk_gb']} GB on disk): recall@10 against exact search, single query latency"]
    lines += [
        f"  {g['index']:<12} build {g['build_s']:>6} s {g['index_mb']:>7} MB  nprobes {g['nprobes']:>3} refine "
        f"{g['refine']:>2}: recall {g['recall@10']:.3f}  p50 {g['p50_ms']} ms  p95 {g['p95_ms']} ms"
        for g in grid
    ]
    lines.append(f"chosen: {best['index']} nprobes {best['nprobes']} refine {best['refine']} (recall >= {min_recall})")
    lines.append(
        f"search end to end (query encoder, 3 signals, fusion, best frame): p50 {end_to_end['p50_ms']} ms, "
        f"p95 {end_to_end['p95_ms']} ms, peak RSS {end_to_end['peak_rss_mb']} MB"
    )
    lines.append(f"seed's Python loop over the same rows: {report['seed_loop_ms']} ms a query "
                 f"({report['seed_loop_vs_search']}x the search p50)")  # fmt: skip
    report["summary"] = "\n".join(lines)
    return report


def _search_process(uri: str, queries: int) -> dict:
    """Run in a fresh process: the real search's latency and this process's peak memory."""
    from query_app.search import SceneSearch
    from tving_resources.models.runtime import ModelRuntime
    from tving_resources.store.scene_store import AnnSettings

    ann = AnnSettings(int(os.environ["TVING_BENCH_NPROBES"]), int(os.environ["TVING_BENCH_REFINE"]))
    engine = SceneSearch(runtime=ModelRuntime(), lancedb_uri=uri, ann=ann)
    engine.warm_up()
    words = SyntheticText(seed=1)
    latencies = []
    for text in [words.sentence(2, 5, skip_common=100) for _ in range(queries)]:
        t0 = time.perf_counter()
        engine.search(text, k=5)
        latencies.append((time.perf_counter() - t0) * 1000)
    return {
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


if __name__ == "__main__":  # the end-to-end search of run_ann_benchmark, in its own process
    if sys.argv[1] == "search":
        print(json.dumps(_search_process(sys.argv[2], int(sys.argv[3]))))
