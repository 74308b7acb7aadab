"""The project's labelled evaluation set, indexed through the Dagster assets and evaluated: what
`tving eval --build` runs (the evaluation itself is the query app's, which never imports Dagster)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from query_app.evaluation.evaluate import Evaluation, LabelledQuery, evaluate
from query_app.evaluation.labelled_set import NO_MATCH_QUERIES
from query_app.evaluation.metrics import add_cut_scores, cut_scores, word_error_rate
from query_app.search import SceneSearch
from tving_resources.config import resolve_paths
from tving_resources.errors import ConfigError


def evaluate_built_set(folder: Path, tune: bool = True) -> Evaluation:
    """Build the project's labelled set in ``folder`` (reused when there), index it with the
    current profile into ``folder/home`` (unchanged videos are not recomputed), and evaluate."""
    from query_app.evaluation.labelled_set import build
    from tving_assets.definitions import build_resources  # the indexing goes through Dagster
    from tving_assets.indexing import index_videos
    from tving_assets.resources import TvingSettings

    built = build(folder)
    home = folder / "home"
    resources = build_resources(settings=TvingSettings(home=str(home)))
    results = index_videos([str(p) for p in built.clips.values()], resources)
    failed = [f"{r.path}: {r.error}" for r in results if not r.ok]
    if failed:
        raise ConfigError(f"the evaluation set did not index: {failed}")
    seconds: dict[str, float] = defaultdict(float)
    for r in results:
        for stage, value in r.stage_seconds.items():
            seconds[stage] += value
    engine = SceneSearch(paths=resolve_paths(home=home))
    queries = [
        LabelledQuery(q.text, frozenset({f"{q.clip}.mp4#{q.scene}"}), q.language, q.kind, q.split)
        for q in built.queries
    ]
    evaluation = evaluate(engine, queries, tune=tune, nonsense=NO_MATCH_QUERIES)
    evaluation.indexing_seconds = {k: round(v, 2) for k, v in seconds.items()}
    by_name = {Path(r.path).name: r.video_id for r in results}
    rows = {clip: engine.store.scenes_of(by_name[f"{clip}.mp4"], ["scene_index", "start", "transcript"])
            for clip in built.clips}  # fmt: skip
    tolerance = 0.25
    cuts = add_cut_scores(
        [cut_scores([r["start"] for r in rows[c][1:]], built.cuts[c], tolerance) for c in built.clips]
    )
    evaluation.cuts = {"tolerance_s": tolerance, **cuts.as_dict()}
    pairs = [(sentence, rows[clip][scene]["transcript"]) for clip, said in built.sentences.items()
             for scene, sentence in said if scene < len(rows[clip])]  # fmt: skip
    evaluation.speech = {"sentences": len(pairs), "wer": word_error_rate([a for a, _ in pairs], [b for _, b in pairs])}
    return evaluation
