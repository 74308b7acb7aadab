"""The web app's two languages and its indexing progress, without a browser: the Korean catalog
covers every message, a request's language is chosen as documented, times have one format, and
the library's progress list says where each file of the watched folder is."""

import os
import time
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from query_app.web import i18n
from query_app.web.dagster_status import DagsterView, IndexRun
from query_app.web.progress import video_progress
from tving_resources.catalog.folder_watch import scan_video_folder
from tving_resources.catalog.video_catalog import VideoCatalog

WEB = Path(i18n.__file__).parent


def test_every_message_of_the_pages_has_its_korean_translation():
    extracted = i18n.extracted_catalog(WEB, extract_from_dir)
    assert len(extracted) > 100  # the templates and the Python modules were read
    with (i18n.LOCALE_DIR / "ko" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        korean = read_po(source, locale="ko")
    missing = [m.id for m in extracted if m.id and not (korean.get(m.id) and korean.get(m.id).string)]
    assert not missing, f"run `python -m query_app.web.i18n` and translate: {missing}"
    # the same placeholders on both sides (Babel's python-format check)
    problems = [(m.id, errors) for m, errors in korean.check() if errors]
    assert not problems, problems


def test_korean_and_english_pages_speak_their_language():
    ko, en = i18n.PageLanguage("ko"), i18n.PageLanguage("en")
    assert ko.gettext("Search") == "검색" and en.gettext("Search") == "Search"
    assert ko.ngettext("%(num)s video", "%(num)s videos", 1234) == "동영상 1,234개"
    assert en.ngettext("%(num)s video", "%(num)s videos", 1) == "1 video"
    assert en.ngettext("%(num)s video", "%(num)s videos", 2) == "2 videos"
    # an error of the catalog is shown translated; another one as it is
    assert ko.error("the search took too long; retry") == "검색이 너무 오래 걸렸습니다. 다시 시도하세요"
    assert ko.error("something else") == "something else"
    when_ko, when_en = ko.datetime(1_790_000_000), en.datetime(1_790_000_000)  # 2026-09-21
    assert when_ko.startswith("2026. 9. 2") and ("오전" in when_ko or "오후" in when_ko), when_ko
    assert when_en.startswith("Sep 2") and "2026" in when_en, when_en
    assert ko.score(0.5) == "0.50"


@pytest.mark.parametrize(
    ("query", "cookie", "header", "chosen"),
    [
        (None, None, "ko-KR,ko;q=0.9,en-US;q=0.8", "ko"),
        (None, None, "en-US,en;q=0.9,ko;q=0.8", "en"),
        (None, None, "fr-FR, en;q=0.5, ko;q=0.7", "ko"),  # by weight, not by order
        (None, None, "fr-FR", "ko"),  # neither: the product's own language
        (None, None, None, "ko"),
        (None, "en", "ko-KR", "en"),  # the switch, remembered, wins over the browser
        ("ko", "en", "en-US", "ko"),  # and ?lang= over both
        ("xx", "yy", "en;q=abc, ko", "ko"),  # nonsense is ignored
    ],
)
def test_the_language_of_a_request(query, cookie, header, chosen):
    assert i18n.choose_language(query, cookie, header) == chosen


def test_one_time_format():
    assert [i18n.clock(s) for s in (0, 7.25, 59.96, 61, 3600, 3725.5)] == [
        "0:00.0", "0:07.2", "1:00.0", "1:01.0", "1:00:00.0", "1:02:05.5"
    ]  # fmt: skip
    assert i18n.clock(None) == "" and i18n.clock(float("nan")) == ""


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "\\\\evil", "", "library"])
def test_the_language_switch_only_goes_back_to_this_site(target):
    assert i18n.safe_next(target) == "/"


def test_progress_follows_each_file_from_waiting_to_indexed_or_failed(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    names = ["waiting.mp4", "queued.mp4", "running.mp4", "indexed.mp4", "failed.mp4", "old.mp4", "changed.mp4"]
    for name in names:
        (folder / name).write_bytes(b"x" * 10)
    catalog = VideoCatalog(str(tmp_path / "catalog.sqlite"))
    entries = {name: catalog.register(folder / name) for name in names}
    version = {name: e.version for name, e in entries.items()}
    for name in ("indexed.mp4", "old.mp4", "changed.mp4"):
        catalog.mark_indexed(entries[name].video_id, version[name], "fp")
    catalog.mark_failed(entries["failed.mp4"].video_id, "scenes", "no frames could be decoded")
    os.utime(folder / "changed.mp4", ns=(2_000_000_000_000_000_000, 2_000_000_000_000_000_000))  # a new version

    def run(name: str, status: str, **more) -> IndexRun:
        return IndexRun(entries[name].video_id, name, status, None, None, f"http://dagster/runs/{name}", **more)

    runs = {r.video_id: r for r in (run("queued.mp4", "QUEUED"), run("running.mp4", "STARTED", stage=3, stages=8,
                                                                    step="captions"))}  # fmt: skip
    now = time.time()
    listing = scan_video_folder(folder)
    found = {p.name: p for p in video_progress(listing, catalog.entries(), DagsterView(True, None, runs, True), now)}
    assert found["waiting.mp4"].state == "waiting" and found["changed.mp4"].state == "waiting"
    assert found["queued.mp4"].state == "queued" and found["queued.mp4"].run_url.endswith("queued.mp4")
    assert (found["running.mp4"].state, found["running.mp4"].stage, found["running.mp4"].stages) == ("running", 3, 8)
    assert found["indexed.mp4"].state == "indexed"
    assert found["failed.mp4"].state == "failed" and found["failed.mp4"].error == "no frames could be decoded"
    # an hour after it was indexed, a video leaves the list (the library shows it)
    later = {p.name for p in video_progress(listing, catalog.entries(), None, now + 2 * 3600)}
    assert "indexed.mp4" not in later and "old.mp4" not in later and "waiting.mp4" in later
    # without Dagster, the catalog alone still tells waiting, indexed and failed apart
    alone = {p.name: p.state for p in video_progress(listing, catalog.entries(), None, now)}
    assert alone["queued.mp4"] == "waiting" and alone["failed.mp4"] == "failed"
