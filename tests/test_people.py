"""People on real faces: scikit-image's astronaut (in two videos, at other scales, positions,
brightness, mirrored) and Messi from Debian's opencv-doc (in a third), beside scenes with no
face. Grouping, search by a face photo, by a name, naming and merging that outlive a full
regrouping, removal, faces off, and deleting every face."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from media import MESSI, face_picture, photo_png
from PIL import Image

from query_app.search.people import PeopleIndex
from tving_cli.main import main
from tving_resources.config import resolve_paths
from tving_resources.store.faces import FaceStore

pytestmark = pytest.mark.slow
FACELESS = {("anchor one.mp4", 1), ("anchor two.mp4", 0), ("another person.mp4", 1)}  # coffee, rocket, coffee
ASTRONAUT_SCENES = {("anchor one.mp4", 0), ("anchor one.mp4", 2), ("anchor two.mp4", 1)}
MESSI_SCENES = {("another person.mp4", 0)}


def people_of(home: Path) -> list:
    paths = resolve_paths(home=home)
    return PeopleIndex(paths.lancedb_uri, "lite", paths).people()


def scenes(person) -> set[tuple[str, float]]:
    return {(Path(s["video_path"]).name, s["start"]) for s in person.scenes}


def scene_keys(results: list[dict]) -> set[tuple[str, int]]:
    return {(r["video_name"], r["scene_index"]) for r in results}


def tving(home: Path, *args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["--home", str(home), *args], env=env)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")  # the whole photo: framed as no clip is
    one, other = face_picture("astronaut", folder), face_picture("messi", folder)
    with Image.open(one) as a, Image.open(other) as b:
        both = Image.new("RGB", (a.width + b.width, max(a.height, b.height)))
        both.paste(a, (0, 0))
        both.paste(b, (a.width, 0))
        both.save(folder / "two people.png")
    return {
        "astronaut": folder / "astronaut.png",
        "messi": MESSI,  # opencv-doc's photo as it ships: a small face in a 548 x 342 picture
        "no face": photo_png("coffee", folder),
        "two faces": folder / "two people.png",
    }


# ------------------------------------------------------------------------- grouping
def test_faces_are_grouped_into_two_people_and_faceless_scenes_have_none(people_library):
    everyone = people_of(people_library["home"])
    assert len(everyone) == 2, [(p.id, scenes(p)) for p in everyone]
    astronaut, messi = everyone  # most scenes first
    assert (astronaut.scene_count, astronaut.video_count) == (3, 2)
    assert (messi.scene_count, messi.video_count) == (1, 1)
    assert {Path(s["video_path"]).name for s in astronaut.scenes} == {"anchor one.mp4", "anchor two.mp4"}
    assert {Path(s["video_path"]).name for s in messi.scenes} == {"another person.mp4"}
    paths = resolve_paths(home=people_library["home"])
    for person in everyone:
        with Image.open(paths.artifacts_dir / person.thumbnail) as face:
            assert face.format == "JPEG" and face.size[0] >= 100

    faces = FaceStore(paths.lancedb_uri, "lite")
    rows = faces.all_faces(["video_id", "scene_index", "embedding"]).to_pylist()
    names = {v: k for k, v in people_library["ids"].items()}
    seen = {(names[r["video_id"]], r["scene_index"]) for r in rows}
    assert seen == ASTRONAUT_SCENES | MESSI_SCENES
    assert not seen & FACELESS
    # the threshold's margin, on these real faces: one person's faces close, the other's far
    embeddings = {key: [] for key in ("astronaut", "messi")}
    for r in rows:
        key = "messi" if names[r["video_id"]] == "another person.mp4" else "astronaut"
        embeddings[key].append(np.asarray(r["embedding"]))
    same = max(np.linalg.norm(a - b) for a in embeddings["astronaut"] for b in embeddings["astronaut"])
    other = min(np.linalg.norm(a - b) for a in embeddings["astronaut"] for b in embeddings["messi"])
    assert same < 0.4 < 0.6 < other


def test_the_people_command_lists_everyone_as_json(people_library):
    out = tving(people_library["home"], "people", "--json")
    assert out.exit_code == 0, out.output
    people = json.loads(out.output)["people"]
    assert [p["scene_count"] for p in people] == [3, 1]
    first = people[0]
    assert set(first) >= {"id", "name", "scene_count", "video_count", "thumbnail", "thumbnail_path", "scenes"}
    assert first["name"] is None and Path(first["thumbnail_path"]).is_file()
    assert set(first["scenes"][0]) == {"video_id", "video_path", "start", "end"}
    text = tving(people_library["home"], "people")
    assert "3 scene(s) in 2 video(s)" in text.output and "(not named)" in text.output


# ----------------------------------------------------------------------- face search
def test_a_face_photo_finds_that_persons_scenes_best_first(people_library, photos):
    out = tving(people_library["home"], "search", "--face", str(photos["astronaut"]), "-k", "10", "--json")
    assert out.exit_code == 0, out.output
    results = json.loads(out.output)["results"]
    assert scene_keys(results) == ASTRONAUT_SCENES
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    astronaut = people_of(people_library["home"])[0]
    assert all([p["id"] for p in r["people"]] == [astronaut.id] for r in results)

    out = tving(people_library["home"], "search", "--face", str(photos["messi"]), "--json")
    assert out.exit_code == 0, out.output
    assert scene_keys(json.loads(out.output)["results"]) == MESSI_SCENES


@pytest.mark.parametrize(
    ("photo", "message"), [("no face", "no face found in the photo"), ("two faces", "shows 2 faces: crop it")]
)
def test_a_photo_without_one_face_is_refused_with_what_to_do(people_library, photos, photo, message):
    out = tving(people_library["home"], "search", "--face", str(photos[photo]))
    assert out.exit_code == 2
    assert message in out.output and "Traceback" not in out.output


# ------------------------------------------------------------------ names and merges
def test_a_name_filters_a_text_query_and_lists_a_persons_scenes(people_home):
    astronaut, messi = people_of(people_home)
    out = tving(people_home, "people", "name", astronaut.id, "Eileen Collins")
    assert out.exit_code == 0 and "Eileen Collins" in out.output

    out = tving(people_home, "search", "a scene", "--person", "eileen collins", "-k", "10", "--json")
    assert out.exit_code == 0, out.output
    results = json.loads(out.output)["results"]
    assert results and scene_keys(results) <= ASTRONAUT_SCENES
    assert all(r["people"] == [{"id": astronaut.id, "name": "Eileen Collins"}] for r in results)

    out = tving(people_home, "search", "--person", messi.id, "--json")
    assert scene_keys(json.loads(out.output)["results"]) == MESSI_SCENES
    # the same query without the filter reaches scenes with no one in them
    everyone = json.loads(tving(people_home, "search", "a scene", "-k", "10", "--json").output)["results"]
    assert scene_keys(everyone) & FACELESS

    out = tving(people_home, "search", "a scene", "--person", "nobody at all")
    assert out.exit_code == 2 and "no person is called or numbered 'nobody at all'" in out.output


def test_names_and_merges_survive_a_full_regrouping_and_new_faces_join_their_person(people_home, tmp_path):
    import dagster as dg
    from conftest import make_resources

    from tving_assets.definitions import build_definitions
    from tving_assets.indexing import index_videos
    from tving_assets.jobs import refresh_search_indexes_job

    astronaut, messi = people_of(people_home)
    assert tving(people_home, "people", "name", astronaut.id, "Eileen Collins").exit_code == 0
    assert tving(people_home, "people", "name", messi.id, "Lionel").exit_code == 0
    out = tving(people_home, "people", "merge", "eileen collins", "Lionel")
    assert out.exit_code == 0, out.output
    (merged,) = people_of(people_home)
    assert (merged.id, merged.name, merged.scene_count) == (astronaut.id, "Eileen Collins", 4)

    # the nightly run: every face grouped afresh, through the Dagster job and its config
    resources = make_resources(people_home)
    job = build_definitions(resources, automation=False).resolve_job_def(refresh_search_indexes_job.name)
    run = job.execute_in_process(
        run_config={"ops": {"people": {"config": {"full": True}}}}, instance=dg.DagsterInstance.ephemeral()
    )
    assert run.success
    (after,) = people_of(people_home)
    assert (after.id, after.name, after.scene_count, after.video_count) == (astronaut.id, "Eileen Collins", 4, 3)

    # a new video of the astronaut, smaller and darker: its face joins the named person
    from media import concat, still_segment

    picture = face_picture("astronaut", tmp_path, zoom=0.9, shift=(-0.1, 0.0), brightness=0.8)
    still_segment(picture, 2.5, tmp_path / "part.mp4")
    concat([tmp_path / "part.mp4"], tmp_path / "anchor three.mp4")
    (result,) = index_videos([str(tmp_path / "anchor three.mp4")], resources)
    assert result.ok, result.error
    (grown,) = people_of(people_home)
    assert (grown.id, grown.name, grown.video_count) == (astronaut.id, "Eileen Collins", 4)


def test_removing_a_video_removes_its_faces_and_its_person(people_home, people_library):
    paths = resolve_paths(home=people_home)
    messi_video = people_library["ids"]["another person.mp4"]
    out = tving(people_home, "remove", messi_video, "--force")
    assert out.exit_code == 0, out.output
    faces = FaceStore(paths.lancedb_uri, "lite").all_faces(["video_id"]).column("video_id").to_pylist()
    assert faces and messi_video not in faces
    assert [p.scene_count for p in people_of(people_home)] == [3]


def test_faces_off_stores_none_and_delete_removes_every_face(people_home, people_library):
    paths = resolve_paths(home=people_home)
    face_folders = list(paths.artifacts_dir.glob("lite/*/faces/*/*.jpg"))
    assert face_folders
    out = tving(people_home, "people", "delete", "--yes")
    assert out.exit_code == 0, out.output
    assert "deleted 1 faces table(s), the faces of 3 video(s), and 2 person/people" in out.output
    assert not FaceStore(paths.lancedb_uri, "lite").exists()
    assert not list(paths.artifacts_dir.glob("lite/*/faces/*/*.jpg"))
    assert people_of(people_home) == []

    clips = [str(p) for p in people_library["clips"].values()]
    out = tving(people_home, "index", *clips, "--no-progress", env={**os.environ, "TVING_FACES": "0"})
    assert out.exit_code == 0, out.output
    assert FaceStore(paths.lancedb_uri, "lite").count() == 0
    assert not list(paths.artifacts_dir.glob("lite/*/faces/*/*.jpg"))
    assert json.loads(tving(people_home, "people", "--json").output) == {"people": []}

    out = tving(people_home, "index", *clips, "--no-progress")  # on again: found again
    assert out.exit_code == 0, out.output
    assert [p.scene_count for p in people_of(people_home)] == [3, 1]


# ---------------------------------------------------------------------------- HTTP API
@pytest.fixture
def client(people_home):
    from query_app.web.app import create_app

    app = create_app(paths=resolve_paths(home=people_home), warm_up_in_background=False)
    with TestClient(app, raise_server_exceptions=False, base_url="http://localhost") as test_client:
        yield test_client


def test_the_api_lists_names_merges_and_searches_people(client, photos):
    people = client.get("/people").json()["people"]
    assert [p["scene_count"] for p in people] == [3, 1]
    assert "video_path" not in people[0]["scenes"][0]  # no server paths unless the server shows them
    assert client.get(people[0]["thumbnail_url"]).headers["content-type"] == "image/jpeg"
    astronaut, messi = people[0]["id"], people[1]["id"]

    named = client.post(f"/people/{astronaut}/name", data={"name": "Eileen Collins"})
    assert named.json() == {"id": astronaut, "name": "Eileen Collins"}
    assert client.post("/people/p-nobody/name", data={"name": "x"}).status_code == 404
    assert client.post(f"/people/{astronaut}/name", data={"name": ""}).status_code == 422

    with photos["astronaut"].open("rb") as handle:
        found = client.post("/search/face", files={"file": ("a.png", handle, "image/png")}, data={"k": "10"})
    assert found.status_code == 200, found.text
    results = found.json()["results"]
    assert scene_keys(results) == ASTRONAUT_SCENES
    assert results[0]["people"] == [{"id": astronaut, "name": "Eileen Collins"}]
    with photos["no face"].open("rb") as handle:
        refused = client.post("/search/face", files={"file": ("c.png", handle, "image/png")})
    assert refused.status_code == 400 and "no face found" in refused.json()["detail"]

    inside = client.get("/search", params={"q": "a scene", "person": "Eileen Collins", "k": 10}).json()["results"]
    assert inside and scene_keys(inside) <= ASTRONAUT_SCENES
    alone = client.get("/search", params={"person": messi}).json()["results"]
    assert scene_keys(alone) == MESSI_SCENES
    assert client.get("/search").status_code == 422
    assert client.get("/search", params={"person": "nobody"}).status_code == 400

    merged = client.post("/people/merge", data={"keep": astronaut, "other": messi})
    assert merged.json() == {"id": astronaut, "name": "Eileen Collins"}
    assert [p["scene_count"] for p in client.get("/people").json()["people"]] == [4]

    page = client.get("/faces")
    assert page.status_code == 200 and "Eileen Collins" in page.text and 'data-testid="person-card"' in page.text
    scenes_page = client.get("/", params={"person": astronaut})
    assert scenes_page.text.count('data-testid="result-card"') == 4
    assert scenes_page.text.count('data-testid="people-seen"') == 4


def test_the_threshold_separates_real_faces(tmp_path):
    """FACE_THRESHOLD against real photos: one player in two frames of opencv-doc's basketball
    clip is one person; the astronaut, Messi and that player are three."""
    from itertools import combinations

    from skimage import data

    from tving_resources.index.people import FACE_THRESHOLD
    from tving_resources.models.runtime import ModelRuntime

    encoder = ModelRuntime().face_encoder()
    examples = MESSI.parent
    pictures = {
        "astronaut": data.astronaut(),
        "messi": np.asarray(Image.open(MESSI).convert("RGB")),
        "player 1": np.asarray(Image.open(examples / "basketball1.png").convert("RGB")),
        "player 2": np.asarray(Image.open(examples / "basketball2.png").convert("RGB")),
    }
    # the small faces need the picture doubled (the astronaut's emblem then passes for a face too:
    # the surest face of each picture is the one)
    found = {name: max(encoder.faces(picture, upsample=1), key=lambda f: f.score) for name, picture in pictures.items()}
    distance = {
        (a, b): float(np.linalg.norm(found[a].embedding - found[b].embedding)) for a, b in combinations(found, 2)
    }
    assert distance["player 1", "player 2"] < FACE_THRESHOLD - 0.15
    others = [d for pair, d in distance.items() if pair != ("player 1", "player 2")]
    assert min(others) > FACE_THRESHOLD + 0.15, distance


def test_another_face_model_comes_from_a_folder(tmp_path):
    """The face role takes a dlib-format model from a folder (the full profile's way to plug a
    stronger one in); a folder without the files is refused in words."""
    import shutil

    from tving_resources.errors import ModelError
    from tving_resources.models.runtime import ModelRuntime, RuntimeConfig
    from tving_resources.models.wrappers.faces import packaged_model_folder

    folder = tmp_path / "my-face-model"
    shutil.copytree(packaged_model_folder(), folder)
    runtime = ModelRuntime(RuntimeConfig(model_overrides={"face_encoder": str(folder)}))
    encoder = runtime.face_encoder()
    assert encoder.model_id == str(folder)
    assert len(encoder.faces(np.asarray(Image.open(face_picture("astronaut", tmp_path))))) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match=r"lacks shape_predictor_5_face_landmarks\.dat"):
        ModelRuntime(RuntimeConfig(model_overrides={"face_encoder": str(empty)})).face_encoder()
