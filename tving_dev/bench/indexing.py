"""Indexing, sensor and model benchmarks (`tving bench index`, `tving bench sensor`, `tving bench models`)."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from tving_dev.bench.measure import gpu_peak_mb, or_na, peak_rss_mb, reset_gpu_peak
from tving_resources.models.runtime import ModelRuntime, RuntimeConfig


def run_index_benchmark(paths: list[Path] | None = None, ocr: bool = True, faces: bool = True) -> dict:
    """Index ``paths`` (default: the PyPI sample videos) into a fresh temporary home.

    Model loading and the once-per-process set-up (LanceDB's and PySceneDetect's imports, the new
    home's Dagster instance) are done first and reported apart; the speed is seconds of video per second of wall
    time over the indexing itself (all stages, Dagster's run and step overhead included).
    """
    from query_app.samples import sample_videos

    videos = paths or sample_videos()
    with tempfile.TemporaryDirectory(prefix="tving-bench-") as home:
        os.environ["TVING_HOME"] = home
        os.environ.pop("DAGSTER_HOME", None)  # ephemeral Dagster instance: nothing left behind
        started = time.perf_counter()
        from tving_assets.definitions import build_resources
        from tving_assets.indexing import STAGE_NAMES, index_videos

        imports = time.perf_counter() - started
        runtime = ModelRuntime(RuntimeConfig(ocr=ocr, faces=faces))
        roles = ("speech", "captioner", "text_encoder", "frame_encoder", "text_reader", "face_encoder")
        load = runtime.warm_up(roles[: None if faces else -1])
        # once per process or home, like the model load: the imports of the table and scene-cut
        # libraries (PySceneDetect runs ffmpeg once at import) and the new home's Dagster instance
        started = time.perf_counter()
        import lancedb  # noqa: F401
        import scenedetect  # noqa: F401

        from tving_assets.instance import get_instance
        from tving_assets.resources import ModelRuntimeResource

        resources = build_resources(models=ModelRuntimeResource(ocr=ocr, faces=faces))
        instance = get_instance(resources["settings"].paths.home)
        setup = time.perf_counter() - started
        started = time.perf_counter()
        results = index_videos([str(v) for v in videos], resources, instance=instance)
        wall = time.perf_counter() - started
    failed = [r for r in results if not r.ok]
    video_seconds = sum(r.duration for r in results if r.ok)
    per_stage = {name: round(sum(r.stage_seconds.get(name, 0.0) for r in results), 3) for name in STAGE_NAMES}
    stage_total = sum(per_stage.values())
    report = {
        "profile": runtime.profile.name,
        "ocr": ocr,
        "faces": faces,
        "videos": len(results),
        "failed": [f"{r.path}: {r.error}" for r in failed],
        "video_seconds": round(video_seconds, 2),
        "scenes": sum(r.scenes for r in results),
        "import_seconds": round(imports, 2),
        "model_load_seconds": {k: round(v, 2) for k, v in load.items()},
        "setup_seconds": round(setup, 2),
        "index_wall_seconds": round(wall, 2),
        "outside_stages_seconds": round(wall - stage_total, 2),
        "realtime_factor": round(video_seconds / wall, 2) if wall else None,
        "stage_seconds": per_stage,
        "stage_realtime_factor": {k: round(video_seconds / v, 1) if v else None for k, v in per_stage.items()},
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    lines = [
        f"profile {report['profile']}: {report['videos']} videos, {report['video_seconds']} s of video, "
        f"{report['scenes']} scenes",
        f"model load (reported apart): {sum(load.values()):.2f} s  {report['model_load_seconds']}",
        f"set-up (apart: LanceDB, PySceneDetect imports; the new home's Dagster instance): {report['setup_seconds']} s",
        f"indexing wall time: {wall:.2f} s  ->  {report['realtime_factor']}x real time",
        "per stage (s, x real time): "
        + ", ".join(f"{k} {v:.2f} ({report['stage_realtime_factor'][k]}x)" for k, v in per_stage.items()),
        f"outside the stages (Dagster run and step cost, search-index refresh): {report['outside_stages_seconds']} s",
        f"peak RSS (whole process, models included): {report['peak_rss_mb']} MB",
    ]
    if failed:
        lines.append(f"FAILED: {report['failed']}")
    report["summary"] = "\n".join(lines)
    return report


def run_sensor_benchmark(files: int = 5000, ticks: int = 5, max_runs_per_tick: int = 25) -> dict:
    """Sensor ticks over a watched folder of ``files`` video files (empty files: a tick never
    reads them), evaluated as the daemon does: a flood (all new, capped requests per tick), then
    the steady state of a library where every file is catalogued and nothing changed."""
    import json
    import logging

    import dagster as dg

    from tving_assets.automation.sensors import videos_folder_sensor
    from tving_assets.definitions import build_definitions, build_resources
    from tving_assets.resources import TvingSettings

    def evaluate(resources, definitions, instance, cursor):
        started = time.perf_counter()
        with dg.build_sensor_context(
            cursor=cursor, resources=resources, definitions=definitions, instance=instance
        ) as context:
            result = videos_folder_sensor(context)
        return time.perf_counter() - started, result

    logging.disable(logging.INFO)  # each tick logs its summary
    with tempfile.TemporaryDirectory(prefix="tving-bench-sensor-") as home:
        videos = Path(home) / "videos"
        videos.mkdir()
        for i in range(files):
            (videos / f"clip {i:06d}.mp4").touch()
            os.utime(videos / f"clip {i:06d}.mp4", ns=(10**18, 10**18))
        instance = dg.DagsterInstance.ephemeral()
        reports = {}
        cursor = None
        for phase, cap in (("flood", max_runs_per_tick), ("steady", max_runs_per_tick)):
            if phase == "steady":  # catalogue everything in one uncapped tick first
                resources = build_resources(settings=TvingSettings(home=home, sensor_max_runs_per_tick=files + 1))
                _, result = evaluate(resources, build_definitions(resources), instance, cursor)
                cursor = result.cursor
            resources = build_resources(settings=TvingSettings(home=home, sensor_max_runs_per_tick=cap))
            definitions = build_definitions(resources)
            seconds, requests = [], []
            for _ in range(ticks):
                elapsed, result = evaluate(resources, definitions, instance, cursor)
                cursor = result.cursor
                seconds.append(elapsed)
                requests.append(len(result.run_requests))
            reports[phase] = {
                "tick_median_s": round(statistics.median(seconds), 3),
                "tick_max_s": round(max(seconds), 3),
                "requests_per_tick": requests,
                "cursor_bytes": len(cursor.encode()),
            }
    report = {"files": files, "ticks": ticks, **reports, "cursor": json.loads(cursor)}
    report["summary"] = "\n".join(
        f"{phase}: {files} files, tick median {r['tick_median_s']} s (max {r['tick_max_s']} s), "
        f"requests per tick {r['requests_per_tick']}, cursor {r['cursor_bytes']} bytes"
        for phase, r in reports.items()
    )
    return report


def run_models_benchmark(
    profile: str = "full", tiny: bool = False, frames: int = 64, scenes: int = 8, models_dir: str | None = None
) -> dict:
    """Throughput of each model of a profile on real sample media, model loading reported apart.

    ``tiny`` builds random-initialised stand-ins first (this machine has no full weights): the
    figures then time the code paths, not the real models.
    """
    from PIL import Image

    from query_app.samples import sample_videos
    from tving_resources.media.video import FrameReader, probe_video
    from tving_resources.models.runtime import RuntimeConfig
    from tving_resources.models.wrappers.captioning import SceneFrames

    if tiny and profile == "full" and models_dir is None:
        from tving_dev.tiny_models import build_full_profile

        models_dir = tempfile.mkdtemp(prefix="tving-tiny-models-")
        build_full_profile(models_dir)
    runtime = ModelRuntime(RuntimeConfig(profile=profile, models_dir=models_dir))
    demo = next(p for p in sample_videos() if p.name == "demo.mp4")  # 60 s, camera cuts, audio
    info = probe_video(demo, "demo-0000000000", fingerprint=False)
    reader = FrameReader(info.path, (info.width, info.height), max_side=512)
    times = list(np.linspace(0.5, info.duration - 0.5, frames))
    images = [Image.fromarray(f) for f in reader.frames_at(times)]

    load = {
        role: round(s, 2)
        for role, s in runtime.warm_up(("speech", "captioner", "text_encoder", "frame_encoder")).items()
    }
    device = runtime.torch_device()
    reset_gpu_peak(device)
    measured: dict[str, dict] = {}

    def timed(name: str, unit: str, amount: float, work) -> None:
        started = time.perf_counter()
        work()
        seconds = time.perf_counter() - started
        measured[name] = {"seconds": round(seconds, 3), f"{unit}_per_s": round(amount / seconds, 2)}

    frame_encoder = runtime.frame_encoder()
    timed("frame_encoder", "frames", len(images), lambda: frame_encoder.encode_images(images))
    k = runtime.profile.keyframes_per_scene
    scene_inputs = [
        SceneFrames(i, tuple(images[(i * k + j) % len(images)] for j in range(k)), "Someone speaks in this scene.")
        for i in range(scenes)
    ]
    captioner = runtime.captioner()
    timed("captioner", "scenes", scenes, lambda: captioner.caption(scene_inputs))
    texts = [f"A scene with people talking, number {i}." for i in range(128)]
    text_encoder = runtime.text_encoder()
    timed("text_encoder", "passages", len(texts), lambda: text_encoder.encode_passages(texts))
    speech = runtime.speech()
    timed("speech", "audio_seconds", info.duration, lambda: speech.transcribe(info.path, has_audio=info.has_audio))
    report = {
        "profile": profile,
        "tiny_models": tiny,
        "device": device,
        "model_ids": runtime.model_ids(),
        "model_load_seconds": load,
        "stages": measured,
        "gpu_peak_memory_mb": gpu_peak_mb(device),  # None on CPU
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "media": f"{demo.name}: {info.duration:.1f} s, {frames} frames at <=512 px, {scenes} scenes x {k} frames",
    }
    rates = ", ".join(
        f"{name} {values[next(key for key in values if key.endswith('_per_s'))]} "
        f"{next(key for key in values if key.endswith('_per_s')).removesuffix('_per_s').replace('_', ' ')}/s"
        for name, values in measured.items()
    )
    report["summary"] = (
        f"profile {profile}{' (tiny random models: code paths, not real-model speed)' if tiny else ''} "
        f"on {device}: {rates}\n"
        f"model load (apart): {load}\n"
        f"GPU peak memory: {or_na(report['gpu_peak_memory_mb'], 'MB')}; peak RSS {report['peak_rss_mb']} MB; "
        f"{report['media']}"
    )
    return report


def run_rerun_benchmark(path: Path | None = None, runs: int = 5) -> dict:
    """What one `index_video` run costs when every stage is unchanged: ``path`` (default: the
    first sample video) indexed once into a fresh home, then ``runs`` more times in the same
    process (every stage reused): Dagster's run and step cost plus the project's own checks."""
    import statistics

    from query_app.samples import sample_videos

    video = path or sample_videos()[0]
    with tempfile.TemporaryDirectory(prefix="tving-bench-rerun-") as home:
        os.environ["TVING_HOME"] = home
        os.environ.pop("DAGSTER_HOME", None)
        from tving_assets.definitions import build_resources
        from tving_assets.indexing import index_videos
        from tving_assets.instance import get_instance

        resources = build_resources()
        instance = get_instance(resources["settings"].paths.home)
        (first,) = index_videos([str(video)], resources, instance=instance, refresh_search_index=False)
        seconds = []
        for _ in range(runs):
            started = time.perf_counter()
            (again,) = index_videos([str(video)], resources, instance=instance, refresh_search_index=False)
            seconds.append(time.perf_counter() - started)
    report = {
        "video": Path(video).name,
        "runs": runs,
        "first_ok": first.ok,
        "all_reused": len(again.reused_stages),
        "median_s": round(statistics.median(seconds), 3),
        "min_s": round(min(seconds), 3),
        "max_s": round(max(seconds), 3),
    }
    report["summary"] = (
        f"{report['video']}: a run with every stage unchanged ({report['all_reused']} stages reused) "
        f"median {report['median_s']} s over {runs} runs ({report['min_s']}-{report['max_s']} s)"
    )
    return report
