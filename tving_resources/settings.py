"""Every indexing setting, declared once: :class:`IndexSettings` (folders, scene detection,
keyframes, subtitles, the folder sensor, limits) and, for the models,
:class:`tving_resources.models.runtime.RuntimeConfig`. The Dagster resources of the code
location *are* these models (they inherit their fields: ``tving_assets.resources``), so a default,
a type or a description lives here and nowhere else; docs/configuration.md is generated from
them (``python -m tving_dev.configuration_doc``). The library's own settings objects
(:class:`SceneSettings`, :class:`KeyframeSettings`, :class:`WatchSettings`,
:class:`MediaLimits`) are built from an :class:`IndexSettings` and have no defaults of their own
for what is set here.

:func:`stage_params` says which settings and models decide each stage's result.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tving_resources.catalog.folder_watch import MASS_MISSING_MIN, WatchSettings
from tving_resources.config import Paths, resolve_paths
from tving_resources.media.scenes import SceneSettings
from tving_resources.media.settings import KeyframeSettings, MediaLimits, media_limits
from tving_resources.models.runtime import ModelRuntime
from tving_resources.store.schema import SCHEMA_VERSION

# Bump when the probe's code changes what it produces: stored results of the old code are not reused.
PROBE_VERSION = 2


class IndexSettings(BaseModel):
    """Folders and indexing settings. Empty folders fall back to TVING_* variables, then defaults."""

    model_config = ConfigDict(frozen=True)

    home: str | None = Field(default=None, description="the data home; TVING_HOME, default ~/.tving")
    videos_dir: str | None = Field(
        default=None, description="the watched folder; TVING_VIDEOS_DIR, default <home>/videos"
    )
    data_dir: str | None = Field(
        default=None, description="artifacts, catalog, LanceDB; TVING_DATA_DIR, default <home>/data"
    )
    scene_threshold: float = Field(default=27.0, description="PySceneDetect's content threshold (lower: more cuts)")
    min_scenes: int = Field(default=5, description="fewer scenes: detection is retried with a lower threshold")
    max_scenes: int = Field(default=40, description="more scenes: detection is retried with a higher threshold")
    min_scene_seconds: float = Field(default=1.0, description="shorter scenes are merged into their neighbour")
    max_scene_seconds: float = Field(default=30.0, description="longer scenes are split")
    exclude_last_seconds: float = Field(default=0.0, description="seconds at the end left out (end cards)")
    keyframes_per_scene: int | None = Field(default=None, description="default: the profile's")
    thumbnail_max_side: int = Field(default=512, description="the long side of keyframe thumbnails, in pixels")
    subtitles: str = Field(
        default="beside",
        description="subtitles in the file or beside it (clip.srt, clip.ko.srt): beside speech, instead of it, or off",
    )
    sensor_settle_seconds: float = Field(default=5.0, description="files modified more recently are being copied: wait")
    sensor_max_runs_per_tick: int = Field(default=25, description="videos requested per tick (the rest wait)")
    sensor_absent_ticks: int = Field(default=2, description="ticks a file must be absent before its video is removed")
    sensor_max_removals_per_tick: int = Field(default=10, description="removals requested per tick at most")
    sensor_max_missing_fraction: float = Field(
        default=0.5,
        description=f"more missing at once (and at least {MASS_MISSING_MIN}) looks like an unmounted disk: no removal",
    )
    video_lock_timeout_seconds: float = Field(
        default=3600.0, description="how long a run waits for another run of the same video"
    )
    max_video_seconds: float | None = Field(
        default=None,
        description=f"longer videos fail (default: TVING_MAX_VIDEO_SECONDS, else {MediaLimits.max_seconds / 3600:g} h)",
    )

    @cached_property
    def paths(self) -> Paths:
        return resolve_paths(self.home, self.videos_dir, self.data_dir).ensure()

    def scene_settings(self) -> SceneSettings:
        return SceneSettings(
            threshold=self.scene_threshold,
            min_scenes=self.min_scenes,
            max_scenes=self.max_scenes,
            min_scene_seconds=self.min_scene_seconds,
            max_scene_seconds=self.max_scene_seconds,
            exclude_last_seconds=self.exclude_last_seconds,
        )

    def keyframe_settings(self, profile_default: int) -> KeyframeSettings:
        return KeyframeSettings(per_scene=self.keyframes_per_scene or profile_default, max_side=self.thumbnail_max_side)

    def watch_settings(self) -> WatchSettings:
        return WatchSettings(
            settle_seconds=self.sensor_settle_seconds,
            max_runs_per_tick=self.sensor_max_runs_per_tick,
            absent_ticks=self.sensor_absent_ticks,
            max_removals_per_tick=self.sensor_max_removals_per_tick,
            max_missing_fraction=self.sensor_max_missing_fraction,
        )

    def media_limits(self) -> MediaLimits:
        return media_limits(self.max_video_seconds)


def stage_params(settings: IndexSettings, runtime: ModelRuntime) -> dict[str, dict[str, Any]]:
    """What decides each stage's result, by stage: part of its stored key (a result is reused only
    with the same parameters), compared by ``tving index --stale`` and hashed into each asset's
    code version. Declared here once; the assets read their parameters from it."""
    return {
        "video": {"probe": PROBE_VERSION},
        "scenes": dict(settings.scene_settings().__dict__),
        "keyframes": dict(settings.keyframe_settings(runtime.profile.keyframes_per_scene).__dict__),
        "ocr": runtime.stage_params("ocr"),
        "faces": runtime.stage_params("faces"),
        "transcript": {**runtime.stage_params("transcript"), "subtitles": settings.subtitles},
        "captions": runtime.stage_params("captions"),
        "vectors": runtime.stage_params("vectors"),
        "rows": {"schema": SCHEMA_VERSION},
    }
