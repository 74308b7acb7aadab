"""The folder sensor cannot delete by mistake: each bad event is done for real on a temporary
watched folder (folder renamed away, a sub-folder made unreadable, a file rewritten, a tick that
fails, 5,000 files), then the sensor is evaluated as the Dagster daemon would."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest
from conftest import make_resources
from test_store import STAMP, rows

from tving_assets.automation.sensors import videos_folder_sensor
from tving_assets.definitions import build_definitions
from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.config import resolve_paths
from tving_resources.store.scene_store import SceneStore

OLD = 1_000_000_000  # an mtime long ago: settled


class Library:
    """A home whose videos folder the sensor watches; "indexing" writes fake rows and files."""

    def __init__(self, home: Path, instance: dg.DagsterInstance | None = None, **settings):
        self.home = home
        self.paths = resolve_paths(home=home)
        self.paths.videos_dir.mkdir(parents=True, exist_ok=True)
        self.settings = {"sensor_settle_seconds": 5, **settings}
        self.resources = make_resources(home, **self.settings)
        self.instance = instance or dg.DagsterInstance.ephemeral()
        self.cursor: str | None = None
        self.store = SceneStore(self.paths.lancedb_uri, STAMP)

    def add(self, relative: str, content: bytes = b"video") -> Path:
        path = self.paths.videos_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.utime(path, ns=(OLD, OLD))
        return path

    def tick(self, cursor: str | None = ...) -> dg.SensorResult:
        with dg.build_sensor_context(
            cursor=self.cursor if cursor is ... else cursor,
            resources=self.resources,
            definitions=build_definitions(self.resources),
            instance=self.instance,
        ) as context:
            result = videos_folder_sensor(context)
        self.cursor = result.cursor
        for request in result.dynamic_partitions_requests or ():
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return result

    def tick_after_adding(self, *names: str) -> dg.SensorResult:
        for name in names:
            self.add(name)
        return self.tick()

    def index(self, result: dg.SensorResult, scenes: int = 3) -> list[str]:
        """What an index run would leave: rows, a result folder, the catalog's state."""
        catalog = VideoCatalog(self.paths.catalog_path)
        done = []
        for request in result.run_requests:
            if request.job_name == "index_video":
                video_id = request.partition_key
                self.store.replace_video(video_id, rows(video_id, scenes))
                (self.paths.artifacts_dir / "lite" / video_id / "video").mkdir(parents=True, exist_ok=True)
                catalog.mark_indexed(video_id, "v", "f")
                done.append(video_id)
        return done

    def run_removals(self, result: dg.SensorResult) -> list[str]:
        job = build_definitions(self.resources).resolve_job_def("remove_video_job")
        removed = []
        for request in result.run_requests:
            if request.job_name == "remove_video_job":
                run = job.execute_in_process(run_config=request.run_config, instance=self.instance)
                assert run.success
                removed.append(request.run_config["ops"]["remove_video_op"]["config"]["video_id"])
        return removed

    def rows_of(self, video_id: str) -> int:
        return self.store.count(video_id)


def work(result: dg.SensorResult) -> list:
    """What a tick asks for besides refreshing the search indexes (which it may ask any quiet tick)."""
    return [r for r in result.run_requests if r.job_name != "refresh_search_indexes"]


def removals(result: dg.SensorResult) -> list:
    return [r for r in result.run_requests if r.job_name == "remove_video_job"]


def index_requests(result: dg.SensorResult) -> list:
    return [r for r in result.run_requests if r.job_name == "index_video"]


@pytest.fixture
def library(tmp_path) -> Library:
    return Library(tmp_path / "home")


def indexed(library: Library, *names: str) -> dict[str, str]:
    for name in names:
        library.add(name)
    first = library.tick()
    ids = library.index(first)
    assert len(ids) == len(names)
    return {Path(r.tags["tving/video"]).name: r.partition_key for r in index_requests(first)}


def test_missing_watched_folder_deletes_nothing(library):
    ids = indexed(library, "a.mp4", "b.mp4", "sub/c.mp4")
    moved = library.paths.videos_dir.with_name("videos-unmounted")
    library.paths.videos_dir.rename(moved)  # an unmounted disk or a renamed mount point
    for _ in range(4):
        result = library.tick()
        assert not work(result)
        assert "is missing" in result.skip_reason.skip_message
    library.paths.videos_dir.mkdir()  # an empty mount point: the folder is back, empty
    for _ in range(4):
        result = library.tick()
        assert not work(result) and "lists no videos" in result.skip_reason.skip_message
    assert all(library.rows_of(v) == 3 for v in ids.values())
    assert len(VideoCatalog(library.paths.catalog_path).entries()) == 3


