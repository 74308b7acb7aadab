"""A killed worker never corrupts the index: `tving index` is SIGKILLed for real at every stage
boundary and in the middle of the LanceDB commit while it re-indexes a rewritten file; after each
kill a search shows whole videos only, every thumbnail in the table exists, and a re-run makes
the table equal to a clean run. Also: two concurrent `tving index` calls, reuse of unchanged work,
and a lock left by a killed process."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_resources

from tving_resources.config import resolve_paths
from tving_resources.ids import video_id_for
from tving_resources.index.locks import video_lock
from tving_resources.store.scene_store import connect
from tving_resources.store.schema import table_name_for

pytestmark = pytest.mark.slow

TVING = str(Path(sys.executable).parent / "tving")
CRASH_POINTS = (
    "stage:video", "stage:scenes", "stage:transcript", "stage:keyframes", "stage:captions", "stage:vectors",
    "stage:rows", "commit:before", "commit:during", "commit:after", "commit:cleanup",
)  # fmt: skip
COMPARED = ("scene_index", "start", "end", "caption", "transcript", "language", "keyframe_times", "fingerprint")
VECTORS = ("caption_vector", "transcript_vector", "frame_vectors")


def table_rows(home: Path) -> list[dict]:
    db = connect(resolve_paths(home=home).lancedb_uri)
    if table_name_for("lite") not in db.list_tables().tables:
        return []
    rows = db.open_table(table_name_for("lite")).search().limit(None).to_arrow().to_pylist()
    return sorted(rows, key=lambda r: (r["video_id"], r["scene_index"]))


def same_rows(actual: list[dict], expected: list[dict]) -> bool:
    if len(actual) != len(expected):
        return False
    for a, e in zip(actual, expected, strict=True):
        if any(a[c] != e[c] for c in COMPARED):
            return False
        if any(not np.allclose(np.asarray(a[c]), np.asarray(e[c]), atol=1e-5) for c in VECTORS):
            return False
    return True


def thumbnails_exist(home: Path, rows: list[dict]) -> bool:
    base = resolve_paths(home=home).artifacts_dir
    return all((base / t).is_file() for r in rows for t in r["thumbnails"])


def index_in_process(home: Path, path: Path):
    from tving_assets.indexing import index_videos

    # a short lock wait: a lock left behind by a killed process would fail the test, not hang it
    (result,) = index_videos(
        [str(path)], make_resources(home, video_lock_timeout_seconds=30), refresh_search_index=False
    )
    assert result.ok, result.error
    return result


@pytest.fixture(scope="module")
def versions(tmp_path_factory, cuts_clip, speech_clip):
    """Two contents for one file name (4 silent scenes, 3 spoken ones) and a clean index of each."""
    root = tmp_path_factory.mktemp("crash")
    contents, references = {}, {}
    for label, source in (("A", cuts_clip[0]), ("B", speech_clip[0])):
        folder = root / f"reference-{label}"
        folder.mkdir()
        clean = folder / "clip.mp4"
        shutil.copyfile(source, clean)
        index_in_process(folder / "home", clean)
        contents[label] = source.read_bytes()
        references[label] = table_rows(folder / "home")
    assert len(references["A"]) == 4 and len(references["B"]) == 3
    return root, contents, references


def test_sigkill_at_every_stage_boundary_and_mid_commit(versions):
    root, contents, references = versions
    home, clip = root / "victim-home", root / "victim" / "clip.mp4"
    clip.parent.mkdir()
    clip.write_bytes(contents["A"])
    index_in_process(home, clip)
    live = "A"
    env = {**os.environ, "TVING_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    outcomes = {}
    for point in CRASH_POINTS:
        new = "B" if live == "A" else "A"
        clip.write_bytes(contents[new])  # the file is rewritten with other content
        run = subprocess.run(
            [TVING, "index", str(clip), "--no-refresh", "--no-progress"],
            env={**env, "TVING_FAILPOINT": point},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == -signal.SIGKILL, (point, run.returncode, run.stderr[-2000:])
        rows = table_rows(home)
        # whole videos only: the old version's rows, or the new version's, never a mix
        state = "old" if same_rows(rows, references[live]) else "new" if same_rows(rows, references[new]) else None
        assert state is not None, (point, [(r["scene_index"], r["caption"]) for r in rows])
        assert thumbnails_exist(home, rows), point
        outcomes[point] = state
        index_in_process(home, clip)  # the re-run
        assert same_rows(table_rows(home), references[new]), point
        assert thumbnails_exist(home, table_rows(home)), point
        live = new
    # before the commit the old rows stand; once the commit returned, the new ones
    assert all(outcomes[p] == "old" for p in CRASH_POINTS[:8]), outcomes
    assert outcomes["commit:during"] == "old", outcomes  # killed while LanceDB wrote data files
    assert outcomes["commit:after"] == outcomes["commit:cleanup"] == "new", outcomes

    # the Dagster instance kept what each killed process had committed: its run and events, marked
    # failed by the next call (no daemon watches runs executed in a command's own process: this
    # is what the dead-run reaper still protects)
    import dagster as dg

    from tving_assets.instance import get_instance

    instance = get_instance(home)
    killed = [r for r in instance.get_runs() if r.status == dg.DagsterRunStatus.FAILURE]
    assert len(killed) == len(CRASH_POINTS), [(r.status, r.tags) for r in instance.get_runs()]
    # newest first; the first kill, in the first stage, came before any step had succeeded
    assert all(instance.all_logs(r.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS) for r in killed[:-1])

    # what the killed runs left behind (staging folders, unreferenced versions) is collected
    from tving_resources.catalog.video_catalog import VideoCatalog
    from tving_resources.index.lifecycle import collect_garbage

    paths = resolve_paths(home=home)
    stores = make_resources(home)["settings"].all_artifacts()
    collect_garbage(stores, VideoCatalog(paths.catalog_path), paths.lancedb_uri, paths.locks_dir)
    folder = paths.artifacts_dir / "lite" / video_id_for(clip)
    assert not (folder / ".staging").exists()
    for stage in ("video", "scenes", "keyframes", "transcript", "captions", "vectors", "rows"):
        assert len(list((folder / stage).iterdir())) == 1, stage  # the committed version only


def test_two_concurrent_index_calls_on_one_file(tmp_path, speech_clip):
    clip = tmp_path / "clip.mp4"
    shutil.copyfile(speech_clip[0], clip)
    home = tmp_path / "home"
    env = {**os.environ, "TVING_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    command = [TVING, "index", str(clip), "--no-refresh", "--no-progress"]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    codes = [p.wait(timeout=300) for p in runs]
    assert codes == [0, 0], [p.stderr.read()[-2000:] for p in runs]
    rows = table_rows(home)
    assert [r["scene_index"] for r in rows] == [0, 1, 2]  # one set of rows
    assert thumbnails_exist(home, rows)
    folder = resolve_paths(home=home).artifacts_dir / "lite" / video_id_for(clip) / "keyframes"
    assert len(list(folder.iterdir())) == 1  # one version of the thumbnails


def test_unchanged_video_is_not_recomputed(tmp_path, cuts_clip):
    from tving_assets.indexing import STAGE_NAMES, index_videos

    clip = tmp_path / "clip.mp4"
    shutil.copyfile(cuts_clip[0], clip)
    home = tmp_path / "home"
    first = index_in_process(home, clip)
    assert first.reused_stages == []
    again = index_in_process(home, clip)
    assert sorted(again.reused_stages) == sorted(STAGE_NAMES)  # scene_index: rows already committed
    os.utime(clip)  # touched, same content: still nothing to recompute
    assert sorted(index_in_process(home, clip).reused_stages) == sorted(STAGE_NAMES)
    # another setting: the stages it decides are recomputed, the others reused
    (changed,) = index_videos([str(clip)], make_resources(home, keyframes_per_scene=2), refresh_search_index=False)
    assert changed.ok and set(changed.reused_stages) == {"video_metadata", "scenes", "transcript"}
    assert all(len(r["thumbnails"]) == 2 for r in table_rows(home))


def test_a_killed_process_leaves_no_lock(tmp_path):
    code = (
        "import sys, time; from pathlib import Path; from tving_resources.index.locks import video_lock\n"
        f"with video_lock(Path({str(tmp_path)!r}), 'clip-0123456789'):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    from tving_resources.errors import VideoBusyError

    with pytest.raises(VideoBusyError), video_lock(tmp_path, "clip-0123456789", timeout=0.3):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    with video_lock(tmp_path, "clip-0123456789", timeout=5):
        assert time.monotonic() - started < 1
