"""The HTTP API and web pages (FastAPI), served by ``tving serve``.

Every request first passes :mod:`query_app.guard` (host allow-list, same-origin unsafe methods,
optional token, body limit while it streams). Query-side models load once, in a background
thread at start-up; ``/health`` is liveness, ``/ready`` says when search can answer (models loaded
and a table present, which the server notices whenever it appears). Describe models load in
their own background thread after the query models, so they never stall a search, and describe
runs behind a concurrency limit. Every input is validated before it reaches the index (finite,
bounded numbers; video ids checked against the id pattern and the table; at most
``MAX_FILTER_IDS`` per request), files are served only from inside the data folder, and absolute
server paths appear in answers only with ``show_paths``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import math
import os
import shutil
import tempfile
import threading
import time
import typing
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field, create_model
from starlette.concurrency import run_in_threadpool

from tving_resources.config import Paths, resolve_paths
from tving_resources.errors import (
    ModelError,
    StoreError,
    TvingError,
    VideoError,
    VideoNotRegisteredError,
    VideoOverLimitError,
)
from tving_resources.ids import VIDEO_EXTENSIONS, VIDEO_ID_PATTERN, is_video_id
from tving_resources.models.runtime import ModelRuntime

from .dagster_status import DagsterStatusClient
from .describe import MAX_SPAN_SECONDS, DescribeError, VideoDescriber
from .files import DescriptorFileResponse, FileRefusedError, IndexedFile, VerifiedFiles, served_path
from .guard import AccessPolicy, GuardMiddleware, client_address, cookie_value
from .search import MAX_K, MAX_QUERY_CHARS, QueryError, SceneSearch, SearchBatcher, SearchResponse, SearchResult
from .sessions import SESSION_COOKIE, LoginThrottle, SessionStore

log = logging.getLogger("tving.api")
WEB_DIR = Path(__file__).parent / "web"
VideoId = Annotated[str, Query(pattern=VIDEO_ID_PATTERN.pattern, description="a video id from /videos")]
DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3
MAX_SECONDS = 1e7  # any time in a request: far beyond any video, far below float trouble
MAX_FILTER_IDS = 50  # video ids in one search
MAX_PAGE = 100
SEARCH_TIMEOUT_S = 30.0
PATH_KEYS = ("video_path", "thumbnail_path", "path")  # absolute server paths: only with show_paths
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str | None, Query(pattern=VIDEO_ID_PATTERN.pattern, description="next_cursor of the last page")]


@dataclass
class AppState:
    paths: Paths
    runtime: ModelRuntime
    search: SceneSearch
    describer: VideoDescriber
    batcher: SearchBatcher
    dagster: DagsterStatusClient | None
    max_upload_bytes: int
    policy: AccessPolicy
    describe_slots: threading.BoundedSemaphore
    decode_slots: threading.BoundedSemaphore  # uploaded images and videos decoded at once
    files: VerifiedFiles = field(default_factory=VerifiedFiles)
    models: str = "loading"  # loading | loaded | error (the query-side models)
    describe_models: str = "loading"
    error: str | None = None
    warm_up_seconds: dict[str, float] = field(default_factory=dict)

    def warm_up(self) -> None:
        try:
            started = time.perf_counter()
            seconds = self.search.encoders.warm_up(("text_encoder", "frame_encoder", "translator"))
            self.warm_up_seconds = {k: round(v, 2) for k, v in seconds.items()}
            self.warm_up_seconds["total"] = round(time.perf_counter() - started, 2)
            self.models = "loaded"
        except TvingError as exc:
            self.models, self.error = "error", str(exc)
        except Exception as exc:
            log.exception("warm-up failed")
            self.models, self.error = "error", f"{type(exc).__name__}: {exc}"
        try:  # the describe models, after the query ones (describe waits for them, search never does)
            self.runtime.warm_up(("speech", "captioner"))
            self.describe_models = "loaded"
        except Exception as exc:
            log.warning("describe models not loaded: %s", exc)
            self.describe_models = "error"

    def table_ready(self) -> bool:
        """Whether the scene table exists (checked on each call until it does: a server started
        before anything was indexed becomes ready once the first video is)."""
        try:
            return self.search.store.exists()
        except TvingError:
            return False

    def readiness(self) -> tuple[bool, str]:
        if self.models == "error":
            return False, self.error or "the query models failed to load"
        if self.models != "loaded":
            return False, "models are loading; retry in a few seconds"
        if not self.table_ready():
            return False, "no scene table yet: index some videos (tving index PATH, or the watched folder)"
        return True, "ready"


def _response_model(cls: type, name: str, **extra: Any) -> type[BaseModel]:
    """An OpenAPI model derived from a query-app dataclass (plus fields the API adds)."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {f.name: (hints[f.name], ...) for f in dataclasses.fields(cls)}
    return create_model(name, **{**fields, **extra})


