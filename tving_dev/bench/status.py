"""`tving bench status`: the `tving status` command over a large library (a catalog of N videos
and a scene table of 20 synthetic scenes a video), timed as a user runs it: a new process."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tving_resources.models.runtime import ModelRuntime

SCENES_PER_VIDEO = 20  # as build_synthetic_table writes them
FAILED_EVERY = 100  # one video in a hundred failed, with its message (status lists failures)


def run_status_benchmark(videos: int = 50_000, runs: int = 5, db_dir: str | None = None) -> dict:
    from tving_dev.bench.search import build_synthetic_table
    from tving_resources.catalog.video_catalog import VideoCatalog

    folder = Path(db_dir or tempfile.mkdtemp(prefix="tving-status-bench-"))
    home, uri = folder / "home", str(folder / "lancedb")
    started = time.perf_counter()
    table = build_synthetic_table(uri, videos * SCENES_PER_VIDEO, ModelRuntime())
    catalog = VideoCatalog(home / "data" / "catalog.sqlite")
    _fill_catalog(catalog, videos)
    built = time.perf_counter() - started
    env = {**os.environ, "TVING_HOME": str(home), "TVING_LANCEDB_URI": uri, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "tving_cli.main", "status", "--json"]
    seconds = []
    for _ in range(runs + 1):  # the first run is a warm-up (file cache)
        t0 = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        seconds.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise RuntimeError(f"tving status failed: {done.stderr[-2000:]}")
    seconds = seconds[1:]
    report = {
        "videos": videos,
        "rows": table["rows"],
        "failed_videos": videos // FAILED_EVERY,
        "build_seconds": round(built, 1),
        "status_median_s": round(statistics.median(seconds), 2),
        "status_max_s": round(max(seconds), 2),
        "runs": runs,
    }
    report["summary"] = (
        f"tving status --json over {videos} catalogued videos ({report['failed_videos']} failed) and "
        f"{report['rows']} scene rows: median {report['status_median_s']} s (max {report['status_max_s']} s, "
        f"{runs} runs, whole process)"
    )
    return report


def _fill_catalog(catalog, videos: int) -> None:
    """``videos`` entries with the table's video ids: indexed, one in ``FAILED_EVERY`` failed."""
    if sum(catalog.state_counts().values()) >= videos:
        return  # reused (--db)
    now = time.time()
    rows = [
        {
            "id": f"synthetic-{v:010x}",
            "path": f"/videos/synthetic-{v}.mp4",
            "state": "failed" if v % FAILED_EVERY == 0 else "indexed",
            "error": f"synthetic-{v}.mp4: scenes failed: the file looks truncated" if v % FAILED_EVERY == 0 else None,
            "stage": "scenes" if v % FAILED_EVERY == 0 else None,
            "now": now,
        }
        for v in range(videos)
    ]
    with catalog.transaction() as conn:  # one transaction: registering one by one would take minutes
        conn.executemany(
            "INSERT INTO videos (video_id, path, size, mtime_ns, registered_at, state, error, failed_stage, "
            "updated_at) VALUES (:id, :path, 1, 1, :now, :state, :error, :stage, :now) ON CONFLICT DO NOTHING",
            rows,
        )
