"""The web page in a real browser: Debian's Chromium, driven by Playwright, against `tving serve`."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from media import SPOKEN_SCENES

pytestmark = [pytest.mark.slow, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "browser-test-token-0123456789"
# As the machine's notes say: without these, headless Chromium tries to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(indexed_library):
    yield from _serve(indexed_library["home"])


@pytest.fixture(scope="module")
def people_server(people_library, tmp_path_factory):
    home = tmp_path_factory.mktemp("browser-people") / "home"
    shutil.copytree(people_library["home"], home)  # the test names people: not in the shared index
    yield from _serve(home)


def _logged_in(browser, base: str, **options):
    """A page of ``browser`` logged in to the server at ``base`` with the test token."""
    page = browser.new_page(viewport={"width": 1280, "height": 900}, **options)
    page.goto(base + "/login")
    page.fill("input[name=token]", TOKEN)
    page.click("[data-testid=login-form] button")
    page.wait_for_url(base + "/")
    return page


def _serve(home: Path):
    port = _free_port()
    env = {**os.environ, "TVING_HOME": str(home), "TVING_API_TOKEN": TOKEN}
    process = subprocess.Popen(
        [sys.executable, "-m", "tving_cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    try:
        while True:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            try:
                with urllib.request.urlopen(f"{base}/ready", timeout=5) as response:
                    if json.load(response)["status"] == "ready":
                        break
            except OSError:
                pass
            assert time.time() < deadline, "server not ready"
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (scripts/test.sh installs it)"
)
def test_login_search_play_upload_and_describe(server, tmp_path, cuts_clip):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server + "/")  # with a token set, the pages ask to log in first
            assert page.url.endswith("/login")
            page.fill("input[name=token]", TOKEN)
            page.click("[data-testid=login-form] button")
            page.wait_for_url(server + "/")

            page.fill("#q", SPOKEN_SCENES[2].paraphrase)
            page.press("#q", "Enter")
            cards = page.locator("[data-testid=result-card]")
            cards.first.wait_for()
            assert 1 <= cards.count() < 5  # the default minimum score hides the weaker matches; ask for them
            assert "speech.mp4" in cards.first.inner_text()
            page.click("[data-testid=show-weaker]")
            page.wait_for_url("**min_score=0*")
            cards.first.wait_for()
            assert cards.count() == 5
            assert "speech.mp4" in cards.first.inner_text()
            page.screenshot(path=str(tmp_path / "search.png"), full_page=True)
            assert (tmp_path / "search.png").stat().st_size > 10_000

            card = cards.nth(1)  # not the first: a later card proves the seek, not a default
            timestamp = float(card.get_attribute("data-timestamp"))
            card.click()
            page.wait_for_function(
                "([t]) => { const v = document.getElementById('player');"
                " return v.readyState >= 1 && Math.abs(v.currentTime - t) <= 0.5; }",
                arg=[timestamp],
                timeout=20_000,
            )
            current = page.evaluate("document.getElementById('player').currentTime")
            assert abs(current - timestamp) <= 0.5
            assert page.locator("#now-playing").inner_text().startswith(card.get_attribute("data-title")[:10])

            page.goto(server + "/library")
            upload = tmp_path / "browser upload.mp4"
            shutil.copyfile(cuts_clip[0], upload)
            page.set_input_files("#upload-file", str(upload))
            page.click("#upload-form button[type=submit]")
            page.wait_for_function("document.getElementById('upload-status').textContent.startsWith('Saved')")

            page.goto(server + "/describe")
            page.select_option("#video-select", index=1)
            page.wait_for_function("document.getElementById('describe-player').readyState >= 1", timeout=20_000)
            page.click("#describe-button")
            page.wait_for_function(
                "(() => { const t = document.getElementById('description').textContent;"
                " return t && !t.startsWith('Describing'); })()",
                timeout=60_000,
            )
            described = page.locator("#description").inner_text()
            assert "frames at" in described and not described.startswith("Error"), described
            page.screenshot(path=str(tmp_path / "describe.png"), full_page=True)
        finally:
            browser.close()


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (scripts/test.sh installs it)"
)
def test_name_a_person_on_the_people_page_and_open_their_scenes(people_server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = _logged_in(browser, people_server)

            page.click("nav >> text=People")
            page.wait_for_url(people_server + "/faces")
            cards = page.locator("[data-testid=person-card]")
            assert cards.count() == 2
            first = cards.first  # most scenes first: the astronaut, in 3 scenes of 2 videos
            assert "3 scenes in 2 videos" in " ".join(first.inner_text().split())
            assert first.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
            first.locator("[data-testid=name-input]").fill("Eileen Collins")
            first.locator("[data-testid=name-save]").click()
            page.wait_for_url(people_server + "/faces")
            assert page.locator("[data-testid=person-name]").first.inner_text() == "Eileen Collins"
            page.screenshot(path=str(tmp_path / "people.png"), full_page=True)

            page.locator("[data-testid=person-scenes]").first.click()
            page.wait_for_url("**/?person=*")
            assert "Eileen Collins" in page.locator("[data-testid=person-filter]").inner_text()
            results = page.locator("[data-testid=result-card]")
            assert results.count() == 3
            for i in range(3):
                assert "Eileen Collins" in results.nth(i).locator("[data-testid=people-seen]").inner_text()
            # a text query stays inside her scenes
            page.fill("#q", "a scene")
            page.press("#q", "Enter")
            page.wait_for_url("**/?q=*person=*")
            assert 1 <= results.count() <= 3
            assert all("Eileen Collins" in results.nth(i).inner_text() for i in range(results.count()))
        finally:
            browser.close()


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (scripts/test.sh installs it)"
)
def test_select_two_results_and_download_a_reel_and_a_timeline(server, tmp_path):
    import subprocess

    import opentimelineio as otio
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = _logged_in(browser, server, accept_downloads=True)
            page.fill("#q", SPOKEN_SCENES[0].paraphrase)
            page.press("#q", "Enter")
            page.locator("[data-testid=result-card]").first.wait_for()
            page.click("[data-testid=show-weaker]")  # three results to pick from: the weaker ones too
            page.wait_for_url("**min_score=0*")
            cards = page.locator("[data-testid=result-card]")
            cards.first.wait_for()
            assert "moment" in cards.first.locator("[data-testid=moment]").inner_text()
            picked = [cards.nth(i).get_attribute("data-item") for i in (0, 2)]
            cards.nth(0).locator("[data-testid=select-result]").check()
            cards.nth(2).locator("[data-testid=select-result]").check()
            assert page.locator("[data-testid=picked-count]").inner_text() == "2 selected"

            with page.expect_download() as reel_download:
                page.click("[data-testid=make-reel]")
            reel = tmp_path / "reel.mp4"
            reel_download.value.save_as(reel)
            frames = subprocess.run(
                ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                 "stream=nb_read_frames", "-of", "csv=p=0", str(reel)],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            spans = [tuple(float(x) for x in item.split(":")[1:]) for item in picked]
            assert abs(int(frames) / 25 - sum(end - start for start, end in spans)) <= 2 / 25

            page.select_option("[data-testid=timeline-format]", "otio")
            with page.expect_download() as timeline_download:
                page.click("[data-testid=make-timeline]")
            assert timeline_download.value.suggested_filename == "tving-timeline.otio"
            target = tmp_path / "timeline.otio"
            timeline_download.value.save_as(target)
            clips = list(otio.adapters.read_from_file(str(target)).find_clips())
            assert [round(c.source_range.start_time.to_seconds(), 1) for c in clips] == [
                round(start, 1) for start, _ in spans
            ]
        finally:
            browser.close()
