"""Search by an image and "more like this", over the session's real index (lite models): the
photo behind a clip's scene finds that scene first; a scene's neighbours show the same subject
before unrelated ones; the API, the page and the CLI all answer; the minimum score empties a
result list rather than showing unrelated frames."""

import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from media import photo_png
from PIL import Image

from query_app.search import QueryError
from query_app.search.similar import SimilarSearch
from query_app.web.app import create_app
from tving_resources.config import resolve_paths

pytestmark = pytest.mark.slow
CUTS, COPY, SPEECH = "cuts.mp4", "장면 테스트 clip.mp4", "speech.mp4"
# where each photo is in the index (media.make_cuts_clip, its Hangul-named copy, make_speech_clip)
SCENES_OF_PHOTO = {
    "chelsea": {(CUTS, 0), (COPY, 0)},
    "coffee": {(CUTS, 1), (COPY, 1), (SPEECH, 0)},
    "rocket": {(CUTS, 2), (COPY, 2), (SPEECH, 1)},
}


@pytest.mark.parametrize("photo", ["chelsea", "coffee", "rocket"])
def test_a_photo_finds_its_scene_first(library_search, media_dir, photo):
    with Image.open(photo_png(photo, media_dir)) as image:
        first = SimilarSearch(library_search).by_image(image, k=5).results[0]
    assert (first.video_name, first.scene_index) in SCENES_OF_PHOTO[photo]


def test_more_like_this_puts_the_same_subject_first(library_search, indexed_library):
    cuts_id = indexed_library["results"][CUTS].video_id
    cat_scene = f"{cuts_id}:00000"
    results = SimilarSearch(library_search).by_scene(cat_scene, k=6).results
    assert cat_scene not in [r.scene_id for r in results]  # the scene itself is left out
    assert (results[0].video_name, results[0].scene_index) == (COPY, 0)  # the same cat, in the copy
    cat_rank = next(i for i, r in enumerate(results) if (r.video_name, r.scene_index) == (COPY, 0))
    unrelated = [i for i, r in enumerate(results) if r.video_name in (CUTS, COPY) and r.scene_index in (2, 3)]
    assert all(cat_rank < i for i in unrelated)
    with pytest.raises(QueryError, match="invalid scene id"):
        SimilarSearch(library_search).by_scene("x' OR '1'='1")


def test_api_page_and_cli_search_by_image(indexed_library, media_dir, monkeypatch):
    app = create_app(paths=resolve_paths(home=indexed_library["home"]), warm_up_in_background=False)
    client = TestClient(app, base_url="http://localhost", headers={"Accept-Language": "en"})
    rocket = photo_png("rocket", media_dir).read_bytes()
    answer = client.post("/search/image", files={"file": ("rocket.png", rocket, "image/png")}, data={"k": "3"})
    assert answer.status_code == 200, answer.text
    first = answer.json()["results"][0]
    assert (first["video_name"], first["scene_index"]) in SCENES_OF_PHOTO["rocket"]
    assert first["thumbnail_url"].startswith("/thumbnails/")
    similar = client.get("/search/similar", params={"scene": first["scene_id"], "k": 3})
    assert similar.status_code == 200 and similar.json()["results"]
    not_image = client.post("/search/image", files={"file": ("x.png", b"not an image", "image/png")})
    assert not_image.status_code == 415
    page = client.post("/", files={"image": ("rocket.png", rocket, "image/png")})
    assert page.status_code == 200 and 'data-testid="result-card"' in page.text and "More like this" in page.text
    assert 'data-testid="result-card"' in client.get("/", params={"similar": first["scene_id"]}).text

    from tving_cli.main import main

    monkeypatch.setenv("TVING_HOME", str(indexed_library["home"]))
    out = CliRunner().invoke(main, ["search", "--image", str(photo_png("chelsea", media_dir)), "-k", "2", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["results"][0]["scene_index"] == 0


def test_min_score_turns_weak_answers_into_no_match(library_search, indexed_library):
    strong = library_search.search("football team victory", k=5, min_score=0.0).results
    assert strong and strong[0].score < 1.0
    assert library_search.search("football team victory", k=5, min_score=0.999).results == ()
    app = create_app(paths=resolve_paths(home=indexed_library["home"]), warm_up_in_background=False)
    client = TestClient(app, base_url="http://localhost", headers={"Accept-Language": "en"})
    assert client.get("/search", params={"q": "x", "min_score": 2}).status_code == 422
    page = client.get("/", params={"q": "qwertyuiop zxcvbnm"})
    assert page.status_code == 200
