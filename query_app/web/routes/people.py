"""People: everyone whose face was seen, naming and merging them, and the People page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from query_app.web.state import AppState, app_state, thumbnail_url
from tving_resources.catalog.people import MAX_NAME, PeopleRegistry, PersonNotFoundError
from tving_resources.errors import TvingError

router = APIRouter()
State = Annotated[AppState, Depends(app_state)]
PersonName = Annotated[str, Form(min_length=1, max_length=MAX_NAME, description="the person's name")]
PersonId = Annotated[str, Form(min_length=1, max_length=MAX_NAME, description="a person's id or name")]


def _everyone(state: AppState) -> list[dict[str, Any]]:
    people = []
    for person in state.search.people.people():
        entry = person.to_dict()
        entry["thumbnail_url"] = thumbnail_url(person.thumbnail)
        entry["scenes_url"] = f"/search?person={person.id}&k=50"
        for scene in entry["scenes"]:
            scene["stream_url"] = f"/videos/{scene['video_id']}/stream"
        people.append(entry)
    return state.public(people)


def _registry(state: AppState) -> PeopleRegistry:
    registry = state.search.people.registry()
    if registry is None:
        raise HTTPException(status_code=404, detail="nothing is indexed yet, so no people are known")
    return registry


def _change(state: AppState, change: Any) -> dict[str, Any]:
    try:
        person = change(_registry(state))
    except PersonNotFoundError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except TvingError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    return {"id": person.person_id, "name": person.name}


def _answer(request: Request, payload: dict[str, Any]) -> Response | dict[str, Any]:
    """A browser's form post goes back to the People page; an API client gets JSON."""
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/faces", status_code=303)
    return payload


@router.get("/people", tags=["people"])
async def people(state: State) -> dict[str, Any]:
    """Everyone whose face was seen (grouped by the `people` asset), most scenes first."""
    return {"people": await run_in_threadpool(_everyone, state)}


@router.post("/people/merge", tags=["people"])
async def merge(request: Request, state: State, keep: PersonId, other: PersonId) -> Any:
    """``other``'s faces become ``keep``'s, now and whenever the faces are grouped again."""
    merged = await run_in_threadpool(_change, state, lambda registry: registry.merge(keep, other))
    return _answer(request, merged)


@router.post("/people/{person_id}/name", tags=["people"])
async def name(request: Request, state: State, person_id: str, name: PersonName) -> Any:
    """Name a person (kept whenever the faces are grouped again)."""
    named = await run_in_threadpool(_change, state, lambda registry: registry.name(person_id[:MAX_NAME], name))
    return _answer(request, named)


@router.get("/faces", response_class=HTMLResponse, include_in_schema=False)
async def people_page(request: Request, state: State) -> HTMLResponse:
    context = {"page": "people", "people": await run_in_threadpool(_everyone, state)}
    return state.templates.TemplateResponse(request, "people.html", context)
