"""posedeploy.runtime.PoseStream: a live feed of several people, tracked, lifted and smoothed."""

import threading

import numpy as np
import pytest

from posedeploy.bench.streaming import people_feed
from posedeploy.errors import InputError
from posedeploy.runtime import PoseStream
from posedeploy.smoothing import DEFAULT_SMOOTHING, JointFilter


@pytest.fixture(scope="module")
def feed():
    return people_feed(2, 12)  # (12, 2, 17, 2) pixels, image size


def replay(stream: PoseStream, frames: np.ndarray, order_flips: bool = True) -> list[list]:
    out = []
    for f, people in enumerate(frames):
        out.append(stream.push(people[::-1] if order_flips and f % 2 else people))  # detectors list people in any order
    return out


def test_people_keep_their_tracks_and_each_result_is_its_frame_one_push_late(exported, feed):
    frames, size = feed
    with PoseStream(exported, size, fps=30, hypotheses=4) as stream:
        pushed = replay(stream, frames)
    assert pushed[0] == []  # lag 1: a frame's results come with the next push
    for f, results in enumerate(pushed[1:]):
        assert sorted(r.track_id for r in results) == [0, 1] and {r.frame for r in results} == {f}
        for r in results:
            assert r.pose.shape == r.smoothed.shape == (17, 3) and r.spread.shape == (17,) and r.observed.all()
            assert r.radius(0.9).shape == (17,) and (r.radius(0.9)[1:] > r.radius(0.5)[1:]).all()  # [0]: the root, 0
    # who is who: each track's 2D stays with one person, whatever the order they were listed in
    by_track = {r.track_id: [] for r in pushed[1]}
    for results in pushed[1:]:
        for r in results:
            by_track[r.track_id].append(r)
    for track in by_track.values():
        poses = np.stack([r.pose for r in track])
        expected = JointFilter(DEFAULT_SMOOTHING.at_fps(30), 17, lag=1)
        smoothed = [expected.push(p) for p in poses][1:] + [expected.flush()]
        np.testing.assert_allclose(np.stack([r.smoothed for r in track])[:-1], np.stack(smoothed)[:-1], atol=1e-3)


def test_without_lag_results_come_at_once(exported, feed):
    frames, size = feed
    with PoseStream(exported, size, lag=0, hypotheses=4) as stream:
        results = stream.push(frames[0])
        assert [r.frame for r in results] == [0, 0]
        np.testing.assert_array_equal(results[0].smoothed, results[0].pose)  # nothing to smooth with yet
        assert stream.latest == tuple(results)


def test_skipped_frame_numbers_are_time_without_a_measurement(exported, feed):
    frames, size = feed
    with PoseStream(exported, size, lag=0, hypotheses=4) as stream:
        got = [stream.push(frames[f][:1], frame=f)[0] for f in (0, 1, 4)]
    expected = JointFilter(DEFAULT_SMOOTHING.at_fps(30), 17, lag=0)
    nothing = np.full((17, 3), np.nan)
    outs = [expected.push(p) for p in (got[0].pose, got[1].pose, nothing, nothing, got[2].pose)]
    assert [r.frame for r in got] == [0, 1, 4]
    np.testing.assert_allclose(got[2].smoothed, outs[-1], atol=1e-3)


def test_missing_joints_are_filled_from_the_track_and_not_measured(exported, feed):
    frames, size = feed
    with PoseStream(exported, size, lag=0, hypotheses=4) as stream:
        stream.push(frames[0][:1])
        person = frames[1][:1].copy()
        person[0, 3] = np.nan  # lost by the detector
        scores = np.ones((1, 17))
        scores[0, 5] = 0.1  # too unsure
        [r] = stream.push(person, scores)
    assert not r.observed[3] and not r.observed[5] and r.observed.sum() == 15
    first = frames[0][:1].copy()
    first[0, :6] = np.nan  # six joints never seen: not enough of this person to lift yet
    with PoseStream(exported, size, lag=0, hypotheses=4) as stream:
        assert stream.push(first) == []
        assert len(stream.push(frames[1][:1])) == 1


