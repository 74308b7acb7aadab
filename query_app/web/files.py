"""Serving an indexed video file only while it is still the file that was indexed.

Anyone who can write to the watched folder can replace an indexed file, by a symbolic link to a
file only the server's account may read (``/etc/shadow``), or by other content. So the file is
opened first and everything is checked on the open descriptor, never on the path again: it must
be a regular file with the size, modification time and content fingerprint (BLAKE2b of every
byte) the catalog recorded when the video was indexed. The bytes then come from that same
descriptor (``/proc/self/fd/N``), so a swap after the check changes nothing.

Hashing a whole file on every request would be slow, so a verified file is remembered by its
device, inode, size, modification and change times: any write, rename-over or ``touch`` changes
one of them (the change time cannot be set by a user), and the next request hashes again.
"""

from __future__ import annotations

import os
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from starlette.responses import FileResponse

from tving_resources.media.video import fingerprint_stream


@dataclass(frozen=True)
class IndexedFile:
    """What the catalog recorded of a video's file when it was indexed."""

    path: str
    size: int
    mtime_ns: int
    fingerprint: str


class FileRefusedError(Exception):
    """The file at the indexed path is not (any more) the file that was indexed; the message says
    why, for the server log."""


class VerifiedFiles:
    """Opens indexed files for serving, checking them as the module docstring says (thread-safe)."""

    def __init__(self, remember: int = 4096):
        self._verified: OrderedDict[tuple[int, ...], str] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()

    def open(self, expected: IndexedFile) -> int:
        """A descriptor open on the indexed file, for the caller to close.

        Raises:
            FileRefusedError: missing, not a regular file, or not the indexed content.
        """
        path = Path(expected.path)
        try:
            # O_NONBLOCK: opening a FIFO put in the file's place must not wait for a writer
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise FileRefusedError(f"{path}: no longer on disk") from exc
        except OSError as exc:
            raise FileRefusedError(f"{path}: cannot be opened ({exc.strerror})") from exc
        try:
            self._check(fd, expected)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _check(self, fd: int, expected: IndexedFile) -> None:
        info = os.fstat(fd)
        name = expected.path
        link = " (through a symbolic link)" if os.path.islink(name) else ""
        if not stat.S_ISREG(info.st_mode):
            raise FileRefusedError(f"{name}: not a regular file{link}")
        if (info.st_size, info.st_mtime_ns) != (expected.size, expected.mtime_ns):
            raise FileRefusedError(
                f"{name}: size or modification time differ from the indexed file{link} "
                f"({info.st_size} bytes vs {expected.size}); it is served again once it is indexed again"
            )
        identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        with self._lock:
            known = self._verified.get(identity)
        if known is None:
            with os.fdopen(os.dup(fd), "rb") as handle:
                known = fingerprint_stream(handle)
            with self._lock:
                self._verified[identity] = known
                while len(self._verified) > self._remember:
                    self._verified.popitem(last=False)
        if known != expected.fingerprint:
            raise FileRefusedError(f"{name}: the content differs from the indexed file{link}")


def served_path(fd: int, fallback: str) -> str:
    """A path that reads the open descriptor's file itself (Linux), else the indexed path."""
    proc = f"/proc/self/fd/{fd}"
    return proc if os.path.exists(proc) else fallback


class SentFileResponse(FileResponse):
    """A FileResponse whose bytes the app sends itself. A server offering ASGI's
    ``http.response.pathsend`` (Granian does) is otherwise handed the path and opens it after the
    response returned: after a clip's temporary folder was deleted by the background task (a
    404 "Not found" instead of the reel: seen as a flaky download) or after a checked descriptor
    was closed, when its number in ``/proc/self/fd`` may name whatever the server opened next."""

    async def __call__(self, scope, receive, send) -> None:
        extensions = scope.get("extensions") or {}
        if "http.response.pathsend" in extensions:
            scope = {**scope, "extensions": {k: v for k, v in extensions.items() if k != "http.response.pathsend"}}
        await super().__call__(scope, receive, send)


class DescriptorFileResponse(SentFileResponse):
    """A FileResponse that closes the checked descriptor when it is done, however it ends (a
    client that goes away mid-transfer included)."""

    def __init__(self, fd: int, path: str, **kwargs):
        super().__init__(path, **kwargs)
        self.fd = fd

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            os.close(self.fd)
