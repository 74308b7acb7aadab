"""The unpartitioned search assets: the search indexes over every video's rows, and search quality."""

import dagster as dg
from pydantic import Field

from tving_assets.assets.video import CPU_STEP, scene_index
from tving_assets.errors import user_errors_as_failures
from tving_assets.resources import LanceDBResource, ModelRuntimeResource, TvingSettings


@dg.asset(group_name="search", **CPU_STEP, deps=[scene_index], kinds={"lancedb"}, pool="tving_lancedb_writer")
def search_index(settings: TvingSettings, lancedb: LanceDBResource) -> dg.MaterializeResult:
    """Full-text index (and ANN indexes once a table is large) of every scene table; compaction;
    and the garbage of crashed runs (unreferenced results, staging folders, orphan folders)."""
    from tving_resources.index.lifecycle import collect_garbage
    from tving_resources.store.maintenance import refresh_all_indexes

    with user_errors_as_failures():
        uri = lancedb.resolved_uri(settings)
        reports = refresh_all_indexes(uri)
        garbage = collect_garbage(settings.all_artifacts(), settings.catalog(), uri, settings.paths.locks_dir)
    return dg.MaterializeResult(
        metadata={
            "tables": [r["table"] for r in reports],
            "rows": sum(r["rows"] for r in reports),
            "built": [f"{r['table']}.{c}" for r in reports for c in r["built"]],
            "seconds": round(sum(r["seconds"] for r in reports), 3),
            "garbage_removed": garbage.removed,
            "orphan_folders_removed": garbage.orphan_folders,
            "video_folders_busy": garbage.busy,
        }
    )


class PeopleConfig(dg.Config):
    full: bool = Field(
        default=False, description="group every face afresh (nightly); else only faces without a person yet"
    )


@dg.asset(group_name="search", **CPU_STEP, deps=[scene_index], kinds={"dlib"}, pool="tving_lancedb_writer")
def people(config: PeopleConfig, settings: TvingSettings, models: ModelRuntimeResource, lancedb: LanceDBResource):
    """Every face of the library grouped into people (dlib's Chinese whispers over each face's
    nearest faces); a person keeps their id, and so the name a user gave and their merges, when
    the faces are grouped again. After indexing: the new faces; nightly: all of them."""
    from tving_resources.catalog.people import PeopleRegistry
    from tving_resources.index.people import FACE_THRESHOLD, update_people
    from tving_resources.store.faces import FaceStore

    with user_errors_as_failures():
        faces = FaceStore(lancedb.resolved_uri(settings), models.profile_name)
        report = update_people(faces, PeopleRegistry(settings.catalog()), full=config.full)
    return dg.MaterializeResult(
        metadata={
            "faces": report.faces,
            "people": report.people,
            "new_people": report.new_people,
            "full": report.full,
            "threshold": FACE_THRESHOLD,
            "seconds": report.seconds,
            "dagster/row_count": report.people,
        }
    )


@dg.asset(group_name="search", **CPU_STEP, deps=[scene_index], kinds={"imagehash"}, pool="tving_lancedb_writer")
def duplicate_footage(settings: TvingSettings, models: ModelRuntimeResource, lancedb: LanceDBResource):
    """Scenes that show the same footage (a re-encode, shots reused in another file), grouped
    across videos by their keyframes' perceptual hashes; search folds a group into its best
    result. Regrouped whole after indexing (seconds for 100k scenes)."""
    from tving_resources.catalog.duplicates import DuplicateRegistry, DuplicateScene
    from tving_resources.index.duplicates import MAX_DISTANCE, find_duplicates, library_fingerprints

    with user_errors_as_failures():
        profile = models.profile_name
        groups, report = find_duplicates(library_fingerprints(lancedb.resolved_uri(settings), profile))
        members = {
            g.group_id: [DuplicateScene(s.scene_id, s.video_id, s.video_path, s.start, s.end) for s in g.scenes]
            for g in groups
        }
        DuplicateRegistry(settings.catalog()).replace(profile, members)
    return dg.MaterializeResult(
        metadata={
            "scenes": report.scenes,
            "groups": report.groups,
            "grouped_scenes": report.grouped_scenes,
            "max_distance_bits": MAX_DISTANCE,
            "seconds": report.seconds,
            "dagster/row_count": report.groups,
        }
    )


class SearchQualityConfig(dg.Config):
    labels: str = Field(description="JSONL of labelled queries over this index (see query_app.evaluation.evaluate)")
    tune: bool = Field(default=False, description="tune fusion weights on the labels' tuning half first")


@dg.asset(group_name="search", **CPU_STEP, deps=[search_index], kinds={"python"})
def search_quality(config: SearchQualityConfig, settings: TvingSettings) -> dg.MaterializeResult:
    """Search quality of the current index on labelled queries: recall@1/5/10 and MRR, fused and
    per signal alone, per language and kind (numbers in the metadata: the UI plots them over time)."""
    from query_app.evaluation.evaluate import evaluate, load_labels
    from query_app.search import SceneSearch

    with user_errors_as_failures():
        result = evaluate(SceneSearch(paths=settings.paths), load_labels(config.labels), tune=config.tune)
    metadata: dict[str, float | int | str] = {}
    for name, report in result.methods.items():
        key = name.replace(" ", "_").replace("(", "").replace(")", "")
        for k, value in report.overall.recall.items():
            metadata[f"{key}/recall@{k}"] = value
        metadata[f"{key}/mrr"] = report.overall.mrr
    fused = result.methods["fused (max)"]
    for language, scores in fused.by_language.items():
        metadata[f"fused/recall@5/{language}"] = scores.recall[5]
    for kind, scores in fused.by_kind.items():
        metadata[f"fused/recall@5/{kind}"] = scores.recall[5]
    metadata["queries"] = fused.overall.queries
    metadata["weights"] = str(result.weights.__dict__)
    return dg.MaterializeResult(metadata=metadata)
