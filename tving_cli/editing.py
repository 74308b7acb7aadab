"""From search to the edit: `tving clip`, `tving reel`, `tving timeline`."""

from __future__ import annotations

from pathlib import Path

import click

from tving_resources.errors import TvingError

from .output import echo_json, fail, fmt_time

TIMELINE_FORMATS = ("otio", "edl", "fcpxml")


def _search(
    query: str,
    k: int,
    video_ids: tuple[str, ...],
    person: str | None,
    per_video: int | None,
    min_score: float | None = None,
):
    from query_app.search import QueryError, SceneSearch

    try:
        engine = SceneSearch()
        if not engine.has_index():
            fail(f"nothing is indexed in {engine.paths.home} yet: index videos first (tving index PATH)")
        response = engine.search(
            query, k=k, video_ids=video_ids, person=person, per_video=per_video, min_score=min_score
        )
    except (QueryError, TvingError) as exc:
        fail(str(exc))
    if not response.results:
        fail(f'no result for "{query}" above the minimum score: nothing to cut (--min-score 0 takes every match)')
    return engine, response


def _search_options(command):
    for option in reversed(
        [
            click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1, 50), help="Results to use."),
            click.option("--video", "video_ids", multiple=True, help="Only these video ids (repeatable)."),
            click.option("--person", help="Only the scenes of this person (a name or an id)."),
            click.option("--per-video", type=click.IntRange(1, 50), help="At most N results per video."),
            click.option(
                "--min-score",
                type=click.FloatRange(0, 1),
                help="Leave out results scoring less (default: the profile's; 0 takes every match).",
            ),
        ]
    ):
        command = option(command)
    return command


@click.command("clip")
@click.argument("video")
@click.option("--start", type=float, required=True, help="Seconds.")
@click.option("--end", type=float, required=True, help="Seconds.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="The MP4 to write.")
def clip(video: str, start: float, end: float, output: str) -> None:
    """Cut START to END of VIDEO (an indexed id, or a file) to an MP4, frame-accurate, with its audio."""
    from tving_resources.edit.cuts import CutError, Span, cut_clip

    path = Path(video)
    try:
        if not path.is_file():
            from query_app.editing import indexed_video
            from tving_resources.config import resolve_paths
            from tving_resources.models.profiles import get_profile

            info = indexed_video(resolve_paths(), get_profile().name, video)
            path, duration = Path(info.path), info.duration
        else:
            from tving_resources.edit.cuts import probe_duration

            duration = probe_duration(path)
        span = Span(path, start, end).check(duration)
        cut_clip(span, Path(output))
    except (CutError, TvingError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{video}: {exc}")
    click.echo(f"{output}: {fmt_time(span.start)}-{fmt_time(span.end)} of {path.name}")


@click.command("reel")
@click.argument("query")
@_search_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="The MP4 to write.")
@click.option("--json", "as_json", is_flag=True, help="Print what went in as JSON.")
def reel(query: str, k: int, video_ids, person, per_video, min_score, output: str, as_json: bool) -> None:
    """The top results' moments for QUERY, in result order, in one MP4 (1280x720, 25 fps)."""
    from tqdm import tqdm

    from query_app.editing import picks, spans
    from tving_resources.edit.cuts import CutError, make_reel

    _, response = _search(query, k, video_ids, person, per_video, min_score)
    parts = spans(picks(response.results))
    with tqdm(total=len(parts), unit="moment", disable=as_json, desc=Path(output).name) as bar:
        try:
            make_reel(parts, Path(output), progress=lambda i, span: bar.update(1))
        except (CutError, TvingError) as exc:
            fail(str(exc))
    items = [{"video_path": str(s.path), "start": s.start, "end": s.end} for s in parts]
    if as_json:
        echo_json({"query": query, "output": output, "moments": items})
        return
    click.echo(f"{output}: {len(parts)} moments, {sum(s.end - s.start for s in parts):.1f} s")
    for r, s in zip(response.results, parts, strict=True):
        click.echo(f"  {r.rank}. {r.video_name} {fmt_time(s.start)}-{fmt_time(s.end)}")


@click.command("timeline")
@click.argument("query")
@_search_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(TIMELINE_FORMATS),
    default="otio",
    show_default=True,
    help="otio: OpenTimelineIO (DaVinci Resolve); edl: CMX 3600 (Premiere Pro); fcpxml: Final Cut Pro X.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of standard output.")
def timeline(query: str, k: int, video_ids, person, per_video, min_score, fmt: str, output: str | None) -> None:
    """The top results for QUERY as a timeline for editing programs: one clip per result, its
    moment as the source range in the source file, a marker with the caption and the query."""
    from query_app.editing import picks, timeline_text

    engine, response = _search(query, k, video_ids, person, per_video, min_score)
    try:
        text = timeline_text(engine.paths, engine.runtime.profile.name, picks(response.results), query, fmt)
    except TvingError as exc:
        fail(str(exc))
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"{output}: {len(response.results)} clips ({fmt})")
    else:
        click.echo(text, nl=False)
