"""The media settings objects: what a video may be (:class:`MediaLimits`) and how its keyframes
are made (:class:`KeyframeSettings`). Light to import (no NumPy, no decoder): the code location
builds them when it loads."""

from __future__ import annotations

from dataclasses import dataclass

from tving_resources.errors import ConfigError, VideoOverLimitError


@dataclass(frozen=True)
class MediaLimits:
    """What one video may be, read from its headers before any frame is decoded: a frame of
    16000x16000 pixels costs ~760 MB to decode even when its file is 6 MB, and a 1 MB file can
    declare 24 hours (2,880 scenes and their thumbnails)."""

    max_seconds: float = 6 * 3600.0  # a TV library's longest programmes (films, sport) fit
    max_side: int = 8192
    max_pixels: int = 8192 * 4320  # 8K

    def check(self, name: str, width: int, height: int, duration: float) -> None:
        """Raises VideoOverLimitError naming the limit and how to get past it."""
        if max(width, height) > self.max_side or width * height > self.max_pixels:
            raise VideoOverLimitError(
                f"{name}: frames of {width}x{height} pixels are over the limit ({self.max_side} pixels a side, "
                f"{self.max_pixels / 1e6:.1f} megapixels); scale the video down first"
            )
        if duration > self.max_seconds:
            raise VideoOverLimitError(
                f"{name}: {_hours(duration)} long, over the {_hours(self.max_seconds)} limit; split the video, or "
                "raise the limit (TVING_MAX_VIDEO_SECONDS, or max_video_seconds of the settings resource)"
            )


def media_limits(max_seconds: float | None = None) -> MediaLimits:
    """The configured limits: ``max_seconds`` if given, else ``TVING_MAX_VIDEO_SECONDS``, else
    :class:`MediaLimits`' own defaults."""
    from tving_resources.config import max_video_seconds

    seconds = max_seconds if max_seconds is not None else max_video_seconds()
    if seconds is not None and not 0 < seconds < float("inf"):
        raise ConfigError(f"the maximum video length must be a positive number of seconds, not {seconds!r}")
    return MediaLimits() if seconds is None else MediaLimits(max_seconds=seconds)


def _hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


@dataclass(frozen=True)
class KeyframeSettings:
    """Keyframes' settings (their defaults: the profile's and ``tving_resources.settings``)."""

    per_scene: int
    max_side: int
    jpeg_quality: int = 85  # fixed, not a setting

    def __post_init__(self) -> None:
        if not 1 <= self.per_scene <= 32:
            raise ValueError("keyframes per scene must be between 1 and 32")
        if not 64 <= self.max_side <= 4096:
            raise ValueError("thumbnail max side must be between 64 and 4096 pixels")
