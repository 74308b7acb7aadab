"""People: faces grouped by who they are, with ids that outlive a regrouping.

Grouping builds a graph whose edges join faces closer than ``threshold`` (each face to its ``k``
nearest, found by Faiss) and cuts it with dlib's Chinese whispers. Each group then takes over the
id that most of its faces had before (so a person keeps the name a user gave, and a merge stays
merged); other groups get new ids. Incrementally, a new face joins the nearest existing person
within ``threshold``, and the new faces left over are grouped among themselves.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Two faces of one person lie closer than this (Euclidean, dlib's 128-d descriptors). Measured on
# real faces (tests/test_people.py, docs/people.md): one face at other scales, positions,
# brightness and mirrored 0.16-0.30 apart, another person 0.83; dlib's own rule of thumb is 0.6.
FACE_THRESHOLD = 0.5
NEIGHBOURS = 10  # nearest faces linked per face: enough to hold a person together (docs/people.md)
EXACT_UP_TO = 20_000  # faces compared exactly, each against all
CELLS_PROBED = 16


@dataclass(frozen=True)
class Grouping:
    people: dict[str, str]  # face id -> person id
    new_people: tuple[str, ...]  # person ids made by this grouping


def new_person_id() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


def neighbour_edges(embeddings: np.ndarray, threshold: float, k: int = NEIGHBOURS) -> np.ndarray:
    """(i, j) rows for every face j among the ``k`` nearest of face i within ``threshold``.

    Faiss finds the nearest faces: exactly up to :data:`EXACT_UP_TO` faces, above that with an
    inverted-file index (``sqrt(n)`` cells, :data:`CELLS_PROBED` looked at per face), which keeps
    100,000 faces to seconds instead of the minute an all-pairs product takes (docs/people.md)."""
    import faiss

    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    n, dim = vectors.shape if vectors.ndim == 2 else (0, 0)
    if n == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if n <= EXACT_UP_TO:
        index = faiss.IndexFlatL2(dim)
    else:
        cells = int(np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, cells)
        index.cp.max_points_per_centroid = 64  # k-means trains on a sample: seconds, not minutes
        index.train(vectors)
        index.nprobe = CELLS_PROBED
    index.add(vectors)
    squared, nearest = index.search(vectors, min(k + 1, n))  # +1: each face finds itself first
    rows = np.repeat(np.arange(n), nearest.shape[1]).reshape(nearest.shape)
    keep = (nearest >= 0) & (nearest != rows) & (squared <= threshold * threshold)
    return np.stack([rows[keep], nearest[keep]], axis=1).astype(np.int64)


def cluster(embeddings: np.ndarray, threshold: float = FACE_THRESHOLD) -> list[int]:
    """A group label per face (Chinese whispers over the neighbour graph)."""
    import dlib

    n = len(embeddings)
    if n == 0:
        return []
    # every face its own vertex (a face with no close neighbour is a person of its own)
    edges = [(i, i) for i in range(n)]
    edges += map(tuple, neighbour_edges(embeddings, threshold).tolist())
    return list(dlib.chinese_whispers(edges))


def stable_ids(
    face_ids: Sequence[str], labels: Sequence[int], previous: dict[str, str], merged: frozenset[str] = frozenset()
) -> tuple[dict[str, str], list[str]]:
    """Name each group by the person id most of its faces had before (largest groups first, each
    id used once, except the ``merged`` ones: a person a user merged others into takes every
    group whose faces were theirs, so a merge outlives a regrouping); groups with no earlier id
    get new ones."""
    groups: dict[int, list[str]] = {}
    for face, label in zip(face_ids, labels, strict=True):
        groups.setdefault(label, []).append(face)
    taken: set[str] = set()
    people: dict[str, str] = {}
    made: list[str] = []
    for label in sorted(groups, key=lambda g: -len(groups[g])):
        faces = groups[label]
        votes = Counter(
            previous[f] for f in faces if f in previous and (previous[f] not in taken or previous[f] in merged)
        )
        person = votes.most_common(1)[0][0] if votes else None
        if person is None:
            person = new_person_id()
            made.append(person)
        taken.add(person)
        people.update(dict.fromkeys(faces, person))
    return people, made


def group_all(
    face_ids: Sequence[str],
    embeddings: np.ndarray,
    previous: dict[str, str],
    threshold: float = FACE_THRESHOLD,
    merged: frozenset[str] = frozenset(),
) -> Grouping:
    """Every face grouped afresh (the nightly run), ids carried over from ``previous``; people in
    ``merged`` keep every group that was theirs (see :func:`stable_ids`)."""
    people, made = stable_ids(face_ids, cluster(embeddings, threshold), previous, merged)
    return Grouping(people, tuple(made))


def group_new(
    face_ids: Sequence[str], embeddings: np.ndarray, previous: dict[str, str], threshold: float = FACE_THRESHOLD
) -> Grouping:
    """Only faces without a person yet: each joins the nearest person (the mean of that person's
    faces) within ``threshold``; the rest are grouped among themselves into new people."""
    vectors = np.asarray(embeddings, dtype=np.float32)
    known = [i for i, f in enumerate(face_ids) if f in previous]
    fresh = [i for i, f in enumerate(face_ids) if f not in previous]
    people = {face_ids[i]: previous[face_ids[i]] for i in known}
    if not fresh:
        return Grouping(people, ())
    left = fresh
    if known:
        persons = sorted({previous[face_ids[i]] for i in known})
        index = {p: n for n, p in enumerate(persons)}
        sums = np.zeros((len(persons), vectors.shape[1]), dtype=np.float32)
        counts = np.zeros(len(persons), dtype=np.float32)
        for i in known:
            row = index[previous[face_ids[i]]]
            sums[row] += vectors[i]
            counts[row] += 1
        centroids = sums / counts[:, None]
        distances = np.sqrt(
            np.maximum(
                (vectors[fresh] ** 2).sum(1)[:, None]
                + (centroids**2).sum(1)[None, :]
                - 2 * vectors[fresh] @ centroids.T,
                0.0,
            )
        )
        best = distances.argmin(axis=1)
        left = []
        for row, i in enumerate(fresh):
            if distances[row, best[row]] <= threshold:
                people[face_ids[i]] = persons[best[row]]
            else:
                left.append(i)
    labels = cluster(vectors[left], threshold) if left else []
    assigned, made = stable_ids([face_ids[i] for i in left], labels, {})
    people.update(assigned)
    return Grouping(people, tuple(made))


@dataclass(frozen=True)
class PeopleReport:
    faces: int
    people: int
    new_people: int
    full: bool
    seconds: float


def update_people(faces, registry, full: bool = False, threshold: float = FACE_THRESHOLD) -> PeopleReport:
    """Group the faces of ``faces`` (a FaceStore) into people and record it in ``registry`` (a
    PeopleRegistry): all of them afresh with ``full``, else only the faces that have no person."""
    import time

    started = time.perf_counter()
    table = faces.all_faces(("face_id", "embedding"))
    face_ids = table.column("face_id").to_pylist()
    embeddings = (
        table.column("embedding").combine_chunks().flatten().to_numpy().reshape(len(face_ids), -1)
        if face_ids
        else np.zeros((0, 128), np.float32)
    )
    previous = registry.assignments()
    present = set(face_ids)
    gone = [f for f in previous if f not in present]  # faces of removed or re-indexed videos
    if gone:
        registry.forget_faces(gone)
        previous = {f: p for f, p in previous.items() if f in present}
    if full:
        grouping = group_all(face_ids, embeddings, previous, threshold, frozenset(registry.merge_survivors()))
    else:
        grouping = group_new(face_ids, embeddings, previous, threshold)
    changed = grouping.people if full else {f: p for f, p in grouping.people.items() if previous.get(f) != p}
    registry.save_grouping(changed, grouping.new_people, full)
    return PeopleReport(
        faces=len(face_ids),
        people=len(set(grouping.people.values())),
        new_people=len(grouping.new_people),
        full=full,
        seconds=round(time.perf_counter() - started, 3),
    )
