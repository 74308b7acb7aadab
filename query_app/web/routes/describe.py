"""Video-to-text: describe a span of an indexed video or of an uploaded file; the describe page."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from query_app.web.state import MAX_PAGE, MAX_SECONDS, AppState, app_state
from query_app.web.uploads import ensure_folder, save_upload
from tving_resources.ids import VIDEO_ID_PATTERN

router = APIRouter()
State = Annotated[AppState, Depends(app_state)]


class DescribeRequest(BaseModel):
    video_id: str = Field(pattern=VIDEO_ID_PATTERN.pattern, description="an indexed video id")
    start: float = Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False, description="seconds")
    end: float = Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False, description="seconds")
    language: Literal["en", "ko"] = "en"
    frames: int | None = Field(default=None, ge=1, le=32)


@router.post("/describe", tags=["video-to-text"])
async def describe(state: State, request: DescribeRequest) -> dict[str, Any]:
    state.require_ready()
    state.known_video(request.video_id)
    return await state.describe(request.video_id, request.start, request.end, request.language, request.frames)


@router.post("/describe/upload", tags=["video-to-text"])
async def describe_upload(
    state: State,
    file: Annotated[UploadFile, File(description="a video file")],
    start: Annotated[float, Form(ge=0, le=MAX_SECONDS, allow_inf_nan=False)],
    end: Annotated[float, Form(gt=0, le=MAX_SECONDS, allow_inf_nan=False)],
    language: Annotated[Literal["en", "ko"], Form()] = "en",
) -> dict[str, Any]:
    state.require_ready()
    folder = Path(tempfile.mkdtemp(prefix="describe-", dir=ensure_folder(state.paths.data_dir / "uploads")))
    try:
        saved = await save_upload(file, folder, state.max_upload_bytes, state.decode_slots)
        return await state.describe(str(saved), start, end, language, None)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@router.get("/describe", response_class=HTMLResponse, include_in_schema=False)
def describe_page(request: Request, state: State) -> HTMLResponse:
    page, _ = state.video_page(MAX_PAGE, None)
    listed = [{**v.__dict__, "stream_url": f"/videos/{v.video_id}/stream"} for v in page]
    context = {"page": "describe", "videos": listed, "describe_languages": state.describer.languages,
               "profile": state.runtime.profile.name}  # fmt: skip
    return state.templates.TemplateResponse(request, "describe.html", context)
