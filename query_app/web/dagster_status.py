"""Indexing status from a Dagster webserver's GraphQL API, over HTTP.

The query app never imports Dagster (it must run where Dagster is not installed); asking the
webserver is also the only reader that sees runs from every process, queue and daemon.
"""

from __future__ import annotations

from typing import Any

import httpx

_RUNS_QUERY = """
query IndexRuns($limit: Int!) {
  runsOrError(filter: {pipelineName: "index_video"}, limit: $limit) {
    __typename
    ... on Runs { results { runId status startTime endTime tags { key value } } }
    ... on PythonError { message }
  }
}
"""


class DagsterStatusClient:
    def __init__(self, base_url: str, timeout: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def index_runs(self, limit: int = 200) -> dict[str, Any]:
        """The latest ``index_video`` run of each video, newest first, and counts by status."""
        try:
            response = httpx.post(
                f"{self.base_url}/graphql",
                json={"query": _RUNS_QUERY, "variables": {"limit": limit}},
                timeout=self.timeout,
            )
            response.raise_for_status()
            data = response.json()["data"]["runsOrError"]
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            return {"reachable": False, "error": f"cannot read runs from {self.base_url}: {exc}", "videos": []}
        if data.get("__typename") != "Runs":
            return {"reachable": True, "error": data.get("message", "unexpected answer"), "videos": []}
        latest: dict[str, dict[str, Any]] = {}
        for run in data["results"]:  # newest first
            tags = {t["key"]: t["value"] for t in run["tags"]}
            partition = tags.get("dagster/partition")
            if partition and partition not in latest:
                latest[partition] = {
                    "video_id": partition,
                    "name": tags.get("tving/video", partition),
                    "status": run["status"],
                    "started": run["startTime"],
                    "ended": run["endTime"],
                    "run_url": f"{self.base_url}/runs/{run['runId']}",
                }
        counts: dict[str, int] = {}
        for item in latest.values():
            counts[item["status"]] = counts.get(item["status"], 0) + 1
        return {"reachable": True, "error": None, "counts": counts, "videos": list(latest.values())}