def test_file_absent_for_one_tick_is_kept_and_for_n_ticks_removed(library):
    ids = indexed(library, "a.mp4", "b.mp4", "c.mp4")
    a = library.paths.videos_dir / "a.mp4"
    content = a.read_bytes()
    a.unlink()
    first = library.tick()
    assert not removals(first)  # absent once: maybe a rename or a copy in progress
    library.add("a.mp4", content)  # back: the absence count starts again
    assert not work(library.tick())
    a.unlink()
    assert not removals(library.tick())
    second = library.tick()  # absent for 2 ticks in a row (the default)
    (request,) = removals(second)
    assert request.run_config["ops"]["remove_video_op"]["config"]["video_id"] == ids["a.mp4"]
    assert library.rows_of(ids["a.mp4"]) == 3  # the tick itself deletes nothing
    assert not removals(library.tick())  # requested once (the tick's cursor confirmed it)
    assert library.run_removals(second) == [ids["a.mp4"]]
    assert library.rows_of(ids["a.mp4"]) == 0 and library.rows_of(ids["b.mp4"]) == 3
    assert not (library.paths.artifacts_dir / "lite" / ids["a.mp4"]).exists()
    assert VideoCatalog(library.paths.catalog_path).find(ids["a.mp4"]) is None
    assert ids["a.mp4"] not in library.instance.get_dynamic_partitions("videos")


def test_removal_run_keeps_a_file_that_came_back(library):
    ids = indexed(library, "a.mp4", "b.mp4")
    a = library.paths.videos_dir / "a.mp4"
    content = a.read_bytes()
    a.unlink()
    library.tick()
    result = library.tick()
    assert removals(result)
    library.add("a.mp4", content)  # back before the removal run started
    library.run_removals(result)
    assert library.rows_of(ids["a.mp4"]) == 3


def test_removals_per_tick_are_capped(tmp_path):
    library = Library(tmp_path / "home", sensor_max_removals_per_tick=2)
    ids = indexed(library, *(f"v{i}.mp4" for i in range(6)))
    for name in list(ids)[:5]:
        (library.paths.videos_dir / name).unlink()
    library.tick()
    counts = [len(removals(library.tick())) for _ in range(4)]
    assert counts == [2, 2, 1, 0]


def test_mass_disappearance_is_not_a_removal(tmp_path):
    library = Library(tmp_path / "home")
    ids = indexed(library, *(f"sub/v{i}.mp4" for i in range(12)), "keep.mp4")
    shutil.rmtree(library.paths.videos_dir / "sub")  # a sub-folder that was another mount
    for _ in range(3):
        result = library.tick()
        assert not work(result) and "vanished at once" in result.skip_reason.skip_message
    assert all(library.rows_of(v) == 3 for v in ids.values())


def test_file_being_rewritten_keeps_its_rows_then_is_reindexed(library):
    ids = indexed(library, "a.mp4")
    a = library.paths.videos_dir / "a.mp4"
    with a.open("ab") as handle:  # a copy in progress: modified now, not settled
        handle.write(b" more bytes")
    for _ in range(3):
        result = library.tick()
        assert not work(result)
    assert library.rows_of(ids["a.mp4"]) == 3
    os.utime(a, ns=(OLD + 10**9, OLD + 10**9))  # the copy finished a while ago
    (request,) = index_requests(library.tick())
    assert request.partition_key == ids["a.mp4"] and library.rows_of(ids["a.mp4"]) == 3


def test_a_tick_that_fails_after_recording_is_made_again(library):
    for name in ("a.mp4", "b.mp4"):
        library.add(name)
    before = library.cursor
    failed = library.tick()  # it wrote the catalog, then (say) Dagster could not store the tick
    assert len(failed.run_requests) == 2
    again = library.tick(cursor=before)  # the daemon evaluates again from the last stored cursor
    assert sorted(r.run_key for r in again.run_requests) == sorted(r.run_key for r in failed.run_requests)
    assert sorted(again.dynamic_partitions_requests[0].partition_keys) == sorted(
        r.partition_key for r in failed.run_requests
    )
    assert not work(library.tick())  # this time the cursor was stored: done


