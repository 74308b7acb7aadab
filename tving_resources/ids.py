"""Stable, filter-safe ids for video files.

A video id is ``<ascii slug of the file stem>-<10 hex digits of sha1(absolute path)>``:
readable in the Dagster UI, stable for a file that stays where it is (so a changed file keeps its
partition and is re-indexed in place), different for two files with the same stem in different
folders or with different extensions, and made only of ``[a-z0-9-]`` whatever the file name
(spaces, Hangul...), so it is safe in partition keys, URLs, folder names and LanceDB filters.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp"}
)
VIDEO_ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,48})-[0-9a-f]{10}$")


def file_path(path: str | Path) -> Path:
    """A file's absolute path as the catalog names it: its folders resolved, its own name kept.
    A symbolic link is named, identified and reported as itself, not as the file it points to."""
    given = Path(path).expanduser()
    return given.absolute().parent.resolve() / given.name


def video_id_for(path: str | Path) -> str:
    resolved = file_path(path)
    digest = hashlib.sha1(str(resolved).encode("utf-8")).hexdigest()[:10]
    ascii_stem = unicodedata.normalize("NFKD", resolved.stem).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_stem.lower()).strip("-")[:40].strip("-") or "video"
    return f"{slug}-{digest}"


def is_video_id(value: str) -> bool:
    return bool(VIDEO_ID_PATTERN.fullmatch(value))


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def display_name(name: str) -> str:
    """A file name fit for a one-line message (newlines and tabs shown escaped)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