SearchResultOut = _response_model(SearchResult, "SearchResultOut", thumbnail_url=(str, ...), stream_url=(str, ...))
SearchOut = _response_model(SearchResponse, "SearchOut", results=(list[SearchResultOut], ...))


class DescribeRequest(BaseModel):
    video_id: str = Field(pattern=VIDEO_ID_PATTERN.pattern, description="an indexed video id")
    start: float = Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False, description="seconds")
    end: float = Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False, description="seconds")
    language: Literal["en", "ko"] = "en"
    frames: int | None = Field(default=None, ge=1, le=32)


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
    dagster_url = dagster_url or os.environ.get("TVING_DAGSTER_URL") or None
    engine = SceneSearch(runtime=runtime, paths=paths)
    state = AppState(
        paths=paths,
        runtime=runtime,
        search=engine,
        batcher=SearchBatcher(engine, max_batch=max_batch, max_wait_ms=batch_wait_ms),
        describer=VideoDescriber(runtime=runtime, paths=paths),
        dagster=DagsterStatusClient(dagster_url) if dagster_url else None,
        max_upload_bytes=max_upload_bytes,
        policy=policy,
        describe_slots=threading.BoundedSemaphore(describe_concurrency),
        decode_slots=threading.BoundedSemaphore(DECODE_CONCURRENCY),
    )
    app = FastAPI(
        title="tving scene search",
        version="0.1.0",
        description="Search video scenes in Korean or English, and describe any span of a video.",
    )
    app.state.tving = state
    sessions, throttle = SessionStore(), LoginThrottle()
    app.add_middleware(GuardMiddleware, policy=policy, sessions=sessions, throttle=throttle)
    templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
    templates.env.globals["logged_in_pages"] = bool(policy.token)  # a logout button on every page
    app.mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static")

    if warm_up_in_background:
        threading.Thread(target=state.warm_up, name="tving-warm-up", daemon=True).start()
    else:
        state.warm_up()

    # ------------------------------------------------------------ errors
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

    def require_ready() -> None:
        ready, detail = state.readiness()
        if not ready:
            raise HTTPException(status_code=503, detail=detail, headers={"Retry-After": "5"})

    def public(payload: Any) -> Any:
        """``payload`` without absolute server paths, unless the server shows them."""
        if policy.show_paths:
            return payload
        if isinstance(payload, dict):
            return {k: public(v) for k, v in payload.items() if k not in PATH_KEYS}
        if isinstance(payload, list):
            return [public(v) for v in payload]
        return payload

    def known_video(video_id: str) -> dict[str, Any]:
        if not is_video_id(video_id):
            raise HTTPException(status_code=422, detail="invalid video id")
        try:
            summary = state.search.store.video_summary(video_id)
        except StoreError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        if summary is None:
            raise HTTPException(status_code=404, detail=f"unknown video id {video_id!r}")
        return summary.__dict__

    # --------------------------------------------------------------- API
    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness: the process answers. Whether search can answer: /ready."""
        return {"status": "alive"}

    @app.get("/ready", tags=["service"])
    def ready() -> JSONResponse:
        """200 once the query models are loaded and the scene table exists, else 503."""
        ok, detail = state.readiness()
        body = {
            "status": "ready" if ok else "not ready",
            "detail": detail,
            "profile": runtime.profile.name,
            "models": runtime.model_ids(),
            "describe_models": state.describe_models,
            "warm_up_seconds": state.warm_up_seconds,
        }
        return JSONResponse(body, status_code=200 if ok else 503, headers={} if ok else {"Retry-After": "5"})

    async def run_search(
        q: str,
        k: int,
        video: list[str] | None,
        start: float | None,
        end: float | None,
        per_video: int | None,
        min_score: float | None = None,
    ) -> dict[str, Any]:
        require_ready()
        if len(video or ()) > MAX_FILTER_IDS:
            raise HTTPException(status_code=422, detail=f"at most {MAX_FILTER_IDS} video ids per search")
        for video_id in video or ():
            if not is_video_id(video_id):
                raise HTTPException(status_code=422, detail=f"invalid video id {video_id[:60]!r}")
        try:
            # Concurrent searches are answered in batches (much cheaper per query on a small CPU).
            future = state.batcher.submit(
                q, k=k, video_ids=tuple(video or ()), start=start, end=end, per_video=per_video, min_score=min_score
            )
            response = await asyncio.wait_for(asyncio.wrap_future(future), timeout=SEARCH_TIMEOUT_S)
        except QueryError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        except StoreError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        except TimeoutError as exc:
            raise HTTPException(status_code=504, detail="the search took too long; retry") from exc
        payload = response.to_dict()
        for result in payload["results"]:
            result["thumbnail_url"] = thumbnail_url(result["thumbnail"])
            result["stream_url"] = f"/videos/{result['video_id']}/stream"
        return public(payload)

    @app.get("/search", tags=["search"], responses={200: {"model": SearchOut}}, response_class=JSONResponse)
    async def search(
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="Korean or English")],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 5,
        video: Annotated[
            list[str] | None, Query(description=f"only these video ids (at most {MAX_FILTER_IDS})")
        ] = None,
        start: Annotated[
            float | None, Query(ge=0, le=MAX_SECONDS, allow_inf_nan=False, description="scenes ending after (s)")
        ] = None,
        end: Annotated[
            float | None, Query(gt=0, le=MAX_SECONDS, allow_inf_nan=False, description="scenes starting before (s)")
        ] = None,
        per_video: Annotated[int | None, Query(ge=1, le=MAX_K)] = None,
        min_score: Annotated[
            float | None, Query(ge=0, le=1, allow_inf_nan=False, description="default: the profile's")
        ] = None,
    ) -> JSONResponse:
        """Top-k frames for a query. (Returned as a plain JSON response: FastAPI's generic
        encoder costs more CPU per query than the rest of the request handling.)"""
        return JSONResponse(await run_search(q, k, video, start, end, per_video, min_score))

    @app.post("/describe", tags=["video-to-text"])
    async def describe(request: DescribeRequest) -> dict[str, Any]:
        require_ready()
        known_video(request.video_id)
        return await _describe(request.video_id, request.start, request.end, request.language, request.frames)

    @app.post("/describe/upload", tags=["video-to-text"])
    async def describe_upload(
        file: Annotated[UploadFile, File(description="a video file")],
        start: Annotated[float, Form(ge=0, le=MAX_SECONDS, allow_inf_nan=False)],
        end: Annotated[float, Form(gt=0, le=MAX_SECONDS, allow_inf_nan=False)],
        language: Annotated[Literal["en", "ko"], Form()] = "en",
    ) -> dict[str, Any]:
        require_ready()
        folder = Path(tempfile.mkdtemp(prefix="describe-", dir=_ensure(paths.data_dir / "uploads")))
        try:
            saved = await _save_upload(file, folder, state.max_upload_bytes, state.decode_slots)
            return await _describe(str(saved), start, end, language, None)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    async def _describe(video: str, start: float, end: float, language: str, frames: int | None) -> dict[str, Any]:
        if end - start > MAX_SPAN_SECONDS or start >= end:
            raise HTTPException(
                status_code=422, detail=f"need start < end and a span of at most {MAX_SPAN_SECONDS:.0f} s"
            )
        if state.describe_models == "loading":
            raise HTTPException(
                status_code=503, detail="describe models are loading; retry shortly", headers={"Retry-After": "10"}
            )
        if not state.describe_slots.acquire(blocking=False):
            raise HTTPException(status_code=429, detail="describe is busy; retry shortly", headers={"Retry-After": "5"})
        try:
            result = await run_in_threadpool(state.describer.describe, video, start, end, language, frames)
        except (DescribeError, VideoError) as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        except VideoNotRegisteredError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        except ModelError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        finally:
            state.describe_slots.release()
        return public(result.to_dict())

    def video_page(limit: int, cursor: str | None) -> tuple[list[Any], str | None]:
        """Indexed videos in id order, ``limit`` from after ``cursor`` (a video id); the next cursor."""
        try:
            summaries = state.search.store.videos() if state.table_ready() else []
        except StoreError:
            summaries = []
        summaries = sorted(summaries, key=lambda v: v.video_id)
        if cursor:
            summaries = [v for v in summaries if v.video_id > cursor]
        page = summaries[:limit]
        return page, (page[-1].video_id if len(summaries) > limit else None)

    @app.get("/videos", tags=["library"])
    def videos(limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
        page, next_cursor = video_page(limit, cursor)
        items = [
            {**v.__dict__, "stream_url": f"/videos/{v.video_id}/stream", "url": f"/videos/{v.video_id}"} for v in page
        ]
        return {"videos": public(items), "next_cursor": next_cursor}

    @app.get("/videos/{video_id}", tags=["library"])
    def video_scenes(video_id: str) -> dict[str, Any]:
        require_ready()
        summary = known_video(video_id)
        columns = ["scene_id", "scene_index", "start", "end", "caption", "transcript", "keyframe_times", "thumbnails"]
        scenes = state.search.store.scenes_of(video_id, columns)
        for scene in scenes:
            scene["thumbnail_urls"] = [thumbnail_url(t) for t in scene["thumbnails"]]
        return public({**summary, "stream_url": f"/videos/{video_id}/stream", "scenes": scenes})

    @app.get("/videos/{video_id}/stream", tags=["library"])
    def stream(request: Request, video_id: str) -> FileResponse:
        """The video file, while it is still the file that was indexed (see query_app.files);
        FileResponse answers HTTP range requests, so the browser can seek."""
        known_video(video_id)
        entry = indexed_file(video_id)
        try:
            fd = state.files.open(entry)
        except FileRefusedError as exc:
            log.warning("not serving %s: %s", video_id, exc)
            raise HTTPException(status_code=404, detail="the video file is not the one that was indexed") from exc
        # The bytes come from the checked descriptor; the server's own path sending would reopen
        # the path after the descriptor is closed, so this response streams them itself.
        extensions = request.scope.get("extensions") or {}
        request.scope["extensions"] = {k: v for k, v in extensions.items() if k != "http.response.pathsend"}
        return DescriptorFileResponse(
            fd, served_path(fd, entry.path), stat_result=os.fstat(fd), media_type=_media_type(Path(entry.path))
        )

    def indexed_file(video_id: str) -> IndexedFile:
        from tving_resources.catalog.video_catalog import VideoCatalog

        entry = VideoCatalog(paths.catalog_url).find(video_id) if paths.catalog_exists() else None
        if entry is None or not entry.indexed_version or not entry.fingerprint:
            raise HTTPException(status_code=404, detail="the video is not indexed (any more)")
        size, mtime_ns = (int(part) for part in entry.indexed_version.split("-"))
        return IndexedFile(entry.path, size, mtime_ns, entry.fingerprint)

    @app.get("/thumbnails/{relative:path}", tags=["library"])
    def thumbnail(relative: str) -> FileResponse:
        root = paths.artifacts_dir.resolve()
        target = (root / relative).resolve()
        if not target.is_relative_to(root) or target.suffix.lower() != ".jpg" or not target.is_file():
            raise HTTPException(status_code=404, detail="no such thumbnail")
        return FileResponse(target, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.post("/upload", tags=["library"])
    async def upload(file: Annotated[UploadFile, File(description="a video file")]) -> dict[str, Any]:
        target_dir = _ensure(paths.videos_dir / "uploads")
        # Written on the watched folder's own filesystem under a hidden unique name (the sensor
        # skips hidden files), checked, then linked to a free name: never a partial file, never
        # an overwrite of another upload with the same name.
        staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=target_dir))
        try:
            saved = await _save_upload(file, staging, state.max_upload_bytes, state.decode_slots)
            target = _link_to_free_name(saved, target_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        from tving_resources.ids import video_id_for

        return {
            "saved_as": target.name if not policy.show_paths else str(target),
            "video_id": video_id_for(target),
            "status": "saved in the watched folder; the Dagster sensor will index it",
        }

    @app.get("/failures", tags=["library"])
    def failures(limit: Limit = 50) -> list[dict[str, Any]]:
        """Videos whose indexing failed, with the stage and the message (from the catalog)."""
        items = [
            {"video_id": e.video_id, "name": e.name, "path": e.path, "failed_stage": e.failed_stage, "error": e.error}
            for e in failed_videos(paths)[:limit]
        ]
        return public(items)

    def model_name(model: str) -> str:
        """A model id as shown: a local folder (an adapter, a models-folder override) by its last
        parts only, unless the server shows paths."""
        if policy.show_paths:
            return model
        return "+".join(Path(part).name if part.startswith("/") else part for part in model.split("+"))

    def scene_tables() -> list[dict[str, Any]]:
        from tving_resources.store.scene_store import inspect_tables
        from tving_resources.store.tables import TableRegistry

        try:
            roles = TableRegistry(state.search.uri).roles()
            found = inspect_tables(state.search.uri)
        except TvingError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        return [
            {
                "table": t.name,
                "role": roles.get(t.name, "unregistered"),
                "videos": t.videos,
                "rows": t.rows,
                "rows_per_model": {
                    column: {model_name(m): n for m, n in models.items()} for column, models in t.rows_per_model.items()
                },
            }
            for t in found
        ]

    @app.get("/tables", tags=["library"])
    def tables() -> list[dict[str, Any]]:
        """Scene tables (live, building for a new encoder, retired) and their rows per model."""
        return scene_tables()

    @app.get("/status", tags=["library"])
    async def indexing_status() -> dict[str, Any]:
        if state.dagster is None:
            return {"configured": False, "hint": "set TVING_DAGSTER_URL to the Dagster webserver's URL"}
        return {"configured": True, **await run_in_threadpool(state.dagster.index_runs)}

    # -------------------------------------------------------------- pages
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def search_page(request: Request, q: str = "", k: int = 5, similar: str = "") -> HTMLResponse:
        context: dict[str, Any] = {"q": q[:MAX_QUERY_CHARS], "results": None, "error": None, "page": "search"}
        try:
            if similar:
                context.update(await run_similar(None, similar[:100], max(1, min(k, MAX_K)), None))
            elif q.strip():
                context.update(await run_search(q[:MAX_QUERY_CHARS], max(1, min(k, MAX_K)), None, None, None, None))
        except HTTPException as exc:
            context["error"] = exc.detail
        return templates.TemplateResponse(request, "search.html", context)

    @app.post("/", response_class=HTMLResponse, include_in_schema=False)
    async def image_search_page(request: Request, image: Annotated[UploadFile, File()]) -> HTMLResponse:
        context: dict[str, Any] = {"q": "", "results": None, "error": None, "page": "search"}
        try:
            context.update(await run_similar(await _read_image(image, state.decode_slots), None, 5, None))
        except HTTPException as exc:
            context["error"] = exc.detail
        return templates.TemplateResponse(request, "search.html", context)

    async def run_similar(image: Any, scene: str | None, k: int, min_score: float | None) -> dict[str, Any]:
        from .similar import SimilarSearch

        require_ready()
        similar = SimilarSearch(state.search)
        try:
            if image is not None:
                response = await run_in_threadpool(similar.by_image, image, k=k, min_score=min_score)
            else:
                response = await run_in_threadpool(similar.by_scene, scene, k=k, min_score=min_score)
        except QueryError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        except StoreError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        payload = response.to_dict()
        for result in payload["results"]:
            result["thumbnail_url"] = thumbnail_url(result["thumbnail"])
            result["stream_url"] = f"/videos/{result['video_id']}/stream"
        return public(payload)

    @app.post("/search/image", tags=["search"])
    async def search_image(
        file: Annotated[UploadFile, File(description="an image (JPEG, PNG, WebP)")],
        k: Annotated[int, Form(ge=1, le=MAX_K)] = 5,
        min_score: Annotated[float | None, Form(ge=0, le=1, allow_inf_nan=False)] = None,
    ) -> dict[str, Any]:
        """Frames that look like an image (lite: its labels; full: its CLIP embedding)."""
        return await run_similar(await _read_image(file, state.decode_slots), None, k, min_score)

    @app.get("/search/similar", tags=["search"])
    async def search_similar(
        scene: Annotated[str, Query(max_length=80, description="a scene id from a result: <video id>:<5 digits>")],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 5,
        min_score: Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)] = None,
    ) -> dict[str, Any]:
        """More like this: scenes whose frames look like the given scene's (it is left out)."""
        return await run_similar(None, scene, k, min_score)

    @app.get("/describe", response_class=HTMLResponse, include_in_schema=False)
    def describe_page(request: Request) -> HTMLResponse:
        page, _ = video_page(MAX_PAGE, None)
        listed = [{**v.__dict__, "stream_url": f"/videos/{v.video_id}/stream"} for v in page]
        return templates.TemplateResponse(request, "describe.html", {"page": "describe", "videos": listed})

    @app.get("/library", response_class=HTMLResponse, include_in_schema=False)
    def library_page(request: Request, limit: Limit = 20, cursor: Cursor = None) -> HTMLResponse:
        page, next_cursor = video_page(limit, cursor)
        items = []
        for v in page:
            try:
                items.append(video_scenes(v.video_id))
            except HTTPException:
                continue
        return templates.TemplateResponse(
            request,
            "library.html",
            {
                "page": "library",
                "videos": items,
                "next_cursor": next_cursor,
                "limit": limit,
                "failures": failures(),
                "tables": scene_tables(),
                "dagster": state.dagster is not None,
                "max_upload_mb": state.max_upload_bytes // 2**20,
                "extensions": sorted(VIDEO_EXTENSIONS),
            },
        )

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "login.html", {"page": "login", "error": None})

    @app.post("/login", include_in_schema=False, response_model=None)
    def login(request: Request, token: Annotated[str, Form(max_length=500)]) -> Response:
        import hmac

        address = client_address(request.scope)
        wait = throttle.wait_seconds(address)
        if wait > 0:
            context = {"page": "login", "error": f"too many wrong tokens from your address: wait {math.ceil(wait)} s"}
            headers = {"Retry-After": str(max(1, math.ceil(wait)))}
            return templates.TemplateResponse(request, "login.html", context, status_code=429, headers=headers)
        if not policy.token or not hmac.compare_digest(token.encode(), policy.token.encode()):
            throttle.failed(address)
            context = {"page": "login", "error": "wrong token" if policy.token else "this server has no token"}
            return templates.TemplateResponse(request, "login.html", context, status_code=401)
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

    @app.post("/logout", include_in_schema=False, response_model=None)
    def logout(request: Request) -> Response:
        """End this browser's session (the cookie is useless afterwards, even if kept)."""
        session = cookie_value(request.headers.get("cookie", ""), SESSION_COOKIE)
        if session:
            sessions.end(session)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
        return response

    return app


