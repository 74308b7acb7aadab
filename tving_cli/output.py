"""What the commands print: times, sizes, JSON, and one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


def fmt_time(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60)
    return f"{int(minutes):02d}:{secs:04.1f}"


def fmt_bytes(size: int | None) -> str:
    if size is None:
        return "n/a"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def echo_json(payload: object) -> None:
    click.echo(json.dumps(payload, ensure_ascii=False, indent=2, default=str))


def fail(message: str, code: int = 2) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def failure_cause(error: str | None, path: str, stage: str | None = None) -> str:
    """A failure's message on one line, without the file's path or name and the stage, which the
    line shows already ("bikes.mp4: scenes failed: ..." is shown "...")."""
    from tving_resources.ids import display_name

    name = Path(path).name
    prefixes = [f"{p}: " for p in dict.fromkeys((path, name, display_name(name)))]
    if stage:
        prefixes.append(f"{stage} failed: ")
    cause = " ".join((error or "unknown error").split())
    shorter = None
    while shorter != cause:
        shorter = cause
        for prefix in prefixes:
            cause = cause.removeprefix(prefix)
    return cause or "unknown error"
