import os
import time

from tving_resources.catalog import FileState, VideoCatalog, scan_video_folder
from tving_resources.ids import is_video_id, video_id_for


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

    changes = catalog.changes_under(folder, scan_video_folder(folder))
    assert {s.path for s in changes.new} == {str(a.resolve()), str(b.resolve())}
    for state in changes.new:
        catalog.record(state)
    assert catalog.changes_under(folder, scan_video_folder(folder)).empty

    a.write_bytes(b"333")  # changed size
    os.utime(a, ns=(time.time_ns(), time.time_ns()))
    b.unlink()
    changes = catalog.changes_under(folder, scan_video_folder(folder))
    assert [s.path for s in changes.changed] == [str(a.resolve())]
    assert [e.path for e in changes.removed] == [str(b.resolve())]
    assert not changes.new
    assert catalog.get(FileState.of(a).video_id).path == str(a.resolve())


def test_scan_skips_files_still_being_written(tmp_path):
    fresh = tmp_path / "copying.mp4"
    fresh.write_bytes(b"partial")
    assert scan_video_folder(tmp_path, settle_seconds=60) == []
    assert len(scan_video_folder(tmp_path, settle_seconds=0)) == 1
