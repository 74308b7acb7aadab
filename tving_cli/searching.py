"""Asking the index: `tving search`, `tving describe`, `tving eval`, `tving demo`."""

from __future__ import annotations

from pathlib import Path

import click

from tving_cli.indexing import print_index_report, run_index
from tving_resources.errors import TvingError

from .output import echo_json, fail, fmt_time


# -------------------------------------------------------------------------- search
@click.command()
@click.argument("query", required=False)
@click.option("--image", "image_path", type=click.Path(exists=True, dir_okay=False), help="Search by this image.")
@click.option("--similar", "similar_to", help="Scenes like this scene id (<video id>:<5 digits>).")
@click.option(
    "--face",
    "face_path",
    type=click.Path(exists=True, dir_okay=False),
    help="The scenes where the face in this photo appears (one face per photo).",
)
@click.option("--person", help="Only the scenes of this person (a name or an id from `tving people`).")
@click.option(
    "--min-score", type=click.FloatRange(0, 1), help="Leave out results scoring less (default: the profile's)."
)
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1, 50), help="Results to return.")
@click.option("--video", "video_ids", multiple=True, help="Only these video ids (repeatable).")
@click.option("--start", type=float, help="Only scenes ending after this time (seconds).")
@click.option("--end", type=float, help="Only scenes starting before this time (seconds).")
@click.option("--per-video", type=click.IntRange(1, 50), help="At most N results per video.")
@click.option("--fusion", type=click.Choice(["max", "sum", "rrf"]), help="Score fusion method.")
@click.option(
    "--no-fold", is_flag=True, help="Show every copy of the same footage (default: the best, listing the others)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def search(
    query,
    image_path,
    similar_to,
    face_path,
    person,
    min_score,
    k,
    video_ids,
    start,
    end,
    per_video,
    fusion,
    no_fold,
    as_json,
) -> None:
    """Top-k frames for a natural-language QUERY (Korean or English), an --image, scenes --similar
    to one, or the scenes of a --face photo; --person keeps one person's scenes (alone: lists them)."""
    from query_app.search import QueryError, SceneSearch

    given = sum(x is not None for x in (query, image_path, similar_to, face_path))
    if given > 1 or (given == 0 and person is None):
        fail("give exactly one of: a QUERY, --image FILE, --similar SCENE_ID, --face PHOTO (or --person alone)")
    if face_path and person:
        fail("--face and --person are two ways to name a person: give one")
    options = {"k": k, "video_ids": video_ids, "start": start, "end": end, "per_video": per_video,
               "min_score": min_score, "person": person, "fold_duplicates": False if no_fold else None}  # fmt: skip
    try:
        engine = SceneSearch(**({"fusion": fusion} if fusion else {}))
        if not engine.has_index():  # said before any model loads
            paths = engine.paths
            fail(
                f"nothing is indexed in {paths.home} yet: index videos "
                f"first (tving index PATH, or drop them into {paths.videos_dir} while `tving ui` runs)"
            )
        if query is not None:
            response = engine.search(query, **options)
        elif similar_to is not None:
            from query_app.search.similar import SimilarSearch

            response = SimilarSearch(engine).by_scene(similar_to, **options)
        elif image_path or face_path:
            response = _search_by_photo(engine, image_path, face_path, options)
        else:
            from query_app.search.faces import FaceSearch

            response = FaceSearch(engine).scenes_of(engine.people.find(person), k=k, per_video=per_video)
    except (QueryError, TvingError) as exc:
        fail(str(exc))
    if as_json:
        echo_json(response.to_dict())
    else:
        _print_response(response)


def _search_by_photo(engine, image_path: str | None, face_path: str | None, options: dict):
    from PIL import Image, UnidentifiedImageError

    from query_app.search.faces import FaceSearch
    from query_app.search.similar import SimilarSearch

    path = image_path or face_path
    try:
        with Image.open(path) as image:
            image.load()
            if face_path:
                return FaceSearch(engine).by_face(image, k=options["k"], per_video=options["per_video"])
            return SimilarSearch(engine).by_image(image, **options)
    except (UnidentifiedImageError, OSError) as exc:
        fail(f"{path}: not a readable image ({exc})")


