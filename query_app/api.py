"""The HTTP API and web pages (FastAPI), served by ``tving serve``.

Query-side models load once, in a background thread at start-up; ``/health`` says when they are
ready, and a search never loads a model. Every input is validated before it reaches the index:
bounded ``k`` and query length, video ids checked against the id pattern and the table, files
served only from inside the data folder, and no user text ever pasted into a LanceDB filter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import tempfile
import threading
import time
import typing
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
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
)
from tving_resources.ids import VIDEO_EXTENSIONS, VIDEO_ID_PATTERN, is_video_id
from tving_resources.runtime import ModelRuntime

from .dagster_status import DagsterStatusClient
from .describe import DescribeError, VideoDescriber
from .search import MAX_K, MAX_QUERY_CHARS, QueryError, SceneSearch, SearchBatcher, SearchResponse, SearchResult

log = logging.getLogger("tving.api")
WEB_DIR = Path(__file__).parent / "web"
VideoId = Annotated[str, Query(pattern=VIDEO_ID_PATTERN.pattern, description="a video id from /videos")]
DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3


@dataclass
class AppState:
    paths: Paths
    runtime: ModelRuntime
    search: SceneSearch
    describer: VideoDescriber
    batcher: SearchBatcher
    dagster: DagsterStatusClient | None
    max_upload_bytes: int
    status: str = "loading"  # loading | ready | error
    error: str | None = None
    warm_up_seconds: dict[str, float] = field(default_factory=dict)

    def warm_up(self) -> None:
        try:
            started = time.perf_counter()
            self.warm_up_seconds = {k: round(v, 2) for k, v in self.search.warm_up().items()}
            self.warm_up_seconds["total"] = round(time.perf_counter() - started, 2)
            self.status = "ready"
        except TvingError as exc:
            self.status, self.error = "error", str(exc)
        except Exception as exc:
            log.exception("warm-up failed")
            self.status, self.error = "error", f"{type(exc).__name__}: {exc}"


def _response_model(cls: type, name: str, **extra: Any) -> type[BaseModel]:
    """An OpenAPI model derived from a query-app dataclass (plus fields the API adds)."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {f.name: (hints[f.name], ...) for f in dataclasses.fields(cls)}
    return create_model(name, **{**fields, **extra})


SearchResultOut = _response_model(SearchResult, "SearchResultOut", thumbnail_url=(str, ...), stream_url=(str, ...))
SearchOut = _response_model(SearchResponse, "SearchOut", results=(list[SearchResultOut], ...))


