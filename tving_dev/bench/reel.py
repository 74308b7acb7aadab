"""`tving bench reel`: a reel of many moments from as many videos (ffmpeg-generated sources of
mixed sizes and frame rates), timed, with the peak memory of this process and of the largest
ffmpeg it ran."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tving_dev.bench.measure import peak_rss_mb
from tving_resources.edit.cuts import Span, make_reel, probe_duration

SOURCES = ((1920, 1080, 25), (1280, 720, 30), (640, 360, 24), (480, 320, 25))  # sizes and frame rates, in turn


def _source(folder: Path, i: int, seconds: float) -> Path:
    width, height, fps = SOURCES[i % len(SOURCES)]
    out = folder / f"source{i:03d}.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}",
         "-f", "lavfi", "-i", f"sine=frequency={220 + 10 * i}", "-t", str(seconds), "-c:v", "libx264",
         "-preset", "ultrafast", "-g", str(fps * 2), "-c:a", "aac", "-shortest", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


def run_reel_benchmark(moments: int = 50, seconds: float = 4.0, source_seconds: float = 30.0) -> dict:
    with tempfile.TemporaryDirectory(prefix="tving-bench-reel-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        sources = [_source(folder, i, source_seconds) for i in range(moments)]
        made = time.perf_counter() - started
        # each moment somewhere else in its source, not on a keyframe
        spans = [Span(p, start := 1.37 + (i * 3.1) % (source_seconds - seconds - 2), start + seconds)
                 for i, p in enumerate(sources)]  # fmt: skip
        listing = folder / "spans.json"
        listing.write_text(json.dumps([[str(s.path), s.start, s.end] for s in spans]))
        # the reel in a process of its own: its peak and its ffmpegs' are the reel's alone
        done = subprocess.run([sys.executable, "-m", "tving_dev.bench.reel", str(listing)],
                              capture_output=True, text=True, check=True)  # fmt: skip
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        wall = measured["seconds"]
        out = folder / "reel.mp4"
        duration = probe_duration(out)
        size = out.stat().st_size
    report = {
        "moments": moments,
        "moment_seconds": seconds,
        "sources": [f"{w}x{h}@{f}" for w, h, f in SOURCES],
        "sources_made_seconds": round(made, 1),
        "reel_wall_seconds": round(wall, 2),
        "reel_seconds": round(duration, 2),
        "reel_mb": round(size / 2**20, 1),
        "python_peak_rss_mb": measured["peak_rss_mb"],
        "largest_ffmpeg_peak_rss_mb": measured["largest_ffmpeg_mb"],
    }
    report["summary"] = (
        f"{moments} moments of {seconds:.0f} s from {moments} videos ({', '.join(report['sources'])}, in turn): "
        f"reel of {duration:.1f} s made in {wall:.1f} s ({moments * seconds / wall:.1f} s of reel per second); "
        f"peak memory: this process {report['python_peak_rss_mb']} MB, the largest ffmpeg "
        f"{report['largest_ffmpeg_peak_rss_mb']} MB"
    )
    return report


def _reel_from(listing: Path) -> None:
    """The reel of the spans in ``listing``, timed, in this (fresh) process."""
    spans = [Span(Path(path), start, end) for path, start, end in json.loads(listing.read_text())]
    started = time.perf_counter()
    make_reel(spans, listing.parent / "reel.mp4")
    seconds = time.perf_counter() - started
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KB
    print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
                      "largest_ffmpeg_mb": round(largest, 1)}))  # fmt: skip


if __name__ == "__main__":
    _reel_from(Path(sys.argv[1]))
