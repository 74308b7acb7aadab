"""The `cluster` deployment on one machine, for trying it: PostgreSQL (instance storage and the
video catalog), Redis (Celery's broker), the Dagster webserver and daemon, and two Celery workers
(queue ``gpu`` for the model-heavy steps, queue ``cpu`` for the rest). `tving cluster start`
starts them in a folder, `tving cluster stop` stops them; every server listens on loopback.

On real hosts the same processes run apart (see docs/deploy.md, "Scaling out"): PostgreSQL and Redis once,
the webserver and daemon once, a ``gpu`` worker per GPU and ``cpu`` workers anywhere, all with the
environment this module writes to ``<folder>/cluster.env``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tving_resources.errors import ConfigError

BIN = Path(sys.executable).parent
CODE = ["-m", "tving_assets.definitions"]
TWO_WORKERS = (("gpu",), ("cpu",))  # a worker per queue (the default)
ONE_WORKER = (("gpu", "cpu"),)  # one worker for both queues: one host
TWO_HOSTS = (("gpu", "cpu"), ("gpu", "cpu"))  # a second host like the first (docs/deploy.md: adding a GPU host)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")


def spawn(command: list[str], env: dict[str, str], log: Path, cwd: Path | None = None, demote=None) -> int:
    """A detached process in its own process group (so it and its children stop together)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True, preexec_fn=demote
        )
    return proc.pid


