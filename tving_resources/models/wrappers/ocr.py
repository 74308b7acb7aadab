"""On-screen text: words read from keyframes with Tesseract (Debian's trained Korean and English
LSTM data) through tesserocr, its in-process binding.

tesserocr was chosen by measurement over pytesseract: on a 480x320 card, 0.125 s a frame against
0.87 s (pytesseract starts a process and loads the models for every image). Lines under a
confidence floor are dropped, so texture and noise in a photo do not become text.
"""

from __future__ import annotations

import glob
import locale
import os
import queue
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from tving_resources.errors import ModelNotAvailableError

READER_VERSION = 2  # part of the stored results' key: bump when what is read changes
DEFAULT_LANGUAGES = "kor+eng"
DEFAULT_MIN_CONFIDENCE = 75.0  # line confidence; noise read from photos scored 55-74 (measured)
_MIN_SIDE = 600  # small frames are enlarged first: Tesseract reads larger text better (measured)
_MAX_SIDE = 2400
_HANGUL_SYLLABLE = re.compile(r"^[\uac00-\ud7a3]$")


@dataclass(frozen=True)
class FrameText:
    text: str  # the confident lines, in reading order
    confidence: float  # mean confidence of the kept lines (0 when none)
    lines: int


def tessdata_dir() -> str:
    """Where the trained data is: TESSDATA_PREFIX, else Debian's folder."""
    if os.environ.get("TESSDATA_PREFIX"):
        return os.environ["TESSDATA_PREFIX"]
    found = sorted(glob.glob("/usr/share/tesseract-ocr/*/tessdata"))
    if not found:
        raise ModelNotAvailableError(
            "Tesseract's trained data is not installed (Debian: apt-get install tesseract-ocr "
            "tesseract-ocr-kor tesseract-ocr-eng), or set TESSDATA_PREFIX; or turn on-screen text off (ocr: false)"
        )
    return found[-1]


class TextReader:
    """Tesseract engines for the process, one per core up to ``engines``: an engine is not
    thread-safe, but tesserocr releases the GIL while it recognises, so frames are read in
    parallel, one engine each."""

    model_id = "tesseract-lstm"

    def __init__(
        self, languages: str = DEFAULT_LANGUAGES, min_confidence: float = DEFAULT_MIN_CONFIDENCE, engines: int = 0
    ):
        import tesserocr

        _c_numeric_locale()
        self.languages = languages
        self.min_confidence = min_confidence
        self.model_id = f"tesseract-lstm:{languages}"
        # sparse text: titles and captions sit anywhere on a frame, in no page layout (AUTO found
        # nothing on plain cards, measured)
        count = engines or min(2, os.cpu_count() or 1)
        self._engines: queue.Queue = queue.Queue()
        for _ in range(count):
            self._engines.put(
                tesserocr.PyTessBaseAPI(path=tessdata_dir(), lang=languages, psm=tesserocr.PSM.SPARSE_TEXT)
            )
        self._pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="tving-ocr") if count > 1 else None

    def read(self, images: Sequence[Image.Image]) -> list[FrameText]:
        if self._pool is None or len(images) < 2:
            return [self._read_one(image) for image in images]
        return list(self._pool.map(self._read_one, images))

    def _read_one(self, image: Image.Image) -> FrameText:
        import tesserocr

        image = image.convert("L")
        # small frames are upscaled (Tesseract misses small glyphs), never past _MAX_SIDE (a 4000x16
        # strip would become 150000x600)
        scale = min(_MIN_SIDE / min(image.size), _MAX_SIDE / max(image.size))
        if scale > 1:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
        lines: list[tuple[tuple[int, int], str]] = []  # (top, left) of a text line, its text
        confidences = []
        api = self._engines.get()
        try:
            _c_numeric_locale()
            # raw grey bytes: SetImage(PIL) goes through PNG in memory, which fails (and aborts the
            # process) when another library loaded a different zlib first (seen under pytest)
            api.SetImageBytes(image.tobytes(), image.width, image.height, 1, image.width)
            api.Recognize()
            level = tesserocr.RIL.TEXTLINE  # lines keep Tesseract's own spacing (Korean words whole)
            found = api.GetIterator()  # None: no text regions at all
            for line in tesserocr.iterate_level(found, level) if found is not None else ():
                if line is None:
                    continue
                try:
                    text = _join_syllables(line.GetUTF8Text(level).split())
                except RuntimeError:  # an empty region
                    continue
                confidence = line.Confidence(level)
                if confidence < self.min_confidence or not _worth_keeping(text):
                    continue
                left, top, *_ = line.BoundingBox(level) or (0, 0)
                lines.append(((top, left), text))
                confidences.append(confidence)
        finally:
            self._engines.put(api)
        text = "\n".join(text for _, text in sorted(lines))
        return FrameText(text, round(sum(confidences) / len(confidences), 1) if confidences else 0.0, len(confidences))


def _c_numeric_locale() -> None:
    """Tesseract aborts the process unless LC_NUMERIC is "C" (a library that set the user's
    locale meanwhile, such as a test runner or a GUI toolkit, would otherwise kill the run)."""
    if locale.setlocale(locale.LC_NUMERIC) != "C":
        locale.setlocale(locale.LC_NUMERIC, "C")


def _worth_keeping(text: str) -> bool:
    """At least three letters or digits, or two Hangul syllables: "ii" read off a photo is noise."""
    return sum(c.isalnum() for c in text) >= 3 or sum(bool(_HANGUL_SYLLABLE.match(c)) for c in text) >= 2


def _join_syllables(tokens: list[str]) -> str:
    """Tesseract's sparse mode spaces Korean syllables apart ("오 늘 의 메뉴"): runs of lone
    syllables are joined back into words ("오늘의 메뉴")."""
    out: list[str] = []
    run: list[str] = []
    for token in [*tokens, None]:
        if token is not None and _HANGUL_SYLLABLE.match(token):
            run.append(token)
            continue
        if run:
            out.append("".join(run))
            run = []
        if token is not None:
            out.append(token)
    return " ".join(out)


def scene_text(frames: Sequence[FrameText]) -> str:
    """A scene's on-screen text from its frames' texts: each distinct line once, in order."""
    seen, lines = set(), []
    for frame in frames:
        for line in frame.text.splitlines():
            key = line.casefold()
            if line and key not in seen:
                seen.add(key)
                lines.append(line)
    return "\n".join(lines)