class DescribeRequest(BaseModel):
    video_id: str = Field(pattern=VIDEO_ID_PATTERN.pattern, description="an indexed video id")
    start: float = Field(ge=0, description="seconds")
    end: float = Field(gt=0, description="seconds")
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
) -> FastAPI:
    paths = paths or resolve_paths()
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
    )
    app = FastAPI(
        title="tving scene search",
        version="0.1.0",
        description="Search video scenes in Korean or English, and describe any span of a video.",
    )
    app.state.tving = state
    templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
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
        if state.status != "ready":
            detail = state.error if state.status == "error" else "models are loading; retry in a few seconds"
            raise HTTPException(status_code=503, detail=detail, headers={"Retry-After": "5"})

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
        return {
            "status": state.status,
            "error": state.error,
            "profile": runtime.profile.name,
            "models": runtime.model_ids(),
            "warm_up_seconds": state.warm_up_seconds,
        }

    async def run_search(
        q: str, k: int, video: list[str] | None, start: float | None, end: float | None, per_video: int | None
    ) -> dict[str, Any]:
        require_ready()
        for video_id in video or ():
            if not is_video_id(video_id):
                raise HTTPException(status_code=422, detail=f"invalid video id {video_id[:60]!r}")
        try:
            # Concurrent searches are answered in batches (much cheaper per query on a small CPU).
            future = state.batcher.submit(
                q, k=k, video_ids=tuple(video or ()), start=start, end=end, per_video=per_video
            )
            response = await asyncio.wrap_future(future)
        except QueryError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        except StoreError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        payload = response.to_dict()
        for result in payload["results"]:
            result["thumbnail_url"] = thumbnail_url(result["thumbnail"])
            result["stream_url"] = f"/videos/{result['video_id']}/stream"
        return payload

    @app.get("/search", tags=["search"], responses={200: {"model": SearchOut}}, response_class=JSONResponse)
    async def search(
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="Korean or English")],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 5,
        video: Annotated[list[str] | None, Query(description="only these video ids")] = None,
        start: Annotated[float | None, Query(ge=0, description="scenes ending after (s)")] = None,
        end: Annotated[float | None, Query(gt=0, description="scenes starting before (s)")] = None,
        per_video: Annotated[int | None, Query(ge=1, le=MAX_K)] = None,
    ) -> JSONResponse:
        """Top-k frames for a query. (Returned as a plain JSON response: FastAPI's generic
        encoder costs more CPU per query than the rest of the request handling.)"""
        return JSONResponse(await run_search(q, k, video, start, end, per_video))

    @app.post("/describe", tags=["video-to-text"])
    async def describe(request: DescribeRequest) -> dict[str, Any]:
        require_ready()
        known_video(request.video_id)
        return await _describe(request.video_id, request.start, request.end, request.language, request.frames)

    @app.post("/describe/upload", tags=["video-to-text"])
    async def describe_upload(
        file: Annotated[UploadFile, File(description="a video file")],
        start: Annotated[float, Form(ge=0)],
        end: Annotated[float, Form(gt=0)],
        language: Annotated[Literal["en", "ko"], Form()] = "en",
    ) -> dict[str, Any]:
        require_ready()
        folder = Path(tempfile.mkdtemp(prefix="describe-", dir=_ensure(paths.data_dir / "uploads")))
        try:
            saved = await _save_upload(file, folder, state.max_upload_bytes)
            return await _describe(str(saved), start, end, language, None)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    async def _describe(video: str, start: float, end: float, language: str, frames: int | None) -> dict[str, Any]:
        try:
            result = await run_in_threadpool(state.describer.describe, video, start, end, language, frames)
        except (DescribeError, VideoError) as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        except VideoNotRegisteredError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        except ModelError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        return result.to_dict()

    @app.get("/videos", tags=["library"])
    def videos() -> list[dict[str, Any]]:
        try:
            summaries = state.search.store.videos() if state.status == "ready" else []
        except StoreError:
            summaries = []
        return [
            {**v.__dict__, "stream_url": f"/videos/{v.video_id}/stream", "url": f"/videos/{v.video_id}"}
            for v in summaries
        ]

    @app.get("/videos/{video_id}", tags=["library"])
    def video_scenes(video_id: str) -> dict[str, Any]:
        require_ready()
        summary = known_video(video_id)
        columns = ["scene_id", "scene_index", "start", "end", "caption", "transcript", "keyframe_times", "thumbnails"]
        scenes = state.search.store.scenes_of(video_id, columns)
        for scene in scenes:
            scene["thumbnail_urls"] = [thumbnail_url(t) for t in scene["thumbnails"]]
        return {**summary, "stream_url": f"/videos/{video_id}/stream", "scenes": scenes}

    @app.get("/videos/{video_id}/stream", tags=["library"])
    def stream(video_id: str) -> FileResponse:
        summary = known_video(video_id)
        path = Path(summary["video_path"])
        if not path.is_file():
            raise HTTPException(status_code=404, detail="the video file is no longer on disk")
        # FileResponse answers HTTP range requests, so the browser can seek.
        return FileResponse(path, media_type=_media_type(path), filename=None)

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
        staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=_ensure(paths.data_dir / "uploads")))
        try:
            saved = await _save_upload(file, staging, state.max_upload_bytes)
            target = _free_name(target_dir, saved.name)
            shutil.move(saved, target)  # only a whole, checked file ever appears in the watched folder
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        from tving_resources.ids import video_id_for

        return {
            "saved_as": str(target),
            "video_id": video_id_for(target),
            "status": "saved in the watched folder; the Dagster sensor will index it",
        }

    @app.get("/failures", tags=["library"])
    def failures() -> list[dict[str, Any]]:
        """Videos whose indexing failed, with the stage and the message (from the catalog)."""
        return [
            {"video_id": e.video_id, "name": e.name, "path": e.path, "failed_stage": e.failed_stage, "error": e.error}
            for e in failed_videos(paths)
        ]

    @app.get("/status", tags=["library"])
    async def indexing_status() -> dict[str, Any]:
        if state.dagster is None:
            return {"configured": False, "hint": "set TVING_DAGSTER_URL to the Dagster webserver's URL"}
        return {"configured": True, **await run_in_threadpool(state.dagster.index_runs)}

    # -------------------------------------------------------------- pages
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def search_page(request: Request, q: str = "", k: int = 5) -> HTMLResponse:
        context: dict[str, Any] = {"q": q[:MAX_QUERY_CHARS], "results": None, "error": None, "page": "search"}
        if q.strip():
            try:
                context.update(await run_search(q[:MAX_QUERY_CHARS], max(1, min(k, MAX_K)), None, None, None, None))
            except HTTPException as exc:
                context["error"] = exc.detail
        return templates.TemplateResponse(request, "search.html", context)

    @app.get("/describe", response_class=HTMLResponse, include_in_schema=False)
    def describe_page(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "describe.html", {"page": "describe", "videos": videos()})

    @app.get("/library", response_class=HTMLResponse, include_in_schema=False)
    def library_page(request: Request) -> HTMLResponse:
        items = []
        for v in videos():
            try:
                items.append(video_scenes(v["video_id"]))
            except HTTPException:
                continue
        return templates.TemplateResponse(
            request,
            "library.html",
            {
                "page": "library",
                "videos": items,
                "failures": failures(),
                "dagster": state.dagster is not None,
                "max_upload_mb": state.max_upload_bytes // 2**20,
                "extensions": sorted(VIDEO_EXTENSIONS),
            },
        )

    return app


