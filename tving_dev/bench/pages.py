"""`tving bench pages`: the web pages as a browser asks for them (search with results, library,
the library's progress poll), rendered in-process on an indexed home, in Korean; medians."""

from __future__ import annotations

import statistics
import time
from typing import Any

QUERIES = ("a cat", "people riding bicycles", "자전거를 타는 사람들", "a man talking", "rain at night")


def run_pages_benchmark(rounds: int = 8) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from query_app.web.app import create_app
    from tving_resources.config import resolve_paths

    paths = resolve_paths()
    client = TestClient(
        create_app(paths=paths, warm_up_in_background=False),
        base_url="http://localhost",
        headers={"Accept-Language": "ko"},
    )
    for query in QUERIES:  # warm: the query encoder, the table's files
        client.get("/", params={"q": query})
    timings: dict[str, list[float]] = {"search page": [], "library page": [], "progress poll (/status)": []}
    requests = {"search page": None, "library page": "/library", "progress poll (/status)": "/status"}
    for i in range(rounds * len(QUERIES)):
        for name, path in requests.items():
            started = time.perf_counter()
            answer = (
                client.get("/", params={"q": QUERIES[i % len(QUERIES)], "min_score": 0})
                if path is None
                else (client.get(path))
            )
            timings[name].append(time.perf_counter() - started)
            if answer.status_code != 200:
                raise RuntimeError(f"{name}: HTTP {answer.status_code}: {answer.text[:300]}")
    medians = {name: round(statistics.median(values) * 1000, 1) for name, values in timings.items()}
    summary = f"web pages on {paths.home} (in-process, Korean, medians of {rounds * len(QUERIES)}): " + ", ".join(
        f"{name} {ms} ms" for name, ms in medians.items()
    )
    return {"home": str(paths.home), "requests": rounds * len(QUERIES), "median_ms": medians, "summary": summary}
