"""The LanceDB store: schema, atomic per-video replace, filters, profile stamps, indexes."""

import zlib

import numpy as np
import pyarrow as pa
import pyarrow.compute
import pytest

from tving_resources.errors import ProfileMismatchError, StoreError
from tving_resources.store.maintenance import delete_video_everywhere, inspect_tables, refresh_table_indexes
from tving_resources.store.scene_store import SceneFilter, SceneStore
from tving_resources.store.schema import ModelStamp, scene_id, scene_schema

STAMP = ModelStamp("lite", "text-m", 8, "frame-m", 4, "cap-m", "speech-m")


def rows(video_id: str, n: int, word: str = "apple", stamp: ModelStamp = STAMP) -> pa.Table:
    rng = np.random.default_rng(zlib.crc32(f"{video_id}{word}{n}".encode()))

    def unit(*shape):
        v = rng.standard_normal(shape).astype(np.float32)
        return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float16)  # as stored

    return pa.Table.from_pylist(
        [
            {
                "scene_id": scene_id(video_id, i),
                "video_id": video_id,
                "video_path": f"/v/{video_id}.mp4",
                "video_name": f"{video_id}.mp4",
                "video_duration": 10.0 * n,
                "scene_index": i,
                "start": 10.0 * i,
                "end": 10.0 * (i + 1),
                "caption": f"{word} scene {i}",
                "transcript": "",
                "search_text": f"{word} scene {i}",
                "search_text_ngram": f"{word} scene {i}",
                "ocr_text": "",
                "transcript_source": "",
                "ocr_model": "off",
                "language": None,
                "has_transcript": False,
                "caption_vector": unit(stamp.text_dim),
                "transcript_vector": np.zeros(stamp.text_dim, np.float16),
                "frame_vectors": list(unit(2, stamp.frame_dim)),
                "keyframe_times": [10.0 * i + 2, 10.0 * i + 7],
                "thumbnails": ["a.jpg", "b.jpg"],
                "fingerprint": "f",
                "caption_model": stamp.caption_model,
                "text_model": stamp.text_model,
                "frame_model": stamp.frame_model,
                "speech_model": stamp.speech_model,
                "indexed_at": None,
            }
            for i in range(n)
        ],
        schema=scene_schema(stamp),
    )


@pytest.fixture
def store(tmp_path):
    return SceneStore(str(tmp_path / "db"), STAMP)


def test_replace_video_is_idempotent_and_removes_stale_scenes(store):
    vid, other = "alpha-0123456789", "beta-0123456789"
    store.replace_video(other, rows(other, 2))
    store.replace_video(vid, rows(vid, 4))
    version = store.table().version
    store.replace_video(vid, rows(vid, 4))
    assert store.count(vid) == 4 and store.count() == 6
    assert store.table().version == version + 1  # one commit per replacement: never half-visible
    store.replace_video(vid, rows(vid, 2, word="banana"))  # video got shorter
    assert store.count(vid) == 2 and store.count(other) == 2
    captions = [r["caption"] for r in store.scenes_of(vid)]
    assert captions == ["banana scene 0", "banana scene 1"]


def test_replace_video_refuses_rows_of_another_video(store):
    with pytest.raises(ValueError, match="rows of other videos"):
        store.replace_video("alpha-0123456789", rows("beta-0123456789", 1))


def test_search_primitives_and_filters(store):
    a, b = "alpha-0123456789", "beta-0123456789"
    store.replace_video(a, rows(a, 3, "apple"))
    store.replace_video(b, rows(b, 3, "cherry"))
    target = np.asarray(store.scenes_of(a)[1]["caption_vector"], dtype=np.float32)
    other = np.asarray(store.scenes_of(b)[2]["caption_vector"], dtype=np.float32)
    hits = store.vector_search_batch("caption_vector", np.stack([target, other]), 3)
    taken = store.take_rows(hits.column("_rowid").to_pylist(), ["scene_id", "caption"])
    ids = dict(zip(taken.column("_rowid").to_pylist(), taken.column("scene_id").to_pylist(), strict=True))
    first = hits.filter(pa.compute.equal(hits.column("query_index"), 0))
    second = hits.filter(pa.compute.equal(hits.column("query_index"), 1))
    assert ids[first.column("_rowid")[0].as_py()] == scene_id(a, 1)  # one query, two vectors
    assert ids[second.column("_rowid")[0].as_py()] == scene_id(b, 2)
    assert first.column("similarity")[0].as_py() == pytest.approx(1.0, abs=1e-3)  # vectors are stored in half precision
    assert taken.num_rows == len(set(hits.column("_rowid").to_pylist()))

    def scene_ids_of(table):
        found = store.take_rows(table.column("_rowid").to_pylist(), ["scene_id"])
        return set(found.column("scene_id").to_pylist())

    only_b = store.vector_search_batch("caption_vector", target, 10, SceneFilter((b,)).to_where())
    assert {sid.split(":")[0] for sid in scene_ids_of(only_b)} == {b}
    text_hits = store.text_search("cherry", 10)
    assert text_hits.num_rows == 3 and all(sid.startswith(b) for sid in text_hits.column("scene_id").to_pylist())
    assert all(score > 0 for score in text_hits.column("bm25").to_pylist())
    late = store.vector_search_batch("caption_vector", target, 10, SceneFilter(start_at_or_after=15.0).to_where())
    assert scene_ids_of(late) == {scene_id(v, i) for v in (a, b) for i in (1, 2)}


