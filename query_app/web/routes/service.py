"""Liveness, readiness, and the login, logout pages."""

from __future__ import annotations

import hmac
import math
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from query_app.web import i18n
from query_app.web.guard import client_address, cookie_value
from query_app.web.i18n import N_, request_language
from query_app.web.sessions import SESSION_COOKIE
from query_app.web.state import AppState, app_state

router = APIRouter()
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
State = Annotated[AppState, Depends(app_state)]


@router.get("/health", tags=["service"])
def health() -> dict[str, Any]:
    """Liveness: the process answers. Whether search can answer: /ready."""
    return {"status": "alive"}


@router.get("/ready", tags=["service"])
def ready(state: State) -> JSONResponse:
    """200 once the query models are loaded and the scene table exists, else 503."""
    ok, detail = state.readiness()
    body = {
        "status": "ready" if ok else "not ready",
        "detail": detail,
        "profile": state.runtime.profile.name,
        "models": state.runtime.model_ids(),
        "describe_models": state.describe_models,
        "warm_up_seconds": state.warm_up_seconds,
    }
    return JSONResponse(body, status_code=200 if ok else 503, headers={} if ok else {"Retry-After": "5"})


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    """Browsers ask for it whatever the page says; the pages name the SVG one."""
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


@router.get("/language", include_in_schema=False)
def switch_language(to: str = "", next: str = "/") -> RedirectResponse:
    """The language switch: remembered in a cookie for a year, then back to the page."""
    response = RedirectResponse(i18n.safe_next(next), status_code=303)
    if to in i18n.LANGUAGES:
        response.set_cookie(i18n.LANG_COOKIE, to, max_age=i18n.LANG_COOKIE_MAX_AGE, samesite="lax")
    return response


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(request: Request, state: State) -> HTMLResponse:
    return state.templates.TemplateResponse(request, "login.html", {"page": "login", "error": None})


@router.post("/login", include_in_schema=False, response_model=None)
def login(request: Request, state: State, token: Annotated[str, Form(max_length=500)]) -> Response:
    policy, throttle, sessions = state.policy, state.throttle, state.sessions
    address = client_address(request.scope)
    wait = throttle.wait_seconds(address)
    if wait > 0:
        message = N_("too many wrong tokens from your address: wait %(seconds)s s")
        context = {"page": "login", "error": request_language(request).gettext(message, seconds=math.ceil(wait))}
        headers = {"Retry-After": str(max(1, math.ceil(wait)))}
        return state.templates.TemplateResponse(request, "login.html", context, status_code=429, headers=headers)
    if not policy.token or not hmac.compare_digest(token.encode(), policy.token.encode()):
        throttle.failed(address)
        message = N_("wrong token") if policy.token else N_("this server has no token")
        context = {"page": "login", "error": request_language(request).gettext(message)}
        return state.templates.TemplateResponse(request, "login.html", context, status_code=401)
    throttle.succeeded(address)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        sessions.create(),
        httponly=True,
        samesite="strict",
        max_age=int(sessions.settings.session_lifetime_s),
        secure=request.url.scheme == "https",  # over HTTPS (or a proxy that spoke it): never sent in clear
    )
    return response


@router.post("/logout", include_in_schema=False, response_model=None)
def logout(request: Request, state: State) -> Response:
    """End this browser's session (the cookie is useless afterwards, even if kept)."""
    session = cookie_value(request.headers.get("cookie", ""), SESSION_COOKIE)
    if session:
        state.sessions.end(session)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
    return response
