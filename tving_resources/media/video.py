"""Probe a video file, decode frames at given times, write thumbnails.

Probing uses PyAV (FFmpeg) because it tells a damaged file from a good one with a precise error;
frame decoding uses decord, which decodes a sorted batch of frame indices in one pass and scales
frames while decoding (no full-size frames in memory). Where decord cannot (tiny or 4:4:4 frames,
damage in the middle of a file), frames are decoded with PyAV instead, skipping damaged packets
as a media player does; only a file with no decodable frame at all is rejected.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from tving_resources.errors import (
    NotRegularFileError,
    NoVideoStreamError,
    UnreadableVideoError,
    VideoChangedError,
    VideoMissingError,
)
from tving_resources.ids import file_path
from tving_resources.media.settings import MediaLimits, media_limits

# How far before the end the probe decodes, to catch files cut short after a valid header.
_TAIL_CHECK_SECONDS = 2.0
_DECODE_CHUNK = 48  # frames per decord batch: bounds memory on long videos


@dataclass(frozen=True)
class VideoInfo:
    video_id: str
    path: str
    duration: float
    fps: float
    frame_count: int
    width: int
    height: int
    video_codec: str
    has_audio: bool
    audio_codec: str | None
    size_bytes: int
    mtime_ns: int
    fingerprint: str

    @property
    def name(self) -> str:
        return Path(self.path).name


def fingerprint_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Content hash (BLAKE2b-128) of the whole file: tells a re-encoded file from a touched one."""
    with path.open("rb") as handle:
        return fingerprint_stream(handle, chunk_size)


def fingerprint_stream(handle: BinaryIO, chunk_size: int = 1 << 20) -> str:
    """:func:`fingerprint_file` of an open file, read from where it stands to its end."""
    digest = hashlib.blake2b(digest_size=16)
    while chunk := handle.read(chunk_size):
        digest.update(chunk)
    return digest.hexdigest()


def probe_video(
    path: str | Path, video_id: str, fingerprint: bool | str = True, limits: MediaLimits | None = None
) -> VideoInfo:
    """Read a video's properties and check that it decodes from start to end.

    ``fingerprint=True`` hashes the whole file (the index records it), a string is a hash the
    caller already made; callers that only need to know the file is a good video (video-to-text,
    uploads) pass False: it costs a read of every byte. ``limits``: default, the configured ones
    (:func:`tving_resources.config.media_limits`), checked before any frame is decoded.

    Raises:
        VideoMissingError: no file at ``path`` (removed, renamed, or its disk is not mounted).
        NotRegularFileError: a FIFO, device, socket or folder at ``path``.
        UnreadableVideoError: empty, not a media file, truncated or undecodable.
        NoVideoStreamError: a media file without a video stream (audio only, for example).
        VideoOverLimitError: longer, or with larger frames, than ``limits``.
    """
    import av  # PyAV ships with faster-whisper; imported here to keep module import cheap

    limits = limits or media_limits()
    file = Path(path)
    file_stat = regular_file_stat(file)
    if file_stat.st_size == 0:
        raise UnreadableVideoError(f"{file.name}: the file is empty (0 bytes)")
    try:
        with av.open(str(file)) as container:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ["no streams"]
                raise NoVideoStreamError(
                    f"{file.name}: no video stream (found: {', '.join(kinds)}); only files with pictures can be indexed"
                )
            stream = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
            duration = _duration_seconds(container, stream)
            frame_count = stream.frames or round(duration * fps)
            width, height = stream.codec_context.width, stream.codec_context.height
            limits.check(file.name, width, height, duration)
            _check_decodes_to_end(container, stream, duration, fps, file.name)
            codec = stream.codec_context.name
            audio_codec = audio.codec_context.name if audio is not None else None
    except av.error.FFmpegError as exc:
        raise UnreadableVideoError(
            f"{file.name}: not a readable video ({exc.strerror or exc}); check that the file is a "
            "complete video and plays in a media player"
        ) from exc
    if duration <= 0 or width <= 0 or height <= 0:
        raise UnreadableVideoError(f"{file.name}: the video stream has no duration or no size")
    return VideoInfo(
        video_id=video_id,
        path=str(file_path(file)),
        duration=duration,
        fps=fps,
        frame_count=int(frame_count),
        width=width,
        height=height,
        video_codec=codec,
        has_audio=audio is not None,
        audio_codec=audio_codec,
        size_bytes=file_stat.st_size,
        mtime_ns=file_stat.st_mtime_ns,
        fingerprint=fingerprint if isinstance(fingerprint, str) else fingerprint_file(file) if fingerprint else "",
    )


