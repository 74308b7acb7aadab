"""Subtitles inside a file (a mov_text stream) and beside it (a sidecar `.ko.srt`) become
searchable text of their scenes, with their source recorded; `tving export` writes subtitles and
scene lists that parse back to what was indexed."""

import csv
import io
import json
import shutil
import subprocess

import pysubs2
import pytest
from click.testing import CliRunner
from conftest import make_resources

from tving_resources.config import resolve_paths

pytestmark = pytest.mark.slow
EMBEDDED_LINE = "The lighthouse keeper waved at the passing ferry."
SIDECAR_LINE = "등대지기가 지나가는 배에 손을 흔들었다"


@pytest.fixture(scope="module")
def subtitled(tmp_path_factory, cuts_clip):
    from tving_assets.indexing import index_videos

    folder = tmp_path_factory.mktemp("subtitled")
    srt = folder / "lines.srt"
    srt.write_text(f"1\n00:00:03,300 --> 00:00:05,200\n{EMBEDDED_LINE}\n", encoding="utf-8")
    embedded = folder / "embedded.mp4"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(cuts_clip[0]), "-i", str(srt), "-map", "0", "-map", "1",
         "-c", "copy", "-c:s", "mov_text", "-metadata:s:s:0", "language=eng", str(embedded)],
        check=True,
    )  # fmt: skip
    sidecar = folder / "sidecar.mp4"
    shutil.copyfile(cuts_clip[0], sidecar)
    (folder / "sidecar.ko.srt").write_text(f"1\n00:00:06,000 --> 00:00:08,500\n{SIDECAR_LINE}\n", encoding="utf-8")
    home = folder / "home"
    results = index_videos([str(embedded), str(sidecar)], make_resources(home))
    assert all(r.ok for r in results), [r.error for r in results]
    return {"home": home, "results": {r.path.rsplit("/", 1)[-1]: r for r in results}, "cuts": cuts_clip[1]}


def _engine(home):
    from query_app.search import SceneSearch

    return SceneSearch(paths=resolve_paths(home=home))


def test_subtitle_lines_find_their_scenes(subtitled):
    engine = _engine(subtitled["home"])
    first = engine.search("a lighthouse keeper waving to a boat", k=3).results[0]
    assert (first.video_name, first.scene_index) == ("embedded.mp4", 1)  # 3.3-5.2 s lies in scene 1
    korean = engine.search("등대지기 손 흔들기", k=3).results[0]
    assert (korean.video_name, korean.scene_index) == ("sidecar.mp4", 2)
    rows = engine.store.scenes_of(subtitled["results"]["embedded.mp4"].video_id)
    assert [r["transcript_source"] for r in rows] == ["", "subtitles", "", ""]
    assert EMBEDDED_LINE in rows[1]["transcript"]


def test_export_round_trips(subtitled, monkeypatch):
    import opentimelineio as otio

    from tving_cli.main import main

    monkeypatch.setenv("TVING_HOME", str(subtitled["home"]))
    video_id = subtitled["results"]["sidecar.mp4"].video_id
    runner = CliRunner()
    out = {
        fmt: runner.invoke(main, ["export", video_id, "--format", fmt]) for fmt in ("srt", "vtt", "csv", "json", "edl")
    }
    assert all(r.exit_code == 0 for r in out.values()), {k: r.output for k, r in out.items()}
    for fmt in ("srt", "vtt"):
        (event,) = pysubs2.SSAFile.from_string(out[fmt].output, format_=fmt)
        assert (event.start, event.end, event.plaintext) == (6000, 8500, SIDECAR_LINE)
    scenes = json.loads(out["json"].output)["scenes"]
    starts = [round(s["start"], 2) for s in scenes]
    assert starts[1:] == [round(c, 2) for c in subtitled["cuts"]]
    assert list(csv.DictReader(io.StringIO(out["csv"].output)))[2]["transcript"] == SIDECAR_LINE
    clips = otio.adapters.read_from_string(out["edl"].output, "cmx_3600", rate=25).find_clips()
    events = [(c.source_range.start_time.to_seconds(), c.source_range.end_time_exclusive().to_seconds()) for c in clips]
    assert [(round(a, 2), round(b, 2)) for a, b in events] == [
        (round(s["start"], 2), round(s["end"], 2)) for s in scenes
    ]
    bad = runner.invoke(main, ["export", "nope-0123456789", "--format", "srt"])
    assert bad.exit_code == 2 and "not an indexed video" in bad.output
