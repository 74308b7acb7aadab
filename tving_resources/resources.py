"""Dagster resources wrapping the library. The only module of ``tving_resources`` that imports
Dagster. Resources are immutable configuration; models live in the process-wide cache."""

from __future__ import annotations

from functools import cached_property

import dagster as dg
from pydantic import Field

from .artifacts import ArtifactStore
from .catalog import VideoCatalog
from .config import Paths, resolve_paths
from .pipeline import KeyframeSettings
from .runtime import ModelRuntime, RuntimeConfig
from .scenes import SceneSettings
from .store import ModelStamp, SceneStore, delete_video_everywhere


class TvingSettings(dg.ConfigurableResource):
    """Folders and indexing settings. Empty folders fall back to TVING_* variables, then defaults."""

    home: str | None = Field(default=None, description="TVING_HOME; default ~/.tving")
    videos_dir: str | None = Field(default=None, description="watched folder; TVING_VIDEOS_DIR")
    data_dir: str | None = Field(default=None, description="artifacts, catalog, LanceDB; TVING_DATA_DIR")
    scene_threshold: float = 27.0
    min_scenes: int = 5
    max_scenes: int = 40
    min_scene_seconds: float = 1.0
    max_scene_seconds: float = 30.0
    exclude_last_seconds: float = 0.0
    keyframes_per_scene: int | None = Field(default=None, description="default: the profile's (3 lite, 8 full)")
    thumbnail_max_side: int = 512
    sensor_settle_seconds: float = Field(default=5.0, description="ignore files modified more recently")
    sensor_max_runs_per_tick: int = 25

    @cached_property
    def paths(self) -> Paths:
        return resolve_paths(self.home, self.videos_dir, self.data_dir).ensure()

    def catalog(self) -> VideoCatalog:
        return VideoCatalog(self.paths.catalog_path)

    def artifacts(self, profile: str) -> ArtifactStore:
        return ArtifactStore(self.paths.artifacts_dir, profile)

    def remove_artifacts(self, video_id: str) -> None:
        """Every profile's results for a video (its file is gone)."""
        from .profiles import PROFILES

        for profile in PROFILES:
            self.artifacts(profile).remove_video(video_id)

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
            )
        )

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
        return SceneStore(self.resolved_uri(settings), stamp)

    def delete_video(self, settings: TvingSettings, video_id: str) -> int:
        """Delete a video's rows from every profile's table; returns the tables touched."""
        return delete_video_everywhere(self.resolved_uri(settings), video_id)
