"""From search to the edit on the web: a span of a video as a clip, selected results as a reel
or a timeline, and a page that opens a video at a moment (a link to share)."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from query_app.editing import Pick, timeline_text
from query_app.web.files import FileRefusedError, SentFileResponse
from query_app.web.state import MAX_SECONDS, AppState, app_state
from tving_resources.edit.cuts import CutError, Span, cut_clip, make_reel
from tving_resources.edit.timeline import SUFFIXES
from tving_resources.errors import TvingError
from tving_resources.ids import is_video_id

router = APIRouter()
State = Annotated[AppState, Depends(app_state)]
Seconds = Annotated[float, Query(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
MAX_WEB_SECONDS = 600.0  # the longest clip or reel the server cuts
MAX_ITEMS = 50
MEDIA_TYPES = {"otio": "application/json", "edl": "text/plain", "fcpxml": "application/xml"}


def _parse_items(items: list[str]) -> list[tuple[str, float, float]]:
    """``<video id>:<start>:<end>`` items, checked."""
    if not items or len(items) > MAX_ITEMS:
        raise HTTPException(status_code=422, detail=f"select 1 to {MAX_ITEMS} results")
    parsed = []
    for item in items:
        video_id, _, times = item.partition(":")
        start, _, end = times.partition(":")
        try:
            span = (video_id, float(start), float(end))
        except ValueError:
            span = None
        if span is None or not is_video_id(video_id) or not 0 <= span[1] < span[2] <= MAX_SECONDS:
            raise HTTPException(status_code=422, detail=f"invalid item {item[:80]!r}: <video id>:<start>:<end>")
        parsed.append(span)
    if sum(end - start for _, start, end in parsed) > MAX_WEB_SECONDS:
        raise HTTPException(status_code=422, detail=f"at most {MAX_WEB_SECONDS:.0f} s in all")
    return parsed


def _checked_span(state: AppState, stack: ExitStack, video_id: str, start: float, end: float) -> Span:
    """The span of the indexed file, read through a descriptor checked to be that file."""
    summary = state.known_video(video_id)
    entry = state.indexed_file(video_id)
    try:
        fd = state.files.open(entry)
    except FileRefusedError as exc:
        raise HTTPException(status_code=404, detail="the video file is not the one that was indexed") from exc
    stack.callback(os.close, fd)
    try:
        return Span(Path(entry.path), start, end, fd).check(summary["duration"])
    except CutError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc


def _cut(state: AppState, work) -> tuple[Path, Path]:
    """Run ``work(folder) -> file`` in a temporary folder, one of a few at once (the server's
    ``cut_slots``); the folder is deleted after the response is sent."""
    if not state.cut_slots.acquire(blocking=False):
        raise HTTPException(status_code=429, detail="cutting is busy; retry shortly", headers={"Retry-After": "5"})
    folder = Path(tempfile.mkdtemp(prefix="tving-cut-"))
    try:
        return folder, work(folder)
    except CutError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        state.cut_slots.release()


def _download(folder: Path, file: Path, name: str, media_type: str) -> FileResponse:
    # sent by the app, then the folder goes (handed to the server as a path, it went first)
    return SentFileResponse(
        file, media_type=media_type, filename=name, background=BackgroundTask(shutil.rmtree, folder, True)
    )


@router.get("/videos/{video_id}/clip", tags=["edit"])
def clip(state: State, video_id: str, start: Seconds, end: Seconds) -> FileResponse:
    """START to END of the video as an MP4 (frame-accurate, with its audio; at most 600 s)."""
    if end - start > MAX_WEB_SECONDS or end <= start:
        raise HTTPException(status_code=422, detail=f"need start < end and at most {MAX_WEB_SECONDS:.0f} s")
    with ExitStack() as stack:
        span = _checked_span(state, stack, video_id, start, end)
        folder, file = _cut(state, lambda folder: cut_clip(span, folder / "clip.mp4"))
    return _download(folder, file, f"{video_id}_{start:.2f}-{end:.2f}.mp4", "video/mp4")


@router.post("/reel", tags=["edit"])
def reel(state: State, item: Annotated[list[str], Form(description="<video id>:<start>:<end>, in order")]) -> Response:
    """The items one after another in one MP4 (1280x720, 25 fps; at most 50 items, 600 s)."""
    parsed = _parse_items(item)
    with ExitStack() as stack:
        parts = [_checked_span(state, stack, *p) for p in parsed]
        folder, file = _cut(state, lambda folder: make_reel(parts, folder / "reel.mp4"))
    return _download(folder, file, "tving-reel.mp4", "video/mp4")


@router.post("/timeline", tags=["edit"])
def timeline(
    state: State,
    item: Annotated[list[str], Form(description="<video id>:<start>:<end>, in order")],
    format: Annotated[str, Form(pattern="^(otio|edl|fcpxml)$")] = "otio",
    query: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """The items as a timeline (otio, edl, fcpxml). Media are named by their path on the server
    when it shows paths (``--show-paths``), else by file name (relink them in the editor)."""
    parsed = _parse_items(item)
    chosen = []
    for video_id, start, end in parsed:
        summary = state.known_video(video_id)
        scenes = state.search.store.scenes_of(video_id, ["scene_index", "start", "end", "caption"])
        caption = next((s["caption"] for s in scenes if s["start"] <= start < s["end"]), "")
        chosen.append(Pick(video_id, Path(summary["video_path"]), summary["video_name"], start, end, caption))
    try:
        text = timeline_text(state.paths, state.search.runtime.profile.name, chosen, query, format,
                             name_only=not state.policy.show_paths)  # fmt: skip
    except TvingError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    return Response(
        text,
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="tving-timeline{SUFFIXES[format]}"'},
    )


@router.get("/watch/{video_id}", response_class=HTMLResponse, include_in_schema=False)
async def watch(request: Request, state: State, video_id: str, t: Seconds = 0.0, end: Seconds | None = None):
    """A page that plays the video from ``t`` (to ``end``): a link to a moment to share."""
    summary: dict[str, Any] = await run_in_threadpool(state.known_video, video_id)
    context = {"page": "watch", "video": state.public(summary), "video_id": video_id, "t": t, "end": end,
               "stream_url": f"/videos/{video_id}/stream"}  # fmt: skip
    return state.templates.TemplateResponse(request, "watch.html", context)
