"""What the benchmarks measure with: peak memory, percentiles, CPU of a process tree, GPU memory."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM first: Linux keeps ru_maxrss across exec, so a
    process started by a big parent (bench ann's search process) would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree_cpu_seconds(process) -> float:
    """CPU seconds of the server and its children (the HTTP server's worker process runs the app)."""
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        times = p.cpu_times()
        total += times.user + times.system
    return total


def reset_gpu_peak(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()


def or_na(value: float | None, unit: str) -> str:
    return f"{value} {unit}" if value is not None else "n/a (no GPU)"


def gpu_peak_mb(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1)
