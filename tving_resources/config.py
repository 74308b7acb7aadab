"""Where things live on disk, resolved from arguments, then environment variables, then defaults.

Nothing here imports Dagster: the query app and the CLI resolve the same paths as the assets.

| setting      | environment variable | default                 |
|--------------|----------------------|-------------------------|
| home         | ``TVING_HOME``       | ``~/.tving``            |
| videos_dir   | ``TVING_VIDEOS_DIR`` | ``<home>/videos``       |
| data_dir     | ``TVING_DATA_DIR``   | ``<home>/data``         |
| lancedb_uri  | ``TVING_LANCEDB_URI``| ``<data_dir>/lancedb``  |
| models_dir   | ``TVING_MODELS_DIR`` | ``~/.cache/tving/models`` (every home shares it) |
| catalog_url  | ``TVING_CATALOG_URL``| ``<data_dir>/catalog.sqlite`` (SQLite) |
| max video length | ``TVING_MAX_VIDEO_SECONDS`` | ``MediaLimits.max_seconds`` |

``TVING_DEPLOYMENT`` (``local`` or ``cluster``) says how runs execute (see tving_assets/deploy).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tving_resources.errors import ConfigError

SCENE_TABLE = "scenes"
DEPLOYMENTS = ("local", "cluster")


def deployment() -> str:
    """``local`` (default: one machine, in-process runs) or ``cluster`` (Celery workers)."""
    value = os.environ.get("TVING_DEPLOYMENT", "local").strip().lower() or "local"
    if value not in DEPLOYMENTS:
        raise ConfigError(f"TVING_DEPLOYMENT={value!r}: choose one of {', '.join(DEPLOYMENTS)}")
    return value


@dataclass(frozen=True)
class Paths:
    home: Path
    videos_dir: Path
    data_dir: Path
    lancedb_uri: str
    models_dir: Path
    catalog_url: str

    @property
    def catalog_path(self) -> Path:
        """The SQLite catalog file (when catalog_url is not another database)."""
        return self.data_dir / "catalog.sqlite"

    def catalog_exists(self) -> bool:
        if "://" in self.catalog_url and not self.catalog_url.startswith("sqlite"):
            return True  # a database server: the catalog creates its table on first use
        return Path(self.catalog_url.removeprefix("sqlite:///")).exists()

    @property
    def locks_dir(self) -> Path:
        """One lock file per video (see tving_resources.index.locks)."""
        return self.data_dir / "locks"

    @property
    def artifacts_dir(self) -> Path:
        """Per-video intermediate results (scenes, transcript, thumbnails...)."""
        return self.data_dir / "videos"

    def ensure(self) -> Paths:
        """Create the data folders; the watched folder only on first use of this home (never again:
        a watched folder that vanished is an unmounted disk, and must stay visibly missing)."""
        first_use = not self.data_dir.exists()
        for folder in (self.videos_dir,) * first_use + (self.data_dir, self.artifacts_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create {folder}: {exc.strerror}. Set TVING_HOME (or the matching "
                    "TVING_*_DIR variable) to a writable folder."
                ) from exc
        return self


def default_models_dir() -> Path:
    """One models folder for every home of the user (what the lite models build once, and the
    full profile's weights): ``$XDG_CACHE_HOME/tving/models``, else ``~/.cache/tving/models``."""
    cache = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(cache) if cache else Path.home() / ".cache") / "tving" / "models"


def _pick(explicit: str | os.PathLike[str] | None, env_name: str) -> str | None:
    if explicit not in (None, ""):
        return os.fspath(explicit)
    value = os.environ.get(env_name, "").strip()
    return value or None


def resolve_paths(
    home: str | os.PathLike[str] | None = None,
    videos_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    lancedb_uri: str | None = None,
    models_dir: str | os.PathLike[str] | None = None,
) -> Paths:
    """Resolve every path; an explicit argument wins over the environment, which wins over defaults."""
    home_path = Path(_pick(home, "TVING_HOME") or Path.home() / ".tving").expanduser().resolve()
    data_path = Path(_pick(data_dir, "TVING_DATA_DIR") or home_path / "data").expanduser().resolve()
    videos_path = Path(_pick(videos_dir, "TVING_VIDEOS_DIR") or home_path / "videos").expanduser()
    uri = _pick(lancedb_uri, "TVING_LANCEDB_URI") or str(data_path / "lancedb")
    models_path = Path(_pick(models_dir, "TVING_MODELS_DIR") or default_models_dir()).expanduser()
    catalog = _pick(None, "TVING_CATALOG_URL") or str(data_path / "catalog.sqlite")
    return Paths(
        home=home_path,
        videos_dir=videos_path.resolve(),
        data_dir=data_path,
        lancedb_uri=uri,
        models_dir=models_path.resolve(),
        catalog_url=catalog,
    )


