"""Indexing runs and daemon health from a Dagster webserver's GraphQL API, over HTTP.

The query app never imports Dagster (it must run where Dagster is not installed); asking the
webserver is also the only reader that sees runs from every process, queue and daemon.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import httpx

_RUNS_QUERY = """
query IndexRuns($limit: Int!) {
  runsOrError(filter: {pipelineName: "index_video"}, limit: $limit) {
    __typename
    ... on Runs { results { runId status startTime endTime tags { key value } } }
    ... on PythonError { message }
  }
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
}
"""
# the steps of the runs still going: how far each is (stage k of n)
_STEPS_QUERY = """
query RunSteps($ids: [String!]) {
  runsOrError(filter: {runIds: $ids}) {
    ... on Runs { results { runId executionPlan { steps { key } } stepStats { stepKey status } } }
  }
}
"""
ACTIVE = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")
# the daemons that make a dropped file indexed: the sensor asks, the queue launches
NEEDED_DAEMONS = ("SENSOR", "QUEUED_RUN_COORDINATOR")


@dataclass(frozen=True)
class IndexRun:
    """The latest ``index_video`` run of one video."""

    video_id: str
    name: str
    status: str  # Dagster's: QUEUED, STARTING, STARTED, SUCCESS, FAILURE, CANCELED, ...
    started: float | None
    ended: float | None
    run_url: str
    stage: int | None = None  # with ``stages``: the step running now, counted from 1
    stages: int | None = None
    step: str | None = None


@dataclass(frozen=True)
class DagsterView:
    reachable: bool
    error: str | None
    runs: dict[str, IndexRun] = field(default_factory=dict)  # by video id
    daemon_running: bool | None = None  # None: not known


class DagsterStatusClient:
    def __init__(self, base_url: str, timeout: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def ask(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """One GraphQL query; its ``data`` (raises httpx's errors, and KeyError on an answer without data)."""
        response = httpx.post(
            f"{self.base_url}/graphql", json={"query": query, "variables": variables}, timeout=self.timeout
        )
        response.raise_for_status()
        return response.json()["data"]

    def view(self, limit: int = 200) -> DagsterView:
        """The latest ``index_video`` run of each video (with its stage while it runs), and
        whether the daemons that index new files are running."""
        try:
            data = self.ask(_RUNS_QUERY, {"limit": limit})
            runs_or_error = data["runsOrError"]
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            return DagsterView(False, f"cannot read runs from {self.base_url}: {exc}")
        if runs_or_error.get("__typename") != "Runs":
            return DagsterView(True, runs_or_error.get("message", "unexpected answer"))
        latest: dict[str, IndexRun] = {}
        run_ids: dict[str, str] = {}
        for run in runs_or_error["results"]:  # newest first
            tags = {t["key"]: t["value"] for t in run["tags"]}
            partition = tags.get("dagster/partition")
            if partition and partition not in latest:
                latest[partition] = IndexRun(
                    video_id=partition,
                    name=tags.get("tving/video", partition),
                    status=run["status"],
                    started=run["startTime"],
                    ended=run["endTime"],
                    run_url=f"{self.base_url}/runs/{run['runId']}",
                )
                run_ids[run["runId"]] = partition
        statuses = ((data.get("instance") or {}).get("daemonHealth") or {}).get("allDaemonStatuses") or []
        needed = [d for d in statuses if d.get("daemonType") in NEEDED_DAEMONS and d.get("required")]
        running = all(d.get("healthy") for d in needed) if needed else None
        active = [run_id for run_id, video in run_ids.items() if latest[video].status in ACTIVE]
        if active:
            latest.update(self._stages(active, run_ids, latest))
        return DagsterView(True, None, latest, running)

    def _stages(self, run_ids: list[str], videos: dict[str, str], latest: dict[str, IndexRun]) -> dict[str, IndexRun]:
        try:
            found = self.ask(_STEPS_QUERY, {"ids": run_ids})["runsOrError"].get("results") or []
        except (httpx.HTTPError, KeyError, TypeError, ValueError, AttributeError):
            return {}  # the runs are still shown, without their stage
        staged = {}
        for run in found:
            video = videos.get(run["runId"])
            steps = [s["key"] for s in ((run.get("executionPlan") or {}).get("steps") or [])]
            stats = {s["stepKey"]: s["status"] for s in run.get("stepStats") or []}
            if video is None or not steps:
                continue
            done = sum(1 for key in steps if stats.get(key) in ("SUCCESS", "SKIPPED"))
            current = next((key for key in steps if stats.get(key) == "IN_PROGRESS"), None)
            staged[video] = replace(latest[video], stage=min(done + 1, len(steps)), stages=len(steps), step=current)
        return staged

    def index_runs(self, limit: int = 200) -> dict[str, Any]:
        """The JSON of ``/status``'s Dagster part: the latest run of each video, counts by status."""
        view = self.view(limit)
        counts: dict[str, int] = {}
        for run in view.runs.values():
            counts[run.status] = counts.get(run.status, 0) + 1
        return {
            "reachable": view.reachable,
            "error": view.error,
            "daemon_running": view.daemon_running,
            "counts": counts,
            "videos": [run.__dict__ for run in view.runs.values()],
        }
