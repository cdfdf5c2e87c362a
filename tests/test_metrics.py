import numpy as np
import pytest

from posedeploy import metrics
from posedeploy.errors import InputError


def _random_rotation(rng):
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_mpjpe_known_value():
    target = np.zeros((2, 17, 3))
    pred = target.copy()
    pred[0, :, 0] = 0.01
    pred[1, 3] = [0.0, 0.17, 0.0]
    np.testing.assert_allclose(metrics.mpjpe(pred, target), [0.01, 0.01])


def test_p_mpjpe_removes_similarity_transforms_only():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(50, 17, 3))
    moved = np.stack([1.3 * t @ _random_rotation(rng).T + rng.normal(size=3) for t in target])
    np.testing.assert_allclose(metrics.p_mpjpe(moved, target), 0, atol=1e-9)
    mirrored = target * [-1, 1, 1]  # a reflection is not a rotation: it must not be aligned away
    assert (metrics.p_mpjpe(mirrored, target) > 0.1).all()
    noisy = target + rng.normal(scale=0.05, size=target.shape)
    assert (metrics.p_mpjpe(noisy, target) <= metrics.mpjpe(noisy, target) + 1e-12).all()


def test_best_of_is_pose_level():
    target = np.zeros((1, 17, 3))
    hyps = np.zeros((1, 2, 17, 3))
    hyps[0, 0, :8] = 0.1  # hypothesis 0: joints 0-7 off
    hyps[0, 1, 8:] = 0.1  # hypothesis 1: joints 8-16 off
    per_hyp = metrics.mpjpe(hyps, target[:, None])[0]
    np.testing.assert_allclose(metrics.best_of_mpjpe(hyps, target), per_hyp.min())
    assert metrics.best_of_mpjpe(hyps, target)[0] > 0  # a per-joint oracle would score 0
    assert metrics.best_of_p_mpjpe(hyps, target)[0] <= metrics.p_mpjpe(hyps[0], target[0][None]).min() + 1e-12


def test_pck_and_auc():
    target = np.zeros((1, 17, 3))
    pred = np.zeros((1, 17, 3))
    pred[0, :10, 0] = 0.1  # 100 mm
    pred[0, 10:, 0] = 0.2  # 200 mm
    assert metrics.pck(pred, target)[0] == pytest.approx(10 / 17)
    assert metrics.auc(target, target)[0] == pytest.approx(30 / 31)  # threshold 0 counts no joint
    assert 0 < metrics.auc(pred, target)[0] < metrics.pck(pred, target)[0]
    hyps = np.stack([pred, target], axis=1)
    assert metrics.best_of_pck(hyps, target)[0] == 1.0


def test_mean_by_action_counts_samples_not_batches():
    values = np.array([1.0, 1.0, 1.0, 10.0])
    actions = np.array(["a", "a", "a", "b"])
    per_action, mean = metrics.mean_by_action(values, actions)
    assert per_action == {"a": 1.0, "b": 10.0}
    assert mean == 5.5  # each action weighs the same; each sample counts once in its action
    with pytest.raises(InputError):
        metrics.mean_by_action(values, actions[:3])


def test_shape_errors():
    with pytest.raises(InputError):
        metrics.mpjpe(np.zeros((2, 16, 3)), np.zeros((2, 16, 3)))
    with pytest.raises(InputError):
        metrics.mpjpe(np.zeros((2, 17, 3)), np.zeros((3, 17, 3)))
    with pytest.raises(InputError):
        metrics.best_of_mpjpe(np.zeros((2, 17, 3)), np.zeros((2, 17, 3)))
