"""Search: by text, by image, by a scene; the search page."""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, create_model

from query_app.search import MAX_K, MAX_QUERY_CHARS, SearchResponse, SearchResult
from query_app.web.i18n import N_, PageLanguage, request_language, site_path
from query_app.web.state import MAX_FILTER_IDS, MAX_SECONDS, AppState, app_state
from query_app.web.uploads import read_image
from tving_resources.catalog.people import MAX_NAME

router = APIRouter()
State = Annotated[AppState, Depends(app_state)]


def _response_model(cls: type, name: str, **extra: Any) -> type[BaseModel]:
    """An OpenAPI model derived from a query-app dataclass (plus fields the API adds)."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {f.name: (hints[f.name], ...) for f in dataclasses.fields(cls)}
    return create_model(name, **{**fields, **extra})


SearchResultOut = _response_model(SearchResult, "SearchResultOut", thumbnail_url=(str, ...), stream_url=(str, ...))
SearchOut = _response_model(SearchResponse, "SearchOut", results=(list[SearchResultOut], ...))


@router.get("/search", tags=["search"], responses={200: {"model": SearchOut}}, response_class=JSONResponse)
async def search(
    state: State,
    q: Annotated[
        str | None, Query(max_length=MAX_QUERY_CHARS, description="Korean or English (optional with person)")
    ] = None,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 5,
    video: Annotated[list[str] | None, Query(description=f"only these video ids (at most {MAX_FILTER_IDS})")] = None,
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
    person: Annotated[
        str | None, Query(min_length=1, max_length=MAX_NAME, description="only this person's scenes: a name or an id")
    ] = None,
    fold: Annotated[
        bool | None,
        Query(description="copies of the same footage: the best shown, the others in its `duplicates` (default on)"),
    ] = None,
) -> JSONResponse:
    """Top-k frames for a query; with ``person``, within that person's scenes (without ``q``: the
    person's scenes in video and time order). (Returned as a plain JSON response: FastAPI's
    generic encoder costs more CPU per query than the rest of the request handling.)"""
    if not (q or "").strip() and not person:
        raise HTTPException(status_code=422, detail=N_("give q (a query), person, or both"))
    return JSONResponse(
        await state.run_search((q or "").strip(), k, video, start, end, per_video, min_score, person, fold)
    )


@router.post("/search/image", tags=["search"])
async def search_image(
    state: State,
    file: Annotated[UploadFile, File(description="an image (JPEG, PNG, WebP)")],
    k: Annotated[int, Form(ge=1, le=MAX_K)] = 5,
    min_score: Annotated[float | None, Form(ge=0, le=1, allow_inf_nan=False)] = None,
) -> dict[str, Any]:
    """Frames that look like an image (lite: its labels; full: its CLIP embedding)."""
    return await state.run_similar(await read_image(file, state.decode_slots), None, k, min_score)


@router.post("/search/face", tags=["search"])
async def search_face(
    state: State,
    file: Annotated[UploadFile, File(description="a photo showing one face (JPEG, PNG, WebP)")],
    k: Annotated[int, Form(ge=1, le=MAX_K)] = 5,
    per_video: Annotated[int | None, Form(ge=1, le=MAX_K)] = None,
) -> dict[str, Any]:
    """The scenes where the face in the photo appears, nearest first (400 when the photo shows
    no face, or several)."""
    return await state.run_face(await read_image(file, state.decode_slots), k, per_video)


@router.get("/search/similar", tags=["search"])
async def search_similar(
    state: State,
    scene: Annotated[str, Query(max_length=80, description="a scene id from a result: <video id>:<5 digits>")],
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 5,
    min_score: Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)] = None,
) -> dict[str, Any]:
    """More like this: scenes whose frames look like the given scene's (it is left out)."""
    return await state.run_similar(None, scene, k, min_score)


# What the "why this result" toggle calls each signal and moment source.
SIGNAL_NAMES = {
    "caption": N_("scene description"),
    "transcript": N_("speech"),
    "text": N_("on-screen text"),
    "image": N_("picture"),
    "speech": N_("speech"),
    "picture": N_("picture"),
    "scene": N_("scene"),
    "fused": N_("the signals combined"),
    "margin": N_("lead over the next results"),
    "frame": N_("the best frame's match"),
}
MORE_STEP = 5


