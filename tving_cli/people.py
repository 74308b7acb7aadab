"""People seen in the library: `tving people`, `tving people name`, `tving people merge`."""

from __future__ import annotations

import click

from tving_resources.errors import TvingError

from .output import echo_json, fail, fmt_time


def _people_index():
    from query_app.search.people import PeopleIndex
    from tving_resources.config import resolve_paths
    from tving_resources.models.profiles import resolve_profile_name

    paths = resolve_paths()
    return PeopleIndex(paths.lancedb_uri, resolve_profile_name(), paths)


def _registry():
    registry = _people_index().registry()
    if registry is None:
        fail("nothing is indexed yet, so no people are known: index videos first (tving index PATH)")
    return registry


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print everyone as JSON.")
@click.option("--scenes", "show_scenes", default=3, show_default=True, help="Scenes listed per person (text).")
@click.pass_context
def people(ctx: click.Context, as_json: bool, show_scenes: int) -> None:
    """Everyone whose face was seen, most scenes first (the `people` asset groups the faces)."""
    if ctx.invoked_subcommand is not None:
        return
    index = _people_index()
    everyone = index.people()
    if as_json:
        for_json = []
        for person in everyone:
            entry = person.to_dict()
            entry["thumbnail_path"] = str(index.paths.artifacts_dir / person.thumbnail)
            for_json.append(entry)
        echo_json({"people": for_json})
        return
    if not everyone:
        click.echo(
            "no people yet: faces are grouped by the `people` asset after indexing "
            "(tving index groups them; `faces: false` turns faces off)"
        )
        return
    for person in everyone:
        name = person.name or "(not named)"
        click.secho(f"{person.id}  {name}", bold=True, nl=False)
        click.echo(f"  {person.scene_count} scene(s) in {person.video_count} video(s), {person.faces} face(s)")
        click.echo(f"    face:  {index.paths.artifacts_dir / person.thumbnail}")
        for scene in person.scenes[:show_scenes]:
            click.echo(f"    {scene['video_path']}  [{fmt_time(scene['start'])}-{fmt_time(scene['end'])}]")
        if len(person.scenes) > show_scenes:
            click.echo(f"    … {len(person.scenes) - show_scenes} more (tving search --person {person.id} -k 50)")


@people.command("name")
@click.argument("person")
@click.argument("name")
def name_person(person: str, name: str) -> None:
    """Give PERSON (an id, or the current name) the name NAME; kept when faces are grouped again."""
    try:
        named = _registry().name(person, name)
    except TvingError as exc:
        fail(str(exc))
    click.echo(f"{named.person_id} is now {named.name!r}")


@people.command("merge")
@click.argument("keep")
@click.argument("other")
def merge_people(keep: str, other: str) -> None:
    """Make OTHER's faces KEEP's (two groups that are one person); kept when faces are grouped again."""
    try:
        kept = _registry().merge(keep, other)
    except TvingError as exc:
        fail(str(exc))
    click.echo(f"{other} merged into {kept.person_id} ({kept.label})")


@people.command("delete")
@click.option("--yes", is_flag=True, help="Do not ask first.")
def delete_faces(yes: bool) -> None:
    """Delete every face found so far: the faces tables, the face thumbnails, every person and name.

    Indexing again finds the faces again unless faces are off (TVING_FACES=0, or `faces: false`
    on the models resource in Dagster)."""
    from tving_resources.catalog.video_catalog import VideoCatalog
    from tving_resources.config import resolve_paths
    from tving_resources.index.faces import delete_every_face

    paths = resolve_paths()
    if not paths.catalog_exists():
        click.echo("nothing is indexed: no faces to delete")
        return
    if not yes:
        click.confirm(f"Delete every face, face thumbnail, person and name in {paths.home}?", abort=True)
    try:
        deleted = delete_every_face(paths, VideoCatalog(paths.catalog_url))
    except TvingError as exc:
        fail(str(exc))
    click.echo(
        f"deleted {deleted.tables} faces table(s), the faces of {deleted.videos} video(s), "
        f"and {deleted.people} person/people with their names"
    )