# How the containers of VIDEO_EXTENSIONS begin: (offset, bytes). A file that begins so is taken for
# a video even when FFmpeg cannot open it (cut short, damaged): indexing then says what is wrong.
_CONTAINER_SIGNATURES = (
    *((4, atom) for atom in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")),  # MP4, MOV, 3GP
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska, WebM
    (8, b"AVI "),  # AVI (RIFF....AVI )
    (0, b"\x00\x00\x01\xba"),  # MPEG program stream
    (0, b"\x00\x00\x01\xb3"),  # MPEG video elementary stream
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"),  # ASF (WMV)
    (0, b"FLV"),
)
_TS_PACKET = 188  # MPEG transport stream: a 0x47 sync byte every 188 bytes


def why_not_a_video(path: str | Path) -> str | None:
    """Why the regular file at ``path`` is not a video ("it holds text", "no video stream, only
    audio"...), or None when it may be one. It reads the headers and decodes nothing (a few
    milliseconds): for screening files before they are catalogued.

    An empty file (maybe still being copied) and one that begins like a video container but does
    not open (cut short, damaged) may be videos: indexing says what is wrong with them.
    """
    import av

    file = Path(path)
    try:
        with file.open("rb") as handle:
            head = handle.read(512)
    except OSError:
        return None  # unreadable: indexing says why
    if not head:
        return None
    try:
        with av.open(str(file)) as container:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams})
                return f"no video stream, only {' and '.join(kinds)}" if kinds else "no stream at all"
            if container.format.name.endswith("_pipe"):  # FFmpeg's single-picture formats
                return f"a {container.format.name.removesuffix('_pipe')} picture"
    except av.error.FFmpegError:
        if _begins_like_a_video(head):
            return None
        return "it holds text" if _is_text(head) else "no video format found in its content"
    return None


def _begins_like_a_video(head: bytes) -> bool:
    if any(head[offset : offset + len(magic)] == magic for offset, magic in _CONTAINER_SIGNATURES):
        return True
    return len(head) > _TS_PACKET and head[0] == head[_TS_PACKET] == 0x47


def _is_text(head: bytes) -> bool:
    text = head.decode("utf-8", errors="replace").rstrip("\ufffd")  # a character cut at the end
    return bool(text) and "\ufffd" not in text and all(c.isprintable() or c in "\t\r\n\f" for c in text)


def regular_file_stat(file: Path) -> os.stat_result:
    """``file``'s stat (through a symbolic link), if it is a regular file.

    Raises:
        VideoMissingError: nothing there (or a symbolic link to nothing).
        NotRegularFileError: a FIFO, device, socket or folder (opening one could block for ever).
    """
    try:
        info = file.stat()
    except FileNotFoundError as exc:
        dangling = " (a symbolic link to a missing file)" if file.is_symlink() else ""
        raise VideoMissingError(
            f"{file}: file not found{dangling} (removed, renamed, or its disk is not mounted)"
        ) from exc
    except OSError as exc:
        raise UnreadableVideoError(f"{file.name}: cannot be read ({exc.strerror})") from exc
    if not stat.S_ISREG(info.st_mode):
        link = ", through a symbolic link" if file.is_symlink() else ""
        raise NotRegularFileError(f"{file.name}: not a regular file (a {file_kind(info.st_mode)}{link})")
    return info


def ensure_unchanged(info: VideoInfo) -> None:
    """Raise VideoChangedError if the file is no longer the version ``info`` describes (its size
    or modification time differ, or it is gone): what was read from it may mix two versions."""
    path = Path(info.path)
    try:
        now = path.stat()
    except OSError as exc:
        raise VideoChangedError(
            f"{info.name}: the file was removed or renamed while it was being indexed; it is indexed again "
            "if it comes back"
        ) from exc
    if (now.st_size, now.st_mtime_ns) != (info.size_bytes, info.mtime_ns):
        raise VideoChangedError(
            f"{info.name}: the file changed while it was being indexed ({info.size_bytes} bytes when indexing "
            f"started, {now.st_size} now); it is indexed again once it stops changing"
        )


def file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):  # fmt: skip
        if test(mode):
            return kind
    return "special file"


