"""From candidates to results: a candidate's final score (signals fused, then calibrated), the
picks of one query (minimum score, per-video limit, copies of a footage folded), and a result
made from a scene row."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from query_app.search.calibration import Calibration, margins
from query_app.search.fusion import FUSION_METHODS, FusionWeights
from query_app.search.moments import picture_moment
from query_app.search.results import SearchRequest, SearchResult, caption_kind, snippet


def score_candidates(
    scores: dict[str, np.ndarray],
    fusion: str,
    weights: FusionWeights,
    calibration: Calibration | None,
    frames: np.ndarray | None = None,
) -> np.ndarray:
    """The final score of each candidate; adds ``fused`` (before calibration) and ``margin`` (over
    the query's other candidates) to ``scores``. With a calibration: the probability of relevance
    (docs/search.md), in the same order as the fused score."""
    if not len(scores["caption"]):
        scores["fused"] = scores["margin"] = np.zeros(0, dtype=np.float32)
        return scores["fused"]
    fused = FUSION_METHODS[fusion](scores, weights)
    if frames is not None:
        fused = fused + weights.frame * frames
    scores["fused"] = fused
    scores["margin"] = margins(fused, calibration)
    return calibration.probabilities(scores) if calibration is not None else fused


def pick(
    request: SearchRequest,
    row_ids: list[int],
    rows_at: np.ndarray,
    scores: dict[str, np.ndarray],
    final: np.ndarray,
    video_ids: list[str],
    row_groups: list[str | None],
) -> list[tuple[int, float, dict[str, float]]]:
    """The request's top k as (row id, final score, per-signal scores); of the scenes of one
    duplicate group (``row_groups``, by row position) only the best when the request folds."""
    picks: list[tuple[int, float, dict[str, float]]] = []
    per_video_count: dict[str, int] = {}
    shown_groups: set[str] = set()
    for i in np.argsort(-final, kind="stable"):
        if final[i] < request.min_score:
            break  # sorted: every later one scores less
        group = row_groups[rows_at[i]]
        if request.fold_duplicates and group is not None:
            if group in shown_groups:
                continue  # a copy of footage already shown (and listed there)
            shown_groups.add(group)
        video_id = video_ids[rows_at[i]]
        if request.per_video and per_video_count.get(video_id, 0) >= request.per_video:
            continue
        per_video_count[video_id] = per_video_count.get(video_id, 0) + 1
        picks.append((row_ids[i], float(final[i]), {name: float(v[i]) for name, v in scores.items()}))
        if len(picks) == request.k:
            break
    return picks


def result_from_row(
    rank: int, score: float, row: dict, frame: int, signals: dict[str, float], query: str, artifacts_dir: Path
) -> SearchResult:
    """A result from its scene row: the chosen frame's time and thumbnail, a transcript snippet
    around the query's words, the picture moment around the frame."""
    thumbnails = row["thumbnails"] or [""]
    times = row["keyframe_times"] or [row["start"]]
    frame = min(frame, len(thumbnails) - 1)
    return SearchResult(
        rank=rank,
        score=round(score, 4),
        scene_id=row["scene_id"],
        video_id=row["video_id"],
        video_name=row["video_name"],
        video_path=row["video_path"],
        scene_index=row["scene_index"],
        start=round(row["start"], 3),
        end=round(row["end"], 3),
        timestamp=round(times[frame], 3),
        thumbnail=thumbnails[frame],
        thumbnail_path=str(artifacts_dir / thumbnails[frame]) if thumbnails[frame] else "",
        caption=row["caption"],
        transcript_snippet=snippet(row["transcript"], query),
        onscreen_text=row.get("ocr_text") or "",
        scores={k: round(v, 4) for k, v in signals.items()},
        moment=picture_moment(times[frame], row["start"], row["end"]),
        caption_kind=caption_kind(row.get("caption_model")),
    )
