"""Looking after the scene tables: what each holds, deleting a video everywhere, index refresh and compaction."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from tving_resources.errors import StoreError
from tving_resources.ids import is_video_id
from tving_resources.store.scene_store import (
    ANN_INDEX_TYPE,
    ann_partitions,
    connect,
    list_table_names,
    retry_on_conflict,
)
from tving_resources.store.schema import PROVENANCE_COLUMNS, SCALAR_COLUMNS, TEXT_COLUMNS, ModelStamp, fts_configs

if TYPE_CHECKING:
    pass


# Below this many rows an exact (flat) vector search is fast enough and an ANN index not worth it.
DEFAULT_ANN_MIN_ROWS = 5_000


OLD_VERSIONS_KEPT = timedelta(hours=1)
_MAINTENANCE_RETRIES = 20  # compaction rewrites many rows: any concurrent write preempts it


@dataclass(frozen=True)
class TableStatus:
    name: str
    rows: int
    videos: int
    size_bytes: int | None
    stamp: ModelStamp | None
    indexes: tuple[str, ...]
    # provenance column -> model id -> rows (which videos were indexed with which models)
    rows_per_model: dict[str, dict[str, int]] = field(default_factory=dict)


def inspect_tables(uri: str) -> list[TableStatus]:
    """What each profile's scene table holds, read without loading any model."""
    try:
        db = connect(uri)
        names = [n for n in list_table_names(db) if n.startswith("scenes_")]
    except (OSError, ValueError, RuntimeError) as exc:
        raise StoreError(f"cannot open the LanceDB database at {uri}: {exc}") from exc
    statuses = []
    for name in names:
        table = db.open_table(name)
        columns = [c for c in PROVENANCE_COLUMNS if c in table.schema.names]
        data = table.search().select(["video_id", *columns]).limit(None).to_arrow()
        # counted in Arrow: a million rows as Python strings took seconds a column
        per_model = {c: _value_counts(data.column(c)) for c in columns}
        folder = Path(uri) / f"{name}.lance"  # local databases only; None for s3:// and the like
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else None
        statuses.append(
            TableStatus(
                name=name,
                rows=table.count_rows(),
                videos=pc.count_distinct(data.column("video_id")).as_py(),
                size_bytes=size,
                stamp=ModelStamp.from_metadata(table.schema.metadata),
                indexes=tuple(sorted(i.name for i in table.list_indices())),
                rows_per_model={c: {str(k): v for k, v in sorted(m.items(), key=str)} for c, m in per_model.items()},
            )
        )
    return statuses


def _value_counts(column: pa.ChunkedArray) -> dict[Any, int]:
    counts = pc.value_counts(column)
    return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))


def delete_video_everywhere(uri: str, video_id: str) -> int:
    """Delete a video's rows and faces from every profile's tables (a removed file leaves nothing behind)."""
    if not is_video_id(video_id):
        raise ValueError(f"invalid video id {video_id!r}")
    db = connect(uri)
    touched = 0
    for name in list_table_names(db):
        if name.startswith(("scenes_", "faces_")):
            table = db.open_table(name)
            retry_on_conflict(lambda t=table: t.delete(f"video_id = '{video_id}'"))
            touched += 1
    return touched


def refresh_table_indexes(table, ann_min_rows: int = DEFAULT_ANN_MIN_ROWS) -> dict[str, Any]:
    """Build missing indexes (full-text always; ANN on the text vectors once the table has
    ``ann_min_rows`` rows), fold new rows into existing indexes, and compact the table."""
    from lancedb.index import IvfRq

    started = time.perf_counter()
    indices = table.list_indices()
    existing = {tuple(i.columns) for i in indices}
    ann_types = {i.columns[0]: i.index_type for i in indices if len(i.columns) == 1}
    rows = table.count_rows()
    built = []
    # Every step may lose a commit race to a concurrent writer (a video replaced meanwhile):
    # it is then redone on the new version, as LanceDB asks ("retryable commit conflict").
    retry = {"attempts": _MAINTENANCE_RETRIES}
    for column, config in fts_configs().items():
        if (column,) not in existing and column in table.schema.names:
            retry_on_conflict(lambda c=column, cfg=config: table.create_index(c, config=cfg, replace=True), **retry)
            built.append(column)
    for column in SCALAR_COLUMNS:  # id lookups and video filters without a full scan
        if (column,) not in existing:
            retry_on_conflict(lambda c=column: table.create_scalar_index(c, index_type="BTREE", replace=True), **retry)
            built.append(column)
    if rows >= ann_min_rows:
        for column in TEXT_COLUMNS:
            # IVF-RQ (RaBitQ, one bit a dimension), partitions ~ sqrt(rows): chosen with `tving bench
            # ann` at 1M rows (recall@10 0.972 at 7.4 ms with nprobes 200 and refine 10, against 0.973
            # at 32.9 ms for IVF-PQ; built in 36 s against 157 s; docs/performance.md). An index of
            # another type (IVF-PQ, built before) is rebuilt once.
            if ann_types.get(column) != ANN_INDEX_TYPE:
                config = IvfRq(distance_type="dot", num_partitions=ann_partitions(rows))
                retry_on_conflict(lambda c=column, cfg=config: table.create_index(c, config=cfg, replace=True), **retry)
                built.append(column)
    # Compaction leaves the rewritten files to old versions; LanceDB keeps those 7 days by default,
    # which doubled a freshly built table on disk (16 KB a scene for 8 KB of rows). A version is
    # read for well under a second (a search batch pins one): an hour is ample.
    retry_on_conflict(lambda: table.optimize(cleanup_older_than=OLD_VERSIONS_KEPT), **retry)
    return {
        "table": table.name,
        "rows": rows,
        "built": built,
        "indexes": sorted(i.name for i in table.list_indices()),
        "seconds": round(time.perf_counter() - started, 3),
    }


def refresh_all_indexes(uri: str, ann_min_rows: int = DEFAULT_ANN_MIN_ROWS) -> list[dict[str, Any]]:
    """:func:`refresh_table_indexes` on every profile's scene table in the database."""
    db = connect(uri)
    return [
        refresh_table_indexes(db.open_table(name), ann_min_rows)
        for name in list_table_names(db)
        if name.startswith("scenes_")
    ]
