"""`tving serve` against hostile requests, for real: a server with a token on loopback, and raw
HTTP requests written byte for byte (no client that normalises paths or encodes for us), so the
guards themselves are what answers. Then a soak test, and the server's heal paths."""

import contextlib
import json
import os
import shutil
import socket
import threading
import time
import urllib.parse
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from media import SPOKEN_SCENES

from tving_dev.local_cluster import BIN, accepts, free_port, spawn, stop_group, wait_for
from tving_resources.config import resolve_paths

pytestmark = pytest.mark.slow
TOKEN = "test-token-0123456789abcdef"


class Raw:
    """HTTP/1.1 requests written by hand on a socket; answers parsed just enough."""

    def __init__(self, port: int, source: str | None = None):
        self.port = port
        self.source = (source, 0) if source else None  # another loopback address: another client

    def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        host: str | None = None,
        token: bool = True,
        chunks: list[bytes] | None = None,
        close_after_send: bool = False,
    ) -> tuple[int, dict[str, str], bytes]:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host or f'127.0.0.1:{self.port}'}", "Connection: close"]
        if token:
            lines.append(f"Authorization: Bearer {TOKEN}")
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        if chunks is not None:
            lines.append("Transfer-Encoding: chunked")
        elif body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "surrogateescape") + body
        with socket.create_connection(("127.0.0.1", self.port), timeout=60, source_address=self.source) as sock:
            # the server may answer before the whole body arrived (413): then read that answer
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(payload)
            if chunks is not None:
                try:
                    for chunk in chunks:
                        sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    sock.sendall(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the server answered and closed early: exactly what a 413 may do
            if close_after_send:
                return 0, {}, b""
            data = b""
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                while block := sock.recv(65536):
                    data += block
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1]) if status_line else 0
        parsed = {h.split(":", 1)[0].lower(): h.split(":", 1)[1].strip() for h in header_lines if ":" in h}
        return status, parsed, rest


def multipart(name: str, content: bytes, field: str = "file", close: bool = True) -> tuple[bytes, str]:
    boundary = "----tvingboundary7d2"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            f"Content-Type: video/mp4\r\n\r\n"
        ).encode("utf-8", "surrogateescape")
        + content
        + b"\r\n"
    )
    if close:
        body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="module")
def server(indexed_library, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "TVING_HOME": str(indexed_library["home"]), "TVING_API_TOKEN": TOKEN}
    command = [str(BIN / "tving"), "serve", "--port", str(port), "--max-upload-mb", "8", "--describe-concurrency", "1"]
    pid = spawn(command, env, log)
    raw = Raw(port)
    try:
        wait_for(lambda: accepts(port), 120, "tving serve")
        wait_for(lambda: raw.request("GET", "/ready")[0] == 200, 180, "the server to be ready")
        yield raw, pid
    finally:
        stop_group(pid)


def _outside_snapshot(home: Path) -> set[str]:
    """Every file near the data folder but outside it (where a traversal would write)."""
    root = home.parent
    return {str(p) for p in root.rglob("*") if p.is_file() and home not in p.parents}


def _post(target: str, body: bytes = b"", content_type: str | None = None, **extra) -> dict:
    headers = {**({"Content-Type": content_type} if content_type else {}), **extra.pop("headers", {})}
    return {"method": "POST", "target": target, "body": body, "headers": headers, **extra}


def _describe(speech_id: str, start: str, end: str) -> dict:
    body = f'{{"video_id": "{speech_id}", "start": {start}, "end": {end}}}'
    return {"method": "POST", "target": "/describe", "json": body}


