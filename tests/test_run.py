"""posedeploy run: every input format from small files written here, missing joints, outputs, pictures."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from posedeploy import aggregate
from posedeploy.data import load_dataset
from posedeploy.errors import InputError
from posedeploy.keypoint_io import COCO_TO_H36M, KeypointSequence, clean, coco_to_h36m, read_keypoints
from posedeploy.run import RunSettings, read_camera, run_file


@pytest.fixture(scope="module")
def artifacts(exported):
    return exported


@pytest.fixture(scope="module")
def poses():
    return load_dataset("synthetic", "test", synthetic_size=8)


def to_coco(h36m_px: np.ndarray) -> np.ndarray:
    """Inverse of the mapping for the joints COCO has; face joints placed at the neck/nose."""
    coco = np.zeros((len(h36m_px), 17, 3))
    coco[..., 2] = 0.9
    for h, c in COCO_TO_H36M.items():
        coco[:, c, :2] = h36m_px[:, h]
    coco[:, 0, :2] = h36m_px[:, 9]
    coco[:, 1:5, :2] = h36m_px[:, 9:10]
    return coco


def test_coco_mapping_builds_the_missing_h36m_joints():
    coco = np.random.default_rng(0).normal(size=(3, 17, 3))
    h = coco_to_h36m(coco)
    np.testing.assert_allclose(h[:, 0, :2], (coco[:, 11, :2] + coco[:, 12, :2]) / 2)
    np.testing.assert_allclose(h[:, 8, :2], (coco[:, 5, :2] + coco[:, 6, :2]) / 2)
    np.testing.assert_allclose(h[:, 7, :2], (h[:, 0, :2] + h[:, 8, :2]) / 2)
    np.testing.assert_allclose(h[:, 14, :2], coco[:, 6, :2])  # right shoulder
    np.testing.assert_allclose(h[:, 0, 2], np.minimum(coco[:, 11, 2], coco[:, 12, 2]))


def test_every_input_format(poses, tmp_path):
    px = poses.pixels()
    np.save(tmp_path / "plain.npy", px)
    np.save(tmp_path / "conf.npy", np.concatenate([px, np.ones((8, 17, 1))], axis=-1))
    np.savez(tmp_path / "plain.npz", keypoints=px, frame_ids=np.arange(100, 108))
    vp3d = {"video1": {"custom": [px[:, [j for j in range(17) if j != 9]]]}}  # 16-joint layout
    np.savez(
        tmp_path / "vp3d.npz",
        positions_2d=np.array(vp3d, dtype=object),
        metadata=np.array({"video_metadata": {"video1": {"w": 1000, "h": 1000}}}, dtype=object),
    )
    coco = to_coco(px)
    results = [{"image_id": i, "category_id": 1, "keypoints": coco[i].ravel().tolist(), "score": 0.8} for i in range(8)]
    results.append({"image_id": 3, "category_id": 1, "keypoints": (coco[3] * 0.5).ravel().tolist(), "score": 0.1})
    (tmp_path / "coco.json").write_text(json.dumps(results))
    mmpose = {
        "meta_info": {},
        "instance_info": [
            {
                "frame_id": i + 1,
                "instances": [{"keypoints": coco[i, :, :2].tolist(), "keypoint_scores": coco[i, :, 2].tolist()}],
            }
            for i in range(8)
        ],
    }
    (tmp_path / "mmpose.json").write_text(json.dumps(mmpose))
    for name in ("plain.npy", "conf.npy", "plain.npz", "vp3d.npz", "coco.json", "mmpose.json"):
        seq = read_keypoints(tmp_path / name)[0]  # coco.json: a second person in frame 3, a track of its own
        assert seq.keypoints.shape == (8, 17, 2), name
        built = (0, 7, 8, 10)  # pelvis, spine, thorax, head: constructed from COCO joints
        joints = [j for j in range(17) if j not in built] if name.endswith("json") else list(range(17))
        if name != "vp3d.npz":
            np.testing.assert_allclose(seq.keypoints[:, joints], px[:, joints], atol=1e-3, err_msg=name)
    assert list(read_keypoints(tmp_path / "plain.npz")[0].frame_ids) == list(range(100, 108))
    assert read_keypoints(tmp_path / "vp3d.npz")[0].image_size == (1000.0, 1000.0)
    assert list(read_keypoints(tmp_path / "mmpose.json")[0].frame_ids) == list(range(1, 9))
    _, second = read_keypoints(tmp_path / "coco.json")
    assert second.track_id == 1 and list(second.frame_ids) == [3] and second.name == "coco.json track 1"


def test_missing_joints_are_interpolated_or_the_frame_skipped():
    kp = np.tile(np.arange(5, dtype=float)[:, None, None], (1, 17, 2))
    conf = np.ones((5, 17))
    conf[2, 3] = 0.0  # one joint missing: interpolated from frames 1 and 3
    conf[4, :6] = 0.0  # six missing: skipped
    kp[0, :] = np.nan  # no joints at all: skipped
    seq = clean(KeypointSequence(kp, conf, np.arange(5)), max_missing=4)
    assert list(seq.frame_ids) == [1, 2, 3]
    assert seq.keypoints[1, 3, 0] == pytest.approx(2.0)
    reasons = dict(seq.skipped)
    assert "no joints" in reasons[0] and "6 of 17" in reasons[4]


@pytest.mark.parametrize(
    "content, suffix, message",
    [
        (b"", ".npy", "empty"),
        (b"garbage", ".npy", "cannot read"),
        (b"{", ".json", "not valid JSON"),
        (b"[]", ".json", "found nothing"),
        (b'[{"image_id": 1, "keypoints": [1, 2, 3]}]', ".json", "51 numbers"),
        (b"x", ".txt", "unknown keypoint file type"),
    ],
)
def test_bad_files_are_named(tmp_path, content, suffix, message):
    path = tmp_path / f"in{suffix}"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_keypoints(path)


def test_wrong_layouts_are_named(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 25, 2)))
    with pytest.raises(InputError, match=r"\(F, 17, 2\) or \(F, 17, 3\)"):
        read_keypoints(tmp_path / "a.npy")
    np.save(tmp_path / "b.npy", np.zeros((0, 17, 2)))
    with pytest.raises(InputError, match="no frames"):
        read_keypoints(tmp_path / "b.npy")


def test_run_outputs_in_millimetres_with_frame_ids(artifacts, poses, tmp_path):
    px = poses.pixels()
    np.savez(tmp_path / "in.npz", keypoints=px, frame_ids=np.arange(10, 18))
    results = run_file(
        RunSettings(
            tmp_path / "in.npz",
            tmp_path / "out.npz",
            artifacts,
            image_size=(1000, 1000),
            hypotheses=8,
            keep_hypotheses=True,
        )
    )
    with np.load(tmp_path / "out.npz") as f:
        assert f["pose"].shape == (8, 17, 3) and f["spread"].shape == (8, 17) and f["hypotheses"].shape == (8, 8, 17, 3)
        assert list(f["frame_ids"]) == [str(i) for i in range(10, 18)]
        assert json.loads(str(f["meta"]))["units"] == "mm"
        np.testing.assert_array_equal(f["pose"][:, 0], 0)
    normalised = run_file(
        RunSettings(tmp_path / "in.npz", tmp_path / "out2.json", artifacts, (1000, 1000), hypotheses=8)
    )
    doc = json.loads((tmp_path / "out2.json").read_text())
    assert doc["frame"].startswith("camera") and len(doc["sequences"][0]["frames"]) == 8
    assert doc["sequences"][0]["frames"][0]["frame_id"] == 10
    np.testing.assert_allclose(np.array(doc["sequences"][0]["frames"][0]["pose"]), results[0].pose[0], atol=0.01)
    assert normalised[0].pose.shape == (8, 17, 3)


def test_aggregations_and_pictures(artifacts, poses, tmp_path):
    px = poses.pixels()
    np.save(tmp_path / "in.npy", px)
    cam = {"f": poses.intrinsics[0, :2].tolist(), "c": poses.intrinsics[0, 2:].tolist(), "width": 1000, "height": 1000}
    (tmp_path / "cam.json").write_text(json.dumps(cam))
    out = {}
    for how in ("mean", "median", "jpma"):
        [r] = run_file(
            RunSettings(
                tmp_path / "in.npy",
                tmp_path / f"{how}.npz",
                artifacts,
                camera=tmp_path / "cam.json",
                aggregate=how,
                hypotheses=16,
            )
        )
        out[how] = r.pose
    assert not np.allclose(out["mean"], out["median"]) and not np.allclose(out["mean"], out["jpma"])
    with pytest.raises(InputError, match="needs the camera"):
        run_file(RunSettings(tmp_path / "in.npy", tmp_path / "x.npz", artifacts, (1000, 1000), aggregate="jpma"))
    pytest.importorskip("matplotlib", reason="the pictures need matplotlib (posedeploy[plot])")
    run_file(
        RunSettings(
            tmp_path / "in.npy",
            tmp_path / "p.npz",
            artifacts,
            (1000, 1000),
            hypotheses=8,
            plot=tmp_path / "plots",
            gif=True,
        )
    )
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert len(pngs) == 8 and pngs[0].read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "plots" / "in.npy.gif").read_bytes()[:3] == b"GIF"


def test_jpma_picks_the_hypothesis_that_reprojects_best():
    rng = np.random.default_rng(0)
    truth = rng.normal(scale=0.3, size=(2, 17, 3))
    truth[:, 0] = 0
    intrinsics = np.array([[1000.0, 1000.0, 500.0, 500.0]] * 2)
    pixels = aggregate.project(truth + [0, 0, 5.0], intrinsics)
    left, right = truth + [0.1, 0.0, 0.0], truth - [0.1, 0.0, 0.0]  # shifted sideways, mean still the truth
    left[:, 0] = right[:, 0] = 0
    hyps = np.stack([left, truth, right], axis=1)
    np.testing.assert_allclose(aggregate.jpma(hyps, pixels, intrinsics)[:, 1:], truth[:, 1:], atol=1e-9)


def test_run_errors_are_one_line(artifacts, tmp_path):
    np.save(tmp_path / "px.npy", np.full((3, 17, 2), 500.0))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "posedeploy.cli",
            "run",
            "--artifacts",
            str(artifacts),
            "--input",
            str(tmp_path / "px.npy"),
            "--out",
            str(tmp_path / "o.npz"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and result.stderr.startswith("error: keypoints look like pixels")
    assert not (tmp_path / "o.npz").exists()
    (tmp_path / "cam.json").write_text('{"f": [0, 1], "c": [1, 1]}')
    with pytest.raises(InputError, match="focal lengths must be positive"):
        read_camera(tmp_path / "cam.json")


def test_doctor_reports_what_this_machine_can_do():
    result = subprocess.run([sys.executable, "-m", "posedeploy.cli", "doctor"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "[x] run on CPU (ONNX Runtime)" in result.stdout and "onnxruntime providers" in result.stdout


def test_doctor_survives_a_broken_onnxruntime(monkeypatch):
    from posedeploy import doctor

    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda m: "broken (ImportError)" if m == "onnxruntime" else real(m))
    report = doctor.diagnose()
    assert report.packages["onnxruntime"].startswith("broken") and report.onnxruntime_providers == []
    assert "onnxruntime" in doctor.format_diagnosis(report)


def test_doctor_survives_an_onnxruntime_whose_provider_query_fails(monkeypatch):
    onnxruntime = pytest.importorskip("onnxruntime")
    from posedeploy import doctor

    def broken():
        raise RuntimeError("provider bridge failed to load")

    monkeypatch.setattr(onnxruntime, "get_available_providers", broken)
    report = doctor.diagnose()
    assert report.packages["onnxruntime"].startswith("broken (RuntimeError") and report.onnxruntime_providers == []
    assert any("--force-reinstall" in advice for advice in report.advice)
    assert "broken" in doctor.format_diagnosis(report)


def test_non_finite_poses_are_an_error_not_nan_in_the_output(tmp_path):
    from posedeploy.errors import ArtifactError
    from posedeploy.keypoint_io import KeypointSequence
    from posedeploy.run import lift_sequences, prepare_sequences
    from posedeploy.runtime.lifter import LiftResult

    def broken_lifter(keypoints, **kwargs):
        pose = np.zeros((len(keypoints), 17, 3), np.float32)
        pose[1] = np.nan
        return LiftResult(
            pose, np.zeros((len(keypoints), 17), np.float32), None, np.ones((len(keypoints), 2, 17)), "mm"
        )

    seq = KeypointSequence(np.random.default_rng(0).uniform(-0.2, 0.2, (3, 17, 2)), None, np.array([10, 11, 12]), "s")
    with pytest.raises(ArtifactError, match="non-finite poses for 1 of 3 frames \\(first: frame 11\\)"):
        lift_sequences(broken_lifter, prepare_sequences([seq], None, None, "mean", 0.3, 4), None, "mean", False, 0)


def _person(x_offset: float, scale: float) -> np.ndarray:
    """A COCO-17 person in pixels: (17, 3) with confidence 0.9."""
    rng = np.random.default_rng(7)
    kp = np.concatenate([rng.uniform(0, 200, (17, 2)) * scale + [x_offset, 300], np.full((17, 1), 0.9)], axis=1)
    return kp


def _two_people_files(tmp_path: Path, frames: int = 6) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Two COCO people walking apart, listed in alternating order, in every format that holds several;
    the second leaves after frame 3. Returns their (F, 17, 3) keypoints and the file names."""
    a = np.stack([_person(100 + 10 * f, 1.0) for f in range(frames)])
    b = np.stack([_person(600 + 10 * f, 0.8) for f in range(frames)])
    present_b = [f < 4 for f in range(frames)]
    coco, mm_ids, mm = [], [], []
    for f in range(frames):
        people = [(0, a[f]), (1, b[f])] if f % 2 == 0 else [(1, b[f]), (0, a[f])]
        people = [(i, kp) for i, kp in people if i == 0 or present_b[f]]
        coco += [{"image_id": f, "keypoints": kp.ravel().tolist(), "score": 0.9} for _, kp in people]
        inst = [
            {"keypoints": kp[:, :2].tolist(), "keypoint_scores": kp[:, 2].tolist(), "track_id": 7 + i}
            for i, kp in people
        ]
        mm_ids.append({"frame_id": f, "instances": inst})
        mm.append({"frame_id": f, "instances": [{k: v for k, v in i.items() if k != "track_id"} for i in inst]})
    (tmp_path / "people.json").write_text(json.dumps(coco))
    (tmp_path / "tracked.json").write_text(json.dumps({"instance_info": mm_ids}))
    (tmp_path / "untracked.json").write_text(json.dumps({"instance_info": mm}))
    h36m = coco_to_h36m(np.stack([a, b], axis=1))  # (F, 2, 17, 3)
    h36m[~np.array(present_b), 1] = np.nan  # absent: a row of NaN
    np.save(tmp_path / "people.npy", h36m[:, ::-1])  # the array's slots say nothing about who is who
    ids = np.array([[3, 5 if present else -1] for present in present_b])
    np.savez(tmp_path / "people.npz", keypoints=h36m, track_ids=ids)
    return a, b, ["people.json", "tracked.json", "untracked.json", "people.npy", "people.npz"]


