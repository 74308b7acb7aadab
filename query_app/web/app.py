"""The HTTP API and web pages (FastAPI), served by ``tving serve``.

Every request first passes :mod:`query_app.web.guard` (host allow-list, same-origin unsafe methods,
optional token, body limit while it streams). Query-side models load once, in a background
thread at start-up; ``/health`` is liveness, ``/ready`` says when search can answer (models loaded
and a table present, which the server notices whenever it appears). Describe models load in
their own background thread after the query models, so they never stall a search, and describe
runs behind a concurrency limit. Every input is validated before it reaches the index (finite,
bounded numbers; video ids checked against the id pattern and the table; at most
``MAX_FILTER_IDS`` per request), files are served only from inside the data folder, and absolute
server paths appear in answers only with ``show_paths``. The routes live in
:mod:`query_app.web.routes`, one router per area; what they share in :mod:`query_app.web.state`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from query_app.describe import VideoDescriber
from query_app.search import SceneSearch, SearchBatcher
from query_app.web import i18n
from query_app.web.dagster_status import DagsterStatusClient
from query_app.web.guard import AccessPolicy, GuardMiddleware
from query_app.web.routes import describe, editing, library, people, search, service
from query_app.web.state import AppState
from query_app.web.uploads import DECODE_CONCURRENCY
from tving_resources.config import Paths, dagster_url_from_env, resolve_paths
from tving_resources.models.runtime import ModelRuntime

log = logging.getLogger("tving.api")
WEB_DIR = Path(__file__).parent
DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3


def create_app(
    paths: Paths | None = None,
    runtime: ModelRuntime | None = None,
    dagster_url: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    warm_up_in_background: bool = True,
    batch_wait_ms: float = 5.0,
    max_batch: int = 16,
    policy: AccessPolicy | None = None,
    describe_concurrency: int = 1,
) -> FastAPI:
    paths = paths or resolve_paths()
    policy = policy or AccessPolicy(max_body_bytes=max_upload_bytes + 2**20)
    runtime = runtime or ModelRuntime()
    dagster_url = dagster_url or dagster_url_from_env()
    engine = SceneSearch(runtime=runtime, paths=paths)
    templates = Jinja2Templates(directory=str(WEB_DIR / "templates"), context_processors=[i18n.context_processor])
    templates.env.filters["clock"] = i18n.clock
    templates.env.globals["logged_in_pages"] = bool(policy.token)  # a logout button on every page
    state = AppState(
        paths=paths,
        runtime=runtime,
        search=engine,
        batcher=SearchBatcher(engine, max_batch=max_batch, max_wait_ms=batch_wait_ms),
        describer=VideoDescriber(runtime=runtime, paths=paths),
        dagster=DagsterStatusClient(dagster_url) if dagster_url else None,
        max_upload_bytes=max_upload_bytes,
        policy=policy,
        templates=templates,
        describe_slots=threading.BoundedSemaphore(describe_concurrency),
        decode_slots=threading.BoundedSemaphore(DECODE_CONCURRENCY),
    )
    app = FastAPI(
        title="tving scene search",
        version="0.1.0",
        description="Search video scenes in Korean or English, and describe any span of a video.",
    )
    app.state.tving = state
    app.add_middleware(GuardMiddleware, policy=policy, sessions=state.sessions, throttle=state.throttle)
    app.mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static")
    for area in (service, search, library, people, editing, describe):
        app.include_router(area.router)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "problem": e.get("msg")} for e in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"error": "invalid request", "problems": problems})

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(status_code=500, content={"error": "internal error; see the server log"})

    if warm_up_in_background:
        threading.Thread(target=state.warm_up, name="tving-warm-up", daemon=True).start()
    else:
        state.warm_up()
    return app
