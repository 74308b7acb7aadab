from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from tving_resources.errors import TvingError


@contextmanager
def user_errors_as_failures() -> Iterator[None]:
    """Show a TvingError as a plain failure message (no stack trace) in the UI and the CLI.

    Retrying would not help: the file or the setting must change first.
    """
    try:
        yield
    except TvingError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