def _cases(speech_id: str, good_video: bytes) -> list[tuple[str, dict]]:
    big, big_type = multipart("big.mp4", b"\0" * (9 * 2**20))
    truncated, truncated_type = multipart("cut.mp4", good_video[:1000], close=False)
    txt, txt_type = multipart("notes.txt", b"hello")
    evil = {"Origin": "http://evil.example"}
    ids_51 = "&".join(f"video=v{i}-0123456789" for i in range(51))
    ids_10k = "&".join(f"video=v{i}-0123456789" for i in range(10_000))
    pieces = range(0, len(big), 2**16)
    uploads = {name: multipart(name, content) for name, content in (
        ("..mp4", good_video), ("/.mp4", good_video), ("../../../../tmp/tving-evil.mp4", b"not a video"),
    )}  # fmt: skip
    return [
        # path traversal: plain, percent- and double-encoded, backslashes, null bytes, Unicode dots
        ("traversal plain", {"target": "/thumbnails/../../../etc/passwd"}),
        ("traversal to the catalog", {"target": "/thumbnails/../../data/catalog.sqlite"}),
        ("traversal %2f", {"target": "/thumbnails/..%2f..%2fcatalog.sqlite"}),
        ("traversal %2e%2e", {"target": "/thumbnails/%2e%2e/%2e%2e/%2e%2e/etc/passwd"}),
        ("traversal double-encoded", {"target": "/thumbnails/%252e%252e/%252e%252e/etc/passwd"}),
        ("traversal backslashes", {"target": "/thumbnails/..\\..\\..\\etc\\passwd"}),
        ("traversal %5c", {"target": "/thumbnails/..%5c..%5cetc%5cpasswd"}),
        ("null byte", {"target": "/thumbnails/lite%00.jpg"}),
        ("null byte raw", {"target": "/thumbnails/x\x00.jpg"}),
        ("one-dot leaders", {"target": "/thumbnails/%e2%80%a4%e2%80%a4/%e2%80%a4%e2%80%a4/etc/passwd"}),
        ("fullwidth dots", {"target": "/thumbnails/%ef%bc%8e%ef%bc%8e/etc/passwd"}),
        ("absolute path", {"target": "/thumbnails//etc/passwd"}),
        ("stream traversal", {"target": "/videos/../../etc/passwd/stream"}),
        ("static traversal", {"target": "/static/../api.py"}),
        ("static encoded traversal", {"target": "/static/%2e%2e/api.py"}),
        # numbers: non-finite, negative, out of range
        ("start=inf", {"target": "/search?q=a&start=inf"}),
        ("start=1e309", {"target": "/search?q=a&start=1e309"}),
        ("start=nan", {"target": "/search?q=a&start=nan"}),
        ("start negative", {"target": "/search?q=a&start=-1"}),
        ("end=-inf", {"target": "/search?q=a&end=-inf"}),
        ("k negative", {"target": "/search?q=a&k=-1"}),
        ("k float", {"target": "/search?q=a&k=1e3"}),
        ("per_video zero", {"target": "/search?q=a&per_video=0"}),
        ("limit zero", {"target": "/videos?limit=0"}),
        ("limit huge", {"target": "/videos?limit=100000"}),
        ("cursor traversal", {"target": "/videos?cursor=../../x"}),
        ("query 10 kB", {"target": "/search?q=" + "x" * 10_240}),
        ("51 video ids", {"target": f"/search?q=a&{ids_51}"}),
        ("10,000 video ids", {"target": f"/search?q=a&{ids_10k}"}),
        ("video id injection", {"target": "/search?q=a&video=" + urllib.parse.quote("x' OR '1'='1")}),
        ("describe NaN", _describe(speech_id, "NaN", "2")),
        ("describe 1e400", _describe(speech_id, "0", "1e400")),
        ("describe reversed span", _describe(speech_id, "5", "2")),
        ("describe 2-hour span", _describe(speech_id, "0", "7200")),
        ("describe malformed JSON", {"method": "POST", "target": "/describe", "json": '{"video_id": '}),
        # bodies: declared too large, too large while streaming, truncated; hostile names
        ("oversized declared", _post("/upload", big, big_type)),
        ("oversized chunked", {**_post("/upload", b"", big_type), "chunks": [big[i : i + 2**16] for i in pieces]}),
        ("truncated multipart", _post("/upload", truncated, truncated_type)),
        ("name sanitising to nothing", _post("/upload", *uploads["..mp4"])),
        ("name '/.mp4'", _post("/upload", *uploads["/.mp4"])),
        ("traversal in a file name", _post("/upload", *uploads["../../../../tmp/tving-evil.mp4"])),
        ("not a video type", _post("/upload", txt, txt_type)),
        # cross-site, rebinding, no token
        ("cross-origin upload", _post("/upload", txt, txt_type, headers=evil)),
        ("cross-origin describe", {**_describe(speech_id, "0", "1"), "headers": evil}),
        ("cross-site referer", _post("/upload", txt, txt_type, headers={"Referer": "http://evil.example/page"})),
        ("origin null", _post("/upload", txt, txt_type, headers={"Origin": "null"})),
        ("spoofed Host (rebinding)", {"target": "/videos", "host": "evil.example"}),
        ("Host with a loopback prefix", {"target": "/videos", "host": "127.0.0.1.evil.example"}),
        ("no token", {"target": "/videos", "token": False}),
        ("no token, search", {"target": "/search?q=a", "token": False}),
        ("wrong token", {"target": "/videos", "token": False, "headers": {"Authorization": "Bearer wrong-0000000000"}}),
        ("token in the query string", {"target": f"/videos?token={TOKEN}", "token": False}),
        ("bad cookie", {"target": "/videos", "token": False, "headers": {"Cookie": 'tving_token="x;;=\\'}}),
        ("upload without token", {**_post("/upload", txt, txt_type), "token": False}),
        # other
        ("method not allowed", {"method": "DELETE", "target": "/videos"}),
        ("unknown path", {"target": "/admin"}),
        ("invalid Content-Length", {"method": "POST", "target": "/describe", "headers": {"Content-Length": "abc"}}),
    ]  # fmt: skip


