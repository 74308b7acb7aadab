"""Failpoints: named places where the crash tests kill this process on purpose.

``TVING_FAILPOINT=<name>`` makes the process SIGKILL itself when it reaches ``<name>``, exactly
as an OOM killer or a pulled plug would: no ``finally`` block, no cleanup. Unset (always, outside
the tests), a failpoint costs one dictionary look-up. Names: ``stage:<stage>`` after a stage's
result is published, ``commit:before``, ``commit:during`` (while LanceDB writes the new rows:
killed as soon as the first new data file appears), ``commit:after`` (rows committed, old
version not yet removed) and ``commit:cleanup`` (halfway through removing the old version).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from tving_resources.config import armed_failpoint


def armed(name: str) -> bool:
    return armed_failpoint() == name


def failpoint(name: str) -> None:
    if armed(name):
        os.kill(os.getpid(), signal.SIGKILL)


def kill_when_new_file(folder: Path, name: str) -> None:
    """If ``name`` is armed: SIGKILL this process as soon as a file appears under ``folder`` that
    was not there now (LanceDB writes data files first and the manifest that commits them last)."""
    if not armed(name):
        return
    before = {p for p in folder.rglob("*")} if folder.exists() else set()

    def watch() -> None:
        while True:
            if folder.exists() and any(p not in before for p in folder.rglob("*")):
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.0005)

    threading.Thread(target=watch, name="tving-failpoint", daemon=True).start()
