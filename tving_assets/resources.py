"""Dagster resources wrapping the library. The only module of ``tving_resources`` that imports
Dagster. Resources are immutable configuration; models live in the process-wide cache."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property

import dagster as dg
from pydantic import Field

from tving_resources.catalog.folder_watch import MASS_MISSING_MIN, WatchSettings
from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.config import Paths, resolve_paths
from tving_resources.ids import is_video_id
from tving_resources.index.artifacts import ArtifactStore
from tving_resources.index.locks import video_lock
from tving_resources.index.pipeline import KeyframeSettings
from tving_resources.media.scenes import SceneSettings
from tving_resources.media.video import MediaLimits, media_limits
from tving_resources.models.runtime import ModelRuntime, RuntimeConfig
from tving_resources.store.scene_store import SCHEMA_VERSION, ModelStamp, SceneStore, delete_video_everywhere


class TvingSettings(dg.ConfigurableResource):
    """Folders and indexing settings. Empty folders fall back to TVING_* variables, then defaults.

    Defaults come from the library's own settings classes (declared once, there). A run of one
    video holds that video's lock for the whole run (see :meth:`yield_for_execution`).
    """

    home: str | None = Field(default=None, description="TVING_HOME; default ~/.tving")
    videos_dir: str | None = Field(default=None, description="watched folder; TVING_VIDEOS_DIR")
    data_dir: str | None = Field(default=None, description="artifacts, catalog, LanceDB; TVING_DATA_DIR")
    scene_threshold: float = SceneSettings.threshold
    min_scenes: int = SceneSettings.min_scenes
    max_scenes: int = SceneSettings.max_scenes
    min_scene_seconds: float = SceneSettings.min_scene_seconds
    max_scene_seconds: float = SceneSettings.max_scene_seconds
    exclude_last_seconds: float = SceneSettings.exclude_last_seconds
    keyframes_per_scene: int | None = Field(default=None, description="default: the profile's (3 lite, 8 full)")
    thumbnail_max_side: int = KeyframeSettings.max_side
    subtitles: str = Field(
        default="beside",
        description="subtitles in the file or beside it (clip.srt, clip.ko.srt): beside speech, instead of it, or off",
    )
    sensor_settle_seconds: float = Field(
        default=WatchSettings.settle_seconds, description="files modified more recently are being copied: wait"
    )
    sensor_max_runs_per_tick: int = Field(
        default=WatchSettings.max_runs_per_tick, description="videos requested per tick (the rest wait)"
    )
    sensor_absent_ticks: int = Field(
        default=WatchSettings.absent_ticks, description="ticks a file must be absent before its video is removed"
    )
    sensor_max_removals_per_tick: int = WatchSettings.max_removals_per_tick
    sensor_max_missing_fraction: float = Field(
        default=WatchSettings.max_missing_fraction,
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

    def catalog(self) -> VideoCatalog:
        return VideoCatalog(self.paths.catalog_url)

    def artifacts(self, profile: str) -> ArtifactStore:
        return ArtifactStore(self.paths.artifacts_dir, profile)

    def all_artifacts(self) -> list[ArtifactStore]:
        """Every profile's results (a removed or broken file loses them all)."""
        from tving_resources.models.profiles import PROFILES

        return [self.artifacts(profile) for profile in PROFILES]

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[TvingSettings]:
        """Hold the video's lock for a whole run of one video partition (runs of a video never
        overlap: a sensor run and `tving index`, or two versions of a file)."""
        video_id = context.run.tags.get("dagster/partition") if context.run else None
        if video_id and is_video_id(video_id):
            with video_lock(self.paths.locks_dir, video_id, self.video_lock_timeout_seconds):
                yield self
        else:
            yield self

    def scene_settings(self) -> SceneSettings:
        return SceneSettings(
            threshold=self.scene_threshold,
            min_scenes=self.min_scenes,
            max_scenes=self.max_scenes,
            min_scene_seconds=self.min_scene_seconds,
            max_scene_seconds=self.max_scene_seconds,
            exclude_last_seconds=self.exclude_last_seconds,
        )

    def media_limits(self) -> MediaLimits:
        return media_limits(self.max_video_seconds)

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


