"""The indexed library: `tving status`, `tving tables`, `tving remove`, `tving export`, `tving duplicates`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tving_resources.errors import TvingError

from .output import echo_json, fail, failure_cause, fmt_bytes, fmt_time


@click.command()
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
        fail("name video ids or paths, or pass --missing")
    try:
        reports = remove_videos(videos, missing=missing, force=force)
    except TvingError as exc:
        fail(str(exc))
    if as_json:
        echo_json([r.__dict__ for r in reports])
        return
    for r in reports:
        if r.removed:
            click.echo(f"  removed  {r.video_id}: {r.reason}")
        else:
            click.secho(f"  kept     {r.video_id}: {r.reason}; use --force to remove it anyway", fg="yellow")
    if not reports:
        click.echo("nothing to remove")
    if not all(r.removed for r in reports):
        sys.exit(1)  # a video named was kept


# -------------------------------------------------------------------------- status
@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(as_json: bool) -> None:
    """Indexed videos, scenes, table size and models, per profile table."""
    from tving_resources.catalog.video_catalog import VideoCatalog
    from tving_resources.config import resolve_paths
    from tving_resources.store.maintenance import inspect_tables

    paths = resolve_paths()
    try:
        tables = inspect_tables(paths.lancedb_uri)
    except TvingError as exc:
        fail(str(exc))
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
        echo_json(payload)
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
        click.secho(f"table {t.name}: {t.videos} videos, {t.rows} scenes, {fmt_bytes(t.size_bytes)}", bold=True)
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
            click.echo(f"  {e.path}\n    at {e.failed_stage}: {failure_cause(e.error, e.path, e.failed_stage)}")


# -------------------------------------------------------------------------- tables
@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def tables(ctx: click.Context, as_json: bool) -> None:
    """Scene tables: live (search answers from it), building (a new text or frame encoder's
    vector space, filled beside the live one), retired (replaced; kept until dropped)."""
    if ctx.invoked_subcommand is not None:
        return
    from tving_resources.config import resolve_paths
    from tving_resources.models.profiles import PROFILES
    from tving_resources.store.maintenance import inspect_tables
    from tving_resources.store.tables import TableRegistry

    uri = resolve_paths().lancedb_uri
    try:
        registry = TableRegistry(uri)
        roles = registry.roles()
        found = inspect_tables(uri)
        rebuilds = {p: registry.progress(p) for p in PROFILES}
    except TvingError as exc:
        fail(str(exc))
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
        echo_json(payload)
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
        fail(str(exc))
    click.echo(f"dropped {name}")


# ------------------------------------------------------------------------ export
@click.command("export")
@click.argument("video")
@click.option("--format", "fmt", type=click.Choice(["srt", "vtt", "csv", "json", "edl"]), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of standard output.")
def export_command(video: str, fmt: str, output: str | None) -> None:
    """Export an indexed VIDEO (id or path): its transcript as subtitles (srt, vtt), or its scene
    list with captions for editing tools (csv, json, edl)."""
    from tving_resources.config import resolve_paths
    from tving_resources.index.export import export, load_indexed_video
    from tving_resources.models.profiles import get_profile

    try:
        text = export(load_indexed_video(resolve_paths(), get_profile().name, video), fmt)
    except TvingError as exc:
        fail(str(exc))
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


# ---------------------------------------------------------------------- duplicates
@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the groups as JSON.")
def duplicates(as_json: bool) -> None:
    """Scenes that show the same footage in several places (re-encodes, reused shots), grouped;
    search shows the best of a group and lists the others in it (TVING_FOLD_DUPLICATES=0: off)."""
    from tving_resources.catalog.duplicates import DuplicateRegistry
    from tving_resources.catalog.video_catalog import VideoCatalog
    from tving_resources.config import resolve_paths
    from tving_resources.models.profiles import resolve_profile_name

    paths = resolve_paths()
    groups = {}
    if paths.catalog_exists():
        groups = DuplicateRegistry(VideoCatalog(paths.catalog_url)).members(resolve_profile_name())
    if as_json:
        echo_json({"groups": [{"id": g, "scenes": [s.to_dict() for s in scenes]} for g, scenes in groups.items()]})
        return
    if not groups:
        click.echo("no duplicate footage found (the duplicate_footage asset groups it after indexing)")
    for number, scenes in enumerate(groups.values(), start=1):
        click.secho(f"{number}. the same footage in {len(scenes)} places", bold=True)
        for s in scenes:
            click.echo(f"    {Path(s.video_path).name} [{fmt_time(s.start)}-{fmt_time(s.end)}]  {s.scene_id}")
