import pytest

from tving_resources.index.pipeline import check_scene_coverage
from tving_resources.media import scenes as scenes_module
from tving_resources.media.scenes import SceneDetection, detect_scenes, plan_scenes
from tving_resources.media.video import probe_video
from tving_resources.settings import IndexSettings


def spans(scene_list):
    return [(round(s.start, 3), round(s.end, 3)) for s in scene_list]


def test_plan_merges_short_scenes_into_the_shorter_neighbour():
    settings = IndexSettings(min_scene_seconds=1.0, max_scene_seconds=100).scene_settings()
    planned, covered = plan_scenes([4.0, 4.5, 10.0], 20.0, settings)
    assert covered == 20.0
    assert spans(planned) == [(0.0, 4.5), (4.5, 10.0), (10.0, 20.0)]


def test_plan_splits_long_scenes_evenly_and_excludes_end_card():
    settings = IndexSettings(min_scene_seconds=0.5, max_scene_seconds=10.0, exclude_last_seconds=5.0).scene_settings()
    planned, covered = plan_scenes([2.0, 50.0], 60.0, settings)
    assert covered == 55.0
    assert spans(planned)[:1] == [(0.0, 2.0)]
    middle = [s for s in planned if 2.0 <= s.start < 50.0]
    assert len(middle) == 5 and all(abs(s.duration - 9.6) < 1e-6 for s in middle)
    assert planned[-1].end == 55.0
    detection = SceneDetection(tuple(planned), covered, 27.0)
    assert check_scene_coverage(detection) == []


def test_coverage_check_finds_gaps_and_overlaps():
    from tving_resources.media.scenes import Scene

    gap = SceneDetection((Scene(0, 0, 1), Scene(1, 1.5, 3)), 3.0, 27.0)
    overlap = SceneDetection((Scene(0, 0, 2), Scene(1, 1.5, 3)), 3.0, 27.0)
    short = SceneDetection((Scene(0, 0, 2),), 3.0, 27.0)
    assert "gap" in check_scene_coverage(gap)[0]
    assert "overlap" in check_scene_coverage(overlap)[0]
    assert "ends at" in check_scene_coverage(short)[0]


@pytest.mark.parametrize(
    ("first_cuts", "retry_cuts", "expected_factor", "used"),
    [
        ([1.0], [1.0, 2.0, 3.0, 4.0, 5.0], 0.6, "retry"),  # too few -> lower threshold
        ([float(i) for i in range(1, 50)], [5.0 * i for i in range(1, 9)], 1.5, "retry"),  # too many -> higher
        ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], None, None, "first"),  # in range: no retry
    ],
)
def test_retry_rule(monkeypatch, first_cuts, retry_cuts, expected_factor, used):
    passes = []

    def fake_detect_cuts_at(path, thresholds, min_scene_seconds, end_time=None):
        passes.append(tuple(thresholds))
        first, lower, higher = thresholds
        retry_at = lower if expected_factor == 0.6 else higher
        return {first: first_cuts, lower: [99.0], higher: [99.0], retry_at: retry_cuts or [99.0]}

    monkeypatch.setattr(scenes_module, "detect_cuts_at", fake_detect_cuts_at)
    settings = IndexSettings(scene_threshold=30.0, min_scene_seconds=0.1, max_scene_seconds=1000).scene_settings()
    result = detect_scenes("unused.mp4", 60.0, settings)
    assert passes == [(30.0, pytest.approx(18.0), pytest.approx(45.0))]  # one decoding for all three
    tried = [a.threshold for a in result.attempts]
    if expected_factor is None:
        assert tried == [30.0]
    else:
        assert tried == [30.0, pytest.approx(30.0 * expected_factor)]
    chosen = retry_cuts if used == "retry" else first_cuts
    assert len(result.scenes) == len(chosen) + 1
    assert result.threshold_used == tried[-1 if used == "retry" else 0]


def test_one_pass_finds_what_separate_passes_find(sample_videos):
    """Several thresholds from one decoding: the same cuts as one decoding per threshold."""
    from tving_resources.media.scenes import detect_cuts, detect_cuts_at

    video = sample_videos["bikes.mp4"]
    together = detect_cuts_at(video, (27.0, 16.2, 40.5), 0.5)
    for threshold in (27.0, 16.2, 40.5):
        assert together[threshold] == detect_cuts(video, threshold, 0.5)
    assert len(together[16.2]) >= len(together[27.0]) >= len(together[40.5]) >= 1


def test_detected_cuts_match_known_cuts(cuts_clip):
    path, known_cuts = cuts_clip
    info = probe_video(path, "cuts-0000000000")
    detection = detect_scenes(path, info.duration, IndexSettings().scene_settings())
    starts = [s.start for s in detection.scenes[1:]]
    assert len(starts) == len(known_cuts), (starts, known_cuts)
    for found, known in zip(starts, known_cuts, strict=True):
        assert abs(found - known) <= 0.25
    assert check_scene_coverage(detection) == []


def test_real_sample_with_hard_cuts(sample_videos):
    detection = detect_scenes(sample_videos["bikes.mp4"], 10.0, IndexSettings().scene_settings())
    assert len(detection.scenes) >= 4
    assert check_scene_coverage(detection) == []
