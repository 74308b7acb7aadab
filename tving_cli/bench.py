"""`tving bench`: the project's benchmarks (tving_dev.bench), from the command line."""

from __future__ import annotations

from pathlib import Path

import click

from tving_resources.errors import TvingError

from .output import echo_json, fail


# --------------------------------------------------------------------------- bench
@click.group(invoke_without_command=True)
@click.option("--profile", "profile_name", type=click.Choice(["lite", "full"]), help="With no subcommand: models.")
@click.option("--tiny", is_flag=True, help="With no subcommand: time tiny random models (no weights needed).")
@click.pass_context
def bench(ctx: click.Context, profile_name: str | None, tiny: bool) -> None:
    """Benchmarks whose figures go into docs/performance.md.

    `tving bench --profile full` alone runs `bench models` for that profile.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(bench_models, profile_name=profile_name or "full", tiny=tiny, frames=64, scenes=8, as_json=False)


@bench.command("index")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--no-ocr", is_flag=True, help="Without on-screen text (to see what OCR costs).")
@click.option("--no-faces", is_flag=True, help="Without faces (to see what the faces stage costs).")
@click.option("--json", "as_json", is_flag=True)
def bench_index(paths: tuple[str, ...], no_ocr: bool, no_faces: bool, as_json: bool) -> None:
    """Index PATHS (default: the sample videos) into a fresh temporary home; report speed and memory."""
    from tving_dev.bench.indexing import run_index_benchmark

    report = run_index_benchmark([Path(p) for p in paths] or None, ocr=not no_ocr, faces=not no_faces)
    echo_json(report) if as_json else click.echo(report["summary"])


@bench.command("people")
@click.option("--faces", default=100_000, show_default=True, type=click.IntRange(2), help="Synthetic faces.")
@click.option("--per-person", default=50, show_default=True, type=click.IntRange(1), help="Faces per person.")
@click.option("--new", "new_faces", default=1000, show_default=True, help="Faces then grouped incrementally.")
@click.option("--json", "as_json", is_flag=True)
def bench_people(faces: int, per_person: int, new_faces: int, as_json: bool) -> None:
    """The people asset over many faces (synthetic embeddings): time, peak memory, agreement."""
    from tving_dev.bench.people import run_people_benchmark

    report = run_people_benchmark(faces, per_person, new_faces)
    echo_json(report) if as_json else click.echo(report["summary"])


@bench.command("reel")
@click.option("--moments", default=50, show_default=True, type=click.IntRange(1, 500), help="Moments, one per video.")
@click.option("--seconds", default=4.0, show_default=True, help="Seconds per moment.")
@click.option("--json", "as_json", is_flag=True)
def bench_reel(moments: int, seconds: float, as_json: bool) -> None:
    """A reel of MOMENTS moments from as many generated videos: time and peak memory."""
    from tving_dev.bench.reel import run_reel_benchmark

    report = run_reel_benchmark(moments, seconds)
    echo_json(report) if as_json else click.echo(report["summary"])


@bench.command("pages")
@click.option("--rounds", default=8, show_default=True, type=click.IntRange(1), help="Rounds of five searches.")
@click.option("--json", "as_json", is_flag=True)
def bench_pages(rounds: int, as_json: bool) -> None:
    """The search page, the library page and its progress poll on this home's index: medians."""
    from tving_dev.bench.pages import run_pages_benchmark

    report = run_pages_benchmark(rounds)
    echo_json(report) if as_json else click.echo(report["summary"])


