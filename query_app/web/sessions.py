"""Logins of the web pages: signed session ids instead of the token, and throttled guessing.

- **Sessions.** A successful login creates a random session id; the cookie carries that id
  signed with a key of this server process (itsdangerous), never the API token. The server keeps
  the live ids, so logging out ends a session at once; a session also ends after its lifetime,
  and every session ends when the server restarts (the key and the ids live in memory).
- **Throttling.** Wrong tokens are counted per client address, whatever carried them (the login
  form, a bearer header, an ``X-Tving-Token``): after ``free_attempts`` in a row that address
  waits 1 s, then 2 s, 4 s... up to ``max_delay_s`` before its next try is even looked at (429
  with ``Retry-After``). A right token clears the count.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

SESSION_COOKIE = "tving_session"


@dataclass(frozen=True)
class LoginSettings:
    session_lifetime_s: float = 12 * 3600
    max_sessions: int = 10_000  # the oldest ends when a new one would pass this
    free_attempts: int = 5  # wrong tokens in a row before an address waits
    max_delay_s: float = 900.0
    forget_after_s: float = 3600.0  # an address quiet this long starts afresh
    max_addresses: int = 10_000  # addresses remembered (the least recent is forgotten)


class SessionStore:
    """Live sessions of this server process (thread-safe)."""

    def __init__(self, settings: LoginSettings | None = None, key: bytes | None = None):
        self.settings = settings or LoginSettings()
        self._signer = TimestampSigner(key or secrets.token_bytes(32), salt="tving-session")
        self._live: OrderedDict[str, float] = OrderedDict()  # session id -> when it ends
        self._lock = threading.Lock()

    def create(self) -> str:
        """A new session; returns the cookie value (the signed session id)."""
        session_id = secrets.token_urlsafe(24)
        with self._lock:
            self._live[session_id] = time.time() + self.settings.session_lifetime_s
            while len(self._live) > self.settings.max_sessions:
                self._live.popitem(last=False)
        return self._signer.sign(session_id).decode()

    def valid(self, cookie_value: str) -> bool:
        session_id = self._session_id(cookie_value)
        if session_id is None:
            return False
        with self._lock:
            ends = self._live.get(session_id)
            if ends is not None and ends < time.time():
                del self._live[session_id]
                return False
            return ends is not None

    def end(self, cookie_value: str) -> bool:
        """Log out: the session is gone (whether or not it was still live)."""
        session_id = self._session_id(cookie_value)
        with self._lock:
            return session_id is not None and self._live.pop(session_id, None) is not None

    def __len__(self) -> int:
        return len(self._live)

    def _session_id(self, cookie_value: str) -> str | None:
        if not cookie_value or len(cookie_value) > 200:
            return None
        try:
            value = self._signer.unsign(cookie_value, max_age=int(self.settings.session_lifetime_s))
        except (BadSignature, SignatureExpired):
            return None
        return value.decode()


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


class LoginThrottle:
    """Wrong tokens per client address, and how long each must wait (thread-safe)."""

    def __init__(self, settings: LoginSettings | None = None):
        self.settings = settings or LoginSettings()
        self._by_address: OrderedDict[str, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    def wait_seconds(self, address: str, now: float | None = None) -> float:
        """How long ``address`` must still wait before a token it sends is checked (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._by_address.get(address)
            if failures is None:
                return 0.0
            if now - failures.last > self.settings.forget_after_s:
                del self._by_address[address]
                return 0.0
            return max(0.0, failures.last + self._delay(failures.count) - now)

    def failed(self, address: str, now: float | None = None) -> float:
        """Count a wrong token; returns the wait it earns."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._by_address.pop(address, None) or _Failures()
            if now - failures.last > self.settings.forget_after_s:
                failures = _Failures()
            failures.count += 1
            failures.last = now
            self._by_address[address] = failures  # most recent last
            while len(self._by_address) > self.settings.max_addresses:
                self._by_address.popitem(last=False)
            return self._delay(failures.count)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._by_address.pop(address, None)

    def _delay(self, count: int) -> float:
        over = count - self.settings.free_attempts
        return 0.0 if over <= 0 else min(self.settings.max_delay_s, 2.0 ** (over - 1))
