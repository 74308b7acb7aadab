"""Files that are not what they seem, indexed for real: a file rewritten while its keyframes are
decoded, a video over the length limit, FIFOs, devices and symbolic links, and a file touched
after it was indexed (which must still be served)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import make_resources

from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.config import resolve_paths

pytestmark = pytest.mark.slow


def _catalog(home: Path) -> VideoCatalog:
    return VideoCatalog(resolve_paths(home=home).catalog_url)


def test_a_file_rewritten_while_indexing_is_reported_as_changed(tmp_path, monkeypatch, cuts_clip, speech_clip):
    """The issue's case: the file is rewritten during a stage that decodes it. Decoding then fails
    with whatever the decoder says ("tuple index out of range"); the user must read that the file
    changed, in the same words and at the same stage on the command line and in the catalog."""
    from tving_assets.indexing import index_videos
    from tving_resources.stages import media as stages_module

    clip = tmp_path / "clip.mp4"
    shutil.copyfile(cuts_clip[0], clip)
    real = stages_module.extract_keyframes
    rewrites = []

    def rewrite_then_extract(info, *args, **kwargs):
        if not rewrites:  # another program writes a new version over the file, mid-stage
            clip.write_bytes(speech_clip[0].read_bytes()[: clip.stat().st_size // 3])
            rewrites.append(clip.stat().st_size)
        return real(info, *args, **kwargs)

    monkeypatch.setattr(stages_module, "extract_keyframes", rewrite_then_extract)
    (result,) = index_videos([str(clip)], make_resources(tmp_path / "home"), refresh_search_index=False)
    assert rewrites and not result.ok
    assert result.failed_stage == "keyframes"
    assert "clip.mp4: keyframes failed: the file changed while it was being indexed" in result.error
    assert "index out of range" not in result.error
    entry = _catalog(tmp_path / "home").get(result.video_id)
    assert (entry.state, entry.failed_stage, entry.error) == ("failed", result.failed_stage, result.error)
    # nothing read from the mixed file was stored: no keyframes result
    video_dir = resolve_paths(home=tmp_path / "home").artifacts_dir / "lite" / result.video_id
    assert not any((video_dir / "keyframes").glob("*/result.json"))
    # once it stops changing (a whole new version), it is indexed
    shutil.copyfile(speech_clip[0], clip)
    monkeypatch.setattr(stages_module, "extract_keyframes", real)
    (again,) = index_videos([str(clip)], make_resources(tmp_path / "home"), refresh_search_index=False)
    assert again.ok, again.error


def test_a_video_over_the_length_limit_fails_clearly(tmp_path, cuts_clip, monkeypatch):
    from tving_assets.indexing import index_videos

    clip = tmp_path / "twelve seconds.mp4"
    shutil.copyfile(cuts_clip[0], clip)
    home = tmp_path / "home"
    (result,) = index_videos([str(clip)], make_resources(home, max_video_seconds=5), refresh_search_index=False)
    assert not result.ok and result.failed_stage == "video_metadata"
    assert "twelve seconds.mp4: video_metadata failed: 12 s long, over the 5 s limit" in result.error
    assert "TVING_MAX_VIDEO_SECONDS" in result.error
    assert _catalog(home).get(result.video_id).error == result.error
    # the environment variable is the same setting
    monkeypatch.setenv("TVING_MAX_VIDEO_SECONDS", "8")
    (result,) = index_videos([str(clip)], make_resources(home), refresh_search_index=False)
    assert not result.ok and "over the 8 s limit" in result.error
    monkeypatch.delenv("TVING_MAX_VIDEO_SECONDS")
    (result,) = index_videos([str(clip)], make_resources(home), refresh_search_index=False)
    assert result.ok  # within the default (6 h)


def test_fifos_devices_and_links_are_named_as_what_they_are(tmp_path, cuts_clip, broken_files):
    from tving_assets.indexing import index_videos

    folder = tmp_path / "odd"
    folder.mkdir()
    os.mkfifo(folder / "pipe.mp4")
    (folder / "to-pipe.mp4").symlink_to(folder / "pipe.mp4")
    (folder / "to-device.mp4").symlink_to("/dev/null")
    (folder / "dangling.mp4").symlink_to(folder / "gone.mp4")
    (folder / "to-text.mp4").symlink_to(broken_files["text"])  # a link to a text file
    (folder / "to-video.mp4").symlink_to(cuts_clip[0])
    home = tmp_path / "home"
    named = ["pipe.mp4", "to-pipe.mp4", "to-device.mp4", "dangling.mp4", "to-text.mp4", "to-video.mp4"]
    results = {Path(r.path).name: r for r in index_videos([str(folder / n) for n in named], make_resources(home))}
    assert results["pipe.mp4"].error == "pipe.mp4: not a regular file (a FIFO)"
    assert results["to-pipe.mp4"].error == "to-pipe.mp4: not a regular file (a FIFO, through a symbolic link)"
    assert results["to-device.mp4"].error == (
        "to-device.mp4: not a regular file (a character device, through a symbolic link)"
    )
    assert "dangling.mp4: file not found (a symbolic link to a missing file)" in results["dangling.mp4"].error
    catalog = _catalog(home)
    for name in ("pipe.mp4", "to-pipe.mp4", "to-device.mp4", "dangling.mp4"):
        assert results[name].video_id is None  # refused before the catalog: nothing to remove later
    # a link is catalogued, and reported, under its own name and path, not its target's
    text = results["to-text.mp4"]
    assert not text.ok and text.error.startswith("to-text.mp4: video_metadata failed: not a readable video")
    entry = catalog.get(text.video_id)
    assert entry.path == str(folder / "to-text.mp4") and text.video_id.startswith("to-text-")
    video = results["to-video.mp4"]
    assert video.ok and catalog.get(video.video_id).path == str(folder / "to-video.mp4")


def test_a_fifo_in_the_watched_folder_fails_at_once(tmp_path):
    """A FIFO named like a video in the watched folder: the folder listing stats it without
    opening it, and the run the sensor would start fails at once saying what it is (opening a
    FIFO would wait for a writer for ever)."""
    from tving_assets.indexing import run_index_jobs
    from tving_assets.instance import get_instance
    from tving_resources.catalog.folder_watch import scan_video_folder

    home = tmp_path / "home"
    resources = make_resources(home)
    videos = resolve_paths(home=home).ensure().videos_dir
    os.mkfifo(videos / "live.ts")
    listing = subprocess_timeout(lambda: scan_video_folder(videos), 10)
    assert [Path(s.path).name for s in listing.settled] == ["live.ts"]
    entry = resources["settings"].catalog().register(videos / "live.ts")
    instance = get_instance(home)
    instance.add_dynamic_partitions("videos", [entry.video_id])
    (result,) = subprocess_timeout(lambda: run_index_jobs([(entry.path, entry.video_id)], resources, instance), 60)
    assert not result.ok and result.failed_stage == "video_metadata"
    assert result.error == "live.ts: video_metadata failed: not a regular file (a FIFO)"


def subprocess_timeout(action, seconds: float):
    """``action()`` in a thread, failing the test if it takes longer than ``seconds`` (a hang)."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(action).result(timeout=seconds)
    finally:
        pool.shutdown(wait=False)