# the request line over the 16 kB header limit; a raw null byte in the target; a Content-Length not a number
REFUSED_BY_THE_HTTP_SERVER = {"10,000 video ids": 431, "null byte raw": 400, "invalid Content-Length": 400}


def test_hostile_requests_get_4xx_with_a_message(server, indexed_library):
    raw, _ = server
    home = indexed_library["home"]
    speech_id = indexed_library["results"]["speech.mp4"].video_id
    good_video = Path(indexed_library["results"]["cuts.mp4"].path).read_bytes()
    cases = _cases(speech_id, good_video)
    assert len(cases) >= 40
    before = _outside_snapshot(home)
    answers = {}
    for name, case in cases:
        headers = dict(case.get("headers", {}))
        body = case.get("body", b"")
        if "json" in case:
            body = case["json"].encode()
            headers.setdefault("Content-Type", "application/json")
        if "Content-Length" in headers:  # a hand-made (invalid) length: send it as is
            body = b"x"
        status, _, text = raw.request(
            case.get("method", "GET"), case["target"], headers, body, host=case.get("host"),
            token=case.get("token", True), chunks=case.get("chunks"),
        )  # fmt: skip
        answers[name] = (status, text[:200])
        assert 400 <= status < 500, (name, status, text[:300])
        # what the HTTP server cannot parse it refuses itself, with a status and no body
        assert text.strip() or name in REFUSED_BY_THE_HTTP_SERVER, (name, "no message")
        assert b"Traceback" not in text and b'File "' not in text, name
    assert not Path("/tmp/tving-evil.mp4").exists()
    assert _outside_snapshot(home) == before  # nothing written outside the data folder
    expected = {
        "spoofed Host (rebinding)": 421, "cross-origin upload": 403, "no token": 401, "oversized declared": 413,
        "oversized chunked": 413, "start=inf": 422, "51 video ids": 422, "name sanitising to nothing": 415,
        **REFUSED_BY_THE_HTTP_SERVER,
    }  # fmt: skip
    assert {name: answers[name][0] for name in expected} == expected, answers
    # and the server still answers
    status, _, text = raw.request("GET", "/search?q=" + urllib.parse.quote(SPOKEN_SCENES[0].paraphrase))
    assert status == 200 and json.loads(text)["results"]


