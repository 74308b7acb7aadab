import subprocess

import numpy as np
import pytest

from tving_resources.errors import NoVideoStreamError, UnreadableVideoError
from tving_resources.media.video import FrameReader, keyframe_times, probe_video, scaled_size


@pytest.fixture(scope="module")
def counter_clip(tmp_path_factory):
    """4 s at 25 fps where frame N has luma 20+2N: tells exactly which frame was decoded."""
    path = tmp_path_factory.mktemp("counter") / "counter.mp4"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
         "nullsrc=s=320x240:r=25:d=4,geq=lum='20+2*N':cb=128:cr=128", "-c:v", "libx264", "-qp", "0",
         "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


def test_probe_real_samples(sample_videos):
    bikes = probe_video(sample_videos["bikes.mp4"], "bikes-0000000000")
    assert (bikes.width, bikes.height, bikes.fps) == (640, 272, 25.0)
    assert bikes.duration == pytest.approx(10.0, abs=0.05)
    assert not bikes.has_audio
    bunny = probe_video(sample_videos["bigbuckbunny.mp4"], "bigbuckbunny-0000000000")
    assert bunny.has_audio and bunny.audio_codec == "aac"
    assert len(bunny.fingerprint) == 32 and bunny.fingerprint != bikes.fingerprint


@pytest.mark.parametrize(
    ("kind", "error", "words"),
    [
        ("text", UnreadableVideoError, "not a readable video"),
        ("empty", UnreadableVideoError, "empty (0 bytes)"),
        ("truncated", UnreadableVideoError, "not a readable video"),
        ("truncated_faststart", UnreadableVideoError, "truncated"),
        ("audio_only", NoVideoStreamError, "no video stream"),
    ],
)
def test_probe_rejects_bad_files_with_clear_messages(broken_files, kind, error, words):
    with pytest.raises(error) as info:
        probe_video(broken_files[kind], "bad-0000000000")
    assert words in str(info.value)
    assert broken_files[kind].name in str(info.value)  # the message names the file


@pytest.mark.parametrize("kept", [0.9, 0.97])
def test_probe_rejects_a_file_cut_within_its_last_seconds(tmp_path, counter_clip, kept):
    """The tail's packets are read, not decoded: a cut inside the last two seconds leaves a short
    last packet (FFmpeg marks it corrupt), which must still fail the probe."""
    fast = tmp_path / "fast.mp4"
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(counter_clip), "-c", "copy",
                    "-movflags", "+faststart", str(fast)], check=True)  # fmt: skip
    probe_video(fast, "whole-0000000000")  # the whole file is fine
    data = fast.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * kept)])
    with pytest.raises(UnreadableVideoError, match="truncated"):
        probe_video(cut, "cut-0000000000")


def test_frames_at_exact_times_in_any_order(counter_clip):
    reader = FrameReader(counter_clip, (320, 240), max_side=160)
    # reference: every frame, decoded in order, through the same scaler
    reference = np.array([f.mean() for f in reader._reader.get_batch(list(range(100))).asnumpy()])
    assert len(reference) == 100 and np.all(np.diff(reference) > 1)  # each frame is distinct

    times = [3.0, 0.0, 1.52, 1.52, 0.04, 2.999, 3.99]
    frames = reader.frames_at(times)
    assert frames[0].shape == (120, 160, 3)
    for t, frame in zip(times, frames, strict=True):
        decoded_index = int(np.argmin(np.abs(reference - frame.mean())))
        assert decoded_index == int(t * 25 + 1e-6), t


def test_keyframe_times_are_segment_midpoints():
    assert keyframe_times(10.0, 16.0, 3) == [11.0, 13.0, 15.0]
    assert scaled_size(1280, 720, 512) == (512, 288)
    assert scaled_size(100, 50, 512) == (100, 50)
    assert np.allclose(keyframe_times(0, 1, 1), [0.5])
