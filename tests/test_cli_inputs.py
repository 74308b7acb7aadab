"""What `tving index` and `tving remove` say about what they are given: a file that is not a video
is refused before the catalog (no failed entry to remove afterwards), a mistyped path gets a
"did you mean", each failure is one line that names its file once, and a refusal names the flag
that gets past it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from media import run

from tving_cli.main import main
from tving_cli.output import failure_cause
from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.config import resolve_paths


def tving(home: Path, *args: str):
    # the home through the environment CliRunner restores after the call (`--home` would leak)
    return CliRunner().invoke(main, list(args), env={"TVING_HOME": str(home), "TVING_PROFILE": "lite"})


def catalogued(home: Path) -> dict[str, object]:
    paths = resolve_paths(home=home)
    return {e.name: e for e in VideoCatalog(paths.catalog_url).entries()} if paths.catalog_exists() else {}


def lines_with(text: str, output: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


def test_a_file_without_a_video_extension_is_refused_before_the_catalog(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# notes\n\nnot a video\n")
    out = tving(tmp_path / "home", "index", str(readme))
    assert out.exit_code != 0
    (line,) = lines_with("README.md", out.output)
    assert line.strip().startswith(f"skipped {readme}: not a video (extension .md; videos end in .3gp, ")
    assert "rename the file if it is one" in line
    assert "error: nothing to index: none of the files given is a video" in out.output
    assert catalogued(tmp_path / "home") == {}  # nothing that `tving remove` would have to clear


def make_audio(path: Path) -> None:
    run("ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=1", "-f", "mp4", str(path))


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("fake.mp4", lambda p: p.write_text("this is a text file, not a video\n"), "it holds text"),
        ("song.mp4", make_audio, "no video stream, only audio"),
    ],
)
def test_a_file_with_a_video_extension_but_no_video_inside_is_refused(tmp_path, name, make, reason):
    fake = tmp_path / name
    make(fake)
    out = tving(tmp_path / "home", "index", "--no-progress", str(fake))
    assert out.exit_code != 0
    (line,) = lines_with(name, out.output)
    assert line.strip() == f"skipped {fake}: not a video file ({reason})"
    assert catalogued(tmp_path / "home") == {}


def test_a_mistyped_path_gets_the_name_meant_and_is_shown_once(tmp_path, sample_videos, monkeypatch):
    (tmp_path / "videos").mkdir()
    shutil.copyfile(sample_videos["bikes.mp4"], tmp_path / "videos" / "bikes.mp4")
    monkeypatch.chdir(tmp_path)
    out = tving(tmp_path / "home", "index", "--no-progress", "videos/bikse.mp4", "vidoes/bikes.mp4")
    assert out.exit_code != 0  # nothing left to index
    (file_line,) = lines_with("bikse.mp4", out.output)
    assert file_line.strip() == "FAILED  videos/bikse.mp4: no such file or folder; did you mean videos/bikes.mp4?"
    (folder_line,) = lines_with("vidoes", out.output)
    assert folder_line.strip() == "FAILED  vidoes/bikes.mp4: no such file or folder; did you mean videos/bikes.mp4?"
    assert catalogued(tmp_path / "home") == {}


def test_no_suggestion_when_no_name_is_close(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tving(tmp_path / "home", "index", "--no-progress", "zzzz.mp4", "--json")
    assert out.exit_code != 0
    assert '"error": "no such file or folder"' in out.stdout


@pytest.fixture(scope="module")
def failed_index(tmp_path_factory):
    """A home where `tving index README.md truncated.mp4` ran: a real video cut in half (its moov
    atom lost: FFmpeg cannot open it) fails at its first stage; README.md is skipped."""
    folder = tmp_path_factory.mktemp("inputs")
    whole = folder / "whole.mp4"
    run("ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=duration=2:size=160x120:rate=10",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", str(whole))  # fmt: skip
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    readme = folder / "README.md"
    readme.write_text("# notes\n")
    home = folder / "home"
    out = tving(home, "index", "--no-progress", str(readme), str(truncated))
    return {"home": home, "folder": folder, "truncated": truncated, "out": out}


def test_a_failure_is_one_line_naming_its_file_and_stage_once(failed_index):
    out, folder = failed_index["out"], failed_index["folder"]
    assert out.exit_code == 1, out.output  # the video failed; README.md was only skipped
    (line,) = lines_with("FAILED", out.output)
    assert line.count("truncated.mp4") == 1 and str(folder) not in line, line
    assert line.count("video_metadata") == 1 and "failed:" not in line, line
    assert line.strip().startswith("FAILED  truncated.mp4  at video_metadata: not a readable video ("), line
    assert "0 of 1 videos indexed; 1 skipped (not videos)." in out.output
    # the rest was indexed (and failed, as recorded): README.md never reached the catalog
    entries = catalogued(failed_index["home"])
    assert list(entries) == ["truncated.mp4"] and entries["truncated.mp4"].state == "failed"
    # the catalog keeps the whole message (the web page shows it alone); the status shows it clean
    assert entries["truncated.mp4"].error.startswith("truncated.mp4: video_metadata failed: not a readable video")
    status = tving(failed_index["home"], "status")
    assert "    at video_metadata: not a readable video (" in status.output, status.output


def test_remove_of_a_file_still_there_names_force(failed_index):
    home, truncated = failed_index["home"], failed_index["truncated"]
    kept = tving(home, "remove", str(truncated))
    assert kept.exit_code == 1
    (line,) = lines_with("kept", kept.output)
    assert f"{truncated} still exists" in line and line.endswith("; use --force to remove it anyway"), line
    assert "truncated.mp4" in catalogued(home)
    removed = tving(home, "remove", str(truncated), "--force")
    assert removed.exit_code == 0 and "removed" in removed.output, removed.output
    assert catalogued(home) == {}


def test_remove_of_a_mistyped_name_gets_the_catalogued_one(failed_index, tmp_path):
    home, truncated = tmp_path / "home", failed_index["truncated"]
    tving(home, "index", "--no-progress", str(truncated))  # catalogued (as failed)
    out = tving(home, "remove", str(truncated.with_name("truncaetd.mp4")))
    assert out.exit_code != 0
    assert f"not in the catalog; did you mean {truncated}?" in out.output, out.output
    assert "did you mean" not in tving(home, "remove", str(truncated.with_name("zzzz.mp4"))).output


def test_failure_cause_drops_what_the_line_shows_and_keeps_one_line():
    error = "/v/bikes.mp4: scenes failed: /v/bikes.mp4: no decodable frame\n  at 3.0 s"
    assert failure_cause(error, "/v/bikes.mp4", "scenes") == "no decodable frame at 3.0 s"
    assert failure_cause("bikes.mp4: not a regular file (a FIFO)", "/v/bikes.mp4") == "not a regular file (a FIFO)"
    assert failure_cause("check scenes_cover_video failed: gap", "/v/a.mp4", "scenes") == (
        "check scenes_cover_video failed: gap"
    )
