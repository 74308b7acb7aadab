"""The LanceDB scene table: per-video atomic replacement and the search primitives (its schema:
:mod:`tving_resources.store.schema`; its upkeep: :mod:`tving_resources.store.maintenance`).

One row per scene. A video's rows are replaced in a single ``merge_insert`` commit (update the
scenes that exist, insert new ones, delete the video's scenes that are gone), so a reader sees
either the old rows or the new rows of a video, never a mix or a half.

Each model profile writes its own table (``scenes_lite``, ``scenes_full``): vectors of different
models never share a column, and switching profile re-indexes into the other table. The table's
schema metadata records the models that wrote it; a reader or writer with other models gets a
:class:`ProfileMismatchError` instead of meaningless scores.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tving_resources.errors import ProfileMismatchError, StoreError
from tving_resources.ids import is_video_id
from tving_resources.store.schema import (
    FTS_COLUMN,
    ModelStamp,
    fts_column_for,
    fts_configs,
    scene_schema,
    table_name_for,
)

if TYPE_CHECKING:
    pass


_COMMIT_RETRIES = 8


@dataclass(frozen=True)
class AnnSettings:
    """How the nearest-neighbour searches use an ANN index (ignored while a table has none).
    ``nprobes``: IVF partitions searched (None: ``probe_fraction`` of the index's partitions, at
    least ``min_nprobes``); ``refine_factor``: candidates re-ranked with the exact vectors, as a
    multiple of the limit. Chosen with `tving bench ann` at 1M rows (docs/performance.md): 200 of 1,000
    partitions and refine 10; a fixed 200 would probe most of a smaller table's partitions."""

    nprobes: int | None = None
    refine_factor: int | None = 10
    probe_fraction: float = 0.2
    min_nprobes: int = 20

    def probes_for(self, partitions: int) -> int:
        if self.nprobes:
            return self.nprobes
        return min(partitions, max(self.min_nprobes, round(self.probe_fraction * partitions)))


ANN_INDEX_TYPE = "IvfRq"  # what list_indices() calls the vector indexes this project builds


def ann_partitions(rows: int) -> int:
    """IVF partitions of an index over ``rows`` vectors (about the square root)."""
    return max(16, int(rows**0.5))


def connect(uri: str):
    """A LanceDB connection whose open tables always read the latest committed version.

    Without this a long-lived reader (the web server, a resource) keeps seeing the table as it was
    when opened: videos indexed or removed since would stay invisible.
    """
    import lancedb

    return lancedb.connect(uri, read_consistency_interval=timedelta(0))


def is_scene_id(value: str) -> bool:
    """``<video id>:<5 digits>``, as :func:`tving_resources.store.schema.scene_id` makes them."""
    video_id, _, index = value.rpartition(":")
    return is_video_id(video_id) and len(index) == 5 and index.isdigit()


@dataclass(frozen=True)
class SceneFilter:
    """Typed search filters, turned into a LanceDB ``where`` string by this module only.

    User text never reaches the filter string: video ids must match the id pattern and times
    are floats, so nothing a user types can change the filter's meaning.
    """

    video_ids: tuple[str, ...] = ()
    start_at_or_after: float | None = None  # scene ends after this time
    end_at_or_before: float | None = None  # scene starts before this time
    scene_ids: tuple[str, ...] | None = None  # only these scenes (None: any; empty: none)

    def to_where(self) -> str | None:
        clauses = []
        if self.video_ids:
            bad = [v for v in self.video_ids if not is_video_id(v)]
            if bad:
                raise ValueError(f"invalid video id(s): {', '.join(map(repr, bad))}")
            clauses.append("video_id IN (" + ", ".join(f"'{v}'" for v in self.video_ids) + ")")
        if self.scene_ids is not None:
            bad = [s for s in self.scene_ids if not is_scene_id(s)]
            if bad:
                raise ValueError(f"invalid scene id(s): {', '.join(map(repr, bad[:3]))}")
            clauses.append("scene_id IN (" + (", ".join(f"'{s}'" for s in self.scene_ids) or "''") + ")")
        if self.start_at_or_after is not None:
            clauses.append(f"`end` > {float(self.start_at_or_after)!r}")
        if self.end_at_or_before is not None:
            clauses.append(f"start < {float(self.end_at_or_before)!r}")
        return " AND ".join(clauses) or None


