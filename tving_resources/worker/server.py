"""The model worker: one long-lived process that runs the stages of the runs Dagster launches,
with the models and libraries it loaded once.

Dagster's run launcher starts every run in a new process, so a model loaded in a run is gone
when the run ends, and so are its libraries (importing LanceDB alone takes a second). Instead
of running several videos inside one run (which escapes the run queue, its concurrency limits
and run monitoring), each video keeps its own run, and each of its steps asks this worker
(``tving worker``, started by ``tving ui``) to run the stage: the same library function the run
would call itself (:mod:`tving_resources.stages`), reading and writing the same versioned
results, with the models loaded here once for every run. Without a worker a run runs its stages
itself, as ``tving index`` does.

Transport: :mod:`multiprocessing.connection` over a Unix socket in Linux's abstract namespace
(no path to clean up or outgrow), each connection authenticated by an HMAC challenge with a key
only the user can read (``<home>/run/model-worker.key``, 0600), messages pickled. A request
carries everything the run resolved from its own environment (folders, limits, the whole model
configuration), so the worker computes exactly what the run would have. The run's lock on its
video comes with the request (its descriptor, passed over the socket): the stage holds the same
lock the run holds, and it stays held until the stage ends even if the run dies meanwhile.
Several runs' stages go at once, in threads; each model serves one call at a time.

A failure inside a stage goes back to the run that asked, as the same error, and fails that
video alone. If the worker itself goes away mid-stage, the run runs the stage itself and goes on
(slower, same result).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pickle
import threading
import traceback
from multiprocessing.connection import Connection, Listener
from multiprocessing.reduction import recv_handle
from typing import Any

from tving_resources.errors import ModelError, TvingError
from tving_resources.index.locks import adopted_lock
from tving_resources.models.cache import MODEL_CACHE
from tving_resources.models.runtime import ModelRuntime, RuntimeConfig
from tving_resources.stages.outcome import StageOutcome, StageRequest
from tving_resources.worker.client import WorkerAddress

log = logging.getLogger("tving.model_worker")


class ModelWorker:
    """Runs the stages its clients send (see the module doc)."""

    def __init__(self, address: WorkerAddress):
        self.address = address
        self._runtimes: dict[bytes, ModelRuntime] = {}
        self._lock = threading.Lock()
        self._listener: Listener | None = None
        self.stages_run = 0

    def start(self) -> None:
        """Listen (returns at once; :meth:`serve_forever` accepts)."""
        key = self.address.new_key()
        self._listener = Listener(self.address.name, family="AF_UNIX", authkey=key)

    def serve_forever(self) -> None:
        if self._listener is None:
            self.start()
        assert self._listener is not None
        while True:
            try:
                conn = self._listener.accept()
            except OSError:  # closed by stop()
                return
            except Exception as exc:  # a client that failed the key challenge, or went away
                log.warning("refused a connection: %s", exc)
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name="tving-stage").start()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self.address.key_file.unlink(missing_ok=True)

    def warm_up(self) -> None:
        """Load what the stages use, for the default model configuration (the one runs send unless
        their resource says otherwise): the libraries, then the models."""
        import lancedb  # noqa: F401  (a second to import: the commit of every video uses it)
        import scenedetect  # noqa: F401

        from tving_resources.worker.client import effective_config

        runtime = self.runtime(effective_config(ModelRuntime()))
        runtime.warm_up(("speech", "captioner", "text_encoder", "frame_encoder", "text_reader", "face_encoder"))

    def runtime(self, config: RuntimeConfig) -> ModelRuntime:
        """One runtime per model configuration, its models serving one call at a time."""
        key = pickle.dumps(config)
        with self._lock:
            if key not in self._runtimes:
                self._runtimes[key] = ModelRuntime(config, serialized=True)
            return self._runtimes[key]

    def _serve(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    op, payload, with_lock = conn.recv()
                    lock_fd = recv_handle(conn) if with_lock else None
                except (EOFError, OSError, ValueError, TypeError):
                    return
                try:
                    reply = ("ok", self._answer(op, payload, lock_fd))
                except BaseException as exc:  # the caller's video fails, not the worker
                    reply = ("error", _picklable(exc))
                try:
                    conn.send(reply)
                except (OSError, pickle.PicklingError) as exc:
                    log.warning("could not answer a call: %s", exc)
                    return

    def _answer(self, op: str, payload: Any, lock_fd: int | None) -> Any:
        if op == "stage":
            return self._run_stage(payload, lock_fd)
        if lock_fd is not None:  # sent only with a stage
            os.close(lock_fd)
        if op == "ping":
            return os.getpid()
        if op == "load_counts":
            return MODEL_CACHE.load_counts()
        raise ModelError(f"the model worker does not know {op!r} (a different version of tving?)")

    def _run_stage(self, request: StageRequest, lock_fd: int | None) -> StageOutcome:
        from tving_resources.stages.execute import run_stage

        held = (
            adopted_lock(request.paths.locks_dir, request.video_id, lock_fd)
            if lock_fd is not None
            else contextlib.nullcontext()
        )
        with held:  # entered first: from here on the descriptor is closed at the end, whatever happens
            outcome = run_stage(request, self.runtime(request.runtime))
        with self._lock:
            self.stages_run += 1
        return dataclasses.replace(outcome, worker_pid=os.getpid())


def _picklable(exc: BaseException) -> BaseException:
    """``exc`` as it can travel back to the run: the same error when it pickles both ways, with
    the worker's traceback added as a note for errors that are no TvingError (bugs)."""
    if not isinstance(exc, TvingError):
        with contextlib.suppress(Exception):
            exc.add_note(f"in the model worker (pid {os.getpid()}):\n{''.join(traceback.format_exception(exc))}")
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        error = ModelError(f"{type(exc).__name__}: {exc}")
        error.add_note("".join(traceback.format_exception(exc)))
        return error
