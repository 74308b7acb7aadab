"""The model worker: one long-lived process that keeps the models loaded for the runs Dagster
launches, and answers their calls.

Dagster's run launcher starts every run in a new process, so a model loaded in a run is gone when
the run ends. Instead of running several videos inside one run (which escapes the run queue, its
concurrency limits and run monitoring), each video keeps its own run and the runs call the models
of this worker (``tving worker``, started by ``tving ui``): a run decodes its video itself and
sends frames, texts and file paths; the worker answers with captions, vectors, text and
transcripts. Without a worker a run loads the models itself, as ``tving index`` does.

Transport: :mod:`multiprocessing.connection` over a Unix socket in Linux's abstract namespace
(no path to clean up or outgrow), each connection authenticated by an HMAC challenge with a key
only the user can read (``<home>/run/model-worker.key``, 0600), messages pickled. Each request
carries the client's whole :class:`~tving_resources.models.runtime.RuntimeConfig`, so a run never gets
a model other than its own settings say; calls to one model are served one at a time.

A failure inside a call (a file the speech model cannot decode) goes back to the run that made it
and fails that video alone. If the worker itself goes away mid-call, the run loads the model
itself and goes on (slower, same result).
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
from multiprocessing.connection import Connection, Listener
from typing import TYPE_CHECKING, Any

from tving_resources.errors import ModelError
from tving_resources.models.cache import MODEL_CACHE
from tving_resources.models.remote import WorkerAddress
from tving_resources.models.runtime import ModelRuntime

if TYPE_CHECKING:
    from tving_resources.models.runtime import RuntimeConfig

log = logging.getLogger("tving.model_worker")
_PLAIN = (str, int, float, bool, type(None))


# ---------------------------------------------------------------------------- server
class ModelWorker:
    """Serves the models of any runtime configuration its clients send (see the module doc)."""

    def __init__(self, address: WorkerAddress):
        self.address = address
        self._runtimes: dict[bytes, ModelRuntime] = {}
        self._locks: dict[tuple[bytes, str], threading.Lock] = {}
        self._lock = threading.Lock()
        self._listener: Listener | None = None
        self.calls = 0

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
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name="tving-model-call").start()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self.address.key_file.unlink(missing_ok=True)

    def _serve(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    request = conn.recv()
                except (EOFError, OSError):
                    return
                try:
                    reply = ("ok", self._answer(*request))
                except BaseException as exc:  # the caller's video fails, not the worker
                    reply = ("error", _picklable(exc))
                try:
                    conn.send(reply)
                except (OSError, pickle.PicklingError) as exc:
                    log.warning("could not answer a call: %s", exc)
                    return

    def _answer(self, op: str, config: RuntimeConfig | None, role: str, name: str, args: tuple, kwargs: dict) -> Any:
        if op == "ping":
            return os.getpid()
        if op == "load_counts":
            return MODEL_CACHE.load_counts()
        assert config is not None
        key = pickle.dumps(config)
        model = self._model(key, config, role)
        if op == "describe":
            return describe(model)
        with self._lock:
            role_lock = self._locks.setdefault((key, role), threading.Lock())
        with role_lock:  # one call at a time per model: not every model is thread-safe
            self.calls += 1
            return getattr(model, name)(*args, **kwargs)

    def _model(self, key: bytes, config: RuntimeConfig, role: str) -> Any:
        with self._lock:
            runtime = self._runtimes.get(key)
            if runtime is None:
                runtime = self._runtimes[key] = ModelRuntime(config)
        return getattr(runtime, role)()


def describe(model: Any) -> dict[str, Any]:
    """A model's plain attributes and method names, for a proxy to mimic it."""
    attributes, methods = {}, []
    for name in dir(model):
        if name.startswith("_"):
            continue
        try:
            value = getattr(model, name)
        except Exception:
            continue
        if callable(value):
            methods.append(name)
        elif isinstance(value, _PLAIN):
            attributes[name] = value
    return {"attributes": attributes, "methods": methods}


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.dumps(exc)
        return exc
    except Exception:
        return ModelError(f"{type(exc).__name__}: {exc}")