@dataclass(frozen=True)
class VideoSummary:
    video_id: str
    video_name: str
    video_path: str
    duration: float
    scenes: int
    indexed_at: Any


class SceneStore:
    """The scene table of one model profile in a LanceDB database (local folder or s3://...)."""

    def __init__(self, uri: str, stamp: ModelStamp, table_name: str | None = None, ann: AnnSettings | None = None):
        self.uri = uri
        self.stamp = stamp
        self.table_name = table_name or table_name_for(stamp.profile)
        self.ann = ann or AnnSettings()
        self._db = None
        self._table = None
        self._probes: dict[str, int | None] = {}  # vector column -> nprobes for its index

    # ---------------------------------------------------------------- tables
    @property
    def db(self):
        if self._db is None:
            try:
                self._db = connect(self.uri)
            except (OSError, ValueError, RuntimeError) as exc:
                raise StoreError(f"cannot open the LanceDB database at {self.uri}: {exc}") from exc
        return self._db

    def table_names(self) -> list[str]:
        return list_table_names(self.db)

    def exists(self) -> bool:
        return self.table_name in self.table_names()

    def table(self, create: bool = False):
        """The table, checked against this store's model stamp (created on first write)."""
        if self._table is None:
            if self.exists():
                table = self.db.open_table(self.table_name)
                self._check_stamp(table, writing=create)
                if create:
                    _add_missing_columns(table, scene_schema(self.stamp))
                self._table = table
            elif create:
                self._table = self._create()
            else:
                others = [n for n in self.table_names() if n.startswith("scenes_")]
                hint = (
                    f" (the database holds {', '.join(others)}: index with that profile's models, "
                    f"or re-index with profile {self.stamp.profile!r})"
                    if others
                    else "; index some videos first: tving index PATH"
                )
                raise StoreError(f"no scene table {self.table_name!r} at {self.uri}{hint}")
        return self._table

    def snapshot(self) -> SceneStore:
        """The table as it is now, for reads that must agree with each other (a search's candidate
        row ids and the rows they point to): writes, deletes and compactions committed meanwhile
        change nothing it returns. Row ids are only valid within one version of the table."""
        self.table()  # checks the model stamp
        pinned = self.db.open_table(self.table_name)
        pinned.checkout(pinned.version)
        snap = SceneStore(self.uri, self.stamp, self.table_name, self.ann)
        snap._db, snap._table = self._db, pinned
        return snap

    def _create(self):
        table = self.db.create_table(self.table_name, schema=scene_schema(self.stamp), exist_ok=True)
        self._check_stamp(table, writing=True)
        # FTS indexes made while the table is empty: rows added later are searched too (unindexed
        # rows are scanned) until the search_index asset folds them into the indexes.
        if not table.list_indices():
            for column, config in fts_configs().items():
                table.create_index(column, config=config, replace=True)
        return table

    def _check_stamp(self, table, writing: bool) -> None:
        found = ModelStamp.from_metadata(table.schema.metadata)
        if found is None:
            raise StoreError(f"table {self.table_name!r} at {self.uri} was not written by tving (no model stamp)")
        reason = found.write_mismatch(self.stamp) if writing else found.query_mismatch(self.stamp)
        if reason:
            action = "write to" if writing else "search"
            raise ProfileMismatchError(
                f"cannot {action} table {self.table_name!r} (profile {found.profile!r}): {reason}. "
                f"Use the models that built it, or re-index the videos with these models into a "
                f"fresh table (delete {self.table_name!r} or set TVING_LANCEDB_URI elsewhere)."
            )

    # ---------------------------------------------------------------- writes
    def replace_video(self, video_id: str, rows: pa.Table) -> int:
        """Make ``rows`` the only rows of ``video_id``, in one commit. Returns the row count."""
        if not is_video_id(video_id):
            raise ValueError(f"invalid video id {video_id!r}")
        ids = set(rows.column("video_id").to_pylist())
        if ids - {video_id}:
            raise ValueError(f"rows of other videos in replace_video({video_id!r}): {sorted(ids)}")
        table = self.table(create=True)
        rows = rows.select(table.schema.names).cast(table.schema)

        def commit():
            (
                table.merge_insert("scene_id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(f"video_id = '{video_id}'")
                .execute(rows)
            )

        retry_on_conflict(commit)
        return rows.num_rows

    # ----------------------------------------------------------------- reads
    def count(self, video_id: str | None = None) -> int:
        if not self.exists():
            return 0
        if video_id is None:
            return self.table().count_rows()
        if not is_video_id(video_id):
            raise ValueError(f"invalid video id {video_id!r}")
        return self.table().count_rows(f"video_id = '{video_id}'")

    def videos(self) -> list[VideoSummary]:
        if not self.exists():
            return []
        cols = ["video_id", "video_name", "video_path", "video_duration", "indexed_at"]
        data = self.table().search().select(cols).limit(None).to_arrow().to_pylist()
        grouped: dict[str, VideoSummary] = {}
        counts: dict[str, int] = {}
        for row in data:
            counts[row["video_id"]] = counts.get(row["video_id"], 0) + 1
            grouped[row["video_id"]] = VideoSummary(
                row["video_id"], row["video_name"], row["video_path"], row["video_duration"], 0, row["indexed_at"]
            )
        return sorted(
            (VideoSummary(**{**v.__dict__, "scenes": counts[k]}) for k, v in grouped.items()),
            key=lambda v: v.video_name,
        )

    def columns(self, columns: Sequence[str]) -> pa.Table:
        """``columns`` of every row (those a table from before a column was added lacks are left out)."""
        if not self.exists():
            return pa.table({})
        present = [c for c in columns if c in self.table().schema.names]
        return self.table().search().select(present).limit(None).to_arrow()

    def video_summary(self, video_id: str) -> VideoSummary | None:
        """One video's summary, read through the video_id index (no scan of the table)."""
        columns = ["video_name", "video_path", "video_duration", "indexed_at", "scene_index"]
        rows = self.scenes_of(video_id, columns)
        if not rows:
            return None
        first = rows[0]
        return VideoSummary(
            video_id, first["video_name"], first["video_path"], first["video_duration"], len(rows), first["indexed_at"]
        )

    def scenes_of(self, video_id: str, columns: Sequence[str] | None = None) -> list[dict]:
        if not is_video_id(video_id):
            raise ValueError(f"invalid video id {video_id!r}")
        query = self.table().search().where(f"video_id = '{video_id}'").limit(None)
        if columns:
            query = query.select(list(columns))
        rows = query.to_arrow().to_pylist()
        return sorted(rows, key=lambda r: r["scene_index"])

    def _nprobes(self, column: str) -> int | None:
        """Partitions to probe in ``column``'s index (None: no index yet, an exact search)."""
        if column not in self._probes:
            try:
                stats = self.table().index_stats(f"{column}_idx")
            except (OSError, ValueError, RuntimeError):
                stats = None
            rows = stats.num_indexed_rows if stats is not None else 0
            self._probes[column] = self.ann.probes_for(ann_partitions(rows)) if rows else None
        return self._probes[column]

    def vector_search_batch(self, column: str, vectors: np.ndarray, limit: int, where: str | None = None) -> pa.Table:
        """Nearest rows of several query vectors in one query: ``query_index``, ``_rowid``,
        ``similarity``. Much cheaper than one query per vector (LanceDB's per-query cost)."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        query = (
            self.table()
            .search(list(vectors) if len(vectors) > 1 else vectors[0], vector_column_name=column)
            .distance_type("dot")
            .limit(limit)
            .with_row_id(True)
            .select(["_distance"])
        )
        nprobes = self._nprobes(column)
        if nprobes:
            query = query.nprobes(nprobes)
        if self.ann.refine_factor:
            query = query.refine_factor(self.ann.refine_factor)
        if where:
            query = query.where(where, prefilter=True)
        table = query.to_arrow()
        if "query_index" not in table.column_names:
            table = table.append_column("query_index", pa.array(np.zeros(table.num_rows, np.int32)))
        similarity = pc.subtract(1.0, table.column("_distance"))
        return table.select(["query_index", "_rowid"]).append_column("similarity", similarity)

    def take_rows(self, row_ids: Sequence[int], columns: Sequence[str]) -> pa.Table:
        """Rows by LanceDB row id, with ``_rowid``. The ids must come from a search of the same
        table version: use a :meth:`snapshot` for both (after a replace or a compaction, ids of
        another version silently match fewer rows or other rows)."""
        if not row_ids:
            return pa.table({c: pa.array([], self.table().schema.field(c).type) for c in columns}).append_column(
                "_rowid", pa.array([], pa.uint64())
            )
        return self.table().take_row_ids(list(row_ids)).select(list(columns)).with_row_id().to_arrow()

    def text_search(
        self, text: str, limit: int, where: str | None = None, columns: Sequence[str] = (), column: str | None = None
    ) -> pa.Table:
        """Full-text (BM25) matches over caption + transcript: ``scene_id``, ``_rowid``, ``bm25``
        and ``columns``. Query syntax is not interpreted: the text is matched as words."""
        table = self.table()
        column = column or fts_column_for(text)
        if column not in table.schema.names:  # a table from before the n-gram column
            column = FTS_COLUMN
        query = table.search(text, query_type="fts", fts_columns=column).limit(limit).with_row_id(True)
        query = query.select(list(dict.fromkeys(["scene_id", *columns, "_score"])))
        if where:
            query = query.where(where, prefilter=True)
        try:
            table = query.to_arrow()
        except (ValueError, RuntimeError, OSError) as exc:
            if "index" in str(exc).lower():  # no full-text index yet: the vector signals still answer
                return pa.table(
                    {
                        "scene_id": pa.array([], pa.string()),
                        "_rowid": pa.array([], pa.uint64()),
                        "bm25": pa.array([], pa.float32()),
                    }
                )
            raise
        return table.rename_columns([("bm25" if n == "_score" else n) for n in table.column_names])


def table_stamp(uri: str, name: str) -> ModelStamp | None:
    """The stamp of table ``name`` (None when there is no such table yet, or no database)."""
    try:
        db = connect(uri)
        if name not in list_table_names(db):
            return None
    except (OSError, ValueError, RuntimeError):
        return None
    return ModelStamp.from_metadata(db.open_table(name).schema.metadata)


def _add_missing_columns(table, schema: pa.Schema) -> None:
    """Columns added to the schema since a table was created (on-screen text, ...) are added to it,
    empty, before the first write with the new schema: an upgrade never needs a new table."""
    missing = [f for f in schema if f.name not in table.schema.names]
    if not missing:
        return
    if any(not pa.types.is_string(f.type) for f in missing):
        names = ", ".join(f.name for f in missing)
        raise StoreError(
            f"table {table.name!r} lacks columns {names} that cannot be added empty; re-index into a new table"
        )
    retry_on_conflict(lambda: table.add_columns({f.name: "CAST('' AS STRING)" for f in missing}))


def list_table_names(db) -> list[str]:
    names, token = [], None
    while True:
        page = db.list_tables(page_token=token)
        names.extend(page.tables)
        token = page.page_token
        if not token:
            return sorted(names)


def retry_on_conflict(operation, attempts: int = _COMMIT_RETRIES) -> None:
    """Retry a write that lost a commit race to another writer (LanceDB's optimistic commits)."""
    for attempt in range(attempts):
        try:
            operation()
            return
        except (OSError, RuntimeError, ValueError) as exc:
            if "conflict" not in str(exc).lower() or attempt == attempts - 1:
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))  # jitter: racers spread out
