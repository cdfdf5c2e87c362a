"""The PyTorch reference of the multi-hypothesis pipeline contract (see DESIGN.md).

    sigma      = clamp(AVG(x_v), min=1) * alpha          per view v in (original, mirrored)
    noisy      = x_v + noise[:, s, v] * sigma_v          S copies of each view
    lifted     = lifter(noisy)                           one batched call for all B * S * 2 poses
    hypotheses = root-zeroed mean of the view and the un-mirrored mirror view
    pose       = mean over the S hypotheses; spread = RMS distance of the hypotheses to it, per joint

:class:`PipelineModule` is that computation for one batch, written to export as one graph.
:func:`run_reference` drives it over any batch size: noise supplied (golden noise) or drawn from a
seeded ``numpy.random.Generator`` — the generator the torch-free runtime uses too, so both draw
the same noise for the same seed — and chunked so that S = 200 at a large batch fits in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from posedeploy.contract import check_hypotheses, check_keypoints, check_noise, check_request, draw_noise
from posedeploy.errors import InputError
from posedeploy.skeleton import FLIP_PERMUTATION, NUM_JOINTS, ROOT
from posedeploy.uncertainty import Calibration

DEFAULT_MAX_POSES = 16384  # lifter inputs per call on a GPU: bounds activation memory (HTNet: ~1 GB)
# On a CPU, calls of more than a few thousand lifts fall out of the caches: with MGCN-lw on the
# 2-core EPYC, S=200 evaluation ran at 100 ms per frame with 16384 and 40 ms with 2048.
CPU_MAX_POSES = 2048
# How sigma is set: adaptive = clamp(AVG, 1) * alpha per joint (PRPose); uniform = the mean of the
# adaptive sigma on every joint (same amount of noise, not placed by the AVG model); alpha = alpha
# on every joint (no AVG model).
NOISE_MODES = ("adaptive", "uniform", "alpha")


def default_max_poses(device: str | torch.device) -> int:
    """Lifter inputs per call: large on a GPU, cache-sized on a CPU."""
    return DEFAULT_MAX_POSES if torch.device(device).type == "cuda" else CPU_MAX_POSES


def rows_per_call(max_poses: int, hypotheses: int) -> int:
    """Poses per lifter call when each lifts 2 x ``hypotheses`` inputs: also how the noise is drawn,
    chunk by chunk, so whatever draws the same noise as :func:`run_reference` must chunk alike."""
    return max(1, max_poses // (2 * hypotheses))


class Mirror(nn.Module):
    """Left-right mirror of (..., 17, C) poses: swap left/right joints and negate x."""

    perm: torch.Tensor  # buffers (registered in __init__)
    sign: torch.Tensor

    def __init__(self, coords: int):
        super().__init__()
        self.register_buffer("perm", torch.tensor(FLIP_PERMUTATION.tolist()), persistent=False)
        sign = torch.ones(coords)
        sign[0] = -1
        self.register_buffer("sign", sign, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(-2, self.perm) * self.sign


class PipelineModule(nn.Module):
    """keypoints (B, 17, 2), noise (B, S, 2, 17, 2) -> sigma, hypotheses, pose, spread."""

    root_mask: torch.Tensor  # a buffer (registered in __init__)

    def __init__(self, lifter: nn.Module, avg: nn.Module | None, alpha: float, noise_mode: str = "adaptive"):
        super().__init__()
        if noise_mode not in NOISE_MODES:
            raise InputError(f"noise mode must be one of {', '.join(NOISE_MODES)}, got '{noise_mode}'")
        self.lifter, self.avg, self.alpha, self.noise_mode = lifter, avg, float(alpha), noise_mode
        self.mirror2d, self.mirror3d = Mirror(2), Mirror(3)
        root_mask = torch.ones(NUM_JOINTS, 1)
        root_mask[ROOT] = 0
        self.register_buffer("root_mask", root_mask, persistent=False)

    def views(self, keypoints: torch.Tensor) -> torch.Tensor:
        return torch.stack([keypoints, self.mirror2d(keypoints)], dim=1)  # (B, 2, 17, 2)

    def sigma(self, views: torch.Tensor) -> torch.Tensor:
        b = views.shape[0]
        if self.noise_mode == "alpha":
            return views.new_full((b, 2, NUM_JOINTS), self.alpha)
        if self.avg is None:
            raise InputError("sampling needs an AVG model; this pipeline has only a lifter")
        raw = self.avg(views.reshape(b * 2, NUM_JOINTS, 2)).reshape(b, 2, NUM_JOINTS)
        sigma = torch.clamp(raw, min=1.0) * self.alpha
        if self.noise_mode == "uniform":
            sigma = sigma.mean(dim=-1, keepdim=True).expand_as(sigma)
        return sigma

    def merge_views(self, lifted: torch.Tensor) -> torch.Tensor:
        """(..., 2, 17, 3) lifted views -> (..., 17, 3) flip-averaged, root-zeroed poses."""
        merged: torch.Tensor = (lifted[..., 0, :, :] + self.mirror3d(lifted[..., 1, :, :])) / 2
        return merged * self.root_mask

    def hypotheses(self, views: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        b, s = noise.shape[:2]
        noisy = views.unsqueeze(1) + noise * sigma.unsqueeze(1).unsqueeze(-1)  # (B, S, 2, 17, 2)
        lifted = self.lifter(noisy.reshape(b * s * 2, NUM_JOINTS, 2)).reshape(b, s, 2, NUM_JOINTS, 3)
        return self.merge_views(lifted)

    @staticmethod
    def aggregate(hypotheses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pose = hypotheses.mean(dim=1)
        spread = ((hypotheses - pose.unsqueeze(1)) ** 2).sum(dim=-1).mean(dim=1).sqrt()
        return pose, spread

    def forward(
        self, keypoints: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        views = self.views(keypoints)
        sigma = self.sigma(views)
        hypotheses = self.hypotheses(views, sigma, noise)
        pose, spread = self.aggregate(hypotheses)
        return sigma, hypotheses, pose, spread

    def lift_single(self, keypoints: torch.Tensor) -> torch.Tensor:
        """The lifter alone, with mirror test-time augmentation: (B, 17, 2) -> (B, 17, 3)."""
        views = self.views(keypoints)
        b = views.shape[0]
        lifted = self.lifter(views.reshape(b * 2, NUM_JOINTS, 2)).reshape(b, 2, NUM_JOINTS, 3)
        return self.merge_views(lifted)


class InGraphNoisePipeline(nn.Module):
    """The pipeline drawing its own standard normal noise: keypoints (B, 17, 2), slots (S,) -> the
    contract outputs. Exports as ConstantOfShape + RandomNormalLike, which ONNX Runtime and
    TensorRT evaluate on the device; their draws are not seedable, so it is judged by distribution."""

    def __init__(self, pipeline: PipelineModule):
        super().__init__()
        self.pipeline = pipeline

    def forward(
        self, keypoints: torch.Tensor, slots: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        noise = torch.randn(
            keypoints.shape[0], slots.shape[0], 2, NUM_JOINTS, 2, dtype=keypoints.dtype, device=keypoints.device
        )
        outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] = self.pipeline(keypoints, noise)
        return outputs


@dataclass
class SamplerResult:
    """The contract outputs as float32 numpy arrays (metres)."""

    sigma: np.ndarray  # (B, 2, 17)
    hypotheses: np.ndarray | None  # (B, S, 17, 3); None when not kept
    pose: np.ndarray  # (B, 17, 3)
    spread: np.ndarray  # (B, 17)

    def as_dict(self) -> dict[str, np.ndarray]:
        out = {"sigma": self.sigma, "pose": self.pose, "spread": self.spread}
        if self.hypotheses is not None:
            out["hypotheses"] = self.hypotheses
        return out

    def calibrated(self, calibration: Calibration | None, hypotheses: int | None = None) -> SamplerResult:
        """The same result with the calibrated spread (unchanged without a calibration); S: that of the
        kept hypotheses unless given."""
        if calibration is None:
            return self
        s = hypotheses or (self.hypotheses.shape[1] if self.hypotheses is not None else None)
        return replace(self, spread=calibration.spread(self.spread, s))

    def check_finite(self) -> None:
        """Refuse results with NaN or inf (extreme noise, a model that overflows) instead of passing them on."""
        arrays = [self.sigma, self.pose, self.spread] + ([] if self.hypotheses is None else [self.hypotheses])
        bad = np.zeros(len(self.pose), bool)
        for a in arrays:
            bad |= ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
        if bad.any():
            raise InputError(
                f"the pipeline gave non-finite values for {int(bad.sum())} of {len(bad)} poses "
                f"(first at index {int(np.argmax(bad))}); nothing was written"
            )


@torch.no_grad()
def run_reference(
    pipeline: PipelineModule,
    keypoints: np.ndarray,
    noise: np.ndarray | None = None,
    hypotheses: int | None = None,
    seed: int = 0,
    max_poses: int | None = None,
    keep_hypotheses: bool = True,
    on_hypotheses: Callable[[slice, np.ndarray], None] | None = None,
    progress: Callable[[int], None] | None = None,
    draws: str = "random",
) -> SamplerResult:
    """Run the pipeline over B keypoints in chunks of at most ``max_poses`` lifter inputs.

    Give either ``noise`` (B, S, 2, 17, 2) or ``hypotheses`` = S (noise drawn with ``seed``).
    ``max_poses`` None: :func:`default_max_poses` of the pipeline's device.
    ``on_hypotheses(rows, hyps)`` sees each chunk's hypotheses, so that callers can score them
    without keeping all of them (``keep_hypotheses=False``); ``progress(n)`` counts finished rows.
    ``draws``: random or antithetic noise (contract.draw_noise; a pose's S is never split here).
    """
    keypoints = check_keypoints(keypoints)
    b = len(keypoints)
    if noise is not None:
        noise = check_noise(noise, b)
        s = noise.shape[1]
    else:
        s = check_hypotheses(hypotheses)
        rng = np.random.default_rng(seed)
    check_request(b, s, keep_hypotheses)  # before anything is allocated
    device = next(pipeline.parameters()).device
    max_poses = default_max_poses(device) if max_poses is None else max_poses
    if max_poses < 2:
        raise InputError(f"max_poses must be >= 2, got {max_poses}")
    step = rows_per_call(max_poses, s)
    s_per_call = min(s, max(1, max_poses // 2))

    result = SamplerResult(
        np.empty((b, 2, NUM_JOINTS), np.float32),
        np.empty((b, s, NUM_JOINTS, 3), np.float32) if keep_hypotheses else None,
        np.empty((b, NUM_JOINTS, 3), np.float32),
        np.empty((b, NUM_JOINTS), np.float32),
    )
    for start in range(0, b, step):
        rows = slice(start, min(b, start + step))
        chunk_noise = noise[rows] if noise is not None else draw_noise(rng, rows.stop - rows.start, s, draws)
        hyps_np = _lift_chunk(pipeline, keypoints[rows], chunk_noise, s_per_call, result, rows)
        if on_hypotheses is not None:
            on_hypotheses(rows, hyps_np)
        if progress is not None:
            progress(rows.stop - rows.start)
    return result


def _lift_chunk(
    pipeline: PipelineModule, keypoints: np.ndarray, noise: np.ndarray, s_per_call: int, out: SamplerResult, rows: slice
) -> np.ndarray:
    """Lift one chunk of rows (S split into calls of ``s_per_call``), fill ``out[rows]``; its hypotheses."""
    device = next(pipeline.parameters()).device
    views = pipeline.views(torch.from_numpy(keypoints).to(device))
    sigma = pipeline.sigma(views)
    s = noise.shape[1]
    parts = [
        pipeline.hypotheses(views, sigma, torch.from_numpy(noise[:, i : i + s_per_call]).to(device))
        for i in range(0, s, s_per_call)
    ]
    hyps = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
    pose, spread = pipeline.aggregate(hyps)
    hyps_np = hyps.cpu().numpy()
    out.sigma[rows], out.pose[rows], out.spread[rows] = sigma.cpu().numpy(), pose.cpu().numpy(), spread.cpu().numpy()
    if out.hypotheses is not None:
        out.hypotheses[rows] = hyps_np
    return hyps_np


@torch.no_grad()
def run_single(pipeline: PipelineModule, keypoints: np.ndarray, max_poses: int | None = None) -> np.ndarray:
    """The lifter alone (S = 0), mirror-averaged: (B, 17, 2) -> (B, 17, 3) metres."""
    keypoints = check_keypoints(keypoints)
    device = next(pipeline.parameters()).device
    max_poses = default_max_poses(device) if max_poses is None else max_poses
    rows = max(1, max_poses // 2)
    out = [
        pipeline.lift_single(torch.from_numpy(keypoints[i : i + rows]).to(device)).cpu().numpy()
        for i in range(0, len(keypoints), rows)
    ]
    return np.concatenate(out)