def test_login_page_sets_a_cookie_that_authorises(server):
    raw, _ = server
    status, headers, _ = raw.request("GET", "/library", {"Accept": "text/html"}, token=False)
    assert status == 303 and headers["location"] == "/login"
    body = urllib.parse.urlencode({"token": TOKEN}).encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, headers, _ = raw.request("POST", "/login", form, body, token=False)
    assert status == 303
    cookie = headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    status, _, _ = raw.request("GET", "/videos", {"Cookie": cookie.split(";")[0]}, token=False)
    assert status == 200
    wrong = urllib.parse.urlencode({"token": "nope"}).encode()
    assert raw.request("POST", "/login", form, wrong, token=False)[0] == 401


def test_a_cancelled_request_does_not_stop_later_ones(server):
    raw, _ = server
    for i in range(20):  # each client goes away right after asking
        raw.request("GET", f"/search?q=cancelled+{i}", close_after_send=True)
    status, _, text = raw.request("GET", "/search?q=rain+at+night")
    assert status == 200 and json.loads(text)["results"]


def test_soak_searches_uploads_and_describes(server, indexed_library, speech_clip):
    """8 search clients for 60 s, with uploads and describes mixed in: no 5xx, every search
    answered, the server's memory grows by less than 200 MB."""
    raw, pid = server
    process = psutil.Process(pid)
    children = lambda: [process, *process.children(recursive=True)]  # noqa: E731 - Granian's worker
    rss = lambda: max(p.memory_info().rss for p in children())  # noqa: E731
    speech_id = indexed_library["results"]["speech.mp4"].video_id
    upload, upload_type = multipart("soak clip.mp4", speech_clip[0].read_bytes())
    queries = [s.paraphrase for s in SPOKEN_SCENES] + [s.korean_topic for s in SPOKEN_SCENES] + ["a cat", "bikes"]
    stop = time.monotonic() + 60
    statuses: dict[str, list[int]] = {"search": [], "upload": [], "describe": []}
    lock = threading.Lock()
    raw.request("GET", "/search?q=warm")
    # growth is measured from a server that has loaded what it serves (describe's models too)
    warm_describe = json.dumps({"video_id": speech_id, "start": 0.5, "end": 3.0}).encode()
    for _ in range(20):
        if raw.request("POST", "/describe", {"Content-Type": "application/json"}, warm_describe)[0] == 200:
            break
        time.sleep(1)
    start_rss = rss()

    def searcher(i: int) -> None:
        n = 0
        while time.monotonic() < stop:
            status, _, text = raw.request("GET", "/search?q=" + urllib.parse.quote(queries[(i + n) % len(queries)]))
            with lock:
                statuses["search"].append(status)
            assert status != 200 or json.loads(text)["results"] is not None
            n += 1

    def mixer() -> None:
        while time.monotonic() < stop:
            status, _, _ = raw.request("POST", "/upload", {"Content-Type": upload_type}, upload)
            with lock:
                statuses["upload"].append(status)
            describe = json.dumps({"video_id": speech_id, "start": 0.5, "end": 3.0}).encode()
            status, _, _ = raw.request("POST", "/describe", {"Content-Type": "application/json"}, describe)
            with lock:
                statuses["describe"].append(status)

    with ThreadPoolExecutor(max_workers=9) as pool:
        jobs: list[Future] = [pool.submit(searcher, i) for i in range(8)] + [pool.submit(mixer)]
        for job in jobs:
            job.result(timeout=180)
    growth_mb = (rss() - start_rss) / 2**20
    assert statuses["search"] and set(statuses["search"]) == {200}, statuses
    assert statuses["upload"] and set(statuses["upload"]) <= {200}, statuses["upload"]
    assert statuses["describe"] and set(statuses["describe"]) <= {200, 429}, statuses[
        "describe"
    ]  # 429: busy, by design
    assert growth_mb < 200, growth_mb
    for extra in (resolve_paths(home=indexed_library["home"]).videos_dir / "uploads").glob("soak clip*.mp4"):
        extra.unlink()  # the soak's uploads would otherwise be indexed by later tests' sensors


