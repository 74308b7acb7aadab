"""Scene search: a Korean or English query -> the top-k frames, each explaining its score.

``engine`` answers queries (candidates from three signals, every candidate scored on all of
them, fused, best frame per scene); ``batcher`` answers concurrent ones in batches; ``fusion``
and ``results`` are the pieces both share; ``similar`` finds scenes like an image or a scene;
``people`` says who is seen in a scene, ``faces`` finds the scenes of a face photo or a person.
The names below are the package's surface (what the web app, the command line and the
evaluation use).
"""

from query_app.search.batcher import SearchBatcher
from query_app.search.engine import SceneSearch
from query_app.search.faces import FaceSearch
from query_app.search.fusion import DEFAULT_FUSION, FUSION_METHODS, FusionWeights
from query_app.search.people import PeopleIndex, PersonSummary
from query_app.search.results import (
    DEFAULT_MIN_SCORE,
    MAX_K,
    MAX_QUERY_CHARS,
    SIGNALS,
    QueryError,
    SearchRequest,
    SearchResponse,
    SearchResult,
    has_hangul,
    snippet,
)

__all__ = [
    "DEFAULT_FUSION",
    "DEFAULT_MIN_SCORE",
    "FUSION_METHODS",
    "MAX_K",
    "MAX_QUERY_CHARS",
    "SIGNALS",
    "FaceSearch",
    "FusionWeights",
    "PeopleIndex",
    "PersonSummary",
    "QueryError",
    "SceneSearch",
    "SearchBatcher",
    "SearchRequest",
    "SearchResponse",
    "SearchResult",
    "has_hangul",
    "snippet",
]