@bench.command("rerun")
@click.argument("path", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--runs", default=5, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True)
def bench_rerun(path: str | None, runs: int, as_json: bool) -> None:
    """What a run costs when every stage is unchanged (Dagster's per-run cost, mostly)."""
    from tving_dev.bench.indexing import run_rerun_benchmark

    report = run_rerun_benchmark(Path(path) if path else None, runs)
    echo_json(report) if as_json else click.echo(report["summary"])


@bench.command("ann")
@click.option("--rows", default=1_000_000, show_default=True, help="Synthetic scene rows (clustered e5 vectors).")
@click.option("--queries", default=200, show_default=True)
@click.option("--db", "db_dir", type=click.Path(file_okay=False), help="Keep/reuse the table here.")
@click.option("--index", "configs", multiple=True, help="Candidate indexes (default: ivf_pq, ivf_hnsw_sq, ivf_rq).")
@click.option("--probes", default="20,50,100", show_default=True, help="nprobes values to try.")
@click.option("--refines", default="1,10", show_default=True, help="refine factors to try.")
@click.option("--json", "as_json", is_flag=True)
def bench_ann(
    rows: int, queries: int, db_dir: str | None, configs: tuple[str, ...], probes: str, refines: str, as_json: bool
) -> None:
    """Choose the ANN index by measurement: recall@10 against exact search, latency, build time, size."""
    from tving_dev.bench.ann import CANDIDATES, run_ann_benchmark

    report = run_ann_benchmark(
        rows=rows,
        queries=queries,
        db_dir=db_dir,
        configs=configs or tuple(CANDIDATES),
        probes=tuple(int(p) for p in probes.split(",")),
        refines=tuple(int(r) for r in refines.split(",")),
    )
    echo_json(report) if as_json else click.echo(report["summary"])


@bench.command("library")
@click.option("--clips", default=24, show_default=True, help="Clips cut from the sample videos.")
@click.option("--sensor-interval", default=5, show_default=True, help="Seconds between sensor ticks.")
@click.option("--no-cluster", is_flag=True, help="Skip the cluster runs (PostgreSQL, Redis, Celery).")
@click.option("--no-local", is_flag=True, help="Skip `tving index` and the local daemon path.")
@click.option("--json", "as_json", is_flag=True)
def bench_library(clips: int, sensor_interval: int, no_cluster: bool, no_local: bool, as_json: bool) -> None:
    """One library through `tving index`, the local daemon path, and the cluster on 1 and 2 hosts."""
    from tving_dev.bench.library import run_library_benchmark

    report = run_library_benchmark(
        clips=clips, sensor_interval=sensor_interval, cluster=not no_cluster, local=not no_local
    )
    echo_json(report) if as_json else click.echo(report["summary"])


@bench.command("sensor")
@click.option("--files", default=5000, show_default=True, help="Video files in the watched folder.")
@click.option("--ticks", default=5, show_default=True, help="Ticks timed per phase.")
@click.option("--json", "as_json", is_flag=True)
def bench_sensor(files: int, ticks: int, as_json: bool) -> None:
    """Sensor tick time over a large watched folder: a flood of new files, then the steady state."""
    from tving_dev.bench.indexing import run_sensor_benchmark

    report = run_sensor_benchmark(files=files, ticks=ticks)
    echo_json(report) if as_json else click.echo(report["summary"])


@bench.command("status")
@click.option("--videos", default=50_000, show_default=True, help="Catalogued videos (20 scene rows each).")
@click.option("--runs", default=5, show_default=True, help="Timed runs of `tving status --json`.")
@click.option("--db", "db_dir", type=click.Path(file_okay=False), help="Keep/reuse the synthetic library here.")
@click.option("--json", "as_json", is_flag=True)
def bench_status(videos: int, runs: int, db_dir: str | None, as_json: bool) -> None:
    """`tving status` over a large library: a catalog of VIDEOS and their scene table."""
    from tving_dev.bench.status import run_status_benchmark

    report = run_status_benchmark(videos=videos, runs=runs, db_dir=db_dir)
    echo_json(report) if as_json else click.echo(report["summary"])


@bench.command("search")
@click.option("--rows", default=100_000, show_default=True, help="Synthetic scene rows.")
@click.option("--queries", default=200, show_default=True, help="Queries to time.")
@click.option("--db", "db_dir", type=click.Path(file_okay=False), help="Keep/reuse the synthetic table here.")
@click.option("--json", "as_json", is_flag=True)
def bench_search(rows: int, queries: int, db_dir: str | None, as_json: bool) -> None:
    """Search latency over synthetic scene rows (model loaded first, reported separately)."""
    from tving_dev.bench.search import run_search_benchmark

    report = run_search_benchmark(rows=rows, queries=queries, db_dir=db_dir)
    echo_json(report) if as_json else click.echo(report["summary"])


@bench.command("models")
@click.option("--profile", "profile_name", type=click.Choice(["lite", "full"]), default="full", show_default=True)
@click.option("--tiny", is_flag=True, help="Build tiny random models first and time those (no weights needed).")
@click.option("--frames", default=64, show_default=True, help="Frames for the frame-encoder timing.")
@click.option("--scenes", default=8, show_default=True, help="Scenes for the captioner timing.")
@click.option("--json", "as_json", is_flag=True)
def bench_models(profile_name: str, tiny: bool, frames: int, scenes: int, as_json: bool) -> None:
    """Per-model throughput on real sample media: frames/s, scenes/s, audio s/s; GPU memory."""
    from tving_dev.bench.indexing import run_models_benchmark

    try:
        report = run_models_benchmark(profile_name, tiny=tiny, frames=frames, scenes=scenes)
    except TvingError as exc:
        fail(str(exc))
    echo_json(report) if as_json else click.echo(report["summary"])


@bench.command("serve")
@click.option("--rows", default=100_000, show_default=True, help="Synthetic scene rows.")
@click.option("--clients", default=8, show_default=True, help="Concurrent clients.")
@click.option("--requests", "requests_", default=600, show_default=True, help="Requests in all.")
@click.option("--db", "db_dir", type=click.Path(file_okay=False), help="Keep/reuse the synthetic table here.")
@click.option("--max-batch", default=16, show_default=True, type=click.IntRange(1), help="Server: searches per batch.")
@click.option("--batch-wait-ms", default=5.0, show_default=True, type=click.FloatRange(0), help="Server: batch wait.")
@click.option("--json", "as_json", is_flag=True)
def bench_serve(
    rows: int, clients: int, requests_: int, db_dir: str | None, max_batch: int, batch_wait_ms: float, as_json: bool
) -> None:
    """/search over HTTP with concurrent clients against `tving serve` on loopback (after warm-up)."""
    from tving_dev.bench.search import run_serve_benchmark

    report = run_serve_benchmark(
        rows=rows, clients=clients, requests=requests_, db_dir=db_dir, max_batch=max_batch, batch_wait_ms=batch_wait_ms
    )
    echo_json(report) if as_json else click.echo(report["summary"])