def test_a_touched_file_is_reindexed_without_recomputing_and_still_served(tmp_path, cuts_clip):
    """Touched (or copied again: same bytes, new modification time): every stored result is
    reused, and the catalog records the new version, so the server still streams it."""
    from query_app.web.files import IndexedFile, VerifiedFiles
    from tving_assets.indexing import index_videos

    clip = tmp_path / "clip.mp4"
    shutil.copyfile(cuts_clip[0], clip)
    home = tmp_path / "home"
    (first,) = index_videos([str(clip)], make_resources(home), refresh_search_index=False)
    assert first.ok
    stat = clip.stat()
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    (second,) = index_videos([str(clip)], make_resources(home), refresh_search_index=False)
    assert second.ok and "video_metadata" in second.reused_stages and "keyframes" in second.reused_stages
    entry = _catalog(home).get(second.video_id)
    assert entry.indexed_version == f"{stat.st_size}-{stat.st_mtime_ns + 5_000_000_000}"
    size, mtime = (int(p) for p in entry.indexed_version.split("-"))
    fd = VerifiedFiles().open(IndexedFile(entry.path, size, mtime, entry.fingerprint))
    os.close(fd)


def test_probe_refuses_huge_frames_before_decoding(tmp_path):
    """A 9000x9000 MJPEG frame (81 MP) is refused from its header: the probe's peak memory stays
    far below what decoding it would cost."""
    import sys

    out = tmp_path / "huge.avi"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=9000x9000:d=1:r=1",
         "-frames:v", "1", "-c:v", "mjpeg", "-q:v", "10", str(out)],
        check=True,
    )  # fmt: skip
    code = (
        "import resource, sys\n"
        "from tving_resources.media.video import probe_video\n"
        "from tving_resources.errors import VideoOverLimitError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    probe_video({str(out)!r}, 'huge-0000000000', fingerprint=False)\n"
        "except VideoOverLimitError as exc:\n"
        "    print(exc)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    lines = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split("\n")
    assert lines[0].startswith("huge.avi: frames of 9000x9000 pixels are over the limit")
    assert int(lines[1]) < 60, f"{lines[1]} MB to refuse it"
