"""The library: indexed videos and their scenes, the video files and thumbnails, uploads into
the watched folder, failures, scene tables, indexing status, and the library page."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse
from starlette.concurrency import run_in_threadpool

from query_app.web.files import DescriptorFileResponse, FileRefusedError, served_path
from query_app.web.state import MAX_PAGE, AppState, app_state
from query_app.web.uploads import ensure_folder, link_to_free_name, save_upload
from tving_resources.ids import VIDEO_EXTENSIONS, VIDEO_ID_PATTERN

log = logging.getLogger("tving.api")
router = APIRouter()
State = Annotated[AppState, Depends(app_state)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str | None, Query(pattern=VIDEO_ID_PATTERN.pattern, description="next_cursor of the last page")]
MEDIA_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".mkv": "video/x-matroska",
               ".mov": "video/quicktime"}  # fmt: skip


@router.get("/videos", tags=["library"])
def videos(state: State, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    page, next_cursor = state.video_page(limit, cursor)
    items = [{**v.__dict__, "stream_url": f"/videos/{v.video_id}/stream", "url": f"/videos/{v.video_id}"} for v in page]
    return {"videos": state.public(items), "next_cursor": next_cursor}


@router.get("/videos/{video_id}", tags=["library"])
def video_scenes(state: State, video_id: str) -> dict[str, Any]:
    return state.video_scenes(video_id)


@router.get("/videos/{video_id}/stream", tags=["library"])
def stream(request: Request, state: State, video_id: str) -> FileResponse:
    """The video file, while it is still the file that was indexed (see query_app.web.files);
    FileResponse answers HTTP range requests, so the browser can seek."""
    state.known_video(video_id)
    entry = state.indexed_file(video_id)
    try:
        fd = state.files.open(entry)
    except FileRefusedError as exc:
        log.warning("not serving %s: %s", video_id, exc)
        raise HTTPException(status_code=404, detail="the video file is not the one that was indexed") from exc
    # The bytes come from the checked descriptor; the server's own path sending would reopen
    # the path after the descriptor is closed, so this response streams them itself.
    extensions = request.scope.get("extensions") or {}
    request.scope["extensions"] = {k: v for k, v in extensions.items() if k != "http.response.pathsend"}
    media_type = MEDIA_TYPES.get(Path(entry.path).suffix.lower(), "application/octet-stream")
    return DescriptorFileResponse(fd, served_path(fd, entry.path), stat_result=os.fstat(fd), media_type=media_type)


@router.get("/thumbnails/{relative:path}", tags=["library"])
def thumbnail(state: State, relative: str) -> FileResponse:
    root = state.paths.artifacts_dir.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or target.suffix.lower() != ".jpg" or not target.is_file():
        raise HTTPException(status_code=404, detail="no such thumbnail")
    return FileResponse(target, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


@router.post("/upload", tags=["library"])
async def upload(state: State, file: Annotated[UploadFile, File(description="a video file")]) -> dict[str, Any]:
    from tving_resources.ids import video_id_for

    target_dir = ensure_folder(state.paths.videos_dir / "uploads")
    # Written on the watched folder's own filesystem under a hidden unique name (the sensor
    # skips hidden files), checked, then linked to a free name: never a partial file, never
    # an overwrite of another upload with the same name.
    staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=target_dir))
    try:
        saved = await save_upload(file, staging, state.max_upload_bytes, state.decode_slots)
        target = link_to_free_name(saved, target_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "saved_as": target.name if not state.policy.show_paths else str(target),
        "video_id": video_id_for(target),
        "status": "saved in the watched folder; the Dagster sensor will index it (see /status)",
    }


@router.get("/failures", tags=["library"])
def failures(state: State, limit: Limit = 50) -> list[dict[str, Any]]:
    """Videos whose indexing failed, with the stage and the message (from the catalog)."""
    return state.failures(limit)


@router.get("/tables", tags=["library"])
def tables(state: State) -> list[dict[str, Any]]:
    """Scene tables (live, building for a new encoder, retired) and their rows per model."""
    return state.scene_tables()


@router.get("/status", tags=["library"])
async def indexing_status(state: State) -> dict[str, Any]:
    """Where each video of the watched folder is on its way to being searchable (waiting for the
    sensor, queued, stage k of n, indexed, failed), and whether the Dagster daemon runs."""
    return state.public(await run_in_threadpool(state.indexing_progress))


@router.get("/library", response_class=HTMLResponse, include_in_schema=False)
def library_page(request: Request, state: State, limit: Limit = 20, cursor: Cursor = None) -> HTMLResponse:
    every = state.all_videos()
    page, next_cursor = state.video_page(limit, cursor, every)
    items = []
    for v in page:
        try:
            items.append(state.video_scenes(v.video_id))
        except HTTPException:
            continue
    # scenes shown elsewhere too (duplicate footage): marked on their thumbnails
    indexed_at = state.indexed_times([v["video_id"] for v in items])
    scene_ids = [scene["scene_id"] for v in items for scene in v["scenes"]]
    copies = state.search.duplicates.copies(state.search.duplicates.groups_of(scene_ids))
    for v in items:
        for scene in v["scenes"]:
            scene["copies"] = [
                {"name": Path(c.video_path).name, "start": c.start, "end": c.end}
                for c in copies.get(scene["scene_id"], ())
            ]
        v["copied_scenes"] = sum(1 for scene in v["scenes"] if scene["copies"])
        v["indexed_at"] = indexed_at.get(v["video_id"])
    folder = state.paths.videos_dir
    context = {
        "page": "library",
        "videos": items,
        "video_count": len(every),
        "watched_folder": str(folder) if state.policy.show_paths else folder.name,
        "next_cursor": next_cursor,
        "limit": limit,
        "failures": state.failures(50),
        "tables": state.scene_tables(),
        "max_upload_mb": state.max_upload_bytes // 2**20,
        "extensions": sorted(VIDEO_EXTENSIONS),
    }
    return state.templates.TemplateResponse(request, "library.html", context)
