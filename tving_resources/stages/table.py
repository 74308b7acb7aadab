"""The stages that make a video's rows and put them in the scene table."""

from __future__ import annotations

from tving_resources.index.lifecycle import commit_video
from tving_resources.index.pipeline import (
    KeyframeSet,
    SceneCaptions,
    SceneTexts,
    SceneVectors,
    build_scene_rows,
    check_scene_rows,
    model_stamp,
)
from tving_resources.media.scenes import SceneDetection
from tving_resources.media.video import VideoInfo
from tving_resources.models.wrappers.speech import Transcript
from tving_resources.stages.outcome import StageOutcome
from tving_resources.stages.run import StageRun, process_name


def scene_rows(run: StageRun) -> StageOutcome:
    """This video's rows for the scene table, built and checked here, committed by scene_index."""
    import pyarrow as pa

    video = run.video
    with run.guard():
        chain = video.lineage("vectors")

        def build(_out, _final) -> pa.Table:
            info = video.load("video", VideoInfo, chain["video"])
            speech = video.load("transcript", Transcript, chain["transcript"])
            scene_captions = video.load("captions", SceneCaptions, chain["captions"])
            vectors = video.load("vectors", SceneVectors, chain["vectors"])
            stamp = model_stamp(run.runtime.profile.name, vectors, scene_captions, speech)
            detection = video.load("scenes", SceneDetection, chain["scenes"])
            frames = video.load("keyframes", KeyframeSet, chain["keyframes"])
            texts = video.load("ocr", SceneTexts, chain["ocr"])
            return build_scene_rows(
                info, detection, frames, speech, scene_captions, vectors, stamp, texts, run.artifacts.base
            )

        faces_key = video.key_of("faces")
        produced = run.produce({"vectors": chain["vectors"], "faces": faces_key}, run.params(), build, pa.Table)
        detection = video.load("scenes", SceneDetection, chain["scenes"])
    rows = produced.value
    problems = check_scene_rows(rows, detection, run.artifacts.base)
    metadata = run.metadata(produced, rows=rows.num_rows)
    check = run.check("scene_rows_complete", problems, expected=len(detection.scenes), rows=rows.num_rows)
    return run.outcome(metadata, (check,))


def scene_index(run: StageRun) -> StageOutcome:
    """This video's rows in the LanceDB scene table, replaced in one commit; then the results of
    the version they replace (thumbnails included) are removed."""
    from tving_resources.store.scene_store import SceneStore
    from tving_resources.store.tables import TableRegistry

    video, profile = run.video, run.runtime.profile.name
    with run.guard():
        chain = video.lineage("rows")
        stamp = model_stamp(
            profile,
            video.load("vectors", SceneVectors, chain["vectors"]),
            video.load("captions", SceneCaptions, chain["captions"]),
            video.load("transcript", Transcript, chain["transcript"]),
        )
        uri = run.request.lancedb_uri
        # the table rows of this vector space go to: the live one, or one built beside it for a
        # new text or frame encoder (see tving_resources.store.tables)
        registry = TableRegistry(uri)
        store = SceneStore(uri, stamp, table_name=registry.table_for_write(stamp))
        report = commit_video(video, store, run.catalog, run.paths.locks_dir, run.settings.video_lock_timeout_seconds)
        found = store.count(run.video_id)
        progress = registry.progress(profile)
        switch = registry.switch_if_complete(profile, progress)  # a new vector space, now complete
    if switch:
        run.logs.append(f"search now answers from {switch.live}; {switch.retired} is retired (tving tables drop)")
    rebuild = (
        {"rebuild_videos": f"{progress.videos_done}/{progress.videos_total}", "rebuild_rows": progress.rows_done}
        if progress
        else {}
    )
    problems = [] if found == report.rows else [f"the index holds {found} rows for {report.rows} scenes"]
    metadata = {
        "rows": report.rows,
        "skipped": report.skipped,
        "old_results_removed": report.pruned,
        "table": store.table_name,
        "uri": store.uri,
        "table_rows": store.count(),
        "live_table": switch.live if switch else registry.live_name(profile),
        **rebuild,
        "seconds": run.timer.seconds,
        "process": process_name(),
    }
    check = run.check("index_rows_match_scenes", problems, expected=report.rows, found=found)
    return run.outcome(metadata, (check,))
