"""A run's side of the model worker (see :mod:`tving_resources.worker.server`): where a home's
worker listens, a run's connection to it, and :func:`execute_stage`, which has a stage run there
while a worker answers and in this process otherwise."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection
from multiprocessing.reduction import send_handle
from pathlib import Path
from typing import Any

from tving_resources.errors import ModelError
from tving_resources.index.locks import held_descriptor
from tving_resources.models.runtime import ModelRuntime, RuntimeConfig
from tving_resources.stages.outcome import StageOutcome, StageRequest

log = logging.getLogger("tving.model_worker")
PROTOCOL = 2  # in the socket's name: a worker of another version is not found, and runs go on without it


class WorkerUnavailableError(ModelError):
    """No model worker answers (not started, stopped, or gone mid-call)."""


@dataclass(frozen=True)
class WorkerAddress:
    """Where the model worker of a data home listens, and the key that lets a client in."""

    name: str  # abstract socket name
    key_file: Path

    @classmethod
    def for_home(cls, home: Path) -> WorkerAddress:
        digest = hashlib.sha1(str(Path(home).resolve()).encode()).hexdigest()[:16]
        return cls(f"\0tving-model-worker-{PROTOCOL}-{digest}", Path(home) / "run" / "model-worker.key")

    def new_key(self) -> bytes:
        self.key_file.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(self.key_file.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
        os.replace(self.key_file.with_suffix(".tmp"), self.key_file)
        return key

    def key(self) -> bytes | None:
        try:
            return self.key_file.read_bytes()
        except OSError:
            return None


class WorkerClient:
    """A process's connection to the model worker of its data home (thread-safe; connects lazily)."""

    def __init__(self, address: WorkerAddress):
        self.address = address
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self.gone = False  # once the worker went away, this process stops asking it

    def available(self) -> bool:
        if self.gone:
            return False
        try:
            self.request("ping")
            return True
        except WorkerUnavailableError:
            return False

    def request(self, op: str, payload: Any = None, lock_fd: int | None = None) -> Any:
        """Send ``(op, payload)``, and ``lock_fd`` beside it (the video's lock, shared with the
        worker for the call); the worker's answer, or its error raised here."""
        with self._lock:
            if self.gone:
                raise WorkerUnavailableError("the model worker went away earlier in this process")
            try:
                conn = self._connect()
                conn.send((op, payload, lock_fd is not None))
                if lock_fd is not None:
                    send_handle(conn, lock_fd, 0)
                status, value = conn.recv()
            except (OSError, EOFError, AuthenticationError) as exc:
                self._close()
                self.gone = op != "ping"  # gone mid-call: this process stops asking
                raise WorkerUnavailableError(f"no model worker answers ({exc})") from exc
        if status == "error":
            raise value
        return value

    def run_stage(self, request: StageRequest) -> StageOutcome:
        """``request`` run by the worker, under the video's lock if this process holds it."""
        return self.request("stage", request, held_descriptor(request.paths.locks_dir, request.video_id))

    def load_counts(self) -> dict[str, int]:
        return self.request("load_counts")

    def _connect(self) -> Connection:
        if self._conn is None:
            key = self.address.key()
            if key is None:
                raise OSError("no model worker key (the worker is not running)")
            self._conn = Client(self.address.name, family="AF_UNIX", authkey=key)
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None


def execute_stage(request: StageRequest, runtime: ModelRuntime, worker: WorkerClient | None) -> StageOutcome:
    """Run ``request`` in the model worker while one answers (its models and libraries are loaded
    already), else here with ``runtime``'s models. A worker that goes away mid-stage leaves the
    stage to this process, from the start: what it had written is complete or not there at all."""
    if worker is not None and not worker.gone:
        try:
            return worker.run_stage(request)
        except WorkerUnavailableError as exc:
            log.warning("%s of %s runs in this process: %s", request.asset, request.video_id, exc)
    # imported only here: the stages' libraries (NumPy, Arrow, the decoders) load in the process
    # that runs them, and a run whose stages the worker runs never loads them
    from tving_resources.stages.execute import run_stage

    return run_stage(request, runtime)


def effective_config(runtime: ModelRuntime) -> RuntimeConfig:
    """``runtime``'s configuration with what its process resolved from the environment filled in
    (profile, models folder, adapter), so the worker loads exactly the same models."""
    overrides = dict(runtime.config.model_overrides)
    # always named ("" for none): the worker must not take an adapter from its own environment
    overrides["caption_adapter"] = runtime.profile.caption_adapter or ""
    return runtime.config.model_copy(
        update={"profile": runtime.profile.name, "models_dir": str(runtime.models_dir), "model_overrides": overrides}
    )