@pytest.mark.parametrize("bad", ["x' OR '1'='1", "alpha-0123456789' --", "../../etc"])
def test_filters_never_take_user_text(bad):
    with pytest.raises(ValueError, match="invalid video id"):
        SceneFilter((bad,)).to_where()


def test_profile_mismatch_is_a_clear_error(tmp_path):
    uri = str(tmp_path / "db")
    vid = "alpha-0123456789"
    SceneStore(uri, STAMP).replace_video(vid, rows(vid, 1))
    other = ModelStamp("lite", "another-text-model", 8, "frame-m", 4, "cap-m", "speech-m")
    with pytest.raises(ProfileMismatchError, match="text_model is 'text-m' in the index but 'another-text-model'"):
        SceneStore(uri, other).count()
    full = ModelStamp("full", "uae", 16, "clip", 4, "vlm", "whisper")
    with pytest.raises(StoreError, match="holds scenes_lite"):
        SceneStore(uri, full).table()


def test_delete_everywhere_and_inspect(tmp_path):
    uri = str(tmp_path / "db")
    a, b = "alpha-0123456789", "beta-0123456789"
    store = SceneStore(uri, STAMP)
    store.replace_video(a, rows(a, 2))
    store.replace_video(b, rows(b, 3))
    assert delete_video_everywhere(uri, a) == 1
    (status,) = inspect_tables(uri)
    assert (status.name, status.rows, status.videos) == ("scenes_lite", 3, 1)
    assert status.stamp == STAMP and "search_text_idx" in status.indexes


def test_refresh_builds_ann_indexes_past_the_threshold(tmp_path):
    store = SceneStore(str(tmp_path / "db"), STAMP)
    for i in range(6):
        vid = f"video{i}-0123456789"
        store.replace_video(vid, rows(vid, 50))
    small = refresh_table_indexes(store.table(), ann_min_rows=10_000)
    assert set(small["built"]) == {"scene_id", "video_id"} and small["rows"] == 300  # scalar indexes only
    big = refresh_table_indexes(store.table(), ann_min_rows=256)
    assert set(big["built"]) == {"caption_vector", "transcript_vector"}
    target = np.asarray(store.scenes_of("video3-0123456789")[7]["caption_vector"], dtype=np.float32)
    hits = store.vector_search_batch("caption_vector", target, 5)
    nearest = store.take_rows(hits.column("_rowid").to_pylist()[:1], ["scene_id"]).column("scene_id")[0].as_py()
    assert nearest == scene_id("video3-0123456789", 7)
    types = {i.columns[0]: i.index_type for i in store.table().list_indices()}
    assert types["caption_vector"] == types["transcript_vector"] == "IvfRq"
    assert refresh_table_indexes(store.table(), ann_min_rows=256)["built"] == []  # nothing twice


def test_refresh_rebuilds_an_ann_index_of_another_type_once(tmp_path):
    """A table indexed before IVF-RQ was chosen (IVF-PQ) gets the new index at its next refresh."""
    from lancedb.index import IvfPq

    store = SceneStore(str(tmp_path / "db"), STAMP)
    for i in range(6):
        vid = f"video{i}-0123456789"
        store.replace_video(vid, rows(vid, 50))
    refresh_table_indexes(store.table(), ann_min_rows=256)
    store.table().create_index("caption_vector", config=IvfPq(distance_type="dot", num_partitions=16), replace=True)
    assert refresh_table_indexes(store.table(), ann_min_rows=256)["built"] == ["caption_vector"]
    assert {i.index_type for i in store.table().list_indices() if i.columns[0].endswith("_vector")} == {"IvfRq"}
    assert refresh_table_indexes(store.table(), ann_min_rows=256)["built"] == []


def test_ann_probes_a_fifth_of_the_partitions():
    """200 of 1,000 partitions at 1M rows was measured best (tving bench ann); smaller tables
    probe the same share, not the same count."""
    from tving_resources.store.scene_store import AnnSettings, ann_partitions

    assert ann_partitions(1_000_000) == 1000 and ann_partitions(100_000) == 316 and ann_partitions(100) == 16
    assert AnnSettings().probes_for(1000) == 200
    assert AnnSettings().probes_for(316) == 63
    assert AnnSettings().probes_for(16) == 16  # never more than there are
    assert AnnSettings().probes_for(50) == 20  # at least min_nprobes
    assert AnnSettings(nprobes=7).probes_for(1000) == 7


def test_bench_status_times_the_status_command_over_a_catalogued_library(tmp_path):
    """`tving bench status` builds its library (catalog and scene table) and runs `tving status`."""
    from tving_dev.bench.status import run_status_benchmark
    from tving_resources.catalog.video_catalog import VideoCatalog

    report = run_status_benchmark(videos=100, runs=1, db_dir=str(tmp_path))
    assert (report["videos"], report["rows"], report["failed_videos"]) == (100, 2000, 1)
    assert report["status_median_s"] > 0
    states = VideoCatalog(tmp_path / "home" / "data" / "catalog.sqlite").state_counts()
    assert states == {"indexed": 99, "failed": 1}