def test_tracks_end_after_the_gap_so_memory_stays_bounded(exported, feed):
    frames, size = feed
    with PoseStream(exported, size, fps=10, max_gap_s=0.3, hypotheses=2) as stream:
        stream.push(frames[0])
        assert stream.tracks == 2
        for f in range(1, 8):
            stream.push(frames[f][:1])  # the second person has left
        assert stream.tracks == 1
        rng = np.random.default_rng(0)
        for f in range(8, 60):  # a new stranger every frame, never seen again
            stranger = rng.uniform(0, size[0], (1, 17, 2))
            stream.push(np.concatenate([frames[f % 12][:1], stranger]))
        assert stream.tracks <= 2 + 3  # the one who stays, and the strangers of the last gap


def test_bad_frames_are_refused_in_one_line(exported, feed):
    frames, size = feed
    with PoseStream(exported, size, hypotheses=2) as stream:
        stream.push(frames[0], frame=5)
        for bad, message in [
            (lambda: stream.push(frames[1], frame=5), "increasing order"),
            (lambda: stream.push(frames[1], frame=3), "increasing order"),
            (lambda: stream.push(frames[1][0]), r"\(N, 17, 2\)"),
            (lambda: stream.push(frames[1], np.full((2, 17), 1.5)), r"in \[0, 1\]"),
            (lambda: stream.push(frames[1], np.full((2, 17), np.nan)), r"in \[0, 1\]"),
            (lambda: stream.push(frames[1], np.ones((3, 17))), "scores must be"),
        ]:
            with pytest.raises(InputError, match=message):
                bad()
        inf = frames[1].copy()
        inf[0, 2] = np.inf  # a non-finite coordinate is a missing joint, not an error
        assert len(stream.push(inf)) == 2
        assert stream.push(np.zeros((0, 17, 2))) is not None  # nobody in view
    for kwargs, message in [({"lag": 2}, "lag"), ({"fps": 0}, "fps"), ({"max_gap_s": -1}, "max gap")]:
        with pytest.raises(InputError, match=message):
            PoseStream(exported, size, **kwargs)


def test_one_thread_pushes_while_another_reads(exported, feed):
    frames, size = feed
    seen, errors = [], []
    with PoseStream(exported, size, hypotheses=2) as stream:
        done = threading.Event()

        def read():
            while not done.is_set():
                try:
                    seen.append(len(stream.latest))
                except Exception as exc:  # noqa: BLE001 - any failure here is the test's finding
                    errors.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        pushed = replay(stream, frames, order_flips=False)
        done.set()
        reader.join()
        assert stream.latest == tuple(pushed[-1])
    assert not errors and seen and set(seen) <= {0, 2}


def test_bench_times_the_stream_for_several_people(exported):
    from posedeploy.bench.command import BenchSettings, bench
    from posedeploy.bench.report import SweepSettings, format_report

    tiny = SweepSettings(batches=[1], hypotheses=[2], warmup=0, min_repeats=1, min_seconds=0.0)
    settings = BenchSettings(
        exported,
        ("onnxruntime",),
        sweep=tiny,
        streaming=True,
        streaming_fps=(60.0,),
        streaming_people=(1, 3),
        stream_frames=5,
    )
    report = bench(settings)
    assert [(s.people, s.fps) for s in report.streaming] == [(1, 60.0), (3, 60.0)]
    for s in report.streaming:
        assert s.processed + s.dropped == 5 and 0 < s.latency_ms.p50 <= s.latency_ms.p99
    assert "PoseStream, 3 people at 60 fps" in format_report(report)
    with pytest.raises(InputError, match="people per streamed frame"):
        bench(BenchSettings(exported, ("onnxruntime",), sweep=tiny, streaming=True, streaming_people=(0,)))


def test_the_example_replays_a_file_as_a_live_feed(exported, feed, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    frames, size = feed
    scores = np.full(frames.shape[:3] + (1,), 0.9)
    np.save(tmp_path / "people.npy", np.concatenate([frames[:6], scores[:6]], axis=-1))
    example = Path(__file__).parents[1] / "examples" / "stream_keypoints.py"
    result = subprocess.run(
        [sys.executable, str(example), str(tmp_path / "people.npy"), "--artifacts", str(exported), "--image-size"]
        + [str(v) for v in size]
        + ["--fps", "50"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("frame     0: 2 detected") and "no result yet" in lines[0]
    assert "track 0 (frame 4)" in lines[5] and lines[-1].startswith("6 frames at 50 fps: latency p50")
