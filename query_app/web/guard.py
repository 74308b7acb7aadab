"""What every request passes before it reaches a route: an ASGI middleware, outermost.

1. **Host allow-list**: the Host header must name this server (loopback names, or those given
   with ``--allowed-host``). A DNS-rebinding page reaches the server under its own host name, so
   it is refused before anything is read.
2. **Path sanity**: null bytes and encoded separators in the raw path are refused outright
   (routes then see only plain paths).
3. **Same origin for unsafe methods**: a POST from a browser carries ``Origin`` (or ``Referer``);
   one from another site is refused, so no page the user visits can upload files or spend model
   time through their browser. Clients that send neither (scripts) are not browsers.
4. **Token**: with a token set, every request but the login page, liveness and static files needs
   it (``Authorization: Bearer``, ``X-Tving-Token``), or the session cookie the login page sets
   (a signed session id, never the token: see :mod:`query_app.web.sessions`). Wrong tokens are
   throttled per client address (429 with ``Retry-After``).
5. **Body limit while it streams**: a declared ``Content-Length`` over the limit is answered 413
   at once; a body that grows past it while arriving is cut off and answered 413, whatever the
   route was doing with it; a body that stops arriving for ``body_idle_timeout_s`` is answered 408.

Everything here is linear in the size of the request: the cookie header in particular is split
by hand, not parsed with ``http.cookies`` (whose unquoting is quadratic on Python 3.11 before
3.11.10, CVE-2024-7592: one 200 KB header held the event loop for a minute). Header size and
count are bounded before this by the HTTP server (:mod:`query_app.web.server`), and again here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from query_app.web.sessions import SESSION_COOKIE, LoginThrottle, SessionStore

log = logging.getLogger("tving.guard")

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = ("/health", "/ready", "/login", "/static/", "/language", "/favicon.ico")  # reachable without the token
_BAD_PATH_PARTS = ("\x00", "%00", "%2f", "%5c", "\\")


@dataclass(frozen=True)
class AccessPolicy:
    token: str | None = None
    allowed_hosts: frozenset[str] = field(default_factory=lambda: LOOPBACK_HOSTS)
    max_body_bytes: int = 2 * 1024**3
    show_paths: bool = False  # absolute server paths in responses (off: relative ones only)
    body_idle_timeout_s: float = 30.0  # a body that stops arriving this long: 408
    max_header_count: int = 100
    max_header_bytes: int = 16 * 1024

    def with_hosts(self, *hosts: str) -> AccessPolicy:
        return dataclasses.replace(self, allowed_hosts=self.allowed_hosts | {h.lower() for h in hosts})


def host_name(host_header: str) -> str:
    """``example.com:8000`` -> ``example.com``; ``[::1]:8000`` -> ``[::1]``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class _BodyTooLargeError(Exception):
    pass


class _BodyStalledError(Exception):
    pass


