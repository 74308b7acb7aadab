"""What a search answers: results, responses, the request, the limits of a query."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, field

# What a result shows; what scoring a candidate needs.
DISPLAY_COLUMNS = [
    "scene_id", "video_id", "video_name", "video_path", "scene_index", "start", "end", "caption", "transcript",
    "ocr_text", "keyframe_times", "thumbnails",
]  # fmt: skip
SCORE_COLUMNS = ["scene_id", "video_id", "caption_vector", "transcript_vector"]
SIGNALS = ("caption", "transcript", "text")  # each can gather candidates and score them
# Below this fused score a result is not shown ("no good match"), per profile. Off by default:
# `tving eval` measures a threshold, and on the project's set it also drops 6.5% of relevant
# results (docs/search.md, "Search quality").
DEFAULT_MIN_SCORE = {"lite": 0.0, "full": 0.0}
SHOW_COLUMNS = [*DISPLAY_COLUMNS, "frame_vectors"]
log = logging.getLogger("tving.search")
MAX_QUERY_CHARS = 500
MAX_K = 50
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
_SNIPPET_CHARS = 240


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
