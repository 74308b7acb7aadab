"""Files that clients send: video uploads and image queries, checked before anything trusts them.

A name is sanitised first; a body is size-checked while it is written; a video's frame size and
length, and an image's size, are read from their headers before anything is decoded; decoding
runs in worker threads, at most :data:`DECODE_CONCURRENCY` at once (429 beyond, never a queue
that grows). An upload is written under a hidden unique name and linked to a free one.
"""

from __future__ import annotations

import io
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import HTTPException, UploadFile
from starlette.concurrency import run_in_threadpool

from query_app.web.i18n import N_
from tving_resources.errors import VideoError, VideoOverLimitError
from tving_resources.ids import VIDEO_EXTENSIONS

MAX_IMAGE_BYTES = 20 * 2**20
MAX_IMAGE_PIXELS = 50_000_000
DECODE_CONCURRENCY = 2  # uploaded images and videos decoded at once (2 cores; more wait: 429)


@contextmanager
def decode_slot(slots: threading.BoundedSemaphore) -> Iterator[None]:
    """A place among the decodes allowed at once, or 429 at once."""
    if not slots.acquire(blocking=False):
        raise HTTPException(
            status_code=429,
            detail=N_("too many uploads being checked at once; retry shortly"),
            headers={"Retry-After": "2"},
        )
    try:
        yield
    finally:
        slots.release()


async def read_image(file: UploadFile, slots: threading.BoundedSemaphore):
    """An uploaded image: its size read from its header first (a small file can declare a huge
    picture), then decoded off the event loop, a bounded number at once."""
    from PIL import Image, UnidentifiedImageError

    data = await file.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise HTTPException(status_code=413, detail=f"images are limited to {MAX_IMAGE_BYTES // 2**20} MB")
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as exc:  # Pillow's own cap, far above ours
        raise HTTPException(
            status_code=413, detail=f"image larger than {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels"
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise HTTPException(status_code=415, detail=N_("not a readable image (JPEG, PNG or WebP)")) from exc
    if image.width * image.height > MAX_IMAGE_PIXELS:
        raise HTTPException(
            status_code=413,
            detail=f"image of {image.width}x{image.height} pixels: larger than {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels",
        )

    def decode():
        try:
            image.load()
            return image.convert("RGB")
        except (Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
            raise HTTPException(status_code=415, detail=N_("not a readable image (JPEG, PNG or WebP)")) from exc

    with decode_slot(slots):
        return await run_in_threadpool(decode)


def ensure_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def link_to_free_name(source: Path, folder: Path) -> Path:
    """Give ``source`` a name in ``folder`` that no other file has, atomically (a hard link fails
    instead of overwriting), and return it."""
    stem, suffix = source.stem, source.suffix
    candidate = folder / source.name
    for _ in range(100):
        try:
            os.link(source, candidate)
            return candidate
        except FileExistsError:
            candidate = folder / f"{stem}-{uuid.uuid4().hex[:8]}{suffix}"
    raise HTTPException(status_code=409, detail=N_("could not find a free file name; rename the file"))


def safe_file_name(name: str) -> str:
    """A file name reduced to letters, digits, spaces and ``._-`` (no path, no leading dots)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c if c.isalnum() or c in " ._-" else "_" for c in base).strip(" .")[:200]


async def save_upload(file: UploadFile, folder: Path, max_bytes: int, slots: threading.BoundedSemaphore) -> Path:
    """Save an upload under its sanitised name (checked before anything else), then check its
    size while it is written and that it is a video within the configured limits (frame size
    and length, read from its headers before a frame is decoded), a bounded number at once."""
    from tving_resources.media.video import probe_video

    safe = safe_file_name(file.filename or "")
    suffix = Path(safe).suffix.lower()
    if not Path(safe).stem.strip(" ._-") or suffix not in VIDEO_EXTENSIONS:
        raise HTTPException(
            status_code=415,
            detail=f"{safe or 'the file'}: not a video file name ({', '.join(sorted(VIDEO_EXTENSIONS))})",
        )
    target = folder / safe
    written = 0
    with target.open("wb") as out:
        while chunk := await file.read(1 << 20):
            written += len(chunk)
            if written > max_bytes:
                raise HTTPException(status_code=413, detail=f"{safe}: larger than {max_bytes // 2**20} MB")
            out.write(chunk)
    with decode_slot(slots):
        try:
            await run_in_threadpool(probe_video, target, "upload-0000000000", False)
        except VideoOverLimitError as exc:
            raise HTTPException(status_code=413, detail=str(exc)) from exc
        except VideoError as exc:
            raise HTTPException(status_code=415, detail=str(exc)) from exc
    return target
