"""A disk that fills up, for real: the data folder on a small tmpfs, filled while `tving index`
runs. The command must end with one message naming the folder and "no space left" (no
traceback), the video must be marked failed with that message, nothing half-written may stay,
and the videos indexed before keep their rows."""

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.config import resolve_paths
from tving_resources.store.scene_store import connect
from tving_resources.store.schema import table_name_for

pytestmark = pytest.mark.slow
TVING = str(Path(sys.executable).parent / "tving")


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs (CI runs as root); unmounted after the test, also when it fails."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path, leave_kb: int) -> Path:
    """Write a file that leaves ``leave_kb`` kB free on ``disk``."""
    filler = disk / f"filler-{leave_kb}"
    free_kb = shutil.disk_usage(disk).free // 1024
    with contextlib.suppress(OSError), filler.open("wb") as out:  # the last bytes may not fit: fine
        out.write(b"\0" * max(0, free_kb - leave_kb) * 1024)
    return filler


def _index(env: dict[str, str], *paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TVING, "index", "--no-progress", *map(str, paths)], env=env, capture_output=True, text=True, timeout=600
    )


def test_a_full_data_disk_fails_the_video_with_one_message(tmp_path, small_disk, cuts_clip, speech_clip):
    env = {**os.environ, "TVING_HOME": str(tmp_path / "home"), "TVING_DATA_DIR": str(small_disk / "data")}
    first = _index(env, cuts_clip[0])
    assert first.returncode == 0, first.stdout + first.stderr
    catalog = VideoCatalog(resolve_paths(home=tmp_path / "home", data_dir=small_disk / "data").catalog_url)
    table = connect(str(small_disk / "data" / "lancedb")).open_table(table_name_for("lite"))
    rows_before = table.count_rows()

    # room for the catalog and the first results, not for the keyframes' thumbnails
    _fill(small_disk, leave_kb=300)
    clip = tmp_path / "speech.mp4"
    shutil.copyfile(speech_clip[0], clip)
    second = _index(env, clip)
    output = second.stdout + second.stderr
    assert second.returncode == 1, output
    assert "Traceback" not in output and "sqlalchemy" not in output.lower(), output
    line = next(line for line in second.stdout.splitlines() if "FAILED" in line)
    assert "no space left on the device holding " + str(small_disk / "data") in line, line
    (entry,) = [e for e in catalog.entries() if e.name == "speech.mp4"]
    # the line shows the catalog's message, less the file name and stage it shows already
    assert entry.state == "failed" and "no space left" in entry.error and entry.error.endswith(line.split(": ", 1)[1])
    # nothing half-written: no staging left behind, the earlier video's rows whole
    video_dir = small_disk / "data" / "videos" / "lite" / entry.video_id
    assert not any((video_dir / ".staging").glob("*"))
    table.checkout_latest()
    assert table.count_rows() == rows_before

    # no space at all: not even the catalog can be written; still one message, no traceback
    _fill(small_disk, leave_kb=0)
    clip_2 = tmp_path / "cuts again.mp4"
    shutil.copyfile(cuts_clip[0], clip_2)
    third = _index(env, clip_2)
    output = third.stdout + third.stderr
    assert third.returncode != 0 and "Traceback" not in output, output
    assert "no space left on the device holding" in output and str(small_disk / "data") in output, output

    # space again: the failed video is indexed
    for path in small_disk.glob("filler-*"):
        path.unlink()
    fourth = _index(env, clip)
    assert fourth.returncode == 0, fourth.stdout + fourth.stderr
    assert catalog.get(entry.video_id).state == "indexed"
