"""posedeploy checkpoints: the weights of a lifter (and of its AVG model) with the configuration
that every later stage needs — model names and hyper-parameters, joints, input normalisation,
alpha — so that predict, eval and export take nothing but the file.

A checkpoint is a ``torch.save`` of plain dicts, lists, numbers, strings and tensors, loaded with
``weights_only=True``: a file that needs arbitrary pickled objects is refused. It carries a SHA-256
of its content (configuration, metadata, every tensor's name, dtype, shape and bytes), checked on
load, because ``torch.load`` ignores the zip checksums: without it a flipped byte in a weight loads
silently as a different model. Format version 1 files (before the hash) still load, unchecked.
Weights are stored in f32, or in int8 with per-row scales (:mod:`weight_storage`, format version 3,
which older readers refuse instead of loading the integers as weights); either loads as f32.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import pickle
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from posedeploy import __version__
from posedeploy.errors import CheckpointError, PoseDeployError
from posedeploy.files import atomic_path
from posedeploy.skeleton import JOINT_NAMES
from posedeploy.training.models import DEFAULT_AVG, build_model, default_params
from posedeploy.training.weight_storage import STORAGES, pack_state, unpack_state
from posedeploy.uncertainty import Calibration

logger = logging.getLogger(__name__)

FORMAT = "posedeploy.checkpoint"
FORMAT_VERSION = 3  # 2: content_sha256; 3: int8 weight storage
F32_FORMAT_VERSION = 2  # f32 files need nothing newer, so readers of version 2 still load them
NORMALISATION = "screen: x / w * 2 - [1, h / w]"
# The noise scale PRPose uses on Human3.6M (normalised screen units per unit of AVG output).
DEFAULT_ALPHA = 0.005


@dataclass
class PipelineConfig:
    lifter: str
    lifter_params: dict[str, Any] = field(default_factory=dict)
    avg: str | None = None
    avg_params: dict[str, Any] = field(default_factory=dict)
    alpha: float = DEFAULT_ALPHA
    joints: list[str] = field(default_factory=lambda: list(JOINT_NAMES))
    normalisation: str = NORMALISATION
    units: str = "m"
    keypoints: str = "unknown"  # what 2D the lifter was trained on: h36m/gt, h36m/sh, synthetic, ...
    training: dict[str, Any] = field(default_factory=dict)
    # The spread's calibration (posedeploy.uncertainty.Calibration as JSON), fitted by `posedeploy calibrate`.
    uncertainty: dict[str, Any] | None = None

    @classmethod
    def for_lifter(cls, lifter: str, **kwargs: Any) -> PipelineConfig:
        return cls(lifter=lifter, lifter_params=default_params("lifter", lifter), **kwargs)

    def with_avg(self, avg: str | None = None, alpha: float | None = None) -> PipelineConfig:
        name = avg or DEFAULT_AVG[self.lifter]
        return PipelineConfig(
            **{
                **asdict(self),
                "avg": name,
                "avg_params": default_params("avg", name),
                "alpha": self.alpha if alpha is None else alpha,
            }
        )


@dataclass
class Checkpoint:
    config: PipelineConfig
    lifter_state: dict[str, torch.Tensor]
    avg_state: dict[str, torch.Tensor] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    weights: str = "f32"  # how save_checkpoint stores the weights: f32 or int8 (loaded as f32 either way)

    @property
    def has_avg(self) -> bool:
        return self.avg_state is not None

    def build_lifter(self, device: str | torch.device = "cpu") -> nn.Module:
        model = build_model("lifter", self.config.lifter, self.config.lifter_params)
        _load_state(model, self.lifter_state, f"lifter '{self.config.lifter}'")
        return model.to(device).eval()

    def build_avg(self, device: str | torch.device = "cpu") -> nn.Module:
        if self.avg_state is None or self.config.avg is None:
            raise CheckpointError(
                "this checkpoint holds only a lifter; train its AVG model first (posedeploy train avg)"
            )
        model = build_model("avg", self.config.avg, self.config.avg_params)
        _load_state(model, self.avg_state, f"AVG model '{self.config.avg}'")
        return model.to(device).eval()

    def calibration(self) -> Calibration | None:
        """The spread's calibration, or None when the checkpoint has none (checked on load)."""
        return None if self.config.uncertainty is None else Calibration.from_json(self.config.uncertainty)

    def lifter_fingerprint(self) -> str:
        return state_fingerprint(self.lifter_state)