def test_server_started_on_an_empty_home_becomes_ready(tmp_path, cuts_clip):
    """/ready is 503 while there is no table, then 200 once a video is indexed: no restart."""
    from conftest import make_resources

    from tving_assets.indexing import index_videos

    home = tmp_path / "home"
    port = free_port()
    env = {**os.environ, "TVING_HOME": str(home)}
    pid = spawn([str(BIN / "tving"), "serve", "--port", str(port)], env, tmp_path / "serve.log")
    raw = Raw(port)
    try:
        wait_for(lambda: accepts(port), 120, "tving serve")
        assert raw.request("GET", "/health", token=False)[0] == 200  # alive at once
        wait_for(lambda: b"no scene table" in raw.request("GET", "/ready", token=False)[2], 120, "models loaded")
        assert raw.request("GET", "/ready", token=False)[0] == 503
        assert raw.request("GET", "/search?q=cat", token=False)[0] == 503
        clip = tmp_path / "clip.mp4"
        shutil.copyfile(cuts_clip[0], clip)
        (result,) = index_videos([str(clip)], make_resources(home))
        assert result.ok
        wait_for(lambda: raw.request("GET", "/ready", token=False)[0] == 200, 30, "ready after indexing")
        status, _, text = raw.request("GET", "/search?q=a+cat", token=False)
        assert status == 200 and json.loads(text)["results"]
    finally:
        stop_group(pid)


def test_batcher_answers_each_request_alone_when_its_batch_fails():
    """One request that breaks its batch fails alone; a cancelled one is skipped; the others are
    answered and the batcher lives on (a stand-in engine: the batching is what is tested)."""
    from query_app.search import SearchBatcher

    class Engine:
        def prepare(self, query, **_):
            return query

        def _encode(self, requests):
            return list(requests)

        def _answer(self, batch):
            if "boom" in batch:
                raise RuntimeError("a request broke the batch")
            return [f"answer to {q}" for q in batch]

        def search_batch(self, requests):
            return self._answer(requests)

    batcher = SearchBatcher(Engine(), max_batch=8, max_wait_ms=50)
    cancelled = batcher.submit("never mind")
    cancelled.cancel()
    futures = {q: batcher.submit(q) for q in ("one", "boom", "two")}
    assert futures["one"].result(timeout=10) == "answer to one"
    assert futures["two"].result(timeout=10) == "answer to two"
    with pytest.raises(RuntimeError, match="broke the batch"):
        futures["boom"].result(timeout=10)
    assert batcher.submit("later").result(timeout=10) == "answer to later"
    batcher.close()


@pytest.mark.parametrize("given", [None, "ACTIVE"])
def test_serve_lets_idle_openmp_threads_sleep_unless_told_otherwise(monkeypatch, given):
    """The server's OpenMP threads sleep when idle (concurrent searches need the cores); the
    policy is set before the server (and its worker, which loads the models) starts, and a
    policy the user set is kept."""
    from click.testing import CliRunner

    from query_app.web import server
    from tving_cli import main as cli

    monkeypatch.setenv("OMP_WAIT_POLICY", given or "")  # restored after the test, whatever serve sets
    if given is None:
        monkeypatch.delenv("OMP_WAIT_POLICY")
    seen = []
    monkeypatch.setattr(server, "run", lambda options: seen.append(os.environ.get("OMP_WAIT_POLICY")))
    result = CliRunner().invoke(cli.main, ["serve", "--port", "1"])
    assert result.exit_code == 0, result.output
    assert seen == [given or "PASSIVE"]
