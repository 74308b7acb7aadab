"""The scene table's schema and the stamp of the models that fill it (shared by the writer and the query app)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from tving_resources.models.runtime import ModelRuntime


SCHEMA_VERSION = "2"  # 2: keyframe_hashes


_META_PREFIX = "tving."


TEXT_COLUMNS = ("caption_vector", "transcript_vector")


FTS_COLUMN = "search_text"


# The same text again, indexed by character 2- and 3-grams: Korean words carry their particles
# ("날씨가", "서울에") and make compounds, which word tokens never match; n-grams do.
NGRAM_FTS_COLUMN = "search_text_ngram"


_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")


def fts_configs() -> dict[str, Any]:
    from lancedb.index import FTS

    return {
        FTS_COLUMN: FTS(),
        NGRAM_FTS_COLUMN: FTS(
            base_tokenizer="ngram", ngram_min_length=2, ngram_max_length=3, stem=False, remove_stop_words=False
        ),
    }


def fts_column_for(text: str) -> str:
    """The full-text index a query goes to: n-grams for Korean, words (stemmed) otherwise."""
    return NGRAM_FTS_COLUMN if _HANGUL.search(text) else FTS_COLUMN


SCALAR_COLUMNS = ("scene_id", "video_id")


@dataclass(frozen=True)
class ModelStamp:
    """The models whose outputs fill a table. Two stamps must match to mix rows or query."""

    profile: str
    text_model: str
    text_dim: int
    frame_model: str
    frame_dim: int
    caption_model: str
    speech_model: str
    # the encoder of transcript vectors when it is not the text encoder ("" / 0: the text encoder)
    transcript_model: str = ""
    transcript_dim: int = 0

    @property
    def transcript_space(self) -> tuple[str, int]:
        return (self.transcript_model or self.text_model, self.transcript_dim or self.text_dim)

    def to_metadata(self) -> dict[str, str]:
        meta = {f"{_META_PREFIX}{k}": str(v) for k, v in self.__dict__.items()}
        meta[f"{_META_PREFIX}schema_version"] = SCHEMA_VERSION
        return meta

    @classmethod
    def from_metadata(cls, metadata: dict[bytes, bytes] | None) -> ModelStamp | None:
        meta = {k.decode(): v.decode() for k, v in (metadata or {}).items()}
        try:
            return cls(
                profile=meta[f"{_META_PREFIX}profile"],
                text_model=meta[f"{_META_PREFIX}text_model"],
                text_dim=int(meta[f"{_META_PREFIX}text_dim"]),
                frame_model=meta[f"{_META_PREFIX}frame_model"],
                frame_dim=int(meta[f"{_META_PREFIX}frame_dim"]),
                caption_model=meta[f"{_META_PREFIX}caption_model"],
                speech_model=meta[f"{_META_PREFIX}speech_model"],
                transcript_model=meta.get(f"{_META_PREFIX}transcript_model", ""),
                transcript_dim=int(meta.get(f"{_META_PREFIX}transcript_dim", 0)),
            )
        except (KeyError, ValueError):
            return None

    def query_mismatch(self, other: ModelStamp) -> str | None:
        """Why vectors of ``other`` cannot be compared with this table's (None if they can)."""
        for name in ("text_model", "text_dim", "frame_model", "frame_dim"):
            if getattr(self, name) != getattr(other, name):
                return f"{name} is {getattr(self, name)!r} in the index but {getattr(other, name)!r} here"
        if self.transcript_space != other.transcript_space:
            return f"the transcript encoder is {self.transcript_space} in the index but {other.transcript_space} here"
        return None

    def write_mismatch(self, other: ModelStamp) -> str | None:
        """Only the vector space decides who may write: rows from another captioner or speech model
        (a new LoRA adapter, another whisper) are ordinary rows, each recording its models."""
        return self.query_mismatch(other)


def runtime_stamp(runtime: ModelRuntime) -> ModelStamp:
    """The :class:`ModelStamp` of ``runtime``'s models (loads both encoders: their dimensions)."""
    text, frame = runtime.text_encoder(), runtime.frame_encoder()
    transcript = runtime.transcript_encoder() if runtime.profile.transcript_model else None
    return ModelStamp(
        profile=runtime.profile.name,
        text_model=text.model_id,
        text_dim=text.dim,
        frame_model=frame.model_id,
        frame_dim=frame.dim,
        caption_model=runtime.model_ids()["captioner"],
        speech_model=runtime.profile.speech_model,
        transcript_model=transcript.model_id if transcript else "",
        transcript_dim=transcript.dim if transcript else 0,
    )


def table_name_for(profile: str) -> str:
    return f"scenes_{profile}"


# Vectors are stored in half precision: half the bytes a scene takes on disk and in reads, the
# same recall (their similarities move by about 1e-3; docs/performance.md, "Space"). Search
# computes in float32. Tables made before keep float32 columns, and new rows are cast to them.
def scene_schema(stamp: ModelStamp) -> pa.Schema:
    import pyarrow as pa

    stored = pa.float16()
    text_vec = pa.list_(stored, stamp.text_dim)
    transcript_vec = pa.list_(stored, stamp.transcript_space[1])
    frame_vec = pa.list_(stored, stamp.frame_dim)
    return pa.schema(
        [
            pa.field("scene_id", pa.string(), nullable=False),
            pa.field("video_id", pa.string(), nullable=False),
            pa.field("video_path", pa.string()),
            pa.field("video_name", pa.string()),
            pa.field("video_duration", pa.float64()),
            pa.field("scene_index", pa.int32()),
            pa.field("start", pa.float64()),
            pa.field("end", pa.float64()),
            pa.field("caption", pa.string()),
            pa.field("transcript", pa.string()),
            pa.field("ocr_text", pa.string()),
            pa.field("transcript_source", pa.string()),
            pa.field(FTS_COLUMN, pa.string()),
            pa.field(NGRAM_FTS_COLUMN, pa.string()),
            pa.field("language", pa.string()),
            pa.field("has_transcript", pa.bool_()),
            pa.field("caption_vector", text_vec),
            pa.field("transcript_vector", transcript_vec),
            pa.field("frame_vectors", pa.list_(frame_vec)),
            pa.field("keyframe_times", pa.list_(pa.float64())),
            pa.field("thumbnails", pa.list_(pa.string())),
            # perceptual hashes of the keyframes, 16 hex digits each, "-" for a flat frame
            # (tving_resources.index.duplicates); one string, so that older tables gain it empty
            pa.field("keyframe_hashes", pa.string()),
            pa.field("fingerprint", pa.string()),
            pa.field("caption_model", pa.string()),
            pa.field("text_model", pa.string()),
            pa.field("frame_model", pa.string()),
            pa.field("speech_model", pa.string()),
            pa.field("ocr_model", pa.string()),
            pa.field("indexed_at", pa.timestamp("us", tz="UTC")),
        ],
        metadata=stamp.to_metadata(),
    )


def scene_id(video_id: str, scene_index: int) -> str:
    return f"{video_id}:{scene_index:05d}"


PROVENANCE_COLUMNS = ("caption_model", "speech_model", "text_model", "frame_model", "ocr_model")