def _load_state(model: nn.Module, state: Mapping[str, object], what: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        detail = (f"missing {missing[:3]}" if missing else "") + (f" unexpected {unexpected[:3]}" if unexpected else "")
        raise CheckpointError(f"weights do not fit the {what}: {detail.strip()}")
    for key, tensor in expected.items():
        given = state[key]
        if not isinstance(given, torch.Tensor):
            raise CheckpointError(f"weights do not fit the {what}: {key} is a {type(given).__name__}, not a tensor")
        if tuple(given.shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"weights do not fit the {what}: {key} has shape {tuple(given.shape)}, expected {tuple(tensor.shape)}"
            )
        # Integers (or booleans) where real-valued weights belong are not weights: loading would cast them silently.
        if given.is_floating_point() != tensor.is_floating_point() or given.is_complex():
            raise CheckpointError(
                f"weights do not fit the {what}: {key} holds {str(given.dtype).removeprefix('torch.')}, "
                f"expected {str(tensor.dtype).removeprefix('torch.')}"
            )
    model.load_state_dict(state)


def state_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """A content hash of a state dict (names, shapes and values), independent of file layout."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def check_finite(checkpoint: Checkpoint, where: str) -> None:
    """Refuse weights or an alpha that are not finite numbers (NaN weights would lift every pose to NaN)."""
    alpha = checkpoint.config.alpha
    if checkpoint.config.avg is not None and not (
        isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0
    ):
        raise CheckpointError(f"{where}: alpha must be a finite number > 0, got {alpha}")
    for part, state in (("lifter", checkpoint.lifter_state), ("AVG model", checkpoint.avg_state or {})):
        for name, tensor in state.items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                bad = int((~torch.isfinite(tensor)).sum())
                raise CheckpointError(f"{where}: the {part} has {bad} non-finite value(s) in '{name}'")


def content_hash(payload: dict[str, Any]) -> str:
    """SHA-256 of what a checkpoint payload holds, independent of torch's file layout."""
    digest = hashlib.sha256()
    digest.update(json.dumps({k: payload.get(k) for k in ("config", "meta")}, sort_keys=True, default=repr).encode())
    for part in ("lifter", "avg"):
        state = payload.get(part) or {}
        digest.update(f"{part}:{len(state)}".encode())
        for key in sorted(state):
            tensor = state[key].detach().cpu().contiguous()
            digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
            digest.update(tensor.numpy().tobytes())
    if payload.get("scales") is not None:  # int8 storage; absent from (and so not changing) the hash of f32 files
        digest.update(f"weights:{payload.get('weights')}".encode())
        for part in ("lifter", "avg"):
            scales = payload["scales"].get(part) or {}
            digest.update(f"scales/{part}:{len(scales)}".encode())
            for key in sorted(scales):
                digest.update(key.encode())
                digest.update(scales[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Check the weights are finite, then write atomically; returns the path."""
    path = Path(path)
    check_finite(checkpoint, f"not writing {path}")
    if checkpoint.weights not in STORAGES:
        raise CheckpointError(
            f"not writing {path}: weight storage must be one of {STORAGES}, got {checkpoint.weights!r}"
        )
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": F32_FORMAT_VERSION,
        "posedeploy_version": __version__,
        "config": asdict(checkpoint.config),
        "lifter": {k: v.detach().cpu() for k, v in checkpoint.lifter_state.items()},
        "avg": None if checkpoint.avg_state is None else {k: v.detach().cpu() for k, v in checkpoint.avg_state.items()},
        "meta": checkpoint.meta,
    }
    if checkpoint.weights == "int8":
        scales: dict[str, dict[str, torch.Tensor]] = {}
        payload["lifter"], scales["lifter"] = pack_state(payload["lifter"])
        if payload["avg"] is not None:
            payload["avg"], scales["avg"] = pack_state(payload["avg"])
        payload.update(format_version=FORMAT_VERSION, weights="int8", scales=scales)
    payload["content_sha256"] = content_hash(payload)
    return save_torch(payload, path)


def save_torch(payload: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` atomically; a failed write (a full disk, a file-size limit) is a one-line WriteError.

    Saved through a file object: given a path, torch names the archive's inner folder after the
    (random) temporary file, so the same weights would hash differently on every save."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        try:
            torch.save(payload, f)
        except RuntimeError as exc:  # torch's zip writer reports a failed write as "unexpected pos ..."
            raise OSError(f"the write failed, is the disk full? ({str(exc).strip()[:120]})") from None
    return path


def safe_torch_load(path: str | Path, what: str = "checkpoint") -> Any:  # what the file held: to be checked
    """``torch.load`` restricted to plain weights (``weights_only=True``), failures as CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe content"
        raise CheckpointError(
            f"refusing to load {path}: it is not a plain-weights file and would need arbitrary code to "
            f"unpickle ({first})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch's unpickler fails on damaged bytes with any error type
        raise CheckpointError(
            f"cannot read {what} {path}: corrupted or not a torch file ({type(exc).__name__}: {exc})"
        ) from None


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a posedeploy checkpoint; every failure is a one-line CheckpointError."""
    path = Path(path)
    payload = safe_torch_load(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = ""
        if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            hint = "; it looks like a bare state dict — convert official weights with posedeploy import-checkpoint"
        raise CheckpointError(f"{path} is not a posedeploy checkpoint{hint}")
    version = payload.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}; this posedeploy reads up to {FORMAT_VERSION} "
            f"(upgrade posedeploy)"
        )
    if version < 2:
        later = [key for key in ("content_sha256", "weights", "scales") if key in payload]
        if later:  # a format 2 or 3 file relabelled, to dodge the hash check
            raise CheckpointError(
                f"{path} says checkpoint format version {version} but holds "
                f"{', '.join(later)}, which that format never had: it was altered; use an intact copy"
            )
        logger.warning(
            f"{path} is a format {version} checkpoint, written before checkpoints carried a content hash: "
            "damage or tampering cannot be detected in it. Re-save it "
            "(posedeploy.training.checkpoint.save_checkpoint) to add one"
        )
    else:
        recorded = payload.get("content_sha256")
        try:
            actual = content_hash(payload)
        except (AttributeError, TypeError, RuntimeError) as exc:  # a "tensor" that is not one
            raise CheckpointError(f"{path} is a damaged posedeploy checkpoint: {exc}") from None
        if recorded != actual:
            raise CheckpointError(
                f"{path} is damaged or was altered: its content does not match the SHA-256 it carries "
                f"({str(recorded)[:12]}... recorded, {actual[:12]}... now); use an intact copy"
            )
    weights = payload.get("weights", "f32")
    try:
        config = PipelineConfig(**payload["config"])
        lifter_state = dict(payload["lifter"])
        avg_state = None if payload.get("avg") is None else dict(payload["avg"])
        if weights == "int8":
            scales = payload["scales"]
            lifter_state = unpack_state(lifter_state, scales["lifter"])
            avg_state = None if avg_state is None else unpack_state(avg_state, scales["avg"])
        elif weights != "f32":
            raise ValueError(f"unknown weight storage {weights!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} is an incomplete posedeploy checkpoint: {exc}") from None
    if list(config.joints) != list(JOINT_NAMES):
        raise CheckpointError(f"{path} was trained on another joint layout ({len(config.joints)} joints)")
    checkpoint = Checkpoint(config, lifter_state, avg_state, dict(payload.get("meta") or {}), weights)
    check_finite(checkpoint, str(path))
    try:
        checkpoint.calibration()
    except PoseDeployError as exc:
        raise CheckpointError(f"{path} carries a damaged uncertainty calibration: {exc}") from None
    return checkpoint
