"""What every stage of one video shares: its versioned results, its settings, and one way to fail."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.errors import TvingError, VideoChangedError
from tving_resources.ids import display_name
from tving_resources.index.artifacts import ArtifactStore, Produced, VideoArtifacts
from tving_resources.index.disk import disk_full_cause, disk_full_error
from tving_resources.index.lifecycle import record_failure, stage_error
from tving_resources.index.pipeline import StageTimer
from tving_resources.media.video import VideoInfo, ensure_unchanged
from tving_resources.models.runtime import ModelRuntime
from tving_resources.settings import stage_params
from tving_resources.stages.outcome import CHECK_NAMED, STAGE_OF_ASSET, CheckOutcome, StageOutcome, StageRequest

T = TypeVar("T")
log = logging.getLogger("tving.stages")


class StageRun:
    """One stage of one video: ``request`` says which, ``runtime`` hands out its models."""

    def __init__(self, request: StageRequest, runtime: ModelRuntime):
        self.request = request
        self.runtime = runtime
        self.asset = request.asset  # what messages and the catalog name
        self.stage = STAGE_OF_ASSET[request.asset]  # the folder of its results
        self.video_id = request.video_id
        self.settings = request.settings
        self.paths = request.paths  # never settings.paths: resolved where the request was made
        self.artifacts = ArtifactStore(self.paths.artifacts_dir, runtime.profile.name)
        self.video: VideoArtifacts = self.artifacts.video(self.video_id)
        self.timer = StageTimer()
        self.logs: list[str] = []

    @cached_property
    def catalog(self) -> VideoCatalog:
        return VideoCatalog(self.paths.catalog_url)

    def all_artifacts(self) -> list[ArtifactStore]:
        """Every profile's results (a removed or broken file loses them all)."""
        from tving_resources.models.profiles import PROFILES

        return [ArtifactStore(self.paths.artifacts_dir, profile) for profile in PROFILES]

    @contextmanager
    def guard(self) -> Iterator[StageRun]:
        """Time the stage; turn any failure into one message naming the file, the stage and the
        cause, recorded in the catalog (a broken file also loses its old rows), raised as a
        StageError. A full disk is said as such, with the folder, whatever layer noticed it. An
        error that is no TvingError (a bug) is recorded and raised as it is, traceback and all."""
        try:
            with self.timer:
                yield self
        except TvingError as exc:
            raise self._record(self._disk_full(exc) or exc) from exc
        except Exception as exc:
            full = self._disk_full(exc)
            if full is not None:
                raise self._record(full) from exc
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

    def params(self) -> dict[str, Any]:
        """The settings and models that decide this stage's result (declared in stage_params)."""
        return stage_params(self.settings, self.runtime)[self.stage]

    def produce(
        self, inputs: dict[str, str], params: dict[str, Any], compute: Callable[[Path, Path], T], cls: type[T]
    ) -> Produced[T]:
        return self.video.produce(self.stage, inputs, params, compute, cls, run_id=self.request.run_id)

    def metadata(self, produced: Produced, **extra: Any) -> dict[str, Any]:
        return {
            **extra,
            "result_key": produced.key,
            "skipped": produced.reused,  # same input, settings and models as a stored result
            "seconds": self.timer.seconds,
            "process": process_name(),  # where the stage ran: this run's process or the model worker
        }

    def check(self, name: str, problems: list[str], **metadata: Any) -> CheckOutcome:
        """The outcome of check ``name``; a failed blocking check is recorded in the catalog."""
        outcome = CheckOutcome(name, tuple(problems), {"problems": len(problems), **metadata})
        if problems and CHECK_NAMED[name].blocking:
            entry = self.catalog.find(self.video_id)
            if entry is not None:
                message = f"{display_name(entry.name)}: {self.asset} failed: check {name}: {outcome.description}"
                self.catalog.mark_failed(entry.video_id, self.asset, message, self.request.run_id)
        return outcome

    def outcome(
        self, metadata: dict[str, Any], checks: tuple[CheckOutcome, ...] = (), data_version: str | None = None
    ) -> StageOutcome:
        return StageOutcome(metadata, checks, data_version, tuple(self.logs))

    def _disk_full(self, exc: BaseException) -> TvingError | None:
        return disk_full_error(exc, [self.paths.artifacts_dir, self.paths.data_dir, self.request.lancedb_uri])

    def _record(self, exc: BaseException) -> TvingError:
        try:
            return record_failure(
                self.video_id,
                self.asset,
                exc,
                self.catalog,
                self.request.lancedb_uri,
                self.all_artifacts(),
                self.paths.locks_dir,
                self.settings.video_lock_timeout_seconds,
                run_id=self.request.run_id,
            )
        except Exception as record_exc:
            if disk_full_cause(record_exc) is None:
                raise
            # the catalog shares the full disk: the run's failure still carries the message
            log.warning("the failure could not be recorded in the catalog: %s", record_exc)
            return stage_error(exc, self.video_id, self.asset)


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
