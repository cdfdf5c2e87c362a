"""pipeline.int8.onnx: the lifter's matrix products quantised to INT8 after training (ONNX Runtime
static quantisation, QDQ format), calibrated on training-split poses with noise as at run time.

What is quantised, and why only that: the lifter's MatMul/Gemm nodes carry nearly all the FLOPs;
its first and last layers, the AVG model (which sets sigma), the noise arithmetic and the
aggregation stay in float32. On the shipped MGCN-lw, quantising the first and last layers as well
added about 5 mm to the mean hypothesis error on Human3.6M. Weights are quantised per output
channel; activation ranges come from a percentile of the calibration histogram rather than its
extremes, which on the same data lowered the mean hypothesis error from 22 to 18 mm.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from posedeploy.contract import draw_noise
from posedeploy.errors import InputError

logger = logging.getLogger(__name__)

CALIBRATION_POSES = 512
CALIBRATION_DRAWS = 8  # noisy copies of each calibration pose, as the sampler makes them
CALIBRATION_BATCH = 32
# The percentile calibrator keeps every calibrated tensor of every batch until it builds its
# histograms (HTNet's 512 x 8 draws once took more than 20 GiB). The poses are thinned so that what
# it keeps, measured on the graph itself, stays within this; with PyTorch, the graphs and the
# histogram pass on top, ``export --int8`` then peaks below 2 GiB (tests/test_int8.py).
CALIBRATION_MEMORY = 1 << 30
QUANTISED_OPS = ("MatMul", "Gemm")
METHOD = "ONNX Runtime static QDQ, per-channel weights, percentile activations"
# The first and last layer of each lifter (MGCN-lw; HTNet's patch embedding and output head).
KEEP_FLOAT = ("/lifter/gcn/input/", "/lifter/gcn/output/", "/lifter/patch_embed/", "/lifter/fcn/")


def quantised_nodes(model: onnx.ModelProto) -> list[str]:
    """The lifter's matrix products, without its first and last layers."""
    return [
        n.name
        for n in model.graph.node
        if n.op_type in QUANTISED_OPS and n.name.startswith("/lifter/") and not n.name.startswith(KEEP_FLOAT)
    ]


class _Calibration:
    """ONNX Runtime's CalibrationDataReader: batches of (keypoints, noise) feeds."""

    def __init__(self, keypoints: np.ndarray, seed: int):
        rng = np.random.default_rng(seed)
        self._feeds = iter(
            {
                "keypoints": keypoints[i : i + CALIBRATION_BATCH],
                "noise": draw_noise(rng, len(keypoints[i : i + CALIBRATION_BATCH]), CALIBRATION_DRAWS),
            }
            for i in range(0, len(keypoints), CALIBRATION_BATCH)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def calibration_poses(available: int, bytes_per_draw: int) -> int:
    """How many calibration poses (each drawn CALIBRATION_DRAWS times) the calibrator can keep, when it
    keeps ``bytes_per_draw`` of tensors for each draw of a pose and its mirror image."""
    affordable = CALIBRATION_MEMORY // max(1, bytes_per_draw * CALIBRATION_DRAWS)
    # whole batches only: the percentile calibrator stacks the batches' activations into one array
    return int(min(available, max(CALIBRATION_BATCH, affordable)) // CALIBRATION_BATCH * CALIBRATION_BATCH)


def calibrated_bytes_per_draw(pipeline: onnx.ModelProto) -> int:
    """Bytes of the tensors the calibrator keeps for one noise draw of a pose, measured by running the
    graph with them as outputs: the inputs and outputs of every float MatMul/Gemm, as ONNX Runtime's
    calibrator selects them for these operator types."""
    import onnxruntime as ort

    inferred = onnx.shape_inference.infer_shapes(pipeline)
    typed = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input)}
    weights = {w.name for w in pipeline.graph.initializer}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    names = list(
        dict.fromkeys(
            t
            for node in pipeline.graph.node
            if node.op_type in QUANTISED_OPS
            for t in (*node.input, *node.output)
            if t in typed and t not in weights and typed[t].type.tensor_type.elem_type in floats
        )
    )
    probe = onnx.ModelProto()
    probe.CopyFrom(pipeline)
    outputs = {o.name for o in probe.graph.output}
    probe.graph.output.extend(typed[t] for t in names if t not in outputs)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    poses, draws = 2, CALIBRATION_DRAWS
    feed = {
        "keypoints": rng.normal(scale=0.3, size=(poses, 17, 2)).astype(np.float32),
        "noise": draw_noise(rng, poses, draws),
    }
    kept: int = sum(a.nbytes for a in session.run(names, feed))
    return -(-kept // (poses * draws))


def quantise_pipeline(
    pipeline: onnx.ModelProto, calibration_keypoints: np.ndarray, seed: int = 0
) -> tuple[onnx.ModelProto, int]:
    """The INT8 pipeline of the float32 ``pipeline``, calibrated on (N, 17, 2) normalised keypoints
    (evenly thinned to what the calibrator can hold); and how many poses it was calibrated on."""
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    except ImportError:
        from posedeploy.errors import MissingDependencyError

        raise MissingDependencyError("onnxruntime", "cpu", "INT8 quantisation") from None
    keypoints = np.asarray(calibration_keypoints, np.float32)
    if keypoints.ndim != 3 or keypoints.shape[1:] != (17, 2) or len(keypoints) < CALIBRATION_BATCH:
        raise InputError(
            f"INT8 calibration needs at least {CALIBRATION_BATCH} poses of shape (17, 2), got {keypoints.shape}"
        )
    keep = calibration_poses(len(keypoints), calibrated_bytes_per_draw(pipeline))
    keypoints = keypoints[np.linspace(0, len(keypoints) - 1, keep).round().astype(int)]
    nodes = quantised_nodes(pipeline)
    if not nodes:
        raise InputError("the pipeline has no lifter matrix products to quantise")
    logger.info(
        f"export: INT8: calibrating {len(nodes)} lifter matrix products on {len(keypoints)} poses x "
        f"{CALIBRATION_DRAWS} noise draws"
    )
    with tempfile.TemporaryDirectory(prefix="posedeploy-int8-") as tmp:
        src, dst = Path(tmp) / "pipeline.onnx", Path(tmp) / "pipeline.int8.onnx"
        onnx.save(pipeline, src)
        with contextlib.redirect_stdout(sys.stderr), _as_export_error():  # its calibrator prints to stdout
            quantize_static(
                str(src),
                str(dst),
                _Calibration(keypoints, seed),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                nodes_to_quantize=nodes,
                op_types_to_quantize=list(QUANTISED_OPS),
                calibrate_method=CalibrationMethod.Percentile,
            )
        return onnx.load(dst), keep


@contextlib.contextmanager
def _as_export_error() -> Iterator[None]:
    """ONNX Runtime's quantiser fails with bare numpy and onnx errors: say what failed, in one line."""
    from posedeploy.errors import ArtifactError

    try:
        yield
    except MemoryError:
        raise ArtifactError("INT8 calibration ran out of memory; lower CALIBRATION_MEMORY") from None
    except Exception as exc:  # noqa: BLE001
        text = str(exc).strip().splitlines()
        raise ArtifactError(
            f"INT8 quantisation failed: {type(exc).__name__}: {text[0][:200] if text else ''}"
        ) from None
