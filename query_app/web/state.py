"""What the routes of the web app share: the server's state (models, search engine, limits,
sessions) and the steps several routes take (readiness, a known video, answers without server
paths, a page of videos, a search, a description)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from query_app.describe import MAX_SPAN_SECONDS, DescribeError, VideoDescriber
from query_app.search import QueryError, SceneSearch, SearchBatcher
from query_app.web.dagster_status import DagsterStatusClient
from query_app.web.files import IndexedFile, VerifiedFiles
from query_app.web.guard import AccessPolicy
from query_app.web.i18n import N_
from query_app.web.progress import video_progress
from query_app.web.sessions import LoginThrottle, SessionStore
from tving_resources.config import Paths
from tving_resources.errors import ModelError, StoreError, TvingError, VideoError, VideoNotRegisteredError
from tving_resources.ids import is_video_id
from tving_resources.models.runtime import ModelRuntime

log = logging.getLogger("tving.api")
MAX_SECONDS = 1e7  # any time in a request: far beyond any video, far below float trouble
MAX_FILTER_IDS = 50  # video ids in one search
MAX_PAGE = 100
SEARCH_TIMEOUT_S = 30.0
FILTER_LIST_TTL_S = 5.0
PROGRESS_TTL_S = 1.5  # the library pages poll every 2 s while a file is on its way
PATH_KEYS = ("video_path", "thumbnail_path", "path")  # absolute server paths: only with show_paths


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
    templates: Jinja2Templates
    describe_slots: threading.BoundedSemaphore
    decode_slots: threading.BoundedSemaphore  # uploaded images and videos decoded at once
    cut_slots: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(2))  # ffmpegs
    sessions: SessionStore = field(default_factory=SessionStore)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    files: VerifiedFiles = field(default_factory=VerifiedFiles)
    models: str = "loading"  # loading | loaded | error (the query-side models)
    describe_models: str = "loading"
    error: str | None = None
    warm_up_seconds: dict[str, float] = field(default_factory=dict)
    _filter_videos: tuple[float, list[Any]] = (float("-inf"), [])
    _filter_lock: threading.Lock = field(default_factory=threading.Lock)
    _progress: tuple[float, float, dict[str, Any]] = (float("-inf"), 0.0, {})  # made at, took, what
    _progress_lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------ models
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
            return False, self.error or N_("the query models failed to load")
        if self.models != "loaded":
            return False, N_("models are loading; retry in a few seconds")
        if not self.table_ready():
            return False, N_("no scene table yet: index some videos (tving index PATH, or the watched folder)")
        return True, "ready"

    def require_ready(self) -> None:
        ready, detail = self.readiness()
        if not ready:
            raise HTTPException(status_code=503, detail=detail, headers={"Retry-After": "5"})

    # ------------------------------------------------------------ answers
    def public(self, payload: Any) -> Any:
        """``payload`` without absolute server paths, unless the server shows them."""
        if self.policy.show_paths:
            return payload
        if isinstance(payload, dict):
            return {k: self.public(v) for k, v in payload.items() if k not in PATH_KEYS}
        if isinstance(payload, list | tuple):  # dataclasses.asdict keeps tuples
            return [self.public(v) for v in payload]
        return payload

    def model_name(self, model: str) -> str:
        """A model id as shown: a local folder (an adapter, a models-folder override) by its last
        parts only, unless the server shows paths."""
        if self.policy.show_paths:
            return model
        return "+".join(Path(part).name if part.startswith("/") else part for part in model.split("+"))

    # ------------------------------------------------------------ videos
    def known_video(self, video_id: str) -> dict[str, Any]:
        if not is_video_id(video_id):
            raise HTTPException(status_code=422, detail=N_("invalid video id"))
        try:
            summary = self.search.store.video_summary(video_id)
        except StoreError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        if summary is None:
            raise HTTPException(status_code=404, detail=f"unknown video id {video_id!r}")
        return summary.__dict__

    def all_videos(self) -> list[Any]:
        """Every indexed video's summary, in id order (none while there is no table)."""
        try:
            summaries = self.search.store.videos() if self.table_ready() else []
        except StoreError:
            summaries = []
        return sorted(summaries, key=lambda v: v.video_id)

    def video_page(
        self, limit: int, cursor: str | None, summaries: list[Any] | None = None
    ) -> tuple[list[Any], str | None]:
        """Indexed videos in id order (``summaries``: as read by ``all_videos``), ``limit`` from
        after ``cursor`` (a video id); the next cursor."""
        summaries = self.all_videos() if summaries is None else summaries
        if cursor:
            summaries = [v for v in summaries if v.video_id > cursor]
        page = summaries[:limit]
        return page, (page[-1].video_id if len(summaries) > limit else None)

    def filter_videos(self) -> list[Any]:
        """The videos the search page offers as filters: a list read at most every few seconds
        (reading the table's videos costs ~6 ms, a third of rendering the page)."""
        with self._filter_lock:
            at, videos = self._filter_videos
            if time.monotonic() - at > FILTER_LIST_TTL_S:
                videos = self.video_page(MAX_PAGE, None)[0]
                self._filter_videos = (time.monotonic(), videos)
            return videos

    def people_choices(self) -> list[tuple[str, str]]:
        """Everyone known, as (id, what to show), named people first: the search page's filter."""
        try:
            registry = self.search.people.registry()
            people = registry.people() if registry is not None else []
        except TvingError:
            return []
        return sorted(((p.person_id, p.label) for p in people), key=lambda p: (p[1] == p[0], p[1].lower()))[:MAX_PAGE]

    def indexed_times(self, video_ids: list[str]) -> dict[str, float]:
        """When each video was last indexed (from the catalog)."""
        from tving_resources.catalog.video_catalog import VideoCatalog

        if not self.paths.catalog_exists():
            return {}
        catalog = VideoCatalog(self.paths.catalog_url)
        found = {video_id: catalog.find(video_id) for video_id in video_ids}
        return {video_id: e.updated_at for video_id, e in found.items() if e is not None and e.updated_at}

    def video_scenes(self, video_id: str) -> dict[str, Any]:
        self.require_ready()
        summary = self.known_video(video_id)
        columns = ["scene_id", "scene_index", "start", "end", "caption", "transcript", "keyframe_times", "thumbnails"]
        scenes = self.search.store.scenes_of(video_id, columns)
        for scene in scenes:
            scene["thumbnail_urls"] = [thumbnail_url(t) for t in scene["thumbnails"]]
        return self.public({**summary, "stream_url": f"/videos/{video_id}/stream", "scenes": scenes})

    def indexed_file(self, video_id: str) -> IndexedFile:
        """What the catalog recorded of the video's file when it was indexed."""
        from tving_resources.catalog.video_catalog import VideoCatalog

        paths = self.paths
        entry = VideoCatalog(paths.catalog_url).find(video_id) if paths.catalog_exists() else None
        if entry is None or not entry.indexed_version or not entry.fingerprint:
            raise HTTPException(status_code=404, detail=N_("the video is not indexed (any more)"))
        size, mtime_ns = (int(part) for part in entry.indexed_version.split("-"))
        return IndexedFile(entry.path, size, mtime_ns, entry.fingerprint)

    def failures(self, limit: int) -> list[dict[str, Any]]:
        """Videos whose indexing failed, with the stage and the message (from the catalog)."""
        from tving_resources.catalog.video_catalog import VideoCatalog

        found = VideoCatalog(self.paths.catalog_url).failures() if self.paths.catalog_exists() else []
        items = [
            {"video_id": e.video_id, "name": e.name, "path": e.path, "failed_stage": e.failed_stage, "error": e.error}
            for e in found[:limit]
        ]
        return self.public(items)

    def indexing_progress(self) -> dict[str, Any]:
        """``/status``: the watched folder's videos not searchable yet (or just indexed), and
        what Dagster says (when its webserver is known). Made at most once per
        ``PROGRESS_TTL_S`` whatever the number of pages polling, and at most a tenth of the time:
        it lists the whole folder (20,000 files: ~0.5 s, so a new list every 5 s)."""
        with self._progress_lock:
            at, took, progress = self._progress
            if time.monotonic() - at > max(PROGRESS_TTL_S, 10 * took):
                started = time.monotonic()
                progress = self._read_progress()
                self._progress = (time.monotonic(), time.monotonic() - started, progress)
            return progress

    def _read_progress(self) -> dict[str, Any]:
        from tving_resources.catalog.folder_watch import scan_video_folder
        from tving_resources.catalog.video_catalog import VideoCatalog

        folder = self.paths.videos_dir
        listing = scan_video_folder(folder)
        entries = VideoCatalog(self.paths.catalog_url).entries_under(folder) if self.paths.catalog_exists() else []
        view = self.dagster.view() if self.dagster is not None else None
        videos = video_progress(listing, entries, view)
        return {
            "configured": self.dagster is not None,
            "dagster_url": self.dagster.base_url if self.dagster is not None else None,
            "reachable": view.reachable if view is not None else None,
            "error": view.error if view is not None else None,
            "daemon_running": view.daemon_running if view is not None else None,
            "watched_folder": str(folder) if self.policy.show_paths else folder.name,
            "videos": [dataclasses.asdict(v) for v in videos],
        }

    def scene_tables(self) -> list[dict[str, Any]]:
        from tving_resources.store.maintenance import inspect_tables
        from tving_resources.store.tables import TableRegistry

        try:
            roles = TableRegistry(self.search.uri).roles()
            found = inspect_tables(self.search.uri)
        except TvingError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        return [
            {
                "table": t.name,
                "role": roles.get(t.name, "unregistered"),
                "videos": t.videos,
                "rows": t.rows,
                "rows_per_model": {
                    column: {self.model_name(m): n for m, n in models.items()}
                    for column, models in t.rows_per_model.items()
                },
            }
            for t in found
        ]

    # ------------------------------------------------------------ search and describe
    async def run_search(
        self,
        q: str,
        k: int,
        video: list[str] | None,
        start: float | None,
        end: float | None,
        per_video: int | None,
        min_score: float | None = None,
        person: str | None = None,
        fold_duplicates: bool | None = None,
    ) -> dict[str, Any]:
        """A text query (``q``), within one person's scenes when ``person`` is given; ``person``
        alone: that person's scenes. ``fold_duplicates`` None: the server's setting."""
        self.require_ready()
        if len(video or ()) > MAX_FILTER_IDS:
            raise HTTPException(status_code=422, detail=f"at most {MAX_FILTER_IDS} video ids per search")
        for video_id in video or ():
            if not is_video_id(video_id):
                raise HTTPException(status_code=422, detail=f"invalid video id {video_id[:60]!r}")
        try:
            if not q:
                return await self.run_person(person or "", k, per_video)
            options = {"k": k, "video_ids": tuple(video or ()), "start": start, "end": end, "per_video": per_video,
                       "min_score": min_score, "person": person, "fold_duplicates": fold_duplicates}  # fmt: skip
            # Concurrent searches are answered in batches (much cheaper per query on a small CPU);
            # a person is looked up in the catalog first, off the event loop.
            if person:
                future = await run_in_threadpool(self.batcher.submit, q, **options)
            else:
                future = self.batcher.submit(q, **options)
            response = await asyncio.wait_for(asyncio.wrap_future(future), timeout=SEARCH_TIMEOUT_S)
        except QueryError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        except StoreError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        except TimeoutError as exc:
            raise HTTPException(status_code=504, detail=N_("the search took too long; retry")) from exc
        return self.with_urls(response.to_dict())

    async def run_similar(self, image: Any, scene: str | None, k: int, min_score: float | None) -> dict[str, Any]:
        from query_app.search.similar import SimilarSearch

        self.require_ready()
        similar = SimilarSearch(self.search)
        try:
            if image is not None:
                response = await run_in_threadpool(similar.by_image, image, k=k, min_score=min_score)
            else:
                response = await run_in_threadpool(similar.by_scene, scene, k=k, min_score=min_score)
        except QueryError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        except StoreError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        return self.with_urls(response.to_dict())

    async def run_person(self, person: str, k: int, per_video: int | None) -> dict[str, Any]:
        from query_app.search.faces import FaceSearch

        def scenes() -> Any:
            return FaceSearch(self.search).scenes_of(self.search.people.find(person), k=k, per_video=per_video)

        return await self._answer_in_thread(scenes)

    async def person_label(self, person: str) -> str:
        """The person's name (or id) as shown; the request as given when nobody matches."""
        try:
            return (await run_in_threadpool(self.search.people.find, person)).label
        except QueryError:
            return person

    async def run_face(self, image: Any, k: int, per_video: int | None) -> dict[str, Any]:
        from query_app.search.faces import FaceSearch

        return await self._answer_in_thread(lambda: FaceSearch(self.search).by_face(image, k=k, per_video=per_video))

    async def _answer_in_thread(self, answer: Any) -> dict[str, Any]:
        self.require_ready()
        try:
            response = await run_in_threadpool(answer)
        except QueryError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        except (StoreError, ModelError) as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        return self.with_urls(response.to_dict())

    def with_urls(self, payload: dict[str, Any]) -> dict[str, Any]:
        for result in payload["results"]:
            result["thumbnail_url"] = thumbnail_url(result["thumbnail"])
            result["stream_url"] = f"/videos/{result['video_id']}/stream"
        return self.public(payload)

    async def describe(self, video: str, start: float, end: float, language: str, frames: int | None) -> dict:
        if end - start > MAX_SPAN_SECONDS or start >= end:
            raise HTTPException(
                status_code=422, detail=f"need start < end and a span of at most {MAX_SPAN_SECONDS:.0f} s"
            )
        if self.describe_models == "loading":
            raise HTTPException(
                status_code=503, detail=N_("describe models are loading; retry shortly"), headers={"Retry-After": "10"}
            )
        if not self.describe_slots.acquire(blocking=False):
            raise HTTPException(
                status_code=429, detail=N_("describe is busy; retry shortly"), headers={"Retry-After": "5"}
            )
        try:
            result = await run_in_threadpool(self.describer.describe, video, start, end, language, frames)
        except (DescribeError, VideoError) as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        except VideoNotRegisteredError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        except ModelError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        finally:
            self.describe_slots.release()
        return self.public(result.to_dict())


def app_state(request: Request) -> AppState:
    """The server's state, for a route (a FastAPI dependency)."""
    return request.app.state.tving


def thumbnail_url(relative: str) -> str:
    return "/thumbnails/" + quote(relative) if relative else ""
