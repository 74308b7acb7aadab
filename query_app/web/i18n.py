"""The web pages in Korean and English: gettext message catalogs (Babel), the language of a
request, and formats (times, numbers, dates) for that language.

English is the source language: the ``msgid`` of every message is its English text, and the
Korean catalog is ``locale/ko/LC_MESSAGES/messages.po``. The catalogs are read from their ``.po``
files when the app starts (no compiled ``.mo`` in the repository, no build step). To add or change
a message: mark it with ``_()`` in a template or ``N_()`` in Python, then run
``python -m query_app.web.i18n``, which extracts every message and updates the Korean catalog;
``tests/test_web_i18n.py`` fails while any message lacks its Korean translation.

A request's language: ``?lang=`` in its address, else the ``tving_lang`` cookie that the
language switch sets (a year), else the browser's ``Accept-Language``, else Korean.
"""

from __future__ import annotations

import gettext as gettext_module
import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("ko", "en")  # the first is the default
LANGUAGE_NAMES = {"ko": "한국어", "en": "English"}
LANG_COOKIE = "tving_lang"
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600


def N_(message: str) -> str:  # noqa: N802 (gettext's conventional name)
    """Marks a message for extraction; it is translated where it is shown."""
    return message


@cache
def translations(language: str) -> gettext_module.NullTranslations:
    """The catalog of ``language``, compiled in memory from its ``.po`` file (English: none)."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if language == "en" or not po.is_file():
        return gettext_module.NullTranslations()
    with po.open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def _accepted(header: str) -> list[str]:
    """Languages of an ``Accept-Language`` header, most wanted first."""
    weighted = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and math.isfinite(quality) and quality > 0:
            weighted.append((-quality, position, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def choose_language(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    for asked in (query, cookie):
        if asked in LANGUAGES:
            return asked
    chosen = Locale.negotiate(_accepted(accept_language or ""), list(LANGUAGES), sep="-")
    return chosen.language if chosen is not None and chosen.language in LANGUAGES else LANGUAGES[0]


def clock(seconds: float | None) -> str:
    """The one time format of the pages: ``m:ss.s`` (``h:mm:ss.s`` from an hour on)."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    tenths = round(max(seconds, 0.0) * 10)
    hours, rest = divmod(tenths, 36000)
    minutes, rest = divmod(rest, 600)
    text = f"{rest // 10:02d}.{rest % 10}"
    return f"{hours}:{minutes:02d}:{text}" if hours else f"{minutes}:{text}"


@dataclass(frozen=True)
class PageLanguage:
    """What a page needs to speak one language: its messages and its formats."""

    code: str

    @property
    def catalog(self) -> gettext_module.NullTranslations:
        return translations(self.code)

    def gettext(self, message: str, **values: Any) -> str:
        text = self.catalog.gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: Any) -> str:
        return self.catalog.ngettext(singular, plural, n) % {"num": self.number(n), **values}

    def number(self, value: float, pattern: str | None = None) -> str:
        return format_decimal(value, format=pattern, locale=self.code)

    def score(self, value: float) -> str:
        return format_decimal(value, format="0.00", locale=self.code)

    def datetime(self, timestamp: float | None) -> str:
        if timestamp is None:
            return ""
        return format_datetime(datetime.fromtimestamp(timestamp).astimezone(), format="medium", locale=self.code)

    def template_globals(self) -> dict[str, Any]:
        """What every template gets: ``_``, ``ngettext``, the formats, the language."""
        return {
            "_": self.gettext,
            "gettext": self.gettext,
            "ngettext": self.ngettext,
            "number": self.number,
            "score": self.score,
            "when": self.datetime,
            "lang": self.code,
            "languages": LANGUAGE_NAMES,
            "js_messages": {key: self.gettext(text) for key, text in JS_MESSAGES.items()},
        }

    def error(self, detail: Any) -> str:
        """An error for a page: translated when it is one of the catalog's messages (the API's
        JSON answers stay in English: scripts match on them)."""
        return self.gettext(str(detail)) if isinstance(detail, str) else str(detail)


