"""`tving bench people`: the people asset's grouping over many faces (synthetic embeddings).

Synthetic people: each a centre in the 128-d descriptor space, their faces scattered around it
as one person's real faces are (tests/test_people.py measured 0.13-0.30 between one face's
variants; another person lies 0.7-0.9 away). The faces go into a real faces table (LanceDB) and
the people into a real catalog (SQLite); the grouping runs in a fresh process, as the asset's
step does, so its time and peak memory are the asset's own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

SPREAD_BETWEEN = 0.056  # per dimension: people ~0.9 apart on average (0.7 at the closest)
SPREAD_WITHIN = 0.0156  # per dimension: one person's faces ~0.25 apart


def synthetic_faces(people: int, per_person: int, seed: int = 0, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, true person of each) for ``people`` people of ``per_person`` faces each."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=128).astype(np.float32) * 0.09
    centres = mean + rng.normal(scale=SPREAD_BETWEEN, size=(first + people, 128)).astype(np.float32)
    centres = centres[first:]
    faces = np.repeat(centres, per_person, axis=0)
    faces += rng.normal(scale=SPREAD_WITHIN, size=faces.shape).astype(np.float32)
    return faces.astype(np.float32), np.repeat(np.arange(first, first + people), per_person)


def _face_table(embeddings: np.ndarray, video: int, start: int) -> pa.Table:
    from tving_resources.store.faces import FACE_DIM, face_schema

    n = len(embeddings)
    video_id = f"bench-{video:06d}-0123456789"
    face_ids = [f"{video_id}:{(start + i) // 4:05d}:{(start + i) % 4}:0" for i in range(n)]
    return pa.table(
        {
            "face_id": face_ids,
            "video_id": [video_id] * n,
            "scene_id": [f.rsplit(":", 2)[0] for f in face_ids],
            "scene_index": pa.array([(start + i) // 4 for i in range(n)], pa.int32()),
            "timestamp": [0.0] * n,
            "box": pa.array([[0, 0, 100, 100]] * n, pa.list_(pa.int32(), 4)),
            "score": pa.array([1.0] * n, pa.float32()),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(embeddings.reshape(-1)), FACE_DIM),
            "thumbnail": [""] * n,
            "model_id": ["synthetic"] * n,
        },
        schema=face_schema(),
    )


def _add_faces(folder: Path, embeddings: np.ndarray, video: int) -> None:
    from tving_resources.store.faces import FaceStore

    table = FaceStore(str(folder / "lancedb"), "lite").table(create=True)
    for start in range(0, len(embeddings), 20_000):
        table.add(_face_table(embeddings[start : start + 20_000], video, start))


def _group_in_fresh_process(folder: Path, full: bool) -> dict:
    command = [sys.executable, "-m", "tving_dev.bench.people", str(folder), "full" if full else "new"]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _group(folder: Path, full: bool) -> None:
    """The people asset's body, timed, in this (fresh) process."""
    from tving_dev.bench.measure import peak_rss_mb
    from tving_resources.catalog.people import PeopleRegistry
    from tving_resources.catalog.video_catalog import VideoCatalog
    from tving_resources.index.people import update_people
    from tving_resources.store.faces import FaceStore

    started = time.perf_counter()
    baseline = peak_rss_mb()
    report = update_people(
        FaceStore(str(folder / "lancedb"), "lite"), PeopleRegistry(VideoCatalog(folder / "catalog.sqlite")), full=full
    )
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
                      "rss_before_mb": round(baseline, 1), "faces": report.faces, "people": report.people,
                      "new_people": report.new_people}))  # fmt: skip


def _agreement(folder: Path, truth: dict[str, int]) -> dict:
    """How the grouping matches the true people: groups mixing people, people split apart."""
    from tving_resources.catalog.people import PeopleRegistry
    from tving_resources.catalog.video_catalog import VideoCatalog

    found = PeopleRegistry(VideoCatalog(folder / "catalog.sqlite")).assignments()
    people_of_group: dict[str, set[int]] = {}
    groups_of_person: dict[int, set[str]] = {}
    for face, group in found.items():
        people_of_group.setdefault(group, set()).add(truth[face])
        groups_of_person.setdefault(truth[face], set()).add(group)
    return {
        "groups": len(people_of_group),
        "true_people": len(groups_of_person),
        "groups_mixing_people": sum(len(p) > 1 for p in people_of_group.values()),
        "people_split": sum(len(g) > 1 for g in groups_of_person.values()),
    }


def run_people_benchmark(faces: int = 100_000, per_person: int = 50, new_faces: int = 1000) -> dict:
    people = max(1, faces // per_person)
    with tempfile.TemporaryDirectory(prefix="tving-bench-people-") as tmp:
        folder = Path(tmp)
        embeddings, owners = synthetic_faces(people, per_person)
        started = time.perf_counter()
        _add_faces(folder, embeddings, video=0)
        written = time.perf_counter() - started
        truth = {f: int(o) for f, o in zip(_face_table(embeddings, 0, 0).column("face_id").to_pylist(), owners,
                                            strict=True)}  # fmt: skip
        full = _group_in_fresh_process(folder, full=True)
        full_agreement = _agreement(folder, truth)
        # then new faces arrive: half of known people, half of people never seen
        rng = np.random.default_rng(1)
        pick = rng.choice(len(embeddings), new_faces // 2, replace=False)
        again = embeddings[pick] + rng.normal(scale=SPREAD_WITHIN, size=(len(pick), 128)).astype(np.float32)
        fresh, fresh_owners = synthetic_faces(max(1, new_faces // 2 // 10), 10, seed=0, first=people)
        arriving = np.concatenate([again, fresh])
        _add_faces(folder, arriving, video=1)
        truth.update(
            zip(_face_table(arriving, 1, 0).column("face_id").to_pylist(),
                map(int, np.concatenate([owners[pick], fresh_owners])), strict=True)
        )  # fmt: skip
        incremental = _group_in_fresh_process(folder, full=False)
        incremental_agreement = _agreement(folder, truth)
    report = {
        "faces": faces,
        "faces_per_person": per_person,
        "write_faces_seconds": round(written, 2),
        "full": {**full, **full_agreement},
        "incremental": {"new_faces": len(arriving), **incremental, **incremental_agreement},
    }
    report["summary"] = "\n".join(
        [
            f"{faces} synthetic faces of {people} people ({per_person} each), written in {written:.1f} s",
            f"full grouping (fresh process): {full['seconds']} s, peak RSS {full['peak_rss_mb']} MB "
            f"({full['rss_before_mb']} MB before grouping); {full_agreement['groups']} groups for "
            f"{full_agreement['true_people']} people, {full_agreement['groups_mixing_people']} mixing people, "
            f"{full_agreement['people_split']} split",
            f"then {len(arriving)} new faces, grouped incrementally: {incremental['seconds']} s, peak RSS "
            f"{incremental['peak_rss_mb']} MB; {incremental_agreement['groups_mixing_people']} groups mixing people, "
            f"{incremental_agreement['people_split']} split",
        ]
    )
    return report


if __name__ == "__main__":  # the grouping's own process (see _group_in_fresh_process)
    _group(Path(sys.argv[1]), full=sys.argv[2] == "full")
