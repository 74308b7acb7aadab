"""The ``tving`` command line: the group, and the commands of each module under it.

``search``, ``describe``, ``serve``, ``status`` and ``eval`` read the index directly; ``index``,
``demo`` and ``bench index`` hand the work to the Dagster assets in this process (imported only by
those commands, so a search never pays for importing Dagster).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from . import bench, editing, indexing, library, operations, people, searching, serving


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), help="Data home (TVING_HOME, default ~/.tving).")
@click.option(
    "--profile",
    type=click.Choice(["auto", "lite", "full"]),
    help="Model profile (TVING_PROFILE; auto = full with a CUDA GPU, lite without).",
)
def main(home: str | None, profile: str | None) -> None:
    """Scene search for video libraries: index videos, then search them in Korean or English."""
    _show_one_time_steps()
    # The environment carries these to every layer (Dagster resources, the query app) alike.
    if home:
        os.environ["TVING_HOME"] = str(Path(home).resolve())
    if profile:
        os.environ["TVING_PROFILE"] = profile


def _show_one_time_steps() -> None:
    """What the models folder builds once (tens of seconds) is said on stderr, not done silently."""
    logger = logging.getLogger("tving.models")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("tving: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _top_level_commands(module) -> list[click.Command]:
    """The commands a module defines, less those that are subcommands of its groups."""
    found = [v for v in vars(module).values() if isinstance(v, click.Command)]
    nested = {id(c) for g in found if isinstance(g, click.Group) for c in g.commands.values()}
    return [c for c in found if id(c) not in nested]


for _module in (indexing, library, people, searching, editing, serving, operations, bench):
    for _command in _top_level_commands(_module):
        main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
