"""What every per-video asset shares: its video's versioned results, and one way to fail."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg

from tving_assets.resources import LanceDBResource, ModelRuntimeResource, TvingSettings
from tving_resources.errors import TvingError, VideoChangedError
from tving_resources.index.artifacts import Produced, VideoArtifacts
from tving_resources.index.disk import disk_full_cause, disk_full_error
from tving_resources.index.lifecycle import record_failure, stage_error
from tving_resources.index.pipeline import StageTimer
from tving_resources.media.video import VideoInfo, ensure_unchanged
from tving_resources.models.cache import MODEL_CACHE
from tving_resources.settings import stage_params

T = TypeVar("T")


class VideoStage:
    """One stage of one video partition inside a run."""

    def __init__(
        self,
        stage: str,
        context: dg.AssetExecutionContext,
        settings: TvingSettings,
        models: ModelRuntimeResource,
        lancedb: LanceDBResource,
    ):
        self.stage = stage  # the folder of its results
        self.asset = context.asset_key.to_user_string()  # what messages and the catalog name
        self.context = context
        self.settings = settings
        self.models = models
        self.lancedb = lancedb
        self.video_id = context.partition_key
        self.artifacts = settings.artifacts(models.profile_name)
        self.video: VideoArtifacts = self.artifacts.video(self.video_id)
        self.timer = StageTimer()

    @contextmanager
    def guard(self) -> Iterator[VideoStage]:
        """Time the stage; turn any failure into one message naming the file, the stage and the
        cause, recorded in the catalog (a broken file also loses its old rows). A full disk is
        said as such, with the folder, whatever layer noticed it."""
        try:
            with self.timer:
                yield self
        except dg.Failure:
            raise
        except TvingError as exc:
            error = self._record(self._disk_full(exc) or exc)
            raise dg.Failure(description=str(error), allow_retries=False) from exc
        except Exception as exc:  # a bug or an unexpected library error: keep the traceback
            full = self._disk_full(exc)
            if full is not None:
                raise dg.Failure(description=str(self._record(full)), allow_retries=False) from exc
            self._record(exc)
            raise

    def reading_file(self, info: VideoInfo, compute: Callable[[Path, Path], T]) -> Callable[[Path, Path], T]:
        """``compute``, which reads the video file, checked against the file changing meanwhile:
        then it fails (whatever it raised, or even if it succeeded) with VideoChangedError, and
        nothing it read is stored."""

        def checked(staging: Path, final: Path) -> T:
            ensure_unchanged(info)
            try:
                result = compute(staging, final)
            except Exception as exc:
                try:
                    ensure_unchanged(info)
                except VideoChangedError as changed:
                    raise changed from exc
                raise
            ensure_unchanged(info)
            return result

        return checked

    def record_check_failure(self, check: str, description: str | None) -> None:
        from tving_resources.index.lifecycle import display_name

        catalog = self.settings.catalog()
        entry = catalog.find(self.video_id)
        if entry is not None:
            message = f"{display_name(entry.name)}: {self.asset} failed: check {check}: {description}"
            catalog.mark_failed(entry.video_id, self.asset, message, self.context.run.run_id)

    def _disk_full(self, exc: BaseException) -> TvingError | None:
        paths = self.settings.paths
        return disk_full_error(exc, [paths.artifacts_dir, paths.data_dir, self.lancedb.resolved_uri(self.settings)])

    def _record(self, exc: BaseException):
        try:
            return record_failure(
                self.video_id,
                self.asset,
                exc,
                self.settings.catalog(),
                self.lancedb.resolved_uri(self.settings),
                self.settings.all_artifacts(),
                self.settings.paths.locks_dir,
                self.settings.video_lock_timeout_seconds,
                run_id=self.context.run.run_id,
            )
        except Exception as record_exc:
            if disk_full_cause(record_exc) is None:
                raise
            # the catalog shares the full disk: the run's failure still carries the message
            self.context.log.warning(f"the failure could not be recorded in the catalog: {record_exc}")
            return stage_error(exc, self.video_id, self.asset)

    def params(self) -> dict[str, Any]:
        """The settings and models that decide this stage's result (declared in stage_params)."""
        return stage_params(self.settings, self.models.runtime)[self.stage]

    def produce(
        self,
        inputs: dict[str, str],
        params: dict[str, Any],
        compute: Callable[[Path, Path], T],
        cls: type[T],
    ) -> Produced[T]:
        return self.video.produce(self.stage, inputs, params, compute, cls, run_id=self.context.run.run_id)

    def metadata(self, produced: Produced, **extra: Any) -> dict[str, Any]:
        return {
            **extra,
            "result_key": produced.key,
            "skipped": produced.reused,  # same input, settings and models as a stored result
            "seconds": self.timer.seconds,
            # models loaded so far by the process that ran this step (a warm worker: 1 each; none
            # when the models are the model worker's)
            "model_loads": dg.MetadataValue.json(MODEL_CACHE.load_counts()),
            "model_worker": self._model_worker(),
            "process": f"{socket.gethostname()}:{os.getpid()}",
        }

    def _model_worker(self) -> str:
        """Whose models this run used: the model worker's (its pid) or its own process's."""
        worker = self.models.runtime.worker
        if worker is None or worker.gone:
            return "none: models loaded in this process"
        try:
            return f"pid {worker.request('ping')}"
        except TvingError:
            return "none: models loaded in this process"