class GuardMiddleware:
    def __init__(
        self,
        app: Callable,
        policy: AccessPolicy,
        sessions: SessionStore | None = None,
        throttle: LoginThrottle | None = None,
    ):
        self.app = app
        self.policy = policy
        self.sessions = sessions if sessions is not None else SessionStore()
        self.throttle = throttle if throttle is not None else LoginThrottle()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_headers = scope.get("headers", [])
        if len(raw_headers) > self.policy.max_header_count:
            await _respond(send, 431, f"more than {self.policy.max_header_count} header lines", {})
            return
        if sum(len(k) + len(v) + 4 for k, v in raw_headers) > self.policy.max_header_bytes:
            await _respond(send, 431, f"headers larger than {self.policy.max_header_bytes // 1024} kB", {})
            return
        # repeated headers are joined, as HTTP says; a repeated Cookie header with "; "
        headers: dict[str, str] = {}
        for k, v in raw_headers:
            name, value = k.decode("latin-1").lower(), v.decode("latin-1")
            if name in headers:
                value = headers[name] + ("; " if name == "cookie" else ", ") + value
            headers[name] = value
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _respond(send, *refusal)
            return
        await self._with_body_limit(scope, receive, send, headers)

    def _refusal(self, scope: dict, headers: dict[str, str]) -> tuple[int, str, dict[str, str]] | None:
        policy = self.policy
        host = headers.get("host", "")
        if host_name(host) not in policy.allowed_hosts:
            return 421, "this server does not answer for that host name (see --allowed-host)", {}
        raw = scope.get("raw_path", b"").decode("latin-1").lower() or scope.get("path", "")
        if any(part in raw for part in _BAD_PATH_PARTS) or "\x00" in scope.get("path", ""):
            return 400, "invalid characters in the path", {}
        method = scope.get("method", "GET").upper()
        if method not in SAFE_METHODS and not _same_origin(headers, host):
            return 403, "cross-origin request refused: send it from this server's own pages", {}
        path = scope.get("path", "/")
        waiting = self.throttle.wait_seconds(client_address(scope)) if policy.token else 0.0
        if policy.token and not path.startswith(OPEN_PATHS) and not self._authorised(scope, headers, waiting):
            if waiting > 0:
                message = f"too many wrong tokens from {client_address(scope)}; wait {math.ceil(waiting)} s"
                return 429, message, _retry_after(waiting)
            if method == "GET" and "text/html" in headers.get("accept", ""):
                return 303, "log in first", {"location": "/login"}
            return (
                401,
                "an API token is needed (Authorization: Bearer <token>, or log in at /login)",
                {"www-authenticate": "Bearer"},
            )
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return 400, "invalid Content-Length", {}
            if int(length) > policy.max_body_bytes:
                return 413, f"request body larger than {policy.max_body_bytes // 2**20} MB", {}
        return None

    def _authorised(self, scope: dict, headers: dict[str, str], waiting: float) -> bool:
        """A right token in a header, or a live session in the cookie. A wrong token counts
        against the client's address; a token sent during its wait (``waiting`` > 0) is not
        even compared."""
        token = self.policy.token or ""
        session = cookie_value(headers.get("cookie", ""), SESSION_COOKIE)
        if session and self.sessions.valid(session):
            return True
        offered = [headers.get("x-tving-token", "")]
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            offered.append(auth[7:].strip())
        offered = [c for c in offered if c]
        if not offered:
            return False
        if waiting > 0:
            return False
        address = client_address(scope)
        if any(hmac.compare_digest(c.encode(), token.encode()) for c in offered):
            self.throttle.succeeded(address)
            return True
        self.throttle.failed(address)
        return False

    async def _with_body_limit(self, scope: dict, receive: Callable, send: Callable, headers: dict) -> None:
        limit, received = self.policy.max_body_bytes, 0
        state = {"over": False, "stalled": False, "started": False, "body_done": False}
        idle = self.policy.body_idle_timeout_s

        async def limited_receive() -> dict:
            nonlocal received
            if state["body_done"]:
                return await receive()  # after the body: only a disconnect comes, whenever it does
            try:
                message = await asyncio.wait_for(receive(), idle)
            except TimeoutError:
                state["stalled"] = True
                raise _BodyStalledError() from None
            if message["type"] == "http.request":
                state["body_done"] = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > limit:
                    state["over"] = True
                    raise _BodyTooLargeError()
            return message

        async def guarded_send(message: dict) -> None:
            if state["over"] or state["stalled"]:
                return  # the app's answer to a cut-off body is replaced by the 413/408 below
            state["started"] = True
            await send(message)

        with contextlib.suppress(_BodyTooLargeError, _BodyStalledError):
            await self.app(scope, limited_receive, guarded_send)
        if state["started"]:
            return
        if state["over"]:
            await _respond(send, 413, f"request body larger than {limit // 2**20} MB", {})
        elif state["stalled"]:
            log.warning("%s: request body stalled for %.0f s; answered 408", client_address(scope), idle)
            await _respond(send, 408, f"the request body stopped arriving for {idle:.0f} s", {"connection": "close"})


def _same_origin(headers: dict[str, str], host: str) -> bool:
    origin = headers.get("origin")
    if origin is None and headers.get("referer"):
        origin = headers["referer"]
    if origin is None:
        return True  # not a browser: browsers send Origin with every cross-site unsafe request
    if origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == host.strip().lower()


def cookie_value(header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a Cookie header, in one linear pass (no unquoting: the
    values this server sets are URL-safe), or None."""
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            return value.strip().strip('"')
    return None


def client_address(scope: dict) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _retry_after(seconds: float) -> dict[str, str]:
    return {"retry-after": str(max(1, math.ceil(seconds)))}


async def _respond(send: Callable[[dict], Awaitable[None]], status: int, message: str, extra: dict[str, str]) -> None:
    body = json.dumps({"error": message, "detail": message}).encode()
    headers: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