def max_video_seconds() -> float | None:
    """``TVING_MAX_VIDEO_SECONDS``: the longest video indexed, in seconds (None: the default)."""
    value = os.environ.get("TVING_MAX_VIDEO_SECONDS", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError as exc:
        raise ConfigError(f"TVING_MAX_VIDEO_SECONDS={value!r}: give a number of seconds") from exc
    if not 0 < seconds < float("inf"):
        raise ConfigError(f"TVING_MAX_VIDEO_SECONDS={value!r}: give a positive number of seconds")
    return seconds


def dagster_url_from_env() -> str | None:
    """``TVING_DAGSTER_URL``: the Dagster webserver the web app asks for indexing status."""
    return os.environ.get("TVING_DAGSTER_URL", "").strip() or None


def profile_from_env() -> str | None:
    """``TVING_PROFILE``: ``lite``, ``full`` or ``auto`` (None: not set)."""
    return os.environ.get("TVING_PROFILE", "").strip() or None


def caption_adapter_from_env() -> str | None:
    """``TVING_CAPTION_ADAPTER``: a LoRA adapter folder for the captioner (None: not set)."""
    return os.environ.get("TVING_CAPTION_ADAPTER", "").strip() or None


def faces_from_env() -> bool:
    """``TVING_FACES``: ``0``, ``false``, ``no`` or ``off`` stores no faces (default: on)."""
    return _switch("TVING_FACES")


def fold_duplicates_from_env() -> bool:
    """``TVING_FOLD_DUPLICATES``: ``0`` or ``off`` shows every copy of the same footage in search
    results (default: a group of copies is folded into its best result)."""
    return _switch("TVING_FOLD_DUPLICATES")


def _switch(name: str) -> bool:
    """An on/off variable, on when unset."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={value!r}: give 1 or 0 (on or off)")


def reuse_dagster_sqlite_connections() -> bool:
    """``TVING_DAGSTER_SQLITE_REUSE``: ``0`` or ``off`` lets Dagster open its SQLite files for every
    statement, as it does by itself (default: connections kept; see tving_assets/sqlite_connections.py)."""
    return _switch("TVING_DAGSTER_SQLITE_REUSE")


def celery_broker() -> str:
    """``TVING_CELERY_BROKER``: the cluster deployment's Celery broker (and result backend)."""
    return os.environ.get("TVING_CELERY_BROKER", "").strip() or "redis://127.0.0.1:6379/0"


def sensor_interval_seconds() -> int:
    """``TVING_SENSOR_INTERVAL_SECONDS``: how often the folder sensor looks (default 30)."""
    value = os.environ.get("TVING_SENSOR_INTERVAL_SECONDS", "").strip() or "30"
    try:
        seconds = int(value)
    except ValueError as exc:
        raise ConfigError(f"TVING_SENSOR_INTERVAL_SECONDS={value!r}: give a whole number of seconds") from exc
    if seconds < 1:
        raise ConfigError("TVING_SENSOR_INTERVAL_SECONDS must be at least 1")
    return seconds


def armed_failpoint() -> str | None:
    """``TVING_FAILPOINT``: where the crash tests make the process kill itself (never set otherwise)."""
    return os.environ.get("TVING_FAILPOINT") or None


# Every TVING_* variable the product reads (each read by a function above): for the docs.
ENVIRONMENT = {
    "TVING_HOME": "the data home (default ~/.tving); also `tving --home`",
    "TVING_VIDEOS_DIR": "the watched folder (default <home>/videos)",
    "TVING_DATA_DIR": "artifacts, catalog and LanceDB (default <home>/data)",
    "TVING_LANCEDB_URI": "the scene tables: a folder or s3://bucket/path (default <data>/lancedb)",
    "TVING_MODELS_DIR": "the models folder, shared by every home (default ~/.cache/tving/models)",
    "TVING_CATALOG_URL": "the video catalog: a PostgreSQL URL on a cluster (default <data>/catalog.sqlite)",
    "TVING_DEPLOYMENT": "local (default) or cluster",
    "TVING_PROFILE": "lite, full or auto (default auto); also `tving --profile`",
    "TVING_CAPTION_ADAPTER": "a LoRA adapter folder for the captioner",
    "TVING_FACES": "0 or off: find no faces and store none (default on; the models resource's `faces`)",
    "TVING_FOLD_DUPLICATES": "0 or off: show every copy of the same footage (default: fold them into the best)",
    "TVING_MAX_VIDEO_SECONDS": "the longest video indexed",
    "TVING_DAGSTER_SQLITE_REUSE": "0 or off: Dagster's SQLite files opened for each statement (default: kept open)",
    "TVING_DAGSTER_URL": "the Dagster webserver the web app asks for indexing status",
    "TVING_API_TOKEN": "the token `tving serve` requires (`--token`)",
    "TVING_CELERY_BROKER": "the cluster's Celery broker and result backend",
    "TVING_PG_URL": "the cluster's Dagster instance storage (PostgreSQL; read by its dagster.yaml)",
    "TVING_SENSOR_INTERVAL_SECONDS": "seconds between the folder sensor's ticks (default 30)",
    "TVING_FAILPOINT": "tests only: where the crash tests kill the process",
}
