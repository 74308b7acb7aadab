"""Login sessions and throttling, as pure objects (the server-side behaviour is tested over raw
sockets in test_serve_limits.py)."""

import time

from query_app.web.guard import cookie_value
from query_app.web.sessions import LoginSettings, LoginThrottle, SessionStore


def test_a_session_cookie_is_a_signed_id_that_ends_on_logout_and_with_time():
    store = SessionStore(LoginSettings(session_lifetime_s=2))
    cookie = store.create()
    assert store.valid(cookie)
    session_id, _, _ = cookie.partition(".")
    assert not store.valid(session_id)  # unsigned
    assert not store.valid(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"))  # forged signature
    assert not SessionStore().valid(cookie)  # another server's key (or this one after a restart)
    assert store.end(cookie) and not store.valid(cookie)  # logged out: gone, even if the browser keeps it
    later = store.create()
    time.sleep(3.1)
    assert not store.valid(later)  # past its lifetime


def test_sessions_are_capped_oldest_first():
    store = SessionStore(LoginSettings(max_sessions=3))
    cookies = [store.create() for _ in range(5)]
    assert [store.valid(c) for c in cookies] == [False, False, True, True, True]


def test_wrong_tokens_earn_a_growing_wait_per_address_and_a_right_one_clears_it():
    throttle = LoginThrottle(LoginSettings(free_attempts=3, max_delay_s=8, forget_after_s=100))
    now = 1000.0
    waits = [throttle.failed("10.0.0.1", now) for _ in range(8)]
    assert waits == [0, 0, 0, 1, 2, 4, 8, 8]  # capped
    assert throttle.wait_seconds("10.0.0.1", now) == 8
    assert throttle.wait_seconds("10.0.0.1", now + 5) == 3
    assert throttle.wait_seconds("10.0.0.2", now) == 0  # another address is not held
    assert throttle.wait_seconds("10.0.0.1", now + 200) == 0  # quiet long enough: forgotten
    throttle.failed("10.0.0.2", now)
    throttle.succeeded("10.0.0.2")
    assert throttle.wait_seconds("10.0.0.2", now) == 0


def test_the_throttle_remembers_a_bounded_number_of_addresses():
    throttle = LoginThrottle(LoginSettings(free_attempts=0, max_addresses=100))
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(throttle._by_address) == 100


def test_cookie_header_is_read_in_linear_time():
    """http.cookies unquotes a quoted value in quadratic time on this Python (CVE-2024-7592):
    0.6 s for 15,000 backslashes. The guard's reader must not care."""
    hostile = 'a=b; tving_session="' + "\\" * 2_000_000 + '"; c=d'
    started = time.perf_counter()
    assert cookie_value(hostile, "c") == "d"
    assert cookie_value(hostile, "tving_session") == "\\" * 2_000_000
    assert cookie_value("x=1", "tving_session") is None
    assert time.perf_counter() - started < 0.5
