"""Long-running services: `tving serve` (web pages and API), `tving ui` (Dagster), `tving worker` (models)."""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from pathlib import Path

import click

from query_app.web.server import ServerLimits

from .output import fail

# --------------------------------------------------------------------------- serve
_LIMITS = ServerLimits()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--dagster-url", envvar="TVING_DAGSTER_URL", help="Dagster webserver URL, for indexing status.")
@click.option("--max-upload-mb", default=2048, show_default=True, type=click.IntRange(1))
@click.option("--max-batch", default=16, show_default=True, type=click.IntRange(1), help="Searches per batch.")
@click.option("--batch-wait-ms", default=5.0, show_default=True, type=click.FloatRange(0), help="Wait for a batch.")
@click.option("--token", envvar="TVING_API_TOKEN", help="API token every request must carry (TVING_API_TOKEN).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, help="Host name clients use besides loopback ones.")
@click.option("--insecure", is_flag=True, help="Serve a non-loopback address without a token (trusted network only).")
@click.option("--show-paths", is_flag=True, help="Include absolute server paths in answers.")
@click.option("--describe-concurrency", default=1, show_default=True, type=click.IntRange(1), help="Describes at once.")
@click.option("--max-connections", default=_LIMITS.max_connections, show_default=True, type=click.IntRange(1),
              help="Connections served at once; more wait in the listen queue.")  # fmt: skip
@click.option("--header-timeout", default=_LIMITS.header_timeout_s, show_default=True,
              type=click.FloatRange(0.001, 60), help="Seconds a client has to send its request headers.")  # fmt: skip
@click.option("--body-timeout", default=_LIMITS.body_idle_timeout_s, show_default=True, type=click.FloatRange(0.1),
              help="Seconds a request body may stop arriving before 408.")  # fmt: skip
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="Serve HTTPS with this certificate.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="The certificate's key (PKCS#8 PEM).")
@click.option("--forwarded-allow-ips", default="127.0.0.1", show_default=True,
              help="Proxies whose X-Forwarded-For/-Proto are trusted (comma-separated, or *).")  # fmt: skip
def serve(
    host: str,
    port: int,
    dagster_url: str | None,
    max_upload_mb: int,
    max_batch: int,
    batch_wait_ms: float,
    token: str | None,
    allowed_hosts: tuple[str, ...],
    insecure: bool,
    show_paths: bool,
    describe_concurrency: int,
    max_connections: int,
    header_timeout: float,
    body_timeout: float,
    tls_cert: str | None,
    tls_key: str | None,
    forwarded_allow_ips: str,
) -> None:
    """The web pages and HTTP API (search, describe, library; OpenAPI at /docs)."""
    # Idle OpenMP threads (the lite text encoder's) sleep instead of spinning: concurrent searches
    # need those cores for their table reads (`tving bench serve` at 8 clients: 170 vs 201 ms median).
    # Read when the OpenMP runtime loads, with the first model: set before anything loads one.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from query_app.web import server
    from query_app.web.guard import LOOPBACK_HOSTS

    if host not in LOOPBACK_HOSTS and not token and not insecure:
        fail(
            f"serving on {host} makes the API reachable from other machines: set a token (--token or "
            "TVING_API_TOKEN), or pass --insecure on a network you trust"
        )
    if token is not None and len(token) < 16:
        hint = "python -c 'import secrets; print(secrets.token_urlsafe())'"
        fail(f"the token must be at least 16 characters (make one with: {hint})")
    if bool(tls_cert) != bool(tls_key):
        fail("HTTPS needs both --tls-cert and --tls-key")
    extra_hosts = set(allowed_hosts) | ({host} if host not in ("0.0.0.0", "::") else set())
    options = server.ServeOptions(
        host=host,
        port=port,
        dagster_url=dagster_url,
        max_upload_bytes=max_upload_mb * 2**20,
        max_batch=max_batch,
        batch_wait_ms=batch_wait_ms,
        token=token,
        allowed_hosts=tuple(sorted(extra_hosts)),
        show_paths=show_paths,
        describe_concurrency=describe_concurrency,
        forwarded_allow_ips=tuple(ip.strip() for ip in forwarded_allow_ips.split(",") if ip.strip()),
        tls_cert=tls_cert,
        tls_key=tls_key,
        limits=dataclasses.replace(
            _LIMITS, max_connections=max_connections, header_timeout_s=header_timeout, body_idle_timeout_s=body_timeout
        ),
    )
    scheme = "https" if tls_cert else "http"
    from tving_resources.config import resolve_paths

    click.echo(f"tving serve: {scheme}://{host}:{port}/  (models load in the background; see /ready)")
    click.echo(f"  uploads go to the watched folder {resolve_paths().videos_dir}/uploads")
    if dagster_url:
        click.echo(f"  indexing progress from Dagster at {dagster_url}")
    else:
        click.echo("  no Dagster URL (--dagster-url or TVING_DAGSTER_URL): the library page cannot show indexing runs")
    server.run(options)


# ---------------------------------------------------------------------------- ui
@click.command()
@click.option("--port", default=3000, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
def ui(port: int, host: str) -> None:
    """The Dagster UI and daemon (`dagster dev`) on the instance `tving index` records its runs in,
    and the model worker its runs use. Ctrl-C stops all of them."""
    import signal
    import subprocess
    import time

    from tving_assets.instance import dagster_home
    from tving_resources.config import resolve_paths

    paths = resolve_paths().ensure()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home(paths.home)), "TVING_HOME": str(paths.home)}
    bin_dir = Path(sys.executable).parent
    commands = {
        "model worker": [str(bin_dir / "tving"), "worker"],
        "dagster dev": [str(bin_dir / "dagster"), "dev", "-m", "tving_assets.definitions", "-h", host, "-p", str(port)],
    }
    click.echo(f"Dagster UI on http://{host}:{port}/ (instance {env['DAGSTER_HOME']}); Ctrl-C stops it")
    click.echo(f"  watching {paths.videos_dir}: new and changed videos there are indexed by the sensor")
    click.echo(f"  for indexing progress on the web pages: tving serve --dagster-url http://{host}:{port}")
    # each in its own process group, so that stopping one stops what it started (dagster dev's
    # webserver, daemon and code servers) and nothing is left behind
    started = {name: subprocess.Popen(cmd, env=env, start_new_session=True) for name, cmd in commands.items()}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    restarts = _Restarts()
    code = 0
    try:
        while True:
            time.sleep(0.5)
            worker = started["model worker"]
            if worker.poll() is not None and restarts.allow():
                # a stage that crashed the worker (a decoder on a hostile file) is run again by its
                # run, in the run's own process: the worker comes back for the other videos
                click.secho(f"model worker stopped (exit code {worker.returncode}); starting it again", err=True)
                started["model worker"] = subprocess.Popen(commands["model worker"], env=env, start_new_session=True)
                continue
            stopped = next((name for name, p in started.items() if p.poll() is not None), None)
            if stopped is not None:
                code = started[stopped].returncode or 1
                click.secho(
                    f"{stopped} stopped (exit code {started[stopped].returncode}); stopping the rest",
                    fg="red",
                    err=True,
                )
                break
    except KeyboardInterrupt:
        pass
    finally:
        for process in started.values():
            _stop_group(process)
    sys.exit(code)


