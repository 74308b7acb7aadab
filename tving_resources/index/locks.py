"""One writer per video: a lock that a killed process cannot leave held.

``flock`` locks belong to an open file and the kernel drops them when the process dies (SIGKILL
included), so a crashed run never blocks its video. Inside one process the lock is re-entrant
for the thread that holds it (a run holds its video's lock, and the commit inside that run takes
it again) and exclusive between threads. A run whose stage the model worker runs sends it the
descriptor it holds the lock through (:func:`held_descriptor`); the worker's stage holds the same
lock through it (:func:`adopted_lock`), so the commit inside that stage takes it again too.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tving_resources.errors import VideoBusyError

_POLL_SECONDS = 0.05


@dataclass
class _Held:
    thread_lock: threading.RLock
    fd: int | None = None
    depth: int = 0
    adopted: bool = False  # the flock is another process's, shared through this descriptor


_registry: dict[str, _Held] = {}
_registry_lock = threading.Lock()


def _held(path: Path) -> _Held:
    with _registry_lock:
        return _registry.setdefault(str(path), _Held(threading.RLock()))


def lock_path(folder: Path, video_id: str) -> Path:
    return folder / f"{video_id}.lock"


@contextmanager
def video_lock(folder: Path, video_id: str, timeout: float | None = 3600.0) -> Iterator[None]:
    """Hold ``video_id``'s lock for the block; wait at most ``timeout`` seconds (None: forever).

    Raises:
        VideoBusyError: another process or thread held the lock for the whole wait.
    """
    if not acquire(folder, video_id, timeout):
        raise VideoBusyError(
            f"{video_id}: another run has held this video's lock for over {timeout:.0f} s; wait for it to "
            "finish (Dagster UI: runs tagged with this video), or raise video_lock_timeout_seconds"
        )
    try:
        yield
    finally:
        release(folder, video_id)


@contextmanager
def try_video_lock(folder: Path, video_id: str) -> Iterator[bool]:
    """Take the lock only if it is free now; yields whether it was taken."""
    taken = acquire(folder, video_id, timeout=0)
    try:
        yield taken
    finally:
        if taken:
            release(folder, video_id)


def acquire(folder: Path, video_id: str, timeout: float | None) -> bool:
    path = lock_path(folder, video_id)
    held = _held(path)
    deadline = None if timeout is None else time.monotonic() + timeout
    if not held.thread_lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
        return False
    if held.depth:
        held.depth += 1
        return True
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if deadline is not None and time.monotonic() >= deadline:
                os.close(fd)
                held.thread_lock.release()
                return False
            time.sleep(_POLL_SECONDS)
    held.fd, held.depth = fd, 1
    return True


def release(folder: Path, video_id: str) -> None:
    held = _held(lock_path(folder, video_id))
    held.depth -= 1
    if held.depth == 0 and held.fd is not None:
        if not held.adopted:  # an adopted descriptor's flock is its holder's to release
            fcntl.flock(held.fd, fcntl.LOCK_UN)
        os.close(held.fd)
        held.fd, held.adopted = None, False
    held.thread_lock.release()


def held_descriptor(folder: Path, video_id: str) -> int | None:
    """The descriptor through which this process holds ``video_id``'s lock (None: not held)."""
    held = _held(lock_path(folder, video_id))
    return held.fd if held.depth else None


@contextmanager
def adopted_lock(folder: Path, video_id: str, fd: int) -> Iterator[None]:
    """Hold ``video_id``'s lock for the block through ``fd``: a descriptor of the lock file that
    another process holds the lock through, sent over a Unix socket (the model worker running a
    stage for a run). Both descriptors share one open file, hence one ``flock``: the video stays
    locked until both are closed, even if the sender dies meanwhile. Inside the block the lock is
    this thread's, re-entrant as usual; at its end ``fd`` is closed, never unlocked.
    """
    held = _held(lock_path(folder, video_id))
    held.thread_lock.acquire()
    if held.depth:  # cannot happen while the sender holds the flock: keep the lock already here
        os.close(fd)
        held.depth += 1
    else:
        held.fd, held.depth, held.adopted = fd, 1, True
    try:
        yield
    finally:
        release(folder, video_id)
