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
   it (``Authorization: Bearer``, ``X-Tving-Token``, or the ``tving_token`` cookie the login page
   sets: HttpOnly, SameSite=Strict).
5. **Body limit while it streams**: a declared ``Content-Length`` over the limit is answered 413
   at once; a body that grows past it while arriving is cut off and answered 413, whatever the
   route was doing with it.
"""

from __future__ import annotations

import contextlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import unquote, urlsplit

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_COOKIE = "tving_token"
OPEN_PATHS = ("/health", "/ready", "/login", "/static/")  # reachable without the token
_BAD_PATH_PARTS = ("\x00", "%00", "%2f", "%5c", "\\")


@dataclass(frozen=True)
class AccessPolicy:
    token: str | None = None
    allowed_hosts: frozenset[str] = field(default_factory=lambda: LOOPBACK_HOSTS)
    max_body_bytes: int = 2 * 1024**3
    show_paths: bool = False  # absolute server paths in responses (off: relative ones only)

    def with_hosts(self, *hosts: str) -> AccessPolicy:
        return AccessPolicy(self.token, self.allowed_hosts | {h.lower() for h in hosts}, self.max_body_bytes,
                            self.show_paths)  # fmt: skip


def host_name(host_header: str) -> str:
    """``example.com:8000`` -> ``example.com``; ``[::1]:8000`` -> ``[::1]``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class _BodyTooLargeError(Exception):
    pass


class GuardMiddleware:
    def __init__(self, app: Callable, policy: AccessPolicy):
        self.app = app
        self.policy = policy

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
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
        if policy.token and not path.startswith(OPEN_PATHS) and not _has_token(headers, policy.token):
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

    async def _with_body_limit(self, scope: dict, receive: Callable, send: Callable, headers: dict) -> None:
        limit, received, state = self.policy.max_body_bytes, 0, {"over": False, "started": False}

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    state["over"] = True
                    raise _BodyTooLargeError()
            return message

        async def guarded_send(message: dict) -> None:
            if state["over"]:
                return  # the app's answer to a cut-off body is replaced by the 413 below
            state["started"] = True
            await send(message)

        with contextlib.suppress(_BodyTooLargeError):
            await self.app(scope, limited_receive, guarded_send)
        if state["over"] and not state["started"]:
            await _respond(send, 413, f"request body larger than {limit // 2**20} MB", {})


def _same_origin(headers: dict[str, str], host: str) -> bool:
    origin = headers.get("origin")
    if origin is None and headers.get("referer"):
        origin = headers["referer"]
    if origin is None:
        return True  # not a browser: browsers send Origin with every cross-site unsafe request
    if origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == host.strip().lower()


def _has_token(headers: dict[str, str], token: str) -> bool:
    candidates = [headers.get("x-tving-token", "")]
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        candidates.append(auth[7:].strip())
    if "cookie" in headers:
        cookie = SimpleCookie()
        try:
            cookie.load(headers["cookie"])
        except Exception:
            cookie = SimpleCookie()
        if TOKEN_COOKIE in cookie:
            candidates.append(unquote(cookie[TOKEN_COOKIE].value))
    return any(hmac.compare_digest(c.encode(), token.encode()) for c in candidates if c)


async def _respond(send: Callable[[dict], Awaitable[None]], status: int, message: str, extra: dict[str, str]) -> None:
    body = json.dumps({"error": message, "detail": message}).encode()
    headers: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
