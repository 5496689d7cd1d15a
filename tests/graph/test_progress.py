from imageforge.graph.progress import ProgressTracker


def _events(scenes: int):
    yield {"type": "run_started"}
    yield {"type": "plan_ready", "data": {"scenes": [{}] * scenes}}
    for k in range(1, scenes + 1):
        yield {"type": "enhance_done", "scene": k}
    for k in range(1, scenes + 1):
        yield {"type": "attempt_started", "scene": k, "data": {"attempt": 1}}
        yield {"type": "variations_generated", "scene": k}
        yield {"type": "variations_scored", "scene": k}
        yield {"type": "scene_done", "scene": k}
    yield {"type": "run_done", "data": {"status": "completed"}}


def test_progress_rises_monotonically_to_100():
    tracker = ProgressTracker()
    values = [tracker.update(event) for event in _events(3)]
    assert values == sorted(values)
    assert values[-1] == 100.0
    assert values[1] == 5.0  # planned, nothing enhanced yet
    assert 29.9 < values[4] < 30.1  # all three scenes enhanced


def test_a_retry_does_not_move_progress_back():
    tracker = ProgressTracker()
    for event in list(_events(2))[:6]:  # through scene 1 scored
        tracker.update(event)
    before = tracker.progress
    after = tracker.update({"type": "attempt_started", "scene": 1, "data": {"attempt": 2}})
    assert after == before
    assert tracker.step == "scene 1: generating (attempt 2)"


def test_failed_run_stays_below_100():
    tracker = ProgressTracker()
    tracker.update({"type": "plan_ready", "data": {"scenes": [{}, {}]}})
    assert tracker.update({"type": "run_done", "data": {"status": "failed"}}) < 100
    assert tracker.step == "failed"