class _Restarts:
    """At most 5 restarts of the model worker in 10 minutes: one that cannot stay up is left
    stopped (and `tving ui` stops too, saying so) rather than restarted forever."""

    def __init__(self, limit: int = 5, window: float = 600.0):
        self.limit, self.window, self.times = limit, window, []

    def allow(self) -> bool:
        import time

        now = time.monotonic()
        self.times = [t for t in self.times if now - t < self.window] + [now]
        return len(self.times) <= self.limit


def _stop_group(process, grace: float = 20.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``grace`` seconds."""
    import signal
    import subprocess

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@click.command()
def worker() -> None:
    """The model worker: runs the stages of the runs the Dagster daemon launches (one process per
    run) with models and libraries loaded once. `tving ui` starts one; without it, runs run their
    stages themselves."""
    import signal
    import threading

    from tving_resources.config import resolve_paths
    from tving_resources.worker.client import WorkerAddress
    from tving_resources.worker.server import ModelWorker

    # Idle OpenMP threads sleep instead of spinning: the worker runs several runs' stages at once,
    # and the text encoder's spinning threads held the cores the others needed (scene_vectors of a
    # 6 s clip: 0.77 s with the default policy, 0.13 s with this one, two runs at once).
    # Read when the OpenMP runtime loads, with the first model: set before anything loads one.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    paths = resolve_paths().ensure()
    model_worker = ModelWorker(WorkerAddress.for_home(paths.home))
    model_worker.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threading.Thread(target=model_worker.warm_up, daemon=True, name="tving-warm-up").start()
    click.echo(f"model worker for {paths.home} (pid {os.getpid()}): models load in the background")
    try:
        model_worker.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        model_worker.stop()


@click.command("env")
def env_command() -> None:
    """Shell lines that point `dagster` at this home's instance: eval "$(tving env)", then
    `dagster asset materialize -m tving_assets.definitions ...` sees what `tving` indexed."""
    from tving_assets.instance import dagster_home
    from tving_resources.config import resolve_paths

    paths = resolve_paths().ensure()
    click.echo(f"export TVING_HOME={shlex.quote(str(paths.home))}")
    click.echo(f"export DAGSTER_HOME={shlex.quote(str(dagster_home(paths.home)))}")
