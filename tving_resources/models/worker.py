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

import contextlib
import dataclasses
import hashlib
import logging
import os
import pickle
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tving_resources.errors import ModelError
from tving_resources.models.cache import MODEL_CACHE

if TYPE_CHECKING:
    from tving_resources.models.runtime import ModelRuntime, RuntimeConfig

log = logging.getLogger("tving.model_worker")
_PLAIN = (str, int, float, bool, type(None))


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
        return cls(f"\0tving-model-worker-{digest}", Path(home) / "run" / "model-worker.key")

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
        from tving_resources.models.runtime import ModelRuntime

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


# ---------------------------------------------------------------------------- client
class WorkerClient:
    """A run's connection to the model worker of its data home (thread-safe; connects lazily)."""

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

    def request(self, op: str, config: RuntimeConfig | None = None, role: str = "", name: str = "",
                args: tuple = (), kwargs: dict | None = None) -> Any:  # fmt: skip
        with self._lock:
            if self.gone:
                raise WorkerUnavailableError("the model worker went away earlier in this process")
            try:
                conn = self._connect()
                conn.send((op, config, role, name, args, kwargs or {}))
                status, value = conn.recv()
            except (OSError, EOFError, AuthenticationError) as exc:
                self._close()
                self.gone = op != "ping"  # gone mid-call: this process stops asking
                raise WorkerUnavailableError(f"no model worker answers ({exc})") from exc
        if status == "error":
            raise value
        return value

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


class RemoteModel:
    """Stands in for a model of the worker: its plain attributes, and its methods as calls. If
    the worker goes away, the model is loaded here (``fallback``) and the call made again."""

    def __init__(self, client: WorkerClient, config: RuntimeConfig, role: str, fallback: Callable[[], Any]):
        self._client, self._config, self._role, self._fallback = client, config, role, fallback
        self._local: Any = None
        description = client.request("describe", config, role)
        self._attributes: dict[str, Any] = description["attributes"]
        self._methods = frozenset(description["methods"])

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._local is not None:
            return getattr(self._local, name)
        if name in self._attributes:
            return self._attributes[name]
        if name not in self._methods:
            raise AttributeError(f"{self._role} has no attribute {name!r}")

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._local is None:
                try:
                    return self._client.request("call", self._config, self._role, name, args, kwargs)
                except WorkerUnavailableError as exc:
                    log.warning("model worker unavailable (%s); loading %s in this process", exc, self._role)
                    self._local = self._fallback()
            return getattr(self._local, name)(*args, **kwargs)

        return call


def effective_config(runtime: ModelRuntime) -> RuntimeConfig:
    """``runtime``'s configuration with what its process resolved from the environment filled in
    (profile, models folder, adapter), so the worker loads exactly the same models."""
    overrides = dict(runtime.config.model_overrides)
    # always named ("" for none): the worker must not take an adapter from its own environment
    overrides["caption_adapter"] = runtime.profile.caption_adapter or ""
    return dataclasses.replace(
        runtime.config, profile=runtime.profile.name, models_dir=str(runtime.models_dir), model_overrides=overrides
    )