class ModelRuntimeResource(dg.ConfigurableResource):
    """Model profile and devices. Each model loads on first use, once per process."""

    profile: str | None = Field(default=None, description="lite | full | auto; default TVING_PROFILE or auto")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    dtype: str = Field(default="auto", description="auto | float32 | float16 | bfloat16 (auto: per device)")
    models_dir: str | None = Field(default=None, description="TVING_MODELS_DIR; searched before the hub")
    cpu_threads: int = 0
    caption_batch_size: int = Field(default=4, description="scenes per captioner batch (halves on CUDA OOM)")
    caption_max_new_tokens: int = 64
    caption_adapter: str | None = Field(default=None, description="LoRA adapter folder; TVING_CAPTION_ADAPTER")
    text_batch_size: int = 32
    frame_batch_size: int = 32
    speech_batch_size: int = Field(default=0, description=">1: faster-whisper's batched pipeline")
    trust_remote_code: bool = Field(default=False, description="allow captioners with their own code (InternVL)")
    model_overrides: dict[str, str] = Field(default_factory=dict, description="role -> model id or folder")
    ocr: bool = Field(
        default=RuntimeConfig.ocr, description="read on-screen text with Tesseract (off: faster, no text)"
    )
    ocr_languages: str = Field(default=RuntimeConfig.ocr_languages, description="Tesseract languages, e.g. kor+eng")
    ocr_min_confidence: float = Field(
        default=RuntimeConfig.ocr_min_confidence, description="text lines read with less confidence are dropped"
    )
    ocr_frames_per_scene: int = RuntimeConfig.ocr_frames_per_scene
    model_worker: bool = Field(
        default=True, description="use the models of this home's model worker when one runs (`tving ui` starts it)"
    )

    @cached_property
    def runtime(self) -> ModelRuntime:
        overrides = dict(self.model_overrides)
        if self.caption_adapter:
            overrides["caption_adapter"] = self.caption_adapter
        return ModelRuntime(
            RuntimeConfig(
                profile=self.profile,
                device=self.device,
                dtype=self.dtype,
                models_dir=self.models_dir,
                cpu_threads=self.cpu_threads,
                caption_batch_size=self.caption_batch_size,
                caption_max_new_tokens=self.caption_max_new_tokens,
                text_batch_size=self.text_batch_size,
                frame_batch_size=self.frame_batch_size,
                speech_batch_size=self.speech_batch_size,
                trust_remote_code=self.trust_remote_code,
                model_overrides=overrides,
                ocr=self.ocr,
                ocr_languages=self.ocr_languages,
                ocr_min_confidence=self.ocr_min_confidence,
                ocr_frames_per_scene=self.ocr_frames_per_scene,
            ),
            worker=self._worker(),
        )

    def _worker(self):
        if not self.model_worker:
            return None
        from tving_resources.models.remote import WorkerAddress, WorkerClient

        address = WorkerAddress.for_home(resolve_paths().home)
        return WorkerClient(address) if address.key() is not None else None

    @property
    def profile_name(self) -> str:
        """The resolved profile (no model is loaded to know it)."""
        return self.runtime.profile.name


class LanceDBResource(dg.ConfigurableResource):
    """Where the scene table lives: a local folder (default <data_dir>/lancedb) or an s3:// URI."""

    uri: str | None = Field(default=None, description="TVING_LANCEDB_URI; default <data_dir>/lancedb")

    def resolved_uri(self, settings: TvingSettings) -> str:
        return self.uri or resolve_paths(settings.home, settings.videos_dir, settings.data_dir).lancedb_uri

    def store(self, settings: TvingSettings, stamp: ModelStamp) -> SceneStore:
        """The table that rows of ``stamp``'s vector space go to: the live one, or, for a new
        text or frame encoder, a table built beside it (see ``tving_resources.store.tables``)."""
        from tving_resources.store.tables import TableRegistry

        uri = self.resolved_uri(settings)
        return SceneStore(uri, stamp, table_name=TableRegistry(uri).table_for_write(stamp))

    def delete_video(self, settings: TvingSettings, video_id: str) -> int:
        """Delete a video's rows from every profile's table; returns the tables touched."""
        return delete_video_everywhere(self.resolved_uri(settings), video_id)


# Bump when the probe's code changes what it produces: stored results of the old code are not reused.
PROBE_VERSION = 2


def stage_params(settings: TvingSettings, models: ModelRuntimeResource) -> dict[str, dict]:
    """What decides each stage's result, by stage: part of its stored key (a result is reused only
    with the same parameters), compared by ``tving index --stale`` and hashed into each asset's
    code version. Declared here once; the assets read their parameters from it."""
    runtime = models.runtime
    return {
        "video": {"probe": PROBE_VERSION},
        "scenes": dict(settings.scene_settings().__dict__),
        "keyframes": dict(settings.keyframe_settings(runtime.profile.keyframes_per_scene).__dict__),
        "ocr": runtime.stage_params("ocr"),
        "transcript": {**runtime.stage_params("transcript"), "subtitles": settings.subtitles},
        "captions": runtime.stage_params("captions"),
        "vectors": runtime.stage_params("vectors"),
        "rows": {"schema": SCHEMA_VERSION},
    }
