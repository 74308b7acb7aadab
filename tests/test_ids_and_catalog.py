import os
import time

from tving_resources.catalog.folder_watch import plan_tick, scan_video_folder
from tving_resources.catalog.video_catalog import FileState, VideoCatalog
from tving_resources.ids import is_video_id, video_id_for
from tving_resources.settings import IndexSettings


def test_video_id_is_stable_and_safe_for_any_name(tmp_path):
    names = ["clip.mp4", "my clip (final).mp4", "장면 테스트.mp4", "ümlaut café.MKV", "...mp4"]
    ids = [video_id_for(tmp_path / n) for n in names]
    assert all(is_video_id(i) for i in ids), ids
    assert ids[0] == video_id_for(tmp_path / "clip.mp4")  # stable
    assert ids[0].startswith("clip-")
    assert ids[2].startswith("video-")  # Hangul-only stem: no ASCII left, still a valid id
    assert len(set(ids)) == len(ids)


def test_same_stem_in_other_folder_or_extension_does_not_collide(tmp_path):
    a = video_id_for(tmp_path / "a" / "movie.mp4")
    b = video_id_for(tmp_path / "b" / "movie.mp4")
    c = video_id_for(tmp_path / "a" / "movie.mkv")
    assert len({a, b, c}) == 3


def test_ids_reject_filter_injection():
    assert not is_video_id("x' OR '1'='1")
    assert not is_video_id("../etc/passwd")
    assert not is_video_id("clip-ABCDEF0123")  # upper-case hex is never produced


def test_catalog_tracks_new_changed_and_removed_files(tmp_path):
    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    a, b = folder / "a.mp4", folder / "sub" / "b 영상.mp4"
    a.write_bytes(b"1")
    b.write_bytes(b"22")
    (folder / "notes.txt").write_text("not a video")
    catalog = VideoCatalog(tmp_path / "catalog.sqlite")
    settings = IndexSettings(sensor_settle_seconds=0, sensor_absent_ticks=1).watch_settings()

    def tick(n):
        plan = plan_tick(scan_video_folder(folder), catalog.entries_under(folder), n, settings)
        catalog.apply_tick(plan)
        return plan

    first = tick(1)
    assert {r.path for r in first.index} == {str(a.resolve()), str(b.resolve())} and all(r.new for r in first.index)
    assert tick(2).empty  # tick 1's requests were confirmed by tick 2's cursor

    a.write_bytes(b"333")  # changed size
    os.utime(a, ns=(time.time_ns(), time.time_ns()))
    b.unlink()
    third = tick(3)
    assert [(r.path, r.new) for r in third.index] == [(str(a.resolve()), False)]
    assert [r.path for r in third.remove] == [str(b.resolve())]
    assert catalog.get(FileState.of(a).video_id).path == str(a.resolve())


def test_catalog_from_before_states_gains_its_columns(tmp_path):
    import sqlite3

    db = tmp_path / "catalog.sqlite"
    with sqlite3.connect(db) as conn:  # the first release's schema, with one video
        conn.execute(
            "CREATE TABLE videos (video_id TEXT PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, "
            "mtime_ns INTEGER NOT NULL, registered_at REAL NOT NULL)"
        )
        conn.execute("INSERT INTO videos VALUES ('a-0123456789', '/v/a.mp4', 1, 2, 3.0)")
    entry = VideoCatalog(db).get("a-0123456789")
    assert entry.state == "registered" and entry.requested_version is None and entry.version == "1-2"


def test_scan_marks_files_still_being_written(tmp_path):
    fresh = tmp_path / "copying.mp4"
    fresh.write_bytes(b"partial")
    listing = scan_video_folder(tmp_path, settle_seconds=60)
    assert listing.settled == () and listing.unsettled == (str(fresh.resolve()),) and listing.complete
    assert len(scan_video_folder(tmp_path, settle_seconds=0).settled) == 1
