"""What a search answers: results, responses, the request, the limits of a query."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, field

from tving_resources.models.profiles import LITE

# What a result shows; what scoring a candidate needs.
DISPLAY_COLUMNS = [
    "scene_id", "video_id", "video_name", "video_path", "scene_index", "start", "end", "caption", "transcript",
    "ocr_text", "keyframe_times", "thumbnails", "caption_model",
]  # fmt: skip
SCORE_COLUMNS = ["scene_id", "video_id", "caption_vector", "transcript_vector"]
SIGNALS = ("caption", "transcript", "text")  # each can gather candidates and score them
# Below this score a result is not shown ("no good match"), per profile: lite scores are
# probabilities of relevance (query_app.search.calibration), and this one, chosen by `tving eval`
# on the tuning half (the 3rd percentile of its relevant results' scores), keeps 90% of the test
# half's relevant results and answers each of the 6 queries about nothing indexed with "no good
# match" (docs/search.md). The full profile has no calibration measured here: off.
DEFAULT_MIN_SCORE = {"lite": 0.079, "full": 0.0}
# Shown, but marked as weak matches: a third of the tuning half's relevant results score under
# this, and no result of a query about nothing indexed scores above it.
WEAK_SCORE = {"lite": 0.15, "full": 0.0}
SHOW_COLUMNS = [*DISPLAY_COLUMNS, "frame_vectors"]
log = logging.getLogger("tving.search")
MAX_QUERY_CHARS = 500
MAX_K = 50
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
_SNIPPET_CHARS = 240


def caption_kind(caption_model: str | None) -> str:
    """ "labels" for the lite captioner's ImageNet labels (automatic labels, often wrong: shown as
    such), "description" for a captioning model's sentences."""
    base = (caption_model or "").split("+")[0]
    return "labels" if base == LITE.caption_model else "description"


def has_hangul(text: str) -> bool:
    return bool(_HANGUL.search(text))


@dataclass(frozen=True)
class PersonRef:
    """A person seen in a scene: their id, and the name a user gave (None: not named yet)."""

    id: str
    name: str | None


@dataclass(frozen=True)
class Moment:
    """The part of a result's scene that matches (seconds in the video): what was said
    (``speech``), or the picture around the frame (``picture``)."""

    start: float
    end: float
    source: str


@dataclass(frozen=True)
class DuplicateRef:
    """Another file's copy of a result's footage (folded into the result: see docs/search.md)."""

    scene_id: str
    video_id: str
    video_name: str
    video_path: str
    start: float
    end: float


@dataclass(frozen=True)
class SearchResult:
    rank: int
    score: float
    scene_id: str
    video_id: str
    video_name: str
    video_path: str
    scene_index: int
    start: float
    end: float
    timestamp: float  # of the chosen frame
    thumbnail: str  # relative to the artifacts folder (what the web API serves)
    thumbnail_path: str  # absolute path on this machine
    caption: str
    transcript_snippet: str
    onscreen_text: str  # text read on the scene's frames
    scores: dict[str, float]  # per signal: caption, transcript, text, frame
    people: tuple[PersonRef, ...] = ()  # the people whose faces the scene's keyframes show
    moment: Moment | None = None  # the part of the scene that matches (always set by the engine)
    duplicates: tuple[DuplicateRef, ...] = ()  # the same footage elsewhere, folded into this result
    weak: bool = False  # shown, but a weak match (its score is under the profile's WEAK_SCORE)
    caption_kind: str = "description"  # "labels": the lite captioner's automatic labels, not a statement

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SearchResponse:
    query: str
    query_used: str  # the translated text when the query was translated
    translated: bool
    fusion: str
    results: tuple[SearchResult, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "query_used": self.query_used,
            "translated": self.translated,
            "fusion": self.fusion,
            "results": [r.to_dict() for r in self.results],
            "timings_ms": self.timings_ms,
        }


class QueryError(ValueError):
    """The query or its options are invalid; the message says how."""


@dataclass(frozen=True)
class SearchRequest:
    """A validated query with its options (see :meth:`SceneSearch.prepare`)."""

    query: str
    k: int
    where: str | None
    per_video: int | None
    min_score: float = 0.0  # results scoring less are left out ("no good match")
    fold_duplicates: bool = True  # copies of the same footage: the best shown, the others listed in it


def snippet(text: str, query: str, width: int = _SNIPPET_CHARS) -> str:
    """Up to ``width`` characters of ``text`` around the first query word found in it."""
    text = " ".join((text or "").split())
    if len(text) <= width:
        return text
    lowered = text.lower()
    hits = [lowered.find(w) for w in re.findall(r"\w{3,}", query.lower())]
    hits = [h for h in hits if h >= 0]
    start = max(0, min(hits) - width // 3) if hits else 0
    end = min(len(text), start + width)
    return ("…" if start else "") + text[start:end].strip() + ("…" if end < len(text) else "")


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
