"""Indexing from the command line: `tving index` (through the Dagster assets, in this process)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tving_resources.errors import TvingError

from .output import echo_json, fail


# --------------------------------------------------------------------------- index
@click.command()
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
        fail("name video files or folders to index (or pass --stale)")
    if dry_run:
        fail("--dry-run goes with --stale")
    results = run_index(paths, progress=not no_progress and not as_json, refresh=not no_refresh)
    if as_json:
        echo_json([r.__dict__ for r in results])
    else:
        print_index_report(results)
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
        fail(str(exc))
    if as_json:
        echo_json(
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
            print_index_report(results)
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
        fail(str(exc))
    except Exception as exc:  # a full disk under the catalog or Dagster's storage: one message
        paths_ = resolve_paths()
        full = disk_full_error(exc, [paths_.data_dir, paths_.home])
        if full is None:
            raise
        fail(str(full))


def print_index_report(results) -> None:
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
