"""The client side of the model worker (see :mod:`tving_resources.models.worker`): where a home's
worker listens, a run's connection to it, and the stand-in for each model it serves."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tving_resources.errors import ModelError

if TYPE_CHECKING:
    from tving_resources.models.runtime import ModelRuntime, RuntimeConfig

log = logging.getLogger("tving.model_worker")


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
    return runtime.config.model_copy(
        update={"profile": runtime.profile.name, "models_dir": str(runtime.models_dir), "model_overrides": overrides}
    )