def _duration_seconds(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return 0.0


def _check_decodes_to_end(container, stream, duration: float, fps: float, name: str) -> None:
    """Decode the first frame and the first frame of the last seconds, then read the packets to
    the end; a truncated file fails one or the other. The tail's later packets are read, not
    decoded (decoding them cost a 720p clip a quarter of its indexing time): FFmpeg marks a
    packet whose bytes stop short as corrupt, and a cut file lacks the packets after it."""
    first = next(container.decode(stream), None)
    if first is None:
        raise UnreadableVideoError(f"{name}: the video stream holds no decodable frame")
    tail_start = max(0.0, duration - _TAIL_CHECK_SECONDS)
    container.seek(int(tail_start / stream.time_base), stream=stream, backward=True)
    last_time = None
    decoded = cut = False  # a frame of the tail came out of the decoder; a packet stopped short
    for packet in container.demux(stream):
        cut = packet.is_corrupt
        if packet.pts is not None:
            time = float(packet.pts * stream.time_base)
            last_time = time if last_time is None or cut else max(last_time, time)
        if cut:
            break
        if not decoded:
            decoded = bool(packet.decode())
    if decoded and not cut and last_time is not None and last_time >= duration - max(_TAIL_CHECK_SECONDS, 3.0 / fps):
        return
    reached = "nothing" if last_time is None else f"{last_time:.1f} s"
    raise UnreadableVideoError(
        f"{name}: the file looks truncated (decoding stops at {reached} of a declared "
        f"{duration:.1f} s); copy or download it again"
    )


def scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Largest even size with the same aspect ratio whose long side is at most ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


class FrameReader:
    """Frames of one video at given times, decoded in sorted batches (one forward pass).

    ``size`` is the (width, height) of the source; with ``max_side`` the frames are scaled while
    decoding so that their long side is at most ``max_side``.

    Raises:
        UnreadableVideoError: no frame of the file can be decoded.
    """

    def __init__(self, path: str | Path, size: tuple[int, int], max_side: int | None = None, threads: int = 2):
        decord = import_decord()

        self.path = str(path)
        self.name = Path(self.path).name
        self.out_size: tuple[int, int] | None = None
        if max_side and max(size) > max_side:
            self.out_size = scaled_size(*size, max_side)
        self._reader = None
        self._timestamps = np.zeros((0, 2))
        try:
            kwargs = dict(zip(("width", "height"), self.out_size, strict=True)) if self.out_size else {}
            reader = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=threads, **kwargs)
            if len(reader):
                self._timestamps = reader.get_frame_timestamp(np.arange(len(reader)))
                self._reader = reader
        except decord.DECORDError:
            self._reader = None  # decoded with PyAV instead (frames_at)

    def frame_index_at(self, seconds: float) -> int:
        """Index of the frame shown at ``seconds`` (the last frame starting at or before it)."""
        starts = self._timestamps[:, 0]
        return int(np.clip(np.searchsorted(starts, seconds + 1e-6, side="right") - 1, 0, len(starts) - 1))

    def frames_at(self, times: Sequence[float]) -> list[np.ndarray]:
        """RGB uint8 frames at ``times`` (any order, repeats allowed), decoded in sorted order."""
        decord = import_decord()

        if self._reader is not None:
            try:
                return self._decord_frames(times)
            except decord.DECORDError:
                self._reader = None  # damaged data or a frame format decord cannot copy
        return _pyav_frames_at(self.path, times, self.out_size)

    def _decord_frames(self, times: Sequence[float]) -> list[np.ndarray]:
        indices = [self.frame_index_at(t) for t in times]
        unique = sorted(set(indices))
        decoded: dict[int, np.ndarray] = {}
        for start in range(0, len(unique), _DECODE_CHUNK):
            chunk = unique[start : start + _DECODE_CHUNK]
            batch = self._reader.get_batch(chunk).asnumpy()
            decoded.update(zip(chunk, batch, strict=True))
        return [decoded[i] for i in indices]


def import_decord():
    """decord, imported after tesserocr: decord's wheel ships zlib 1.2.3, and when it is loaded
    first its symbols serve the libpng of Tesseract (OCR), which then aborts the process ("bad
    parameters to zlib"). Loaded the other way round, each keeps its own."""
    with contextlib.suppress(ImportError):
        import tesserocr  # noqa: F401
    import decord

    return decord


def _pyav_frames_at(path: str, times: Sequence[float], out_size: tuple[int, int] | None) -> list[np.ndarray]:
    """The frame shown at each time, in one forward pass with PyAV; packets that fail to decode
    are skipped (the previous good frame stands in, as in a player)."""
    import av

    wanted = sorted(set(times))
    picked: dict[float, np.ndarray] = {}
    last = None  # (pts seconds, frame)

    def convert(frame) -> np.ndarray:
        if out_size:
            frame = frame.reformat(width=out_size[0], height=out_size[1])
        return frame.to_ndarray(format="rgb24")

    def settle(until: float | None) -> None:
        nonlocal wanted
        while wanted and last is not None and (until is None or until > wanted[0] + 1e-6):
            image = convert(last)
            while wanted and (until is None or until > wanted[0] + 1e-6):
                picked[wanted.pop(0)] = image

    name = Path(path).name
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    continue
                for frame in frames:
                    if frame.time is None:
                        continue
                    settle(float(frame.time))
                    last = frame
                if not wanted:
                    break
            settle(None)
    except (av.error.FFmpegError, IndexError) as exc:
        raise UnreadableVideoError(f"{name}: cannot decode frames ({exc})") from exc
    if len(picked) < len(set(times)):
        raise UnreadableVideoError(f"{name}: no frame of the video can be decoded")
    return [picked[t] for t in times]


def save_jpeg(frame: np.ndarray, path: Path, max_side: int, quality: int = 85) -> None:
    image = Image.fromarray(frame)
    if max(image.size) > max_side:
        image = image.resize(scaled_size(*image.size, max_side), Image.Resampling.BICUBIC)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=quality)


def load_rgb(path: Path) -> Image.Image:
    """An image file as RGB (thumbnails, training images)."""
    with Image.open(path) as image:
        return image.convert("RGB")


def keyframe_times(start: float, end: float, count: int) -> list[float]:
    """``count`` times at the midpoints of ``count`` equal segments of [start, end)."""
    step = (end - start) / count
    return [start + (i + 0.5) * step for i in range(count)]
