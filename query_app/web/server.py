"""How ``tving serve`` runs the app: Granian, an HTTP server in Rust (hyper), configured so that
no client can hold the server with what it sends.

Why not uvicorn: it parses headers with httptools, which bounds neither their size nor their
count, and it never times out a request whose headers do not finish (a slow client holds its
connection, and its file descriptor, for ever). Granian bounds all three and caps the
connections it serves at once:

- headers: the whole head at most ``max_header_bytes`` (431 beyond), at most 100 header lines
  (hyper's limit; 431 beyond), and finished within ``header_timeout_s`` (the connection is closed);
- connections: at most ``max_connections`` served at once; the next ones wait in the kernel's
  listen queue (they hold no descriptor of the server), so the server never runs out of file
  descriptors for its own files;
- bodies: a body that stops arriving for ``body_idle_timeout_s`` is answered 408 by the guard
  (:mod:`query_app.web.guard`).

The app is built in Granian's worker process from :class:`ServeOptions`, handed over as JSON in
an environment variable (the worker imports :func:`app_from_environment`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OPTIONS_VARIABLE = "TVING_SERVE_OPTIONS"


@dataclass(frozen=True)
class ServerLimits:
    """What one connection may cost the server (see the module docstring)."""

    header_timeout_s: float = 10.0
    max_header_bytes: int = 16 * 1024
    max_connections: int = 1024
    body_idle_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0.001 <= self.header_timeout_s <= 60:
            raise ValueError("the header timeout must be between 0.001 and 60 seconds (Granian's range)")
        if self.max_header_bytes < 8192:
            raise ValueError("headers must be allowed at least 8192 bytes (Granian's smallest buffer)")
        if self.max_connections < 1 or self.body_idle_timeout_s <= 0:
            raise ValueError("max_connections must be >= 1 and the body timeout > 0")


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``tving serve`` was told, as the worker process needs it to build the app."""

    host: str = "127.0.0.1"
    port: int = 8000
    dagster_url: str | None = None
    max_upload_bytes: int = 2 * 1024**3
    max_batch: int = 16
    batch_wait_ms: float = 5.0
    token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    show_paths: bool = False
    describe_concurrency: int = 1
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1",)
    tls_cert: str | None = None
    tls_key: str | None = None
    limits: ServerLimits = field(default_factory=ServerLimits)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeOptions:
        data: dict[str, Any] = json.loads(text)
        data["limits"] = ServerLimits(**data.get("limits", {}))
        for key in ("allowed_hosts", "forwarded_allow_ips"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)


def app_from_environment():
    """The ASGI app, built in Granian's worker from the options ``serve`` left in the environment."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from query_app.web.app import create_app
    from query_app.web.guard import AccessPolicy

    options = ServeOptions.from_json(os.environ[OPTIONS_VARIABLE])
    policy = AccessPolicy(
        token=options.token,
        max_body_bytes=options.max_upload_bytes + 2**20,
        show_paths=options.show_paths,
        body_idle_timeout_s=options.limits.body_idle_timeout_s,
    ).with_hosts(*options.allowed_hosts)
    app = create_app(
        dagster_url=options.dagster_url,
        max_upload_bytes=options.max_upload_bytes,
        max_batch=options.max_batch,
        batch_wait_ms=options.batch_wait_ms,
        policy=policy,
        describe_concurrency=options.describe_concurrency,
    )
    # The client's address and scheme from a reverse proxy's X-Forwarded-* headers, trusted only
    # from the proxy's own address (what uvicorn did by default): login throttling counts per
    # client, and a session cookie is marked Secure when the client spoke HTTPS to the proxy.
    return ProxyHeadersMiddleware(app, trusted_hosts=list(options.forwarded_allow_ips))


def raise_open_file_limit(needed: int) -> int:
    """Raise this process's soft limit on open files towards its hard limit, so that the
    connection cap, not the descriptor limit, is what refuses clients. Returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        return wanted
    return soft


def connection_cap(limits: ServerLimits, open_file_limit: int) -> int:
    """Connections served at once: the configured cap, but always leaving at least 256
    descriptors (or half of a small limit) for the server's own files, models and tables."""
    reserve = min(256, open_file_limit // 2)
    return max(1, min(limits.max_connections, open_file_limit - reserve))


def run(options: ServeOptions) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    limits = options.limits
    open_files = raise_open_file_limit(limits.max_connections + 1024)
    os.environ[OPTIONS_VARIABLE] = options.to_json()
    tls: dict[str, Any] = {}
    if options.tls_cert:
        tls = {"ssl_cert": Path(options.tls_cert), "ssl_key": Path(options.tls_key or options.tls_cert)}
    Granian(
        "query_app.web.server:app_from_environment",
        factory=True,
        address=options.host,
        port=options.port,
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,  # HTTP/2 needs TLS in browsers, and its header limits differ
        websockets=False,
        workers=1,  # models load once; one process answers every request
        backpressure=connection_cap(limits, open_files),
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, round(limits.header_timeout_s * 1000)),
            max_buffer_size=limits.max_header_bytes,
        ),
        log_access=False,
        log_level="warning",
        **tls,
    ).serve()
