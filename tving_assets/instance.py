"""The Dagster instance the command line uses: the one the UI shows.

Without DAGSTER_HOME, `tving` uses `<TVING_HOME>/dagster/`, created on first use with the
`local` deployment's dagster.yaml (SQLite storage, run and pool limits): `tving index` records its
runs there and `tving ui` opens the UI on the same instance, so nothing indexed from a shell
looks "never materialized" in the UI.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

import dagster as dg

from tving_assets.sqlite_connections import reuse_sqlite_connections

DEPLOY_DIR = Path(__file__).parent / "deploy"
_HOST_TAG, _PID_TAG = "tving/host", "tving/pid"


def dagster_home(tving_home: Path) -> Path:
    """DAGSTER_HOME when set, else ``<tving_home>/dagster`` (made with the local dagster.yaml)."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"]).expanduser().resolve()
    home = tving_home / "dagster"
    config = home / "dagster.yaml"
    # made on first use; a home made by an earlier version, whose storage was this project's own
    # subclass of Dagster's SQLite storage (the same files), gets Dagster's storage itself
    if not config.is_file() or _OLD_STORAGE in config.read_text(encoding="utf-8"):
        home.mkdir(parents=True, exist_ok=True)
        config.write_text(local_dagster_yaml(home.resolve()), encoding="utf-8")
    return home


_OLD_STORAGE = "module: tving_assets.storage"


def local_dagster_yaml(home: Path) -> str:
    """The local deployment's dagster.yaml for the instance folder ``home``: its storage's
    base_dir is that folder rather than $DAGSTER_HOME, which the command line does not set."""
    template = (DEPLOY_DIR / "local" / "dagster.yaml").read_text(encoding="utf-8")
    env_home = "base_dir:\n      env: DAGSTER_HOME\n"
    if env_home not in template:
        raise RuntimeError(f"{DEPLOY_DIR / 'local' / 'dagster.yaml'}: no `base_dir: env: DAGSTER_HOME` to fill in")
    return template.replace(env_home, f"base_dir: {json.dumps(str(home))}\n")


# Runs executed in this process (`tving index`, `tving remove`) print to the terminal they were
# started from: their stdout and stderr are not captured into the instance's compute logs, which
# costs two `tail` and two Python watcher processes a run and holds the progress display back a
# second (tail polls). Runs the daemon launches capture as the dagster.yaml says.
# (the module path as Dagster's documentation spells it in dagster.yaml; Dagster maps it)
_IN_PROCESS = {
    "compute_logs": {"module": "dagster.core.storage.noop_compute_log_manager", "class": "NoOpComputeLogManager"}
}


def keep_connections_of_dagster_home() -> None:
    """In a process Dagster started for the instance at DAGSTER_HOME (a run the daemon launched,
    the code server that evaluates the sensor): keep the connections to its SQLite files open, as
    `tving` does for its own runs (see tving_assets.sqlite_connections)."""
    if os.environ.get("DAGSTER_HOME"):
        reuse_sqlite_connections(Path(os.environ["DAGSTER_HOME"]).expanduser())


def get_instance(tving_home: Path) -> dg.DagsterInstance:
    folder = dagster_home(tving_home)
    folder.mkdir(parents=True, exist_ok=True)
    # a run stores hundreds of statements: each opened the database again (docs/performance.md)
    reuse_sqlite_connections(folder)
    # Two `tving index` calls started at once on a new home would both create and migrate the
    # instance's SQLite databases, and one fails on alembic's version row (seen in CI): the first
    # opening, which creates every database, happens under a lock.
    with open(folder / ".instance.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            # Dagster's public constructor of an instance from a folder's dagster.yaml with
            # overrides (it is named for temporary folders; the folder here is the home's own)
            instance = dg.DagsterInstance.local_temp(tempdir=str(folder), overrides=_IN_PROCESS)
            instance.get_runs(limit=1)  # run storage
            instance.all_instigator_state()  # schedule storage
            ensure_pool_limits(instance)  # event log storage
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    reap_dead_cli_runs(instance)
    return instance


def ensure_pool_limits(instance: dg.DagsterInstance) -> None:
    """Give the pools their limits before any run needs them (see :func:`gpu_pool_limit`;
    `tving_lancedb_writer` one). Dagster sets a pool's default limit lazily when a run first
    uses it, and two runs doing so at once fail on a unique key (seen with PostgreSQL storage).
    A limit set by hand (`dagster instance concurrency set`) is kept."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    known = storage.get_concurrency_keys()
    for pool, limit in (("gpu", gpu_pool_limit()), ("tving_lancedb_writer", 1)):
        if pool not in known:
            storage.set_concurrency_slots(pool, limit)


def gpu_pool_limit() -> int:
    """Model steps (transcript, captions, scene_vectors) at once: one per GPU, which is what the
    pool guards (a GPU's memory). Without a GPU, on the local deployment, one per core: there is
    no GPU to guard, the model worker serves each model one call at a time anyway, and one step
    at a time left a core idle while two runs went (the daemon path 0.88 of the time with one
    per core, median of 5 alternating pairs). A cluster whose daemon host has no GPU keeps 1 until
    told how many its GPU hosts have (`dagster instance concurrency set gpu N`)."""
    from tving_resources.config import deployment

    gpus = _cuda_devices()
    if gpus:
        return gpus
    return (os.cpu_count() or 1) if deployment() == "local" else 1


def _cuda_devices() -> int:
    from tving_resources.models.profiles import has_cuda_gpu

    if not has_cuda_gpu():
        return 0
    import ctranslate2

    return ctranslate2.get_cuda_device_count()


def process_tags() -> dict[str, str]:
    """Tags of a run executed in this process, so a later call can tell it died (killed)."""
    return {_HOST_TAG: socket.gethostname(), _PID_TAG: str(os.getpid())}


def reap_dead_cli_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs this host's command line started in a process that no longer exists
    (SIGKILL, OOM killer) and free the pool slots they held: no daemon watches such runs."""
    host = socket.gethostname()
    records = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED], tags={_HOST_TAG: host}), limit=200
    )
    reaped = []
    for run in records:
        pid = int(run.tags.get(_PID_TAG, "0"))
        if pid and not _alive(pid):
            instance.report_run_failed(run, f"the process that ran it (pid {pid}) is gone: killed or crashed")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            reaped.append(run.run_id)
    return reaped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
