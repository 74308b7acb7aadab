"""Concurrent writers and readers on one scene table: 4 writer processes replace their own
video's rows again and again, a maintenance process compacts and rebuilds the indexes, and this
process searches all the while (real query encoder, real two-phase reads)."""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tving_resources.config import resolve_paths
from tving_resources.models.runtime import ModelRuntime
from tving_resources.store.scene_store import SceneStore
from tving_resources.store.schema import runtime_stamp

pytestmark = pytest.mark.slow
WRITERS, ROUNDS = 4, 12


def _writer_script(uri: str, video_id: str, stamp: dict) -> str:
    return textwrap.dedent(
        f"""
        import sys, json
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_store import rows
        from tving_resources.store.schema import ModelStamp
        from tving_resources.store.scene_store import SceneStore
        stamp = ModelStamp(**{stamp!r})
        store = SceneStore({uri!r}, stamp)
        for round_ in range({ROUNDS}):
            n = 3 + (round_ * 5 + {len(video_id)}) % 6  # 3..8 scenes: the count changes every round
            store.replace_video({video_id!r}, rows({video_id!r}, n, word=f"round{{round_}}", stamp=stamp))
        print(json.dumps({{"video": {video_id!r}, "last": n}}))
        """
    )


def _maintenance_script(uri: str) -> str:
    return textwrap.dedent(
        f"""
        import time
        from tving_resources.store.maintenance import refresh_all_indexes
        for _ in range(6):
            refresh_all_indexes({uri!r}, ann_min_rows=10)  # full-text, scalar and ANN indexes, compaction
            time.sleep(0.2)
        """
    )


def test_writers_search_and_maintenance_at_once(tmp_path):
    from test_store import rows

    from query_app.search import SceneSearch

    paths = resolve_paths(home=tmp_path / "home").ensure()
    runtime = ModelRuntime()
    stamp = runtime_stamp(runtime)  # the lite models' own: the searches below use the real encoder
    store = SceneStore(paths.lancedb_uri, stamp)
    videos = [f"video{i}-{i:010d}" for i in range(WRITERS)]
    for video_id in videos:
        store.replace_video(video_id, rows(video_id, 3, stamp=stamp))
    search = SceneSearch(runtime=runtime, paths=paths)
    search.search("warm up", k=1)

    commands = [[sys.executable, "-c", _writer_script(paths.lancedb_uri, v, stamp.__dict__)] for v in videos]
    commands.append([sys.executable, "-c", _maintenance_script(paths.lancedb_uri)])
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    searches, failures, short = 0, [], 0
    deadline = time.monotonic() + 300
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            try:
                query = ["round scene", "apple", "scene 2"][searches % 3]
                response = search.search(query, k=5, min_score=0.0)  # consistency, not relevance
                short += len(response.results) < 5  # there are always at least 12 rows
            except Exception as exc:
                failures.append(repr(exc))
            searches += 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-3000:] for _, err in outputs if err]
    assert searches > 20 and failures == [] and short == 0, (searches, failures[:3], short)

    last = {json.loads(out)["video"]: json.loads(out)["last"] for out, _ in outputs[:WRITERS]}
    table = store.table().search().select(["scene_id", "video_id", "caption"]).limit(None).to_arrow().to_pylist()
    ids = [r["scene_id"] for r in table]
    assert len(ids) == len(set(ids)) == sum(last.values())  # every row exactly once
    for video_id, n in last.items():
        captions = sorted(r["caption"] for r in table if r["video_id"] == video_id)
        assert captions == sorted(f"round{ROUNDS - 1} scene {i}" for i in range(n))  # the last round, whole
