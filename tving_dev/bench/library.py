"""Benchmarks of the deployments (``tving bench library``): the same generated library indexed
by `tving index` (one process), through the local daemon path (sensor, a queued run per video,
the model worker), and through the cluster deployment on this machine with one and with two
Celery workers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tving_resources.catalog.video_catalog import VideoCatalog

OLD_NS = 1_000_000_000_000_000_000  # an mtime long ago: settled for the sensor
_VARIANTS = ("", "hflip,", "vflip,", "hflip,vflip,", "crop=iw*0.8:ih*0.8,", "negate,")


def make_library(folder: Path, clips: int = 24, seconds: float = 6.0) -> list[Path]:
    """``clips`` distinct clips cut from the sample videos (ffmpeg: windows of demo.mp4, bikes and
    bigbuckbunny, flipped or cropped so that no two files have the same content)."""
    from query_app.samples import sample_videos

    folder.mkdir(parents=True, exist_ok=True)
    sources = {p.name: p for p in sample_videos()}
    windows = [("demo.mp4", t) for t in range(0, 54, 8)] + [("bikes.mp4", 0.0), ("bikes.mp4", 4.0)]
    windows.append(("bigbuckbunny.mp4", 0.0))
    out = []
    for i in range(clips):
        name, start = windows[i % len(windows)]
        variant = _VARIANTS[(i // len(windows)) % len(_VARIANTS)]
        target = folder / f"clip{i:03d}.mp4"
        subprocess.run(
            ["ffmpeg", "-y", "-loglevel", "error", "-ss", str(start), "-t", str(seconds), "-i", str(sources[name]),
             "-vf", f"{variant}scale=trunc(iw/2)*2:trunc(ih/2)*2", "-c:v", "libx264", "-preset", "ultrafast",
             "-c:a", "aac", str(target)],
            check=True, capture_output=True,
        )  # fmt: skip
        out.append(target)
    return out


def _video_seconds(files: list[Path]) -> float:
    from tving_resources.media.video import probe_video

    return sum(probe_video(f, "bench-0000000000", fingerprint=False).duration for f in files)


def _drop_and_wait(files: list[Path], videos_dir: Path, catalog: Callable[[], VideoCatalog], timeout: float) -> float:
    """Copy ``files`` into the watched folder; seconds until every one is indexed or failed."""
    videos_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for f in files:
        shutil.copyfile(f, videos_dir / f.name)
        os.utime(videos_dir / f.name, ns=(OLD_NS, OLD_NS))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = catalog().entries()
        if len(entries) == len(files) and all(e.state in ("indexed", "failed") for e in entries):
            return time.perf_counter() - started
        time.sleep(0.5)
    raise TimeoutError(f"the library was not indexed within {timeout:.0f} s")


def run_library_benchmark(clips: int = 24, sensor_interval: int = 5, cluster: bool = True, local: bool = True) -> dict:
    from tving_dev.local_cluster import BIN, ONE_WORKER, TWO_HOSTS, LocalCluster, spawn, stop_group

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("DAGSTER_HOME", None)
    report: dict = {"clips": clips, "sensor_interval_s": sensor_interval}
    with tempfile.TemporaryDirectory(prefix="tving-bench-library-") as tmp:
        root = Path(tmp)
        files = make_library(root / "library", clips)
        seconds = _video_seconds(files)
        report["video_seconds"] = round(seconds, 1)
        # one models folder for every path, filled before the clocks start: what is made once per
        # models folder (the whisper file assembled, the classifier's ONNX export, the class
        # vectors) is not part of indexing a library, and would be paid once per path otherwise
        models = env.get("TVING_MODELS_DIR") or str(root / "models")
        report["models_folder_prepared_s"] = _prepare_models_folder(models)
        env["TVING_MODELS_DIR"] = models
        previous = os.environ.get("TVING_MODELS_DIR")
        os.environ["TVING_MODELS_DIR"] = models  # the cluster's processes take os.environ

        if local:
            home = root / "cli-home"
            started = time.perf_counter()
            subprocess.run([str(BIN / "tving"), "--home", str(home), "index", str(root / "library"), "--no-progress"],
                           env=env, check=True, capture_output=True)  # fmt: skip
            report["tving_index_s"] = round(time.perf_counter() - started, 1)

            home = root / "daemon-home"
            from tving_assets.instance import get_instance

            get_instance(home)  # the local deployment's instance, as `tving ui` makes it
            daemon_env = {**env, "TVING_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
                          "TVING_SENSOR_INTERVAL_SECONDS": str(sensor_interval)}  # fmt: skip
            # as `tving ui` starts them: the model worker, and Dagster's daemon (sensor, run queue)
            worker = spawn([str(BIN / "tving"), "worker"], daemon_env, root / "worker.log", root)
            daemon = spawn([str(BIN / "dagster-daemon"), "run", "-m", "tving_assets.definitions"], daemon_env,
                           root / "daemon.log", root)  # fmt: skip
            try:
                time.sleep(10)  # both are up before the files arrive (services, not timed)
                catalog_url = str(home / "data" / "catalog.sqlite")
                report["daemon_path_s"] = round(
                    _drop_and_wait(files, home / "videos", lambda: VideoCatalog(catalog_url), 900), 1
                )
                report["daemon_loads"] = _model_loads(get_instance(home), home, len(files))
            finally:
                stop_group(daemon)
                stop_group(worker)

        if cluster:
            # one host (a worker for both queues), then a second host like it (gpu pool 2)
            for label, workers in (("cluster_1_worker_s", ONE_WORKER), ("cluster_2_workers_s", TWO_HOSTS)):
                box = LocalCluster(root / label)
                cluster_env = box.start(webserver_port=None, sensor_interval=sensor_interval, workers=workers)
                try:
                    url = cluster_env["TVING_CATALOG_URL"]
                    videos = Path(cluster_env["TVING_HOME"]) / "videos"
                    report[label] = round(_drop_and_wait(files, videos, lambda u=url: VideoCatalog(u), 1800), 1)
                finally:
                    box.stop(purge=True)
        if previous is None:
            os.environ.pop("TVING_MODELS_DIR", None)
        else:
            os.environ["TVING_MODELS_DIR"] = previous
    lines = [
        f"{clips} clips, {report['video_seconds']} s of video (sensor every {sensor_interval} s); models folder "
        f"prepared first, not timed: {report['models_folder_prepared_s']} s"
    ]
    if local:
        index = report["tving_index_s"]
        report["daemon_vs_tving_index_throughput"] = round(index / report["daemon_path_s"], 3)
        lines += [
            f"tving index (one process, models loaded once): {index} s ({seconds / index:.1f}x real time)",
            f"daemon path (a queued run per video, model worker): {report['daemon_path_s']} s; "
            f"throughput vs tving index "
            f"{report['daemon_vs_tving_index_throughput']}; model loads {report['daemon_loads']}",
        ]
    if cluster:
        report["cluster_speedup_2_vs_1"] = round(report["cluster_1_worker_s"] / report["cluster_2_workers_s"], 3)
        lines.append(
            f"cluster: 1 host (one worker, both queues) {report['cluster_1_worker_s']} s, 2 hosts (a worker each, "
            f"gpu pool 2) {report['cluster_2_workers_s']} s: speed-up {report['cluster_speedup_2_vs_1']}"
        )
    report["summary"] = "\n".join(lines)
    return report


def _prepare_models_folder(models: str) -> float:
    """Make what the lite models build once per models folder; seconds it took (0 when done)."""
    from tving_resources.models.runtime import ModelRuntime, RuntimeConfig

    started = time.perf_counter()
    ModelRuntime(RuntimeConfig(models_dir=models)).warm_up(("speech", "captioner", "frame_encoder"))
    return round(time.perf_counter() - started, 1)


def _model_loads(instance, home: Path, videos: int) -> dict:
    """Model loads per video on the daemon path: the model worker's, and any a run's own process
    made (none while the worker answers), read from the runs' materializations."""
    import dagster as dg

    from tving_resources.worker.client import WorkerAddress, WorkerClient

    loads = {key.split(":")[0]: n for key, n in WorkerClient(WorkerAddress.for_home(home)).load_counts().items()}
    in_runs = 0
    for record in instance.fetch_materializations(dg.AssetKey("captions"), limit=10_000).records:
        in_runs += sum(record.event_log_entry.asset_materialization.metadata["model_loads"].value.values())
    report = {"videos": videos, "loads_in_run_processes": in_runs}
    return {**report, **{m: f"{n} ({n / max(1, videos):.2f} per video)" for m, n in loads.items()}}


if __name__ == "__main__":  # pragma: no cover
    print(run_library_benchmark(int(sys.argv[1]) if len(sys.argv) > 1 else 24)["summary"])