def stop_group(pid: int, grace: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(pid):
            _reap(pid)
            time.sleep(0.1)
        if not _group_alive(pid):
            return


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    _reap(pgid)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def postgres_bin() -> Path:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    if shutil.which("initdb"):
        return Path(shutil.which("initdb")).resolve().parent
    raise ConfigError("PostgreSQL's server is not installed (Debian: apt-get install postgresql)")


def _service_user():
    """PostgreSQL refuses to run as root: when root, run it as `postgres` (or `nobody`)."""
    if os.geteuid() != 0:
        return None, None
    import pwd

    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            user = pwd.getpwnam(name)

            def demote(uid=user.pw_uid, gid=user.pw_gid) -> None:
                os.setgid(gid)
                os.setuid(uid)

            return user, demote
    return None, None


@dataclass(frozen=True)
class LocalCluster:
    root: Path

    @property
    def env_file(self) -> Path:
        return self.root / "cluster.env"

    @property
    def pids_file(self) -> Path:
        return self.root / "pids.json"

    def env(self) -> dict[str, str]:
        if not self.env_file.is_file():
            raise ConfigError(f"no cluster in {self.root}: run `tving cluster start` first")
        return dict(line.split("=", 1) for line in self.env_file.read_text().splitlines() if "=" in line)

    # ------------------------------------------------------------------ start
    def start(
        self,
        tving_home: Path | None = None,
        webserver_port: int | None = 3000,
        sensor_interval: int = 30,
        workers: tuple[tuple[str, ...], ...] = TWO_WORKERS,
    ) -> dict:
        """Start every server and process; returns the cluster's environment. ``workers``: the
        queues of each Celery worker (one process, concurrency 1, each)."""
        self.root.mkdir(parents=True, exist_ok=True)
        pids: dict[str, int] = {}
        try:
            pg_url = self._start_postgres(pids)
            broker = self._start_redis(pids)
            dagster_home = self.root / "dagster_home"
            dagster_home.mkdir(exist_ok=True)
            deploy = Path(__file__).resolve().parent.parent / "tving_assets" / "deploy" / "cluster" / "dagster.yaml"
            shutil.copyfile(deploy, dagster_home / "dagster.yaml")
            env = {
                "TVING_DEPLOYMENT": "cluster",
                "DAGSTER_HOME": str(dagster_home),
                "TVING_PG_URL": f"{pg_url}/dagster",
                "TVING_CATALOG_URL": f"{pg_url}/tving",
                "TVING_CELERY_BROKER": broker,
                "TVING_HOME": str((tving_home or self.root / "tving_home").resolve()),
                "TVING_SENSOR_INTERVAL_SECONDS": str(sensor_interval),
            }
            self.env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
            full_env = {**os.environ, **env}
            logs = self.root / "logs"
            # as docs/deploy.md says for each GPU host added: the gpu pool holds one slot per GPU worker
            # (this also creates the instance's tables before the daemon and workers start)
            gpu_workers = max(1, sum("gpu" in queues for queues in workers))
            subprocess.run([str(BIN / "dagster"), "instance", "concurrency", "set", "gpu", str(gpu_workers)],
                           env=full_env, check=True, capture_output=True, timeout=180)  # fmt: skip
            pids["daemon"] = spawn(
                [str(BIN / "dagster-daemon"), "run", *CODE], full_env, logs / "daemon.log", self.root
            )
            if webserver_port:
                command = [str(BIN / "dagster-webserver"), *CODE, "-h", "127.0.0.1", "-p", str(webserver_port)]
                pids["webserver"] = spawn(command, full_env, logs / "webserver.log", self.root)
            names = []
            labels = ["-".join(queues) for queues in workers]
            for i, queues in enumerate(workers):
                label = labels[i] + (f"-{i + 1}" if labels.count(labels[i]) > 1 else "")
                names.append(f"{label}@{socket.gethostname()}")
                command = [str(BIN / "celery"), "-A", "tving_assets.celery_app", "worker", "-Q", ",".join(queues),
                           "-c", "1", "-n", names[-1], "--prefetch-multiplier=1", "--loglevel=INFO"]  # fmt: skip
                pids[f"worker-{label}"] = spawn(command, full_env, logs / f"worker-{label}.log", self.root)
            self.pids_file.write_text(json.dumps(pids))
            self._wait_for_workers(full_env, names)
            if webserver_port:
                wait_for(lambda: accepts(webserver_port), 120, "the Dagster webserver")
        except BaseException:
            self.pids_file.write_text(json.dumps(pids))
            self.stop()
            raise
        return env

    @property
    def postgres_dir(self) -> Path:
        """Inside the cluster folder; when running as root, under /tmp (the `postgres` user that
        runs it may not be able to reach a folder inside root's, e.g. a 0700 temporary folder)."""
        if os.geteuid() != 0:
            return self.root / "postgres"
        digest = hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"tving-cluster-pg-{digest}"

    def _start_postgres(self, pids: dict[str, int]) -> str:
        pg = postgres_bin()
        folder = self.postgres_dir
        folder.mkdir(exist_ok=True, mode=0o700)
        user, demote = _service_user()
        if user is not None:
            os.chown(folder, user.pw_uid, user.pw_gid)
        data, port = folder / "data", free_port()
        if not data.exists():
            subprocess.run(
                [str(pg / "initdb"), "-D", str(data), "-U", "tving", "--auth=trust", "-E", "UTF8"],
                check=True, capture_output=True, preexec_fn=demote, timeout=120,
            )  # fmt: skip
        command = [str(pg / "postgres"), "-D", str(data), "-p", str(port), "-k", str(folder),
                   "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300"]  # fmt: skip
        log = folder / "postgres.log"
        if user is not None and not log.exists():
            log.touch()
            os.chown(log, user.pw_uid, user.pw_gid)
        pids["postgres"] = spawn(command, dict(os.environ), log, demote=demote)
        wait_for(lambda: accepts(port), 60, "PostgreSQL")
        for database in ("dagster", "tving"):
            subprocess.run(
                [str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "tving", database],
                capture_output=True,
                timeout=60,
            )  # fmt: skip (exists already on a restart: fine)
        return f"postgresql+psycopg2://tving@127.0.0.1:{port}"  # the driver dagster-postgres installs

    def _start_redis(self, pids: dict[str, int]) -> str:
        server = shutil.which("redis-server")
        if server is None:
            raise ConfigError("Redis is not installed (Debian: apt-get install redis-server)")
        folder = self.root / "redis"
        folder.mkdir(exist_ok=True)
        port = free_port()
        command = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", str(folder)]  # fmt: skip
        pids["redis"] = spawn(command, dict(os.environ), folder / "redis.log")
        wait_for(lambda: accepts(port), 30, "Redis")
        return f"redis://127.0.0.1:{port}/0"

    def _wait_for_workers(self, env: dict[str, str], names: list[str]) -> None:
        def ready() -> bool:
            out = subprocess.run(
                [str(BIN / "celery"), "-A", "tving_assets.celery_app", "inspect", "ping", "--timeout", "2"],
                env=env, capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            return all(name in out.stdout for name in names)

        wait_for(ready, 120, "the Celery workers", interval=1.0)

    # ------------------------------------------------------------------- stop
    def stop(self, purge: bool = False) -> list[str]:
        """Stop everything this folder's cluster started (workers first, the databases last);
        ``purge`` also deletes the databases' files."""
        order = []
        if self.pids_file.is_file():
            pids = json.loads(self.pids_file.read_text())
            order = sorted(pids, key=lambda n: (n in ("postgres", "redis"), n))
            for name in order:
                stop_group(pids[name])
            self.pids_file.unlink()
        if purge:
            shutil.rmtree(self.postgres_dir, ignore_errors=True)
            shutil.rmtree(self.root / "redis", ignore_errors=True)
        return order

    def status(self) -> dict[str, bool]:
        if not self.pids_file.is_file():
            return {}
        return {name: _group_alive(pid) for name, pid in json.loads(self.pids_file.read_text()).items()}


@contextlib.contextmanager
def running_cluster(root: Path, **start_options) -> Iterator[dict[str, str]]:
    """A cluster for the duration of the block; stopped at the end, also on error."""
    cluster = LocalCluster(root)
    env = cluster.start(**start_options)
    try:
        yield env
    finally:
        cluster.stop(purge=True)
