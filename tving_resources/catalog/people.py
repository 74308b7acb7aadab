"""Who is who: people (an id, the name a user gave, what they were merged into) and which person
each face belongs to, kept in the catalog's database beside the videos."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tving_resources.catalog.video_catalog import VideoCatalog
from tving_resources.errors import TvingError

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS people (person_id TEXT PRIMARY KEY, name TEXT, merged_into TEXT, "
    "created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS face_people (face_id TEXT PRIMARY KEY, person_id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS face_people_person ON face_people (person_id)",
)
_FORGET_FACELESS = (
    "DELETE FROM people WHERE name IS NULL AND merged_into IS NULL AND person_id NOT IN "
    "(SELECT DISTINCT person_id FROM face_people)"
)
MAX_NAME = 100


class PersonNotFoundError(TvingError):
    """No person has that id or name."""


@dataclass(frozen=True)
class Person:
    person_id: str
    name: str | None
    merged_into: str | None

    @property
    def label(self) -> str:
        return self.name or self.person_id


class PeopleRegistry:
    """People and the faces of each, in the catalog's database (SQLite, or PostgreSQL)."""

    def __init__(self, catalog: VideoCatalog):
        self._catalog = catalog
        with catalog.transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    # ---------------------------------------------------------------- reads
    def assignments(self) -> dict[str, str]:
        with self._catalog.transaction() as conn:
            return dict(conn.execute("SELECT face_id, person_id FROM face_people").fetchall())

    def people(self) -> list[Person]:
        """Everyone not merged into someone else."""
        with self._catalog.transaction() as conn:
            rows = conn.execute("SELECT person_id, name, merged_into FROM people WHERE merged_into IS NULL").fetchall()
        return [Person(*row) for row in rows]

    def merge_survivors(self) -> set[str]:
        """The people a user merged someone into."""
        with self._catalog.transaction() as conn:
            rows = conn.execute("SELECT DISTINCT merged_into FROM people WHERE merged_into IS NOT NULL").fetchall()
        return {r[0] for r in rows}

    def faces_of(self, person_id: str) -> list[str]:
        with self._catalog.transaction() as conn:
            rows = conn.execute("SELECT face_id FROM face_people WHERE person_id = :p", {"p": person_id}).fetchall()
        return [r[0] for r in rows]

    def people_of_faces(self, face_ids: Sequence[str]) -> dict[str, Person]:
        """face id -> its person (faces with none are left out)."""
        found: dict[str, str] = {}
        ids = list(dict.fromkeys(face_ids))
        with self._catalog.transaction() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join(f":f{i}" for i in range(len(chunk)))
                rows = conn.execute(
                    f"SELECT face_id, person_id FROM face_people WHERE face_id IN ({marks})",
                    {f"f{i}": f for i, f in enumerate(chunk)},
                ).fetchall()
                found.update(dict(rows))
            wanted = sorted(set(found.values()))
            marks = ", ".join(f":p{i}" for i in range(len(wanted)))
            rows = (
                conn.execute(
                    f"SELECT person_id, name, merged_into FROM people WHERE person_id IN ({marks})",
                    {f"p{i}": p for i, p in enumerate(wanted)},
                ).fetchall()
                if wanted
                else []
            )
        people = {r[0]: Person(*r) for r in rows}
        return {f: people[p] for f, p in found.items() if p in people}

    def find(self, name_or_id: str) -> Person:
        """A person by id, or by name (case does not matter); a merged id leads to its survivor."""
        text = name_or_id.strip()
        with self._catalog.transaction() as conn:
            rows = conn.execute("SELECT person_id, name, merged_into FROM people").fetchall()
        everyone = {r[0]: Person(*r) for r in rows}
        person = everyone.get(text)
        if person is None:
            named = [p for p in everyone.values() if p.name and p.name.casefold() == text.casefold()]
            live = [p for p in named if p.merged_into is None]
            person = (live or named or [None])[0]
        while person is not None and person.merged_into:
            person = everyone.get(person.merged_into)
        if person is None:
            raise PersonNotFoundError(f"no person is called or numbered {text!r}: see `tving people` for the list")
        return person

    # --------------------------------------------------------------- writes
    def save_grouping(self, people: dict[str, str], new_people: Iterable[str], full: bool) -> None:
        """Record a grouping in one transaction: ``people`` (face id -> person id) replaces every
        face's person when ``full``, else is added to what is there. A person id that was merged
        keeps pointing at its survivor, so the grouping's faces go there."""
        now = time.time()
        with self._catalog.transaction() as conn:
            survivors = dict(
                conn.execute("SELECT person_id, merged_into FROM people WHERE merged_into IS NOT NULL").fetchall()
            )
            for person in new_people:
                conn.execute(
                    "INSERT INTO people (person_id, name, merged_into, created_at, updated_at) "
                    "VALUES (:p, NULL, NULL, :now, :now)",
                    {"p": person, "now": now},
                )
            if full:
                conn.execute("DELETE FROM face_people")
            rows = [{"f": face, "p": _final(person, survivors)} for face, person in people.items()]
            conn.executemany("DELETE FROM face_people WHERE face_id = :f", rows)
            conn.executemany("INSERT INTO face_people (face_id, person_id) VALUES (:f, :p)", rows)
            if full:  # people left with no face (their faces' videos were removed) are forgotten, unless named
                conn.execute(_FORGET_FACELESS)

    def forget_faces(self, face_ids: Sequence[str]) -> None:
        with self._catalog.transaction() as conn:
            conn.executemany("DELETE FROM face_people WHERE face_id = :f", [{"f": f} for f in face_ids])

    def forget_video(self, video_id: str) -> None:
        """A removed video's faces leave their people; a person left with no face goes too,
        unless a user named them (the name waits for the person's next video)."""
        prefix = f"{video_id}:"
        with self._catalog.transaction() as conn:
            conn.execute(
                "DELETE FROM face_people WHERE substr(face_id, 1, :n) = :prefix", {"n": len(prefix), "prefix": prefix}
            )
            conn.execute(_FORGET_FACELESS)

    def forget_everyone(self) -> int:
        """Every person and every face's person, names included (faces deleted); how many people."""
        with self._catalog.transaction() as conn:
            count = conn.execute("SELECT COUNT(*) FROM people").fetchone()[0]
            conn.execute("DELETE FROM face_people")
            conn.execute("DELETE FROM people")
        return count

    def name(self, name_or_id: str, name: str) -> Person:
        name = " ".join(name.split())
        if not name or len(name) > MAX_NAME:
            raise TvingError(f"a name is 1 to {MAX_NAME} characters")
        person = self.find(name_or_id)
        with self._catalog.transaction() as conn:
            conn.execute(
                "UPDATE people SET name = :n, updated_at = :now WHERE person_id = :p",
                {"n": name, "now": time.time(), "p": person.person_id},
            )
        return Person(person.person_id, name, None)

    def merge(self, keep: str, other: str) -> Person:
        """``other``'s faces become ``keep``'s, now and at every later grouping; ``keep`` takes
        ``other``'s name if it has none."""
        kept, gone = self.find(keep), self.find(other)
        if kept.person_id == gone.person_id:
            raise TvingError(f"{keep!r} and {other!r} are the same person already")
        now = time.time()
        with self._catalog.transaction() as conn:
            conn.execute(
                "UPDATE face_people SET person_id = :k WHERE person_id = :g", {"k": kept.person_id, "g": gone.person_id}
            )
            conn.execute(
                "UPDATE people SET merged_into = :k, updated_at = :now WHERE person_id = :g OR merged_into = :g",
                {"k": kept.person_id, "now": now, "g": gone.person_id},
            )
            if not kept.name and gone.name:
                conn.execute(
                    "UPDATE people SET name = :n, updated_at = :now WHERE person_id = :k",
                    {"n": gone.name, "now": now, "k": kept.person_id},
                )
        return self.find(kept.person_id)


def _final(person: str, survivors: dict[str, str]) -> str:
    seen = set()
    while person in survivors and person not in seen:
        seen.add(person)
        person = survivors[person]
    return person