# The messages the page's JavaScript shows; each page carries them translated (base.html).
JS_MESSAGES: Mapping[str, str] = {
    "uploading": N_("Uploading…"),
    "saved": N_("Saved as %(name)s. It appears below while it is indexed."),
    "error": N_("Error: %(detail)s"),
    "describing": N_("Describing…"),
    "choose_video": N_("Choose a video first."),
    "frames_at": N_("frames at %(times)s"),
    "select_first": N_("Select one or more results first."),
    "selected": N_("%(n)s selected"),
    "status_waiting": N_("waiting for the sensor"),
    "status_queued": N_("queued"),
    "status_running": N_("indexing: stage %(k)s of %(n)s"),
    "status_starting": N_("starting"),
    "status_indexed": N_("indexed"),
    "status_failed": N_("failed"),
    "status_canceled": N_("canceled"),
    "run": N_("run in Dagster"),
    "nothing_indexing": N_("Nothing is being indexed."),
    "reload_to_see": N_("Reload the page to see the new videos."),
    "no_daemon": N_("The Dagster daemon is not running, so new files are not indexed. Start it with: tving ui"),
    "no_dagster": N_(
        "This server does not know Dagster's address, so it cannot show indexing runs or check that the "
        "daemon runs. Start it with: tving serve --dagster-url http://127.0.0.1:3000 (and Dagster with: tving ui)"
    ),
    "dagster_unreachable": N_("Dagster does not answer at %(url)s, so nothing new is indexed. Start it with: tving ui"),
}


def request_language(request: Any) -> PageLanguage:
    """The language of a Starlette request (see the module's docstring)."""
    return PageLanguage(
        choose_language(
            request.query_params.get("lang"),
            request.cookies.get(LANG_COOKIE),
            request.headers.get("accept-language"),
        )
    )


def context_processor(request: Any) -> dict[str, Any]:
    """For ``Jinja2Templates(context_processors=...)``: every page in the request's language, and
    the page's own address (where the language switch comes back to)."""
    return {**request_language(request).template_globals(), "here": site_path(request.url.remove_query_params("lang"))}


def site_path(url: Any) -> str:
    """A link to this site as a path and query: the pages never name their own host."""
    return url.path + (f"?{url.query}" if url.query else "")


def safe_next(target: str | None) -> str:
    """Where the language switch goes back to: a path of this site only (never ``//host``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def update_catalogs(write: Callable[[str], None] = print) -> None:
    """Extract every message of the templates and Python modules into the Korean catalog
    (new messages get an empty translation, gone ones are marked obsolete)."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import write_po

    template = extracted_catalog(Path(__file__).parent, extract_from_dir)
    for language in LANGUAGES:
        if language == "en":
            continue
        po = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
        po.parent.mkdir(parents=True, exist_ok=True)
        if po.is_file():
            with po.open("rb") as source:
                catalog = read_po(source, locale=language)
        else:
            from babel.messages.catalog import Catalog

            catalog = Catalog(locale=language, project="tving scene search")
        catalog.update(template, no_fuzzy_matching=True)
        catalog.fuzzy = False  # the header: a fuzzy one would drop the plural forms
        with po.open("wb") as target:
            write_po(target, catalog, omit_header=False, sort_output=True, width=100, include_lineno=False)
        missing = [m.id for m in catalog if m.id and not (any(m.string) if m.pluralizable else m.string)]
        write(f"{po}: {len(catalog)} messages, {len(missing)} without a translation")


def extracted_catalog(web_dir: Path, extract_from_dir: Callable[..., Any]) -> Any:
    """Every message marked in the web app (its templates and Python modules): a Babel catalog."""
    from babel.messages.catalog import Catalog

    catalog = Catalog(project="tving scene search")
    method_map = [("templates/**.html", "jinja2"), ("**.py", "python")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    for filename, lineno, message, comments, _context in extract_from_dir(
        str(web_dir), method_map=method_map, keywords=keywords, options_map={"**.html": {"autoescape": "true"}}
    ):
        catalog.add(message, None, [(f"query_app/web/{filename}", lineno)], auto_comments=comments)
    return catalog


if __name__ == "__main__":
    update_catalogs()
