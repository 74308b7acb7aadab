"""docs/configuration.md, generated from the settings models (``python -m tving_dev.configuration_doc``):
each setting's name, default and description come from where it is declared, once."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import BaseModel

from tving_assets.resources import ModelRuntimeResource
from tving_resources.config import ENVIRONMENT
from tving_resources.models.runtime import RuntimeConfig
from tving_resources.settings import IndexSettings

TARGET = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def _table(model: type[BaseModel], only: set[str] | None = None, header: bool = True) -> list[str]:
    rows = ["| setting | default | what it does |", "|---|---|---|"] if header else []
    for name, field in model.model_fields.items():
        if only is not None and name not in only:
            continue
        default = field.get_default(call_default_factory=True)
        shown = "none" if default is None else ("{}" if default == {} else f"`{default}`")
        rows.append(f"| `{name}` | {shown} | {field.description or ''} |")
    return rows


def render() -> str:
    lines = [
        "# Configuration",
        "",
        "Generated from the settings models by `python -m tving_dev.configuration_doc` (a test checks",
        "that it is current): each setting is declared once, in `tving_resources/settings.py`",
        "(`IndexSettings`) or `tving_resources/models/runtime.py` (`RuntimeConfig`). The Dagster",
        "resources `settings` and `models` are these models: set them in the launchpad, in a job's",
        "run config, or in `Definitions` (see `tving_assets/definitions.py`); folders also come from",
        "the environment.",
        "",
        "## Environment variables",
        "",
        "| variable | what it sets |",
        "|---|---|",
        *(f"| `{name}` | {meaning} |" for name, meaning in ENVIRONMENT.items()),
        "",
        "## Indexing: the `settings` resource",
        "",
        *_table(IndexSettings),
        "",
        "## Models: the `models` resource",
        "",
        *_table(RuntimeConfig),
        *_table(ModelRuntimeResource, set(ModelRuntimeResource.model_fields) - set(RuntimeConfig.model_fields), False),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}", file=sys.stderr)
