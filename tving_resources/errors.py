"""The small exception tree of the project.

Every error a user can meet carries a message that says what went wrong *and* what to do about
it. Code that catches errors to keep a batch going (one bad video must not stop the others)
catches :class:`TvingError` only, so programming errors still surface as tracebacks.
"""

from __future__ import annotations


class TvingError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(TvingError):
    """A setting is missing or invalid."""


class VideoError(TvingError):
    """A video file cannot be used; the message names the file."""


class UnreadableVideoError(VideoError):
    """The file is empty, truncated, not a media container, or cannot be decoded."""


class VideoMissingError(VideoError):
    """The file is not where the catalog says (removed, renamed, or its disk is not mounted).

    Unlike a broken file, this says nothing about the content: the index keeps its rows.
    """


class NoVideoStreamError(VideoError):
    """The file is a media file without a video stream (for example audio only)."""


class NotRegularFileError(UnreadableVideoError):
    """The path names a FIFO, a device, a socket or a folder (or a symbolic link to one)."""


class VideoOverLimitError(VideoError):
    """The video is longer, or its frames larger, than this installation accepts (see
    ``tving_resources.media.video.MediaLimits``); nothing of it is indexed."""


class VideoChangedError(VideoError):
    """The file changed (size or modification time) while it was being indexed; it is indexed
    again once it stops changing. Rows of the earlier version are kept meanwhile."""


class DiskFullError(TvingError):
    """A write failed because its filesystem has no space left; the message names the folder."""


class VideoNotRegisteredError(TvingError):
    """A video id is not in the catalog (it was never registered, or its file was removed)."""


class VideoRemovedError(TvingError):
    """The video was removed (its file is gone) while a run was indexing it; nothing was written."""


class VideoBusyError(TvingError):
    """Another process holds this video's lock (a run of the same video) for too long."""


class MissingArtifactError(TvingError):
    """An upstream stage has not been materialized for this video yet."""


class StageError(TvingError):
    """A stage of one video failed; the message names the file, the stage and the cause."""

    def __init__(self, file_name: str, stage: str, cause: str, broken_file: bool = False):
        self.file_name, self.stage, self.cause = file_name, stage, cause
        self.broken_file = broken_file  # the file is there but its content cannot be used
        super().__init__(f"{file_name}: {stage} failed: {cause}")


class ModelError(TvingError):
    """A model cannot be loaded or run."""


class ModelNotAvailableError(ModelError):
    """A model's weights are not on this machine and cannot be downloaded."""


class StoreError(TvingError):
    """The LanceDB table is missing, unreachable, or holds something other than expected."""


class ProfileMismatchError(StoreError):
    """A query uses a model profile other than the one that wrote the index."""


__all__ = [
    "ConfigError",
    "DiskFullError",
    "MissingArtifactError",
    "ModelError",
    "ModelNotAvailableError",
    "NoVideoStreamError",
    "NotRegularFileError",
    "ProfileMismatchError",
    "StageError",
    "StoreError",
    "TvingError",
    "UnreadableVideoError",
    "VideoBusyError",
    "VideoChangedError",
    "VideoError",
    "VideoMissingError",
    "VideoNotRegisteredError",
    "VideoOverLimitError",
    "VideoRemovedError",
]
