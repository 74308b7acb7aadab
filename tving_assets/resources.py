"""The Dagster resources: the library's settings models as resources (their fields inherited, not
declared again), the catalog, artifacts and LanceDB they lead to. Resources are immutable
configuration; models live in the process-wide cache or the model worker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.config import resolve_paths
from tving_resources.ids import is_video_id
from tving_resources.index.artifacts import ArtifactStore
from tving_resources.index.locks import video_lock
from tving_resources.models.runtime import ModelRuntime, RuntimeConfig
from tving_resources.settings import IndexSettings

if TYPE_CHECKING:  # the table's modules (NumPy, Arrow) load when a table is used, not with the code location
    from tving_resources.store.scene_store import SceneStore
    from tving_resources.store.schema import ModelStamp


class TvingSettings(dg.ConfigurableResource, IndexSettings):
    """Folders and indexing settings: :class:`tving_resources.settings.IndexSettings`, whose
    fields (defaults, descriptions) it inherits, declared there once. A run of one video holds
    that video's lock for the whole run (see :meth:`yield_for_execution`)."""

    def catalog(self) -> VideoCatalog:
        return VideoCatalog(self.paths.catalog_url)

    def artifacts(self, profile: str) -> ArtifactStore:
        return ArtifactStore(self.paths.artifacts_dir, profile)

    def index_settings(self) -> IndexSettings:
        """These settings as the library's own model (what a stage request carries)."""
        return IndexSettings(**self.model_dump(include=set(IndexSettings.model_fields)))

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


class ModelRuntimeResource(dg.ConfigurableResource, RuntimeConfig):
    """Model profile and devices: :class:`tving_resources.models.runtime.RuntimeConfig`, whose
    fields it inherits. The stages run in this home's model worker while one runs (its models
    loaded once for every run, see ``model_worker``); otherwise in the run's process, each model
    loaded on first use, once per process."""

    model_worker: bool = Field(
        default=True, description="run the stages in this home's model worker when one runs (`tving ui` starts it)"
    )

    @cached_property
    def runtime(self) -> ModelRuntime:
        return ModelRuntime(RuntimeConfig(**self.model_dump(include=set(RuntimeConfig.model_fields))))

    @cached_property
    def worker(self):
        """A client of this home's model worker, or None (none runs, or ``model_worker`` is off)."""
        if not self.model_worker:
            return None
        from tving_resources.worker.client import WorkerAddress, WorkerClient

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
        from tving_resources.store.scene_store import SceneStore
        from tving_resources.store.tables import TableRegistry

        uri = self.resolved_uri(settings)
        return SceneStore(uri, stamp, table_name=TableRegistry(uri).table_for_write(stamp))

    def delete_video(self, settings: TvingSettings, video_id: str) -> int:
        """Delete a video's rows from every profile's table; returns the tables touched."""
        from tving_resources.store.maintenance import delete_video_everywhere

        return delete_video_everywhere(self.resolved_uri(settings), video_id)
