"""From search to the edit: clips and reels checked with ffprobe, timelines read back with
OpenTimelineIO's own readers (and FCP XML with an XML parser), the web routes for both."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from media import SPOKEN_SCENES

from tving_cli.main import main
from tving_resources.config import resolve_paths

pytestmark = pytest.mark.slow
FRAME = 1 / 25  # the test clips' frame rate
QUERY = SPOKEN_SCENES[0].paraphrase


def probe(path: Path) -> dict:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries",
         "stream=codec_type,width,height,r_frame_rate,nb_read_frames,duration", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {s["codec_type"]: s for s in json.loads(done.stdout)["streams"]}


def tving(home: Path, *args: str):
    return CliRunner().invoke(main, ["--home", str(home), *args])


@pytest.fixture(scope="module")
def home(indexed_library) -> Path:
    return indexed_library["home"]


@pytest.fixture(scope="module")
def results(home) -> list[dict]:
    out = tving(home, "search", QUERY, "-k", "3", "--min-score", "0", "--json")
    assert out.exit_code == 0, out.output
    return json.loads(out.output)["results"]


def test_a_clip_is_frame_accurate_with_its_audio(home, indexed_library, speech_clip, tmp_path):
    video_id = indexed_library["results"]["speech.mp4"].video_id
    out = tving(home, "clip", video_id, "--start", "1.0", "--end", "3.52", "-o", str(tmp_path / "a.mp4"))
    assert out.exit_code == 0, out.output
    streams = probe(tmp_path / "a.mp4")
    assert abs(int(streams["video"]["nb_read_frames"]) * FRAME - 2.52) <= FRAME
    assert "audio" in streams
    # a file by its path works the same; a span past the end is refused in words
    out = tving(home, "clip", str(speech_clip[0]), "--start", "0.5", "--end", "1.5", "-o", str(tmp_path / "b.mp4"))
    assert out.exit_code == 0 and abs(int(probe(tmp_path / "b.mp4")["video"]["nb_read_frames"]) * FRAME - 1.0) <= FRAME
    out = tving(home, "clip", video_id, "--start", "500", "--end", "510", "-o", str(tmp_path / "c.mp4"))
    assert out.exit_code == 2 and "after the video's end" in out.output


def test_a_reel_holds_every_moment_in_order_at_one_size(home, results, tmp_path):
    out = tving(home, "reel", QUERY, "-k", "3", "--min-score", "0", "-o", str(tmp_path / "reel.mp4"), "--json")
    assert out.exit_code == 0, out.output
    moments = json.loads(out.output)["moments"]
    assert [(m["start"], m["end"]) for m in moments] == [(r["moment"]["start"], r["moment"]["end"]) for r in results]
    streams = probe(tmp_path / "reel.mp4")
    video = streams["video"]
    assert (video["width"], video["height"], video["r_frame_rate"]) == (1280, 720, "25/1")
    expected = sum(m["end"] - m["start"] for m in moments)
    assert abs(int(video["nb_read_frames"]) * FRAME - expected) <= len(moments) * FRAME
    assert "audio" in streams


@pytest.mark.parametrize(("fmt", "adapter", "options"), [
    ("otio", "otio_json", {}), ("edl", "cmx_3600", {"rate": 25}), ("fcpxml", "fcpx_xml", {}),
])  # fmt: skip
def test_timelines_read_back_with_opentimelineio(home, results, tmp_path, fmt, adapter, options):
    import opentimelineio as otio

    target = tmp_path / f"timeline.{fmt}"
    out = tving(home, "timeline", QUERY, "-k", "3", "--min-score", "0", "--format", fmt, "-o", str(target))
    assert out.exit_code == 0, out.output
    text = target.read_text()
    clips = list(otio.adapters.read_from_string(text, adapter, **options).find_clips())
    assert len(clips) == len(results)
    for clip, result in zip(clips, results, strict=True):
        source = clip.source_range
        assert abs(source.start_time.to_seconds() - result["moment"]["start"]) <= FRAME
        assert abs(source.end_time_exclusive().to_seconds() - result["moment"]["end"]) <= FRAME
        assert Path(otio.url_utils.filepath_from_url(clip.media_reference.target_url)).is_file()
        assert result["video_name"] in clip.name
    if fmt == "fcpxml":  # and as plain XML: one asset per source file, one clip per result on the spine
        root = ET.fromstring(text)
        sources = {unquote(a.get("src")).removeprefix("file://") for a in root.iter("asset")}
        assert sources == {r["video_path"] for r in results}
        assert len(root.find(".//spine")) == len(results)
    if fmt == "otio":  # the marker carries the caption and the query
        notes = [m.metadata["tving"]["note"] for c in clips for m in c.markers]
        assert all(QUERY in n for n in notes) and results[0]["caption"].split()[0] in notes[0]


@pytest.fixture(scope="module")
def client(home):
    from query_app.web.app import create_app

    app = create_app(paths=resolve_paths(home=home), warm_up_in_background=False)
    with TestClient(app, raise_server_exceptions=False, base_url="http://localhost") as test_client:
        yield test_client


def test_the_web_cuts_clips_reels_and_timelines(client, results, tmp_path):
    first, second = results[0], results[1]
    clip = client.get(f"/videos/{first['video_id']}/clip", params={"start": 1.0, "end": 2.0})
    assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"
    (tmp_path / "c.mp4").write_bytes(clip.content)
    assert abs(int(probe(tmp_path / "c.mp4")["video"]["nb_read_frames"]) * FRAME - 1.0) <= FRAME
    assert client.get(f"/videos/{first['video_id']}/clip", params={"start": 2, "end": 1}).status_code == 422
    assert client.get(f"/videos/{first['video_id']}/clip", params={"start": 0, "end": 900}).status_code == 422
    assert client.get("/videos/nope-0123456789/clip", params={"start": 0, "end": 1}).status_code == 404

    items = [f"{r['video_id']}:{r['moment']['start']}:{r['moment']['end']}" for r in (first, second)]
    reel = client.post("/reel", data={"item": items})
    assert reel.status_code == 200, reel.text
    (tmp_path / "r.mp4").write_bytes(reel.content)
    expected = sum(r["moment"]["end"] - r["moment"]["start"] for r in (first, second))
    assert abs(int(probe(tmp_path / "r.mp4")["video"]["nb_read_frames"]) * FRAME - expected) <= 2 * FRAME
    assert client.post("/reel", data={"item": ["bad"]}).status_code == 422

    import opentimelineio as otio

    timeline = client.post("/timeline", data={"item": items, "format": "edl", "query": QUERY})
    assert timeline.status_code == 200 and "attachment" in timeline.headers["content-disposition"]
    clips = list(otio.adapters.read_from_string(timeline.text, "cmx_3600", rate=25).find_clips())
    assert len(clips) == 2 and "/" not in clips[0].media_reference.target_url.removeprefix("file://")

    watch = client.get(f"/watch/{first['video_id']}", params={"t": 1.5, "end": 3})
    assert watch.status_code == 200 and 'data-start="1.5"' in watch.text
    page = client.get("/", params={"q": QUERY, "video": first["video_id"], "k": 3})
    assert f'name="video" value="{first["video_id"]}"' in page.text  # the filter stays in the page's form
    assert page.text.count('data-testid="result-card"') >= 1
    assert all(first["video_id"] in item for item in _items(page.text))
    assert 'href="/watch/' in client.get("/library").text


def _items(html: str) -> list[str]:
    import re

    return re.findall(r'data-item="([^"]+)"', html)


def test_cutting_is_refused_while_every_cut_slot_is_busy(client, results):
    """Two cuts at once: a third request is answered 429 with Retry-After, not queued."""
    slots = client.app.state.tving.cut_slots
    taken = [slots.acquire(blocking=False) for _ in range(2)]
    try:
        assert all(taken)
        busy = client.get(f"/videos/{results[0]['video_id']}/clip", params={"start": 0.5, "end": 1.0})
        assert busy.status_code == 429 and busy.headers["retry-after"] == "5"
    finally:
        for _ in taken:
            slots.release()
    assert client.get(f"/videos/{results[0]['video_id']}/clip", params={"start": 0.5, "end": 1.0}).status_code == 200