MAX_IMAGE_BYTES = 20 * 2**20
MAX_IMAGE_PIXELS = 50_000_000
DECODE_CONCURRENCY = 2  # uploaded images and videos decoded at once (2 cores; more wait: 429)


@contextmanager
def _decode_slot(slots: threading.BoundedSemaphore) -> Iterator[None]:
    """A place among the decodes allowed at once, or 429 at once (never a queue that grows)."""
    if not slots.acquire(blocking=False):
        raise HTTPException(
            status_code=429,
            detail="too many uploads being checked at once; retry shortly",
            headers={"Retry-After": "2"},
        )
    try:
        yield
    finally:
        slots.release()


async def _read_image(file: UploadFile, slots: threading.BoundedSemaphore):
    """An uploaded image: its size read from its header first (a small file can declare a huge
    picture), then decoded off the event loop, a bounded number at once."""
    from PIL import Image, UnidentifiedImageError

    data = await file.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise HTTPException(status_code=413, detail=f"images are limited to {MAX_IMAGE_BYTES // 2**20} MB")
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as exc:  # Pillow's own cap, far above ours
        raise HTTPException(
            status_code=413, detail=f"image larger than {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels"
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise HTTPException(status_code=415, detail="not a readable image (JPEG, PNG or WebP)") from exc
    if image.width * image.height > MAX_IMAGE_PIXELS:
        raise HTTPException(
            status_code=413,
            detail=f"image of {image.width}x{image.height} pixels: larger than {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels",
        )

    def decode():
        try:
            image.load()
            return image.convert("RGB")
        except (Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
            raise HTTPException(status_code=415, detail="not a readable image (JPEG, PNG or WebP)") from exc

    with _decode_slot(slots):
        return await run_in_threadpool(decode)


def failed_videos(paths: Paths) -> list:
    from tving_resources.catalog.video_catalog import VideoCatalog

    return VideoCatalog(paths.catalog_url).failures() if paths.catalog_exists() else []


def thumbnail_url(relative: str) -> str:
    return "/thumbnails/" + quote(relative) if relative else ""


def _media_type(path: Path) -> str:
    return {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".mkv": "video/x-matroska",
            ".mov": "video/quicktime"}.get(path.suffix.lower(), "application/octet-stream")  # fmt: skip


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _link_to_free_name(source: Path, folder: Path) -> Path:
    """Give ``source`` a name in ``folder`` that no other file has, atomically (a hard link fails
    instead of overwriting), and return it."""
    stem, suffix = source.stem, source.suffix
    candidate = folder / source.name
    for _ in range(100):
        try:
            os.link(source, candidate)
            return candidate
        except FileExistsError:
            candidate = folder / f"{stem}-{uuid.uuid4().hex[:8]}{suffix}"
    raise HTTPException(status_code=409, detail="could not find a free file name; rename the file")


def safe_file_name(name: str) -> str:
    """A file name reduced to letters, digits, spaces and ``._-`` (no path, no leading dots)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c if c.isalnum() or c in " ._-" else "_" for c in base).strip(" .")[:200]


async def _save_upload(file: UploadFile, folder: Path, max_bytes: int, slots: threading.BoundedSemaphore) -> Path:
    """Save an upload under its sanitised name (checked before anything else), then check its
    size while it is written and that it is a video within the configured limits (frame size
    and length, read from its headers before a frame is decoded), a bounded number at once."""
    from tving_resources.media.video import probe_video

    safe = safe_file_name(file.filename or "")
    suffix = Path(safe).suffix.lower()
    if not Path(safe).stem.strip(" ._-") or suffix not in VIDEO_EXTENSIONS:
        raise HTTPException(
            status_code=415,
            detail=f"{safe or 'the file'}: not a video file name ({', '.join(sorted(VIDEO_EXTENSIONS))})",
        )
    target = folder / safe
    written = 0
    with target.open("wb") as out:
        while chunk := await file.read(1 << 20):
            written += len(chunk)
            if written > max_bytes:
                raise HTTPException(status_code=413, detail=f"{safe}: larger than {max_bytes // 2**20} MB")
            out.write(chunk)
    with _decode_slot(slots):
        try:
            await run_in_threadpool(probe_video, target, "upload-0000000000", False)
        except VideoOverLimitError as exc:
            raise HTTPException(status_code=413, detail=str(exc)) from exc
        except VideoError as exc:
            raise HTTPException(status_code=415, detail=str(exc)) from exc
    return target
