"""What the browser tests share: Debian's Chromium driven by Playwright, against `tving serve`
started as a user starts it, and where their screenshots are kept."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "browser-test-token-0123456789"
# As the machine's notes say: without these, headless Chromium tries to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (scripts/test.sh installs it)"
)
# Screenshots kept after the run (scripts/test.sh says where): TVING_TEST_ARTIFACTS, else test-artifacts/.
ARTIFACTS = Path(os.environ.get("TVING_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "test-artifacts")


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def logged_in(browser, base: str, locale: str = "en-US", **options):
    """A page of ``browser`` logged in to the server at ``base`` with the test token."""
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale=locale, **options)
    page.goto(base + "/login")
    page.fill("input[name=token]", TOKEN)
    page.click("[data-testid=login-form] button")
    page.wait_for_url(base + "/")
    return page


def serve(home: Path, *extra: str, env: dict | None = None, empty: bool = False):
    """`tving serve` on a free loopback port, with the test token, until it is ready (``empty``:
    until its models are loaded, on a home with nothing indexed yet); its URL."""
    port = free_port()
    env = {**os.environ, **(env or {}), "TVING_HOME": str(home), "TVING_API_TOKEN": TOKEN}
    process = subprocess.Popen(
        [sys.executable, "-m", "tving_cli.main", "serve", "--host", "127.0.0.1", "--port", str(port), *extra],
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
            except urllib.error.HTTPError as exc:
                if empty and json.load(exc)["detail"].startswith("no scene table yet"):
                    break
            except OSError:
                pass
            assert time.time() < deadline, "server not ready"
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def no_serious_violations(page, label: str) -> None:
    """axe-core (Deque's accessibility engine) on the page as it is now: no serious or critical
    violation (the others are printed)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    found = results.response["violations"]
    serious = [v for v in found if v.get("impact") in ("serious", "critical")]
    for violation in found:
        print(label, violation["impact"], violation["id"], [n["target"] for n in violation["nodes"]][:3])
    assert not serious, f"{label}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in serious
    )
