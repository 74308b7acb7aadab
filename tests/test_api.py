"""The HTTP API with the real lite models over the session's real index."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from media import SPOKEN_SCENES

from query_app.web.app import create_app
from tving_resources.config import resolve_paths

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(indexed_library):
    return create_app(
        paths=resolve_paths(home=indexed_library["home"]), warm_up_in_background=False, max_upload_bytes=5 * 2**20
    )


@pytest.fixture(scope="module")
def client(app):
    with TestClient(
        app, raise_server_exceptions=False, base_url="http://localhost", headers={"Accept-Language": "en"}
    ) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def speech_id(indexed_library):
    return indexed_library["results"]["speech.mp4"].video_id


def no_traceback(response: httpx.Response) -> None:
    assert "Traceback" not in response.text and 'File "' not in response.text


def test_health_is_liveness_and_ready_reports_models(client):
    assert client.get("/health").json() == {"status": "alive"}
    body = client.get("/ready").json()
    assert body["status"] == "ready" and body["profile"] == "lite"
    assert body["models"]["text_encoder"] == "lite/multilingual-e5-small"
    assert body["warm_up_seconds"]["total"] >= 0


def test_search_returns_the_spoken_scene_first_with_every_field(client):
    response = client.get("/search", params={"q": SPOKEN_SCENES[1].paraphrase, "k": 5, "min_score": 0})
    assert response.status_code == 200
    body = response.json()
    assert len(body["results"]) == 5  # min_score 0: every candidate may show (the default hides weak ones)
    first = body["results"][0]
    assert (first["video_name"], first["scene_index"]) == ("speech.mp4", 1)
    expected = {
        "rank", "score", "scene_id", "video_id", "video_name", "scene_index", "start", "end",
        "timestamp", "thumbnail", "thumbnail_url", "stream_url", "caption", "transcript_snippet", "scores",
    }  # fmt: skip
    assert expected <= set(first)
    assert "video_path" not in first and "thumbnail_path" not in first  # no server paths without --show-paths
    assert set(first["scores"]) == {"caption", "transcript", "text", "frame", "fused", "margin"}
    assert "rain" in first["transcript_snippet"].lower()
    assert client.get(first["thumbnail_url"]).headers["content-type"] == "image/jpeg"
    assert {"query", "query_used", "translated", "fusion", "timings_ms"} <= set(body)


def test_search_filters_by_video_and_time(client, speech_id):
    body = client.get("/search", params={"q": "weather", "video": speech_id, "start": 5.0, "k": 10}).json()
    assert body["results"] and all(r["video_id"] == speech_id and r["end"] > 5.0 for r in body["results"])
    per_video = client.get("/search", params={"q": "a photo", "k": 10, "per_video": 1}).json()["results"]
    assert len({r["video_id"] for r in per_video}) == len(per_video)


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/search", {"q": "cat", "k": 0}, 422),
        ("/search", {"q": "cat", "k": 10000}, 422),
        ("/search", {"q": "x" * 10_240}, 422),
        ("/search", {"q": ""}, 422),
        ("/search", {"q": "cat", "video": "x' OR '1'='1"}, 422),
        ("/search", {"q": "cat", "start": -5}, 422),
        ("/thumbnails/../../../etc/passwd", None, 404),
        ("/thumbnails/..%2F..%2Fcatalog.sqlite", None, 400),
        ("/videos/unknown-0123456789", None, 404),
        ("/videos/x' OR '1'='1", None, 422),
        ("/videos/unknown-0123456789/stream", None, 404),
    ],
)
def test_bad_inputs_get_4xx_without_traceback(client, path, params, status):
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    no_traceback(response)


def test_filter_injection_in_the_query_text_is_just_text(client):
    response = client.get("/search", params={"q": "x' OR '1'='1"})
    assert response.status_code == 200
    assert len(response.json()["results"]) <= 5


def test_library_endpoints(client, speech_id, indexed_library):
    videos = {v["video_name"]: v for v in client.get("/videos").json()["videos"]}
    assert set(videos) == {"speech.mp4", "cuts.mp4", "bikes.mp4", "장면 테스트 clip.mp4"}
    detail = client.get(f"/videos/{speech_id}").json()
    assert len(detail["scenes"]) == 3 and detail["scenes"][1]["thumbnail_urls"]
    assert "vectors" not in str(detail.keys())
    (table,) = client.get("/tables").json()  # provenance: rows per model, per table
    assert (table["table"], table["role"]) == ("scenes_lite", "live")
    scenes = table["rows"]
    assert table["rows_per_model"]["speech_model"] == {"lite/faster-whisper-base": scenes}
    assert sum(table["rows_per_model"]["caption_model"].values()) == scenes
    page = client.get("/library").text
    assert 'id="scene-tables"' in page and "lite/faster-whisper-base" in page


def test_stream_answers_range_requests(client, speech_id, speech_clip):
    size = speech_clip[0].stat().st_size
    whole = client.get(f"/videos/{speech_id}/stream")
    assert whole.status_code == 200 and len(whole.content) == size
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "video/mp4"
    part = client.get(f"/videos/{speech_id}/stream", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and len(part.content) == 100
    assert part.headers["content-range"] == f"bytes 100-199/{size}"


def test_describe_uses_only_the_span(client, speech_id, speech_clip):
    start, end = speech_clip[1][1]  # the second sentence's scene
    response = client.post("/describe", json={"video_id": speech_id, "start": start + 0.1, "end": end - 0.1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "rain" in body["text"].lower()
    assert "pasta" not in body["text"].lower() and "football" not in body["text"].lower()
    assert all(start <= t <= end for t in body["frame_times"])


def test_describe_rejects_bad_spans_and_korean_on_lite(client, speech_id):
    assert client.post("/describe", json={"video_id": speech_id, "start": 5, "end": 2}).status_code == 422
    assert client.post("/describe", json={"video_id": speech_id, "start": 500, "end": 600}).status_code == 400
    assert client.post("/describe", json={"video_id": "nope-0123456789", "start": 0, "end": 1}).status_code == 404
    korean = client.post("/describe", json={"video_id": speech_id, "start": 0, "end": 2, "language": "ko"})
    assert korean.status_code == 400 and "full profile" in korean.json()["detail"]
    no_traceback(korean)


def test_describe_an_uploaded_file(client, speech_clip):
    with speech_clip[0].open("rb") as handle:
        response = client.post(
            "/describe/upload",
            files={"file": ("clip.mp4", handle, "video/mp4")},
            data={"start": "0", "end": str(speech_clip[1][0][1] - 0.1)},
        )
    assert response.status_code == 200, response.text
    assert "pasta" in response.json()["text"].lower()


def test_upload_checks_type_and_size_then_saves_into_the_watched_folder(client, indexed_library, broken_files):
    videos_dir = resolve_paths(home=indexed_library["home"]).videos_dir
    text = client.post("/upload", files={"file": ("notes.txt", b"hello", "text/plain")})
    assert text.status_code == 415
    fake = client.post("/upload", files={"file": ("fake.mp4", broken_files["text"].read_bytes(), "video/mp4")})
    assert fake.status_code == 415 and "not a readable video" in fake.json()["detail"]
    big = client.post("/upload", files={"file": ("big.mp4", b"\0" * (6 * 2**20), "video/mp4")})
    assert big.status_code == 413
    good_bytes = (Path(indexed_library["results"]["cuts.mp4"].path)).read_bytes()
    saved = client.post("/upload", files={"file": ("new <clip>.mp4", good_bytes, "video/mp4")})
    assert saved.status_code == 200, saved.text
    target = videos_dir / "uploads" / saved.json()["saved_as"]  # a name: no server paths by default
    assert target.read_bytes() == good_bytes
    assert "<" not in target.name
    assert not [p for p in videos_dir.rglob("*") if p.is_file() and p != target]  # nothing half-written


def test_pages_render(client):
    page = client.get("/", params={"q": SPOKEN_SCENES[0].paraphrase})
    shown = page.text.count('data-testid="result-card"')
    assert page.status_code == 200 and 1 <= shown < 5  # weaker matches hidden by the default minimum score
    assert 'data-testid="show-weaker"' in page.text and "min_score=0" in page.text
    page = client.get("/", params={"q": SPOKEN_SCENES[0].paraphrase, "min_score": 0})
    assert page.status_code == 200 and page.text.count('data-testid="result-card"') == 5
    assert 'data-testid="show-weaker"' not in page.text
    assert not re.search(r'(src|href)="(https?:)?//', page.text)  # no CDN: everything is local
    for path in ("/describe", "/library", "/static/app.js", "/static/style.css", "/openapi.json"):
        assert client.get(path).status_code == 200, path
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/search", "/describe", "/videos", "/videos/{video_id}", "/videos/{video_id}/stream", "/health"} <= set(
        paths
    )


def test_status_without_dagster(client):
    assert client.get("/status").json()["configured"] is False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_indexing_status_comes_from_the_dagster_webserver(tmp_path, cuts_clip, monkeypatch):
    """A real Dagster instance with a real index_video run, read through the webserver's GraphQL."""
    import dagster as dg

    from query_app.web.dagster_status import DagsterStatusClient
    from tving_assets.definitions import defs
    from tving_assets.indexing import register_videos
    from tving_resources.catalog.video_catalog import VideoCatalog

    home, dagster_home = tmp_path / "home", tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("")
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("TVING_HOME", str(home))  # the code location's default resources read it
    instance = dg.DagsterInstance.get()
    (video_id,) = register_videos([cuts_clip[0]], VideoCatalog(resolve_paths(home=home).catalog_path), instance)
    job = defs.resolve_job_def("index_video")
    result = job.execute_in_process(
        partition_key=video_id, instance=instance, asset_selection=[dg.AssetKey("video_metadata")]
    )
    assert result.success
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "TVING_HOME": str(home)}
    webserver = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-m", "tving_assets.definitions", "-p", str(port)],
        env=env, cwd=str(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = DagsterStatusClient(f"http://127.0.0.1:{port}")
        deadline = time.time() + 90
        status = client.index_runs()
        while not status["reachable"] and time.time() < deadline:
            time.sleep(1)
            status = client.index_runs()
        assert status["reachable"], status
        (item,) = status["videos"]
        assert item["video_id"] == video_id and item["status"] == "SUCCESS"
        assert status["counts"] == {"SUCCESS": 1}
    finally:
        webserver.terminate()
        webserver.wait(timeout=30)
    unreachable = DagsterStatusClient("http://127.0.0.1:9").index_runs()
    assert unreachable["reachable"] is False and "cannot read runs" in unreachable["error"]


def test_cli_describe_span_only(speech_clip, monkeypatch, indexed_library):
    from click.testing import CliRunner

    from tving_cli.main import main

    monkeypatch.setenv("TVING_HOME", str(indexed_library["home"]))
    (_, e0), _, (s2, e2) = speech_clip[1]
    out = CliRunner().invoke(main, ["describe", str(speech_clip[0]), "--start", str(s2 + 0.1), "--end", str(e2 - 0.1)])
    assert out.exit_code == 0, out.output
    text = out.output.lower()
    assert "football" in text and "pasta" not in text and "rain" not in text
    video_id = indexed_library["results"]["speech.mp4"].video_id
    by_id = CliRunner().invoke(main, ["describe", video_id, "--start", "0", "--end", str(e0 - 0.1), "--json"])
    assert by_id.exit_code == 0 and "pasta" in by_id.output.lower()
    bad = CliRunner().invoke(main, ["describe", video_id, "--start", "3", "--end", "1"])
    assert bad.exit_code == 2 and "invalid span" in bad.output


def test_uploads_leave_no_staging_files(indexed_library):
    paths = resolve_paths(home=indexed_library["home"])
    staging = paths.data_dir / "uploads"
    assert not staging.exists() or not any(staging.iterdir())
    assert not list((paths.videos_dir / "uploads").glob(".upload-*"))
    shutil.rmtree(staging, ignore_errors=True)
