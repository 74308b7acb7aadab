"""The web app as a Korean user meets it, in a real browser against real servers: an upload that
waits for Dagster, a warning while Dagster or its daemon is not running, then the video followed
on the library page, without reloading, from the sensor to the run's stages to "indexed"; then a
Korean search with filters. The screenshots are kept (see browser_support.ARTIFACTS)."""

import os
import shutil

import pytest
from browser_support import artifact, launch, logged_in, needs_chromium, no_serious_violations, serve
from media import SPOKEN_SCENES

from tving_dev.local_cluster import BIN, accepts, free_port, spawn, stop_group, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.browser]
# every state the library page showed for the upload (a MutationObserver: none is missed between polls)
WATCH_STATES = """() => {
  window.seenStates = [];
  const record = () => document.querySelectorAll("[data-testid=progress-item]").forEach((item) => {
    const text = item.querySelector(".state").textContent;
    if (window.seenStates.at(-1) !== text) window.seenStates.push(text);
  });
  new MutationObserver(record).observe(document.getElementById("progress-list"), { childList: true, subtree: true });
  record();
}"""


@needs_chromium
def test_korean_upload_followed_until_indexed_then_searched(tmp_path, speech_clip):
    from playwright.sync_api import sync_playwright

    from tving_assets.instance import dagster_home

    home = tmp_path / "home"
    port = free_port()  # where Dagster will be: nothing answers there at first
    env = {**os.environ, "TVING_HOME": str(home), "DAGSTER_HOME": str(dagster_home(home)), "HF_HUB_OFFLINE": "1",
           "TVING_SENSOR_INTERVAL_SECONDS": "2"}  # fmt: skip
    upload = tmp_path / "말하는 장면.mp4"
    shutil.copyfile(speech_clip[0], upload)
    server = serve(home, "--dagster-url", f"http://127.0.0.1:{port}", env=env, empty=True)
    base = next(server)
    started: list[int] = []
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                page = logged_in(browser, base, locale="ko-KR")
                assert page.evaluate("document.documentElement.lang") == "ko"
                page.click("nav >> text=라이브러리")
                warning = page.locator("[data-testid=daemon-warning]")
                warning.wait_for()
                assert "Dagster가 응답하지 않아" in warning.inner_text() and "tving ui" in warning.inner_text()
                assert "감시 폴더: videos" in page.locator("[data-testid=indexing-status]").inner_text()
                page.set_input_files("#upload-file", str(upload))
                page.click("#upload-form button[type=submit]")
                page.wait_for_function("document.getElementById('upload-status').textContent.includes('저장했습니다')")
                page.evaluate(WATCH_STATES)
                item = page.locator("[data-testid=progress-item]", has_text="말하는 장면.mp4")
                item.wait_for()
                assert "센서를 기다리는 중" in item.inner_text()
                no_serious_violations(page, "library page, Korean")

                # Dagster's webserver alone: it answers, but no daemon runs the sensor
                webserver = spawn([str(BIN / "dagster-webserver"), "-m", "tving_assets.definitions", "-p", str(port)],
                                  env, tmp_path / "webserver.log", cwd=tmp_path)  # fmt: skip
                started.append(webserver)
                page.wait_for_function(
                    "document.getElementById('daemon-warning').textContent.includes('데몬이 실행되고 있지 않아')",
                    timeout=120_000,
                )
                page.screenshot(path=str(artifact("library-ko-no-daemon.png")), full_page=True)
                stop_group(started.pop())
                wait_for(lambda: not accepts(port), 30, "the webserver to stop")

                # `tving ui`: the webserver, the daemon and the model worker; the upload is indexed
                ui = spawn([str(BIN / "tving"), "ui", "--port", str(port)], env, tmp_path / "ui.log", cwd=tmp_path)
                started.append(ui)
                page.wait_for_function(
                    "() => { const i = [...document.querySelectorAll('[data-testid=progress-item]')];"
                    " return i.length && i[0].dataset.state === 'indexed'; }",
                    timeout=400_000,
                )
                assert warning.is_hidden()  # the daemon runs
                seen = page.evaluate("window.seenStates")
                print("states shown:", seen)
                assert seen[0] == "센서를 기다리는 중" and seen[-1] == "색인 완료", seen
                assert any("단계 중" in s for s in seen), seen  # "색인 중: 8단계 중 3단계 (captions)"
                assert (
                    item.locator("a", has_text="Dagster 실행")
                    .get_attribute("href")
                    .startswith(f"http://127.0.0.1:{port}/runs/")
                )
                page.screenshot(path=str(artifact("library-ko-indexed.png")), full_page=True)

                # a Korean search, then a filter: all in Korean, all in the address
                page.click("nav >> text=검색")
                page.fill("#q", SPOKEN_SCENES[0].korean_topic)
                page.press("#q", "Enter")
                cards = page.locator("[data-testid=result-card]")
                cards.first.wait_for()
                assert "말하는 장면.mp4" in cards.first.inner_text()
                assert "검색 결과" in page.locator("[data-testid=summary]").inner_text()
                cards.first.locator("[data-testid=why] summary").click()
                assert "점수" in cards.first.locator("[data-testid=why]").inner_text()
                page.locator("[data-testid=filters] summary").click()
                page.fill("[data-testid=filter-end]", "0:05")
                page.click("[data-testid=apply-filters]")
                page.wait_for_url("**end=0%3A05*")
                assert "1개 적용 중" in page.locator("[data-testid=filters] summary").inner_text()
                for i in range(cards.count()):
                    assert cards.nth(i).locator("[data-testid=moment-time]").inner_text() < "0:05.0"
                cards.first.locator("[data-testid=why] summary").click()
                no_serious_violations(page, "search page, Korean")
                page.screenshot(path=str(artifact("search-ko.png")), full_page=True)
                assert artifact("search-ko.png").stat().st_size > 20_000

                # honest options: Korean descriptions need the full profile; said so beside the option
                page.click("nav >> text=설명")
                assert page.locator("[data-testid=describe-language] option[value=ko]").is_disabled()
                assert "full 프로필" in page.locator("[data-testid=korean-unavailable]").inner_text()
                # the switch, remembered: the next page comes in English
                page.click("[data-testid=lang-en]")
                page.wait_for_url(base + "/describe")
                assert page.evaluate("document.documentElement.lang") == "en"
                page.goto(base + "/library")
                assert page.locator("h1").inner_text() == "Library"
            finally:
                browser.close()
    except Exception:
        for log in ("ui.log", "webserver.log"):
            if (tmp_path / log).exists():
                print(log, (tmp_path / log).read_text()[-3000:])
        raise
    finally:
        for pid in started:
            stop_group(pid)
        server.close()