def failed_videos(paths: Paths) -> list:
    from tving_resources.catalog import VideoCatalog

    return VideoCatalog(paths.catalog_url).failures() if paths.catalog_exists() else []


def thumbnail_url(relative: str) -> str:
    return "/thumbnails/" + quote(relative) if relative else ""


def _media_type(path: Path) -> str:
    return {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".mkv": "video/x-matroska",
            ".mov": "video/quicktime"}.get(path.suffix.lower(), "application/octet-stream")  # fmt: skip


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    while target.exists():
        target = folder / f"{Path(name).stem}-{uuid.uuid4().hex[:6]}{Path(name).suffix}"
    return target


async def _save_upload(file: UploadFile, folder: Path, max_bytes: int) -> Path:
    """Save an upload under a sanitised name; check its extension, size and that it is a video."""
    from tving_resources.video import probe_video

    name = Path(file.filename or "upload.mp4").name
    if Path(name).suffix.lower() not in VIDEO_EXTENSIONS:
        raise HTTPException(
            status_code=415, detail=f"{name}: not a video file type ({', '.join(sorted(VIDEO_EXTENSIONS))})"
        )
    safe = "".join(c if c.isalnum() or c in " ._-" else "_" for c in name).strip(" .") or "upload.mp4"
    target = folder / safe
    written = 0
    with target.open("wb") as out:
        while chunk := await file.read(1 << 20):
            written += len(chunk)
            if written > max_bytes:
                raise HTTPException(status_code=413, detail=f"{name}: larger than {max_bytes // 2**20} MB")
            out.write(chunk)
    try:
        await run_in_threadpool(probe_video, target, "upload-0000000000", False)
    except VideoError as exc:
        raise HTTPException(status_code=415, detail=str(exc)) from exc
    return target
