"""The PyTorch reference sampler against a direct transcription of PRPose's test-time procedure."""

import numpy as np
import pytest
import torch

from posedeploy.contract import draw_noise
from posedeploy.errors import InputError
from posedeploy.reference.sampler import PipelineModule, run_reference, run_single
from posedeploy.skeleton import JOINTS_LEFT, JOINTS_RIGHT
from posedeploy.training.models import build_model

ALPHA = 0.02


@pytest.fixture(scope="module")
def pipeline():
    torch.manual_seed(0)
    lifter, avg = build_model("lifter", "mgcn_lw").eval(), build_model("avg", "mlp").eval()
    with torch.no_grad():  # make the AVG output vary around 1 so the clamp matters
        avg.w2.bias.fill_(1.0)
    return PipelineModule(lifter, avg, ALPHA)


def prpose_procedure(pipeline, keypoints, noise):
    """PRPose main.py test(): views via the dataset's mirror, sigma from the AVG per view, noisy
    copies, one lifter call, un-mirror the second view, average, zero the root."""
    x = torch.from_numpy(keypoints)
    mirrored = x.clone()
    mirrored[..., 0] *= -1
    mirrored[:, JOINTS_LEFT + JOINTS_RIGHT] = mirrored[:, JOINTS_RIGHT + JOINTS_LEFT]
    views = torch.stack([x, mirrored], 1)  # (B, 2, 17, 2)
    b, s = noise.shape[:2]
    sigma = torch.clamp(pipeline.avg(views.reshape(-1, 17, 2)).reshape(b, 2, 17), min=1) * ALPHA
    noisy = views[:, None] + torch.from_numpy(noise) * sigma[:, None, :, :, None]
    out = pipeline.lifter(noisy.reshape(-1, 17, 2)).reshape(b, s, 2, 17, 3)
    flip = out[:, :, 1].clone()
    flip[..., 0] *= -1
    flip[:, :, JOINTS_LEFT + JOINTS_RIGHT] = flip[:, :, JOINTS_RIGHT + JOINTS_LEFT]
    hyps = (out[:, :, 0] + flip) / 2
    hyps[:, :, 0] = 0
    return sigma.numpy(), hyps.numpy()


@pytest.mark.parametrize("b, s", [(1, 1), (7, 200), (3, 5)])
def test_matches_the_prpose_procedure(pipeline, b, s):
    rng = np.random.default_rng(b * 100 + s)
    kp = rng.normal(scale=0.3, size=(b, 17, 2)).astype(np.float32)
    noise = draw_noise(rng, b, s)
    result = run_reference(pipeline, kp, noise=noise)
    with torch.no_grad():
        sigma, hyps = prpose_procedure(pipeline, kp, noise)
    np.testing.assert_allclose(result.sigma, sigma, rtol=1e-6)
    np.testing.assert_allclose(result.hypotheses, hyps, atol=1e-6)
    np.testing.assert_allclose(result.pose, hyps.mean(1), atol=1e-6)
    spread = np.sqrt(((hyps - hyps.mean(1, keepdims=True)) ** 2).sum(-1).mean(1))
    np.testing.assert_allclose(result.spread, spread, atol=1e-6)
    assert result.hypotheses.shape == (b, s, 17, 3) and result.sigma.shape == (b, 2, 17)
    assert (result.sigma >= ALPHA - 1e-9).all()
    np.testing.assert_array_equal(result.hypotheses[:, :, 0], 0)


def test_chunking_does_not_change_results(pipeline):
    kp = np.random.default_rng(1).normal(scale=0.3, size=(9, 17, 2)).astype(np.float32)
    whole = run_reference(pipeline, kp, hypotheses=30, seed=4, max_poses=100_000)
    rows = run_reference(pipeline, kp, hypotheses=30, seed=4, max_poses=130)  # 2 rows per call
    hyps = run_reference(pipeline, kp, hypotheses=30, seed=4, max_poses=16)  # S split inside a sample
    for other in (rows, hyps):
        np.testing.assert_allclose(other.hypotheses, whole.hypotheses, atol=1e-6)
        np.testing.assert_allclose(other.spread, whole.spread, atol=1e-6)


def test_seeded_noise_is_reproducible_and_equals_given_noise(pipeline):
    kp = np.random.default_rng(2).normal(scale=0.3, size=(4, 17, 2)).astype(np.float32)
    a = run_reference(pipeline, kp, hypotheses=8, seed=11)
    b = run_reference(pipeline, kp, noise=draw_noise(np.random.default_rng(11), 4, 8))
    np.testing.assert_array_equal(a.hypotheses, b.hypotheses)
    c = run_reference(pipeline, kp, hypotheses=8, seed=12)
    assert not np.allclose(a.hypotheses, c.hypotheses)


def test_single_hypothesis_without_noise_is_the_mirror_averaged_lifter(pipeline):
    kp = np.random.default_rng(3).normal(scale=0.3, size=(5, 17, 2)).astype(np.float32)
    zero = run_reference(pipeline, kp, noise=np.zeros((5, 1, 2, 17, 2), np.float32))
    np.testing.assert_allclose(zero.pose, run_single(pipeline, kp), atol=1e-6)
    np.testing.assert_array_equal(zero.spread, 0)


def test_uniform_and_alpha_noise_baselines(pipeline):
    kp = np.random.default_rng(4).normal(scale=0.3, size=(3, 17, 2)).astype(np.float32)
    adaptive = run_reference(pipeline, kp, hypotheses=2, seed=0).sigma
    uniform = PipelineModule(pipeline.lifter, pipeline.avg, ALPHA, noise_mode="uniform")
    constant = run_reference(uniform, kp, hypotheses=2, seed=0).sigma
    np.testing.assert_allclose(constant, np.broadcast_to(adaptive.mean(-1, keepdims=True), adaptive.shape), rtol=1e-6)
    plain = PipelineModule(pipeline.lifter, None, ALPHA, noise_mode="alpha")  # needs no AVG model
    np.testing.assert_array_equal(run_reference(plain, kp, hypotheses=2, seed=0).sigma, np.float32(ALPHA))
    with pytest.raises(InputError, match="noise mode"):
        PipelineModule(pipeline.lifter, pipeline.avg, ALPHA, noise_mode="fixed")


@pytest.mark.parametrize(
    "keypoints, kwargs, message",
    [
        (np.zeros((2, 16, 2)), {"hypotheses": 3}, r"\(\.\.\., 17, 2\)"),
        (np.zeros((17, 2)), {"hypotheses": 3}, r"\(B, 17, 2\)"),
        (np.zeros((0, 17, 2)), {"hypotheses": 3}, "empty"),
        (np.full((2, 17, 2), np.nan), {"hypotheses": 3}, "NaN or inf in 2 pose"),
        (np.zeros((2, 17, 2)), {"hypotheses": 0}, "hypotheses must be a whole number >= 1"),
        (np.zeros((2, 17, 2)), {"noise": np.zeros((3, 4, 2, 17, 2))}, r"noise must have shape \(2, S, 2, 17, 2\)"),
        (np.zeros((2, 17, 2)), {"noise": np.zeros((2, 4, 2, 17, 2)) + np.inf}, "noise contains NaN"),
    ],
)
def test_bad_input_is_named(pipeline, keypoints, kwargs, message):
    with pytest.raises(InputError, match=message):
        run_reference(pipeline, keypoints, **kwargs)