def parse_clock(text: str) -> float | None:
    """A time typed in a filter: ``m:ss``, ``h:mm:ss`` or seconds (None: empty)."""
    text = text.strip()
    if not text:
        return None
    try:
        seconds = 0.0
        for part in text.split(":")[:3]:
            seconds = seconds * 60 + float(part)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=N_("a time is minutes:seconds or seconds, e.g. 1:30")) from exc
    if not 0 <= seconds <= MAX_SECONDS:
        raise HTTPException(status_code=422, detail=N_("a time is minutes:seconds or seconds, e.g. 1:30"))
    return seconds


def _page_context(state: AppState, language: PageLanguage, **values: Any) -> dict[str, Any]:
    """The search page's template values: an empty page, then ``values``."""
    return {
        "q": "", "results": None, "error": None, "page": "search", "person": "", "videos": [], "k": 5,
        "min_score": None, "filters_on": 0, "all_videos": state.filter_videos(),
        "all_people": state.people_choices(),
        "signal_names": {key: language.gettext(name) for key, name in SIGNAL_NAMES.items()}, **values,
    }  # fmt: skip


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def search_page(
    request: Request,
    state: State,
    q: str = "",
    k: int = 5,
    similar: str = "",
    person: str = "",
    video: Annotated[list[str] | None, Query()] = None,
    start: str = "",
    end: str = "",
    per_video: str = "",
    min_score: Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)] = None,
) -> HTMLResponse:
    """The search page; its state (query, filters, number of results, person, minimum score) is
    all in its address, to share and reload."""
    language = request_language(request)
    person = person.strip()[:MAX_NAME]
    videos = [v for v in (video or [])[:MAX_FILTER_IDS] if v]
    k = max(1, min(k, MAX_K))
    per_video_n = int(per_video) if per_video.strip().isdigit() and 1 <= int(per_video) <= MAX_K else None
    context = _page_context(
        state, language, q=q[:MAX_QUERY_CHARS], person=person, videos=videos, k=k, start_text=start[:20],
        end_text=end[:20], per_video=per_video_n, min_score=min_score,
        filters_on=len(videos) + bool(start.strip()) + bool(end.strip()) + bool(per_video_n) + bool(person),
        clear_filters_url=site_path(
            request.url.remove_query_params(["video", "start", "end", "per_video", "k", "person"])
        ),
    )  # fmt: skip
    try:
        span = parse_clock(start[:20]), parse_clock(end[:20])
        if similar:
            context.update(await state.run_similar(None, similar[:100], k, None))
        elif q.strip() or person:
            if person:
                context["person_label"] = await state.person_label(person)
            if person and not q.strip():
                k = MAX_K  # a person's scenes: all of them, up to the page's limit
            found = await state.run_search(
                q[:MAX_QUERY_CHARS].strip(), k, videos, span[0], span[1], per_video_n, min_score, person
            )
            context.update(found)
            shown = len(found["results"])
            if q.strip() and min_score is None and shown < k:  # the default threshold hid some
                context["show_weaker_url"] = site_path(request.url.include_query_params(min_score=0))
            if q.strip() and shown == k and k < MAX_K:
                context["more_url"] = site_path(request.url.include_query_params(k=min(k + MORE_STEP, MAX_K)))
    except HTTPException as exc:
        context["error"] = language.error(exc.detail)
    return state.templates.TemplateResponse(request, "search.html", context)


@router.post("/", response_class=HTMLResponse, include_in_schema=False)
async def image_search_page(request: Request, state: State, image: Annotated[UploadFile, File()]) -> HTMLResponse:
    language = request_language(request)
    context = _page_context(state, language)
    try:
        context.update(await state.run_similar(await read_image(image, state.decode_slots), None, 5, None))
    except HTTPException as exc:
        context["error"] = language.error(exc.detail)
    return state.templates.TemplateResponse(request, "search.html", context)