def test_every_person_becomes_a_track(tmp_path):
    a, b, names = _two_people_files(tmp_path)
    for name in names:
        first, second = sorted(read_keypoints(tmp_path / name), key=lambda s: -len(s.keypoints))  # a, then b
        np.testing.assert_allclose(first.keypoints, coco_to_h36m(a)[..., :2], err_msg=name)
        np.testing.assert_allclose(second.keypoints, coco_to_h36m(b[:4])[..., :2], err_msg=name)
        assert list(second.frame_index) == [0, 1, 2, 3] and list(first.frame_index) == list(range(6)), name
        expected = {"tracked.json": (7, 8), "people.npz": (3, 5)}.get(name)  # the file's ids, else the tracker's
        assert (first.track_id, second.track_id) == expected if expected else first.track_id != second.track_id
        assert second.name.endswith(f"track {second.track_id}")


def test_run_lifts_smooths_and_draws_every_track(artifacts, tmp_path):
    _two_people_files(tmp_path)
    settings = RunSettings(
        tmp_path / "people.json", tmp_path / "out.json", artifacts, (2000, 1000), hypotheses=4, fps=10
    )
    results = run_file(settings)
    doc = json.loads((tmp_path / "out.json").read_text())
    assert [s["track_id"] for s in doc["sequences"]] == [0, 1] and [len(s["frames"]) for s in doc["sequences"]] == [
        6,
        4,
    ]
    assert doc["smoothing"]["mode"] == "offline" and doc["smoothing"]["fps"] == 10
    for r in results:
        assert r.smoothed is not None and r.smoothed.shape == r.pose.shape
        moved = np.linalg.norm(r.smoothed - r.pose, axis=-1)
        assert 0 < moved.max() < 300  # smoothed, not replaced
    np.testing.assert_allclose(doc["sequences"][1]["frames"][2]["smoothed"], results[1].smoothed[2], atol=0.01)
    run_file(RunSettings(tmp_path / "people.json", tmp_path / "out.npz", artifacts, (2000, 1000), hypotheses=4))
    with np.load(tmp_path / "out.npz") as f:
        assert f["smoothed"].shape == (10, 17, 3) and list(f["sequence_track_ids"]) == [0, 1]
    raw = RunSettings(
        tmp_path / "people.json", tmp_path / "raw.json", artifacts, (2000, 1000), hypotheses=4, smooth="none"
    )
    run_file(raw)
    doc = json.loads((tmp_path / "raw.json").read_text())
    assert doc["smoothing"] is None and "smoothed" not in doc["sequences"][0]["frames"][0]
    for bad, message in (({"smooth": "magic"}, "unknown smoothing"), ({"fps": 0.0}, "fps must be")):
        with pytest.raises(InputError, match=message):
            run_file(RunSettings(tmp_path / "people.json", tmp_path / "bad.json", artifacts, (2000, 1000), **bad))
        assert not (tmp_path / "bad.json").exists()
    pytest.importorskip("matplotlib", reason="the pictures need matplotlib (posedeploy[plot])")
    pictures = RunSettings(
        tmp_path / "people.json",
        tmp_path / "p.json",
        artifacts,
        (2000, 1000),
        hypotheses=4,
        plot=tmp_path / "plots",
        gif=True,
    )
    run_file(pictures)
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert [p.name for p in pngs] == [f"people.json_{f:06d}.png" for f in range(6)]  # one per frame, both people in it
    assert (tmp_path / "plots" / "people.json.gif").read_bytes()[:3] == b"GIF"


@pytest.mark.parametrize(
    "ids, message",
    [([[1, 1]], "track id 1 for two people"), ([[0, -1]], "negative track id"), ([[0.5, 1.0]], "whole numbers")],
)
def test_bad_track_ids_are_named(tmp_path, ids, message):
    np.savez(tmp_path / "k.npz", keypoints=np.ones((1, 2, 17, 2)), track_ids=np.array(ids))
    with pytest.raises(InputError, match=message):
        read_keypoints(tmp_path / "k.npz")


def test_frames_out_of_order_are_refused(tmp_path):
    np.savez(tmp_path / "k.npz", keypoints=np.ones((3, 17, 2)), frame_ids=np.array([4, 6, 6]))
    with pytest.raises(InputError, match="frame ids must increase; frame 2 has id 6 after 6"):
        read_keypoints(tmp_path / "k.npz")