def _print_response(response) -> None:
    header = f'Top {len(response.results)} for "{response.query}"'
    if response.translated:
        header += f' (translated: "{response.query_used}")'
    click.secho(header, bold=True)
    if not response.results:
        click.echo("  no good match (nothing scored above the minimum score; --min-score 0 shows every match)")
    for r in response.results:
        click.echo(
            f"{r.rank:>2}. {r.video_name}  scene {r.scene_index} [{fmt_time(r.start)}-{fmt_time(r.end)}]"
            f"  frame @ {fmt_time(r.timestamp)}  score {r.score:.3f}" + ("  (weak match)" if r.weak else "")
        )
        if r.moment:
            click.echo(f"    moment:  {fmt_time(r.moment.start)}-{fmt_time(r.moment.end)} ({r.moment.source})")
        if r.caption_kind == "labels":  # the lite captioner's guesses, not a statement about the scene
            click.echo(f"    labels (automatic): {r.caption}")
        else:
            click.echo(f"    caption: {r.caption}")
        if r.transcript_snippet:
            click.echo(f'    speech:  "{r.transcript_snippet}"')
        if r.onscreen_text:
            click.echo(f"    on screen: {' / '.join(r.onscreen_text.splitlines())}")
        if r.people:
            click.echo("    people:  " + ", ".join(p.name or p.id for p in r.people))
        for copy in r.duplicates:
            click.echo(f"    also in: {Path(copy.video_path).name} [{fmt_time(copy.start)}-{fmt_time(copy.end)}]")
        click.echo("    signals: " + "  ".join(f"{k} {v:.3f}" for k, v in r.scores.items()))
        click.echo(f"    frame:   {r.thumbnail_path}")
        click.echo(f"    video:   {r.video_path}  (id {r.video_id})")


# ------------------------------------------------------------------------ describe
@click.command()
@click.argument("video")
@click.option("--start", type=float, required=True, help="Span start, seconds.")
@click.option("--end", type=float, required=True, help="Span end, seconds.")
@click.option("--lang", "language", type=click.Choice(["en", "ko"]), default="en", show_default=True)
@click.option("--frames", type=click.IntRange(1, 32), help="Frames to look at (default: the profile's).")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def describe(video: str, start: float, end: float, language: str, frames: int | None, as_json: bool) -> None:
    """Describe [START, END) of VIDEO (an indexed video id or any video file) in words."""
    from query_app.describe import VideoDescriber

    try:
        result = VideoDescriber().describe(video, start, end, language=language, frames=frames)
    except TvingError as exc:
        fail(str(exc))
    if as_json:
        echo_json(result.to_dict())
        return
    click.secho(f"{result.video_name} [{fmt_time(result.start)}-{fmt_time(result.end)}]", bold=True)
    click.echo(result.text)
    click.echo(f"(frames at {', '.join(f'{t:.2f}' for t in result.frame_times)} s; {result.models['captioner']})")


# ---------------------------------------------------------------------------- eval
@click.command("eval")
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
    from query_app.evaluation.evaluate import evaluate as run_evaluation
    from query_app.evaluation.evaluate import load_labels, summary
    from query_app.search import SceneSearch
    from tving_assets.evaluation import evaluate_built_set

    if not labels and not build_dir:
        fail("give a labels file, or --build DIR for the project's own labelled set")
    try:
        if build_dir:
            result = evaluate_built_set(Path(build_dir).resolve(), tune=not no_tune)
        else:
            result = run_evaluation(SceneSearch(), load_labels(labels), tune=not no_tune)
        if report_dir:
            from query_app.evaluation.report import write_report

            page = write_report(result, Path(report_dir))
            click.echo(f"report: {page}", err=True)
    except TvingError as exc:
        fail(str(exc))
    echo_json(result.as_dict()) if as_json else click.echo(summary(result))


# ---------------------------------------------------------------------------- demo
@click.command()
@click.option("--query", "queries", multiple=True, help="Queries to run after indexing (repeatable).")
def demo(queries: tuple[str, ...]) -> None:
    """Index the real sample videos from PyPI, then run an English and a Korean search."""
    from query_app.samples import sample_videos
    from tving_resources.config import resolve_paths

    try:
        videos = sample_videos()
    except TvingError as exc:
        fail(str(exc))
    click.secho(f"Indexing {len(videos)} sample videos into {resolve_paths().home}", bold=True)
    results = run_index([str(v) for v in videos])
    print_index_report(results)
    ctx = click.get_current_context()
    # the same request in English and in Korean; "a band on stage" (demo.mp4) is not among them:
    # the lite captioner's ImageNet labels never describe it, and it would answer "no good match"
    for query in queries or ("people riding bicycles", "자전거를 타는 사람들"):
        click.echo()
        ctx.invoke(search, query=query, k=5)
