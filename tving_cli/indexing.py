"""Indexing from the command line: `tving index` (through the Dagster assets, in this process)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tving_resources.errors import TvingError

from .output import echo_json, fail, failure_cause


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
    videos, skipped = screen_inputs(paths)
    results = skipped
    if videos:
        results = skipped + run_index(videos, progress=not no_progress and not as_json, refresh=not no_refresh)
    if as_json:
        echo_json([r.__dict__ for r in results])
    else:
        print_index_report(results)
    if not videos:
        fail("nothing to index: none of the files given is a video")
    if not all(r.ok or r.skipped for r in results):
        sys.exit(1)  # some videos failed (the others were indexed)


def screen_inputs(paths: tuple[str, ...]):
    """The paths to index, and a skipped result for each file given that is not a video, so
    that nothing is catalogued for it. Folders, missing paths and special files go on: indexing
    searches the folders for videos and reports the others without cataloguing them."""
    from tving_assets.indexing import VideoIndexResult

    videos: list[str] = []
    skipped: list[VideoIndexResult] = []
    for raw in paths:
        reason = _not_a_video(Path(raw).expanduser())
        if reason is None:
            videos.append(raw)
        else:
            skipped.append(VideoIndexResult(raw, None, error=reason, skipped=True))
    return videos, skipped


def _not_a_video(path: Path) -> str | None:
    from tving_resources.ids import VIDEO_EXTENSIONS
    from tving_resources.media.video import why_not_a_video

    if not path.is_file():
        return None
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        extension = f"extension {path.suffix}" if path.suffix else "no extension"
        known = ", ".join(sorted(VIDEO_EXTENSIONS))
        return f"not a video ({extension}; videos end in {known}: rename the file if it is one)"
    reason = why_not_a_video(path)
    return None if reason is None else f"not a video file ({reason})"


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
    """One line per result: ok, FAILED (at which stage, and why), or skipped (not a video)."""
    ok = [r for r in results if r.ok]
    tried = [r for r in results if not r.skipped]
    for r in results:
        name = Path(r.path).name
        if r.ok:
            total = r.seconds
            click.echo(
                f"  ok      {name:<32} {r.scenes:>3} scenes  {r.duration:7.1f} s of video  "
                f"in {total:5.1f} s  ({r.video_id})"
            )
        elif r.skipped:
            click.secho(f"  skipped {r.path}: {r.error}", fg="yellow")
        else:
            shown = name if r.video_id else r.path  # never catalogued: the path as given
            where = f"  at {r.failed_stage}" if r.failed_stage else ""
            click.secho(f"  FAILED  {shown}{where}: {failure_cause(r.error, r.path, r.failed_stage)}", fg="red")
    skipped = len(results) - len(tried)
    if tried:  # else the command says that nothing was left to index
        also = f"; {skipped} skipped (not videos)" if skipped else ""
        click.echo(f"{len(ok)} of {len(tried)} videos indexed{also}.")
