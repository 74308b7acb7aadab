"""Which scene table is live, which is being built, which are retired (blue/green vector spaces).

A table's vectors live in one vector space: its text and frame encoders and their dimensions
(the table stamp). A new encoder cannot write into the live table, and dropping the table would
leave search empty until every video is indexed again. So rows of a new space go into a new table
beside the live one (``scenes_<profile>_<space>``); search keeps answering from the live table
until the new one holds every video the live one holds, then one atomic rename of the registry
file switches it. The old table is kept, listed as retired, until ``tving tables drop`` removes it.

The registry is a small JSON file in the LanceDB folder, rewritten atomically under a lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tving_resources.errors import StoreError
from tving_resources.files import atomic_write_bytes
from tving_resources.store.scene_store import connect, list_table_names, table_stamp
from tving_resources.store.schema import ModelStamp, table_name_for

REGISTRY_FILE = "tving_tables.json"
LIVE, BUILDING, RETIRED = "live", "building", "retired"


def space_key(stamp: ModelStamp) -> str:
    """A short id of the vector space (what must match for vectors to be compared)."""
    space = f"{stamp.text_model}|{stamp.text_dim}|{stamp.frame_model}|{stamp.frame_dim}"
    if stamp.transcript_model:
        space += f"|{stamp.transcript_model}|{stamp.transcript_dim}"
    return hashlib.sha256(space.encode()).hexdigest()[:8]


@dataclass
class ProfileTables:
    live: str | None = None
    building: str | None = None
    retired: list[str] = field(default_factory=list)

    def role_of(self, name: str) -> str | None:
        if name == self.live:
            return LIVE
        if name == self.building:
            return BUILDING
        return RETIRED if name in self.retired else None


@dataclass(frozen=True)
class RebuildProgress:
    """How far the table of a new vector space is: videos of the live table it already holds."""

    building: str
    live: str
    videos_done: int
    videos_total: int
    rows_done: int
    rows_live: int
    missing: tuple[str, ...]  # video ids still to index into the new table (up to 20)

    @property
    def complete(self) -> bool:
        return self.videos_done >= self.videos_total


@dataclass(frozen=True)
class Switch:
    profile: str
    live: str  # the table search now answers from
    retired: str | None  # the table it replaced (kept until dropped)


class TableRegistry:
    """The live/building/retired tables of each profile in one LanceDB folder."""

    def __init__(self, uri: str):
        self.uri = uri
        self.path = Path(uri) / REGISTRY_FILE

    # ------------------------------------------------------------------ reading
    def read(self, profile: str) -> ProfileTables:
        return self._tables(self._load(), profile)

    def live_name(self, profile: str) -> str:
        return self.read(profile).live or table_name_for(profile)

    def signature(self) -> float | None:
        """Changes whenever the registry is rewritten (cheap: one stat)."""
        try:
            return self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def roles(self) -> dict[str, str]:
        """Every registered table name -> live | building | retired."""
        found = {}
        for profile in {*self._load(), *self._profiles_with_tables()}:
            tables = self.read(profile)
            for name in (tables.live, tables.building, *tables.retired):
                if name:
                    found[name] = tables.role_of(name)
        return found

    # ------------------------------------------------------------------ writing
    def table_for_write(self, stamp: ModelStamp) -> str:
        """The table that rows of ``stamp``'s vector space go to: the live table when the space is
        the same (or there is none yet), else the table being built for that space."""
        with self._locked() as data:
            tables = self._tables(data, stamp.profile)
            live_stamp = self._stamp_of(tables.live)
            if live_stamp is None or space_key(live_stamp) == space_key(stamp):
                return tables.live or table_name_for(stamp.profile)
            name = f"{table_name_for(stamp.profile)}_{space_key(stamp)}"
            for retired in tables.retired:  # a roll-back: the retired table of that space is reused
                old = self._stamp_of(retired)
                if old is not None and space_key(old) == space_key(stamp):
                    name = retired
            if tables.building != name:
                if tables.building and tables.building not in tables.retired:
                    tables.retired.append(tables.building)  # a rebuild for another space, abandoned
                if name in tables.retired:
                    tables.retired.remove(name)  # a retired space comes back (a roll-back)
                tables.building = name
                self._store(data, stamp.profile, tables)
            return name

    def progress(self, profile: str) -> RebuildProgress | None:
        tables = self.read(profile)
        if not tables.building:
            return None
        db = connect(self.uri)
        names = set(list_table_names(db))
        live = _video_rows(db, tables.live) if tables.live in names else {}
        built = _video_rows(db, tables.building) if tables.building in names else {}
        missing = sorted(set(live) - set(built))
        return RebuildProgress(
            building=tables.building,
            live=tables.live or "",
            videos_done=len(set(live) & set(built)),
            videos_total=len(live),
            rows_done=sum(built.values()),
            rows_live=sum(live.values()),
            missing=tuple(missing[:20]),
        )

    def switch_if_complete(self, profile: str, progress: RebuildProgress | None = None) -> Switch | None:
        """Make the table being built live once it holds every video of the live table
        (``progress``: as just read by :meth:`progress`, not read again)."""
        progress = progress or self.progress(profile)
        if progress is None or not progress.complete:
            return None
        with self._locked() as data:
            tables = self._tables(data, profile)
            if tables.building != progress.building:
                return None  # another writer switched or restarted meanwhile
            old = tables.live
            tables.live, tables.building = progress.building, None
            if old and old not in tables.retired:
                tables.retired.append(old)
            self._store(data, profile, tables)
        return Switch(profile, progress.building, old)

    def drop(self, name: str) -> None:
        """Remove a retired table (never the live one, nor the one being built)."""
        with self._locked() as data:
            for profile in {*data, *self._profiles_with_tables()}:
                tables = self._tables(data, profile)
                role = tables.role_of(name)
                if role in (LIVE, BUILDING):
                    raise StoreError(f"table {name!r} is the {role} table of profile {profile!r}; it cannot be dropped")
                if role == RETIRED:
                    tables.retired.remove(name)
                    self._store(data, profile, tables)
            db = connect(self.uri)
            if name not in list_table_names(db):
                raise StoreError(f"no table {name!r} at {self.uri}")
            db.drop_table(name)

    # ---------------------------------------------------------------- helpers
    def _load(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.path}: unreadable table registry ({exc}); restore or delete it") from exc

    def _tables(self, data: dict, profile: str) -> ProfileTables:
        raw = data.get(profile)
        if raw is None:  # before any switch: the profile's first table is live
            return ProfileTables(live=table_name_for(profile))
        return ProfileTables(raw.get(LIVE), raw.get(BUILDING), list(raw.get(RETIRED, [])))

    def _store(self, data: dict, profile: str, tables: ProfileTables) -> None:
        data[profile] = asdict(tables)
        atomic_write_bytes(self.path, json.dumps(data, indent=1).encode(), durable=True)

    @contextmanager
    def _locked(self) -> Iterator[dict]:
        Path(self.uri).mkdir(parents=True, exist_ok=True)
        with open(Path(self.uri) / ".tving_tables.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self._load()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _stamp_of(self, name: str | None) -> ModelStamp | None:
        return table_stamp(self.uri, name) if name else None

    def _profiles_with_tables(self) -> set[str]:
        try:
            names = list_table_names(connect(self.uri))
        except (OSError, ValueError, RuntimeError):
            return set()
        return {n.split("_")[1] for n in names if n.startswith("scenes_") and n.count("_") >= 1}


def _video_rows(db, name: str) -> dict[str, int]:
    from collections import Counter

    ids = db.open_table(name).search().select(["video_id"]).limit(None).to_arrow().column("video_id")
    return dict(Counter(ids.to_pylist()))
