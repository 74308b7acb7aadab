"""The faces table (``faces_<profile>``): one row per face found in a keyframe, beside the scene
table, replaced video by video when the video's rows are committed, deleted with them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from tving_resources.ids import is_video_id
from tving_resources.store.scene_store import connect, list_table_names, retry_on_conflict

FACE_DIM = 128
FACE_COLUMNS = ("face_id", "video_id", "scene_id", "scene_index", "timestamp", "box", "score", "thumbnail", "model_id")


def faces_table_name(profile: str) -> str:
    return f"faces_{profile}"


def face_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("face_id", pa.string(), nullable=False),
            pa.field("video_id", pa.string(), nullable=False),
            pa.field("scene_id", pa.string(), nullable=False),
            pa.field("scene_index", pa.int32()),
            pa.field("timestamp", pa.float64()),
            pa.field("box", pa.list_(pa.int32(), 4)),
            pa.field("score", pa.float32()),
            pa.field("embedding", pa.list_(pa.float32(), FACE_DIM)),
            pa.field("thumbnail", pa.string()),
            pa.field("model_id", pa.string()),
        ]
    )


class FaceStore:
    """The faces of one profile's videos."""

    def __init__(self, uri: str, profile: str):
        self.uri = uri
        self.table_name = faces_table_name(profile)
        self._db = None

    @property
    def db(self):
        if self._db is None:
            self._db = connect(self.uri)
        return self._db

    def exists(self) -> bool:
        try:
            return self.table_name in list_table_names(self.db)
        except (OSError, ValueError, RuntimeError):
            return False

    def table(self, create: bool = False):
        if create:
            return self.db.create_table(self.table_name, schema=face_schema(), exist_ok=True)
        return self.db.open_table(self.table_name)

    def replace_video(self, video_id: str, rows: pa.Table) -> int:
        """Make ``rows`` the only faces of ``video_id`` (none: the video has no face any more)."""
        if not is_video_id(video_id):
            raise ValueError(f"invalid video id {video_id!r}")
        if not rows.num_rows and not self.exists():
            return 0
        table = self.table(create=True)

        def commit() -> None:
            (
                table.merge_insert("face_id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(f"video_id = '{video_id}'")
                .execute(rows.cast(face_schema()))
            )

        retry_on_conflict(commit)
        return rows.num_rows

    def count(self) -> int:
        return self.table().count_rows() if self.exists() else 0

    def all_faces(self, columns: Sequence[str] = ("face_id", "embedding")) -> pa.Table:
        """Every face (the people asset's input), in one Arrow table."""
        if not self.exists():
            return face_schema().empty_table().select(list(columns))
        return self.table().search().select(list(columns)).limit(None).to_arrow()

    def nearest(self, embedding: np.ndarray, limit: int, max_distance: float | None = None) -> pa.Table:
        """The faces nearest to ``embedding`` (Euclidean distance in ``distance``), nearest first."""
        if not self.exists():
            return pa.table({"face_id": [], "distance": []})
        rows = (
            self.table()
            .search(np.asarray(embedding, dtype=np.float32), vector_column_name="embedding")
            .metric("l2")
            .select([*FACE_COLUMNS, "_distance"])
            .limit(limit)
            .to_arrow()
        )
        distance = np.sqrt(np.maximum(rows.column("_distance").to_numpy(), 0.0))  # LanceDB's l2 is squared
        rows = rows.drop(["_distance"]).append_column("distance", pa.array(distance, pa.float32()))
        if max_distance is not None:
            rows = rows.filter(pa.compute.less_equal(rows.column("distance"), max_distance))
        return rows

    def faces_of_scenes(self, scene_ids: Sequence[str]) -> pa.Table:
        if not self.exists() or not scene_ids:
            return face_schema().empty_table().select(list(FACE_COLUMNS))
        quoted = ", ".join(f"'{s}'" for s in scene_ids if _safe(s))
        return self.table().search().where(f"scene_id IN ({quoted})").select(list(FACE_COLUMNS)).limit(None).to_arrow()

    def faces_by_id(self, face_ids: Sequence[str]) -> pa.Table:
        if not self.exists() or not face_ids:
            return face_schema().empty_table().select(list(FACE_COLUMNS))
        quoted = ", ".join(f"'{f}'" for f in face_ids if _safe(f))
        return self.table().search().where(f"face_id IN ({quoted})").select(list(FACE_COLUMNS)).limit(None).to_arrow()


def _safe(value: str) -> bool:
    """Ids are built from checked video ids, digits and colons: nothing to escape."""
    return all(c.isalnum() or c in "-:" for c in value)