def test_unreadable_subfolder_deletes_nothing_under_it(tmp_path):
    """In a child process without the capability that lets root read any folder, so the
    permission error is real (as it would be for a service user)."""
    script = textwrap.dedent(
        f"""
        import json, os, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_sensor_safety import Library
        from tving_resources.catalog.video_catalog import VideoCatalog
        lib = Library(Path({str(tmp_path / "home")!r}))
        for name in ("a.mp4", "locked/b.mp4", "locked/deeper/c.mp4"):
            lib.add(name)
        lib.index(lib.tick())
        os.chmod(lib.paths.videos_dir / "locked", 0)
        ticks = [lib.tick() for _ in range(4)]
        entries = VideoCatalog(lib.paths.catalog_path).entries()
        print(json.dumps({{
            "requests": [len([r for r in t.run_requests if r.job_name != "refresh_search_indexes"]) for t in ticks],
            "skip": [t.skip_reason.skip_message if t.skip_reason else None for t in ticks],
            "rows": {{Path(e.path).name: lib.rows_of(e.video_id) for e in entries}},
        }}))
        """
    )
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    try:
        out = subprocess.run([*drop, sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    finally:
        locked = resolve_paths(home=tmp_path / "home").videos_dir / "locked"
        if locked.exists():
            os.chmod(locked, 0o755)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["requests"] == [0, 0, 0, 0]
    assert all("could not be read" in s and "locked" in s for s in report["skip"])
    assert report["rows"] == {"a.mp4": 3, "b.mp4": 3, "c.mp4": 3}


def test_each_video_gets_its_own_run_with_its_partition(tmp_path):
    """One run per video (never several videos inside one run): each goes through the run queue
    under its partition, so Dagster's one-run-per-video limit applies, and says who asked for it."""
    library = Library(tmp_path / "home")
    for i in range(20):
        library.add(f"v{i:02d}.mp4")
    result = library.tick()
    assert [r.job_name for r in result.run_requests] == ["index_video"] * 20
    keys = [r.partition_key for r in result.run_requests]
    assert len(set(keys)) == 20 and all(r.tags["tving/source"] == "sensor" for r in result.run_requests)
    assert sorted(result.dynamic_partitions_requests[0].partition_keys) == sorted(keys)
    assert not work(library.tick())


def test_search_indexes_are_refreshed_once_the_library_is_quiet(tmp_path):
    """After indexing (not only at the nightly schedule): once a tick asks for nothing and no
    index run waits or runs, one refresh run; none again until more videos are indexed."""
    (tmp_path / "dagster").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:
        library = Library(tmp_path / "home", instance=instance)
        first = library.tick_after_adding("a.mp4", "b.mp4")
        assert index_requests(first) and not refreshes(first)  # indexing asked for: no refresh yet
        library.index(first)
        quiet = library.tick()
        (refresh,) = refreshes(quiet)
        assert refresh.tags["tving/source"] == "sensor"
        # asked again until it has run, under the same run key: Dagster starts it once
        assert [r.run_key for r in refreshes(library.tick())] == [refresh.run_key]
        instance.report_runless_asset_event(dg.AssetMaterialization("search_index"))  # the refresh ran
        assert not refreshes(library.tick())
        library.index(library.tick_after_adding("c.mp4"))
        assert refreshes(library.tick())  # new rows since the last refresh


def refreshes(result: dg.SensorResult) -> list:
    return [r for r in result.run_requests if r.job_name == "refresh_search_indexes"]


def test_five_thousand_files_in_one_folder(tmp_path):
    library = Library(tmp_path / "home", sensor_max_runs_per_tick=25)
    for i in range(5000):
        library.add(f"v{i:05d}.mp4", b"x")
    seconds, requested = [], 0
    for _ in range(4):
        started = time.perf_counter()
        result = library.tick()
        seconds.append(time.perf_counter() - started)
        assert len(result.run_requests) <= 25
        requested += len(result.run_requests)
        assert len(result.cursor.encode()) < 1024
    assert requested == 100 and json.loads(library.cursor)["pending"] == 4900
    assert max(seconds) < 10, seconds
