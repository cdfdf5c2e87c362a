"""The posedeploy command line: options -> a settings object -> the library function -> what it printed.

Each command here parses its options into the frozen settings object of a library function
(posedeploy.training.runs, posedeploy.reference.commands, posedeploy.export.command, ...), calls it,
and prints its result; the rules live in those functions. Options that several commands share are
declared once, below. Every user-facing problem is a PoseDeployError, printed as one line on stderr
with exit code 1; a usage error (unknown option, a value of the wrong type) is one line too, with
exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, overload

import typer

from posedeploy.errors import InputError, PoseDeployError
from posedeploy.extras import EXTRA_OF, require, require_runtime

if TYPE_CHECKING:
    from posedeploy.reference.reports import EvalComparison, EvalReport

app = typer.Typer(
    help="Multi-hypothesis 3D human pose lifting with adaptive noise sampling (PRPose): "
    "train, evaluate, export and deploy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
train_app = typer.Typer(help="Train a lifter, or the AVG model of a trained lifter.", no_args_is_help=True)
app.add_typer(train_app, name="train")

# Options shared by several commands: declared once.
Checkpoint = Annotated[
    Path | None, typer.Option(help="Checkpoint file, or a shipped one by name: mgcn_lw (default) or htnet.")
]
Data = Annotated[str | None, typer.Option(help="Human3.6M folder (VideoPose3D format) or 'synthetic'.")]
Keypoints = Annotated[str | None, typer.Option(help="2D input: gt or sh (Human3.6M); gt or noisy (synthetic).")]
Device = Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (default: cuda if available).")]
Artifacts = Annotated[Path, typer.Option(help="Artifact directory written by posedeploy export.")]
JsonOut = Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON.")]
MaxPoses = Annotated[
    int | None, typer.Option(help="Lifter inputs per batched call (default: 2048 on a CPU, 16384 on a GPU).")
]
Stride = Annotated[int | None, typer.Option(help="Use every STRIDE-th training frame.")]
ValStride = Annotated[int | None, typer.Option(help="Validate on every VAL_STRIDE-th validation frame.")]
Resume = Annotated[bool | None, typer.Option(help="Continue the run in OUT from its last.pt.")]
ImageSize = Annotated[tuple[float, float] | None, typer.Option(help="Image width and height, for pixel input.")]
Recipe = Annotated[
    Path | None, typer.Option(help="A recipe file (recipes/*.toml) of settings; options given here override it.")
]


def _given(**options: Any) -> dict[str, Any]:
    """The options given on the command line (None: not given, the recipe's or the default)."""
    return {name: value for name, value in options.items() if value is not None}


T = TypeVar("T")


@overload
def _comma_list(text: str, name: str) -> tuple[str, ...]: ...
@overload
def _comma_list(text: str, name: str, kind: Callable[[str], T]) -> tuple[T, ...]: ...
def _comma_list(text: str, name: str, kind: Callable[[str], object] = str) -> tuple[object, ...]:
    try:
        return tuple(kind(v.strip()) for v in text.split(",") if v.strip())
    except ValueError:
        what = "whole numbers" if kind is int else "numbers"
        raise InputError(f"{name} must be comma-separated {what}, got '{text[:80]}'") from None


@app.callback()
def _verbosity(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Show only warnings and errors on stderr.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show debugging detail on stderr.")] = False,
) -> None:
    from posedeploy import console

    console.configure(int(verbose) - int(quiet))


# The options of train lifter.
_LLifter = Annotated[str | None, typer.Option(help="Lifter model: mgcn_lw or htnet (default: mgcn_lw).")]
_LOut = Annotated[Path | None, typer.Option(help="Run folder: best.pt, last.pt, log.jsonl.")]
_LEpochs = Annotated[
    int | None, typer.Option(help="Epochs to train (default 30; with --resume: the total, including earlier ones).")
]
_LBatchSize = Annotated[
    int | None,
    typer.Option(help="Batch size, summed over processes under torchrun (default: 64 mgcn_lw, 512 htnet)."),
]
_LLr = Annotated[float | None, typer.Option(help="Initial learning rate (default: 1e-3 mgcn_lw, 5e-4 htnet).")]
_LSchedule = Annotated[
    str | None,
    typer.Option(
        help="Learning-rate decay: epoch (x0.95, x0.5 every 5th; htnet), samples (x0.96 per 6.4M samples; "
        "mgcn_lw) or cosine (to 1% over --epochs)."
    ),
]
_LClipGradNorm = Annotated[float | None, typer.Option(help="Clip the gradient norm (default: 1 mgcn_lw, none htnet).")]
_LWeightDecay = Annotated[
    float | None,
    typer.Option(help="Decoupled (AdamW) weight decay per step, times the learning rate (default: none)."),
]
_LEma = Annotated[
    float | None,
    typer.Option(
        help="Validate and write an exponential moving average of the weights with this decay per step (e.g. "
        "0.9998, reached after ~5,000 steps; default: the weights themselves)."
    ),
]
_LAugment = Annotated[bool | None, typer.Option(help="Mirror a random half of every batch (default: yes).")]
_LInputNoise = Annotated[
    float | None,
    typer.Option(
        help="Add Gaussian noise of this standard deviation to every training 2D coordinate, in normalised "
        "screen units (0.002 = 1 px of a 1000-px-wide image; default: none)."
    ),
]
_LDropout = Annotated[
    float | None,
    typer.Option(
        help="Drop each hidden feature of mgcn_lw's graph convolution blocks with this probability while "
        "training (default: none)."
    ),
]
_LFold = Annotated[
    str | None,
    typer.Option(
        help="K/N: train without the subjects of fold K of N of 'train' (for held-out AVG pseudo-labels); with "
        "--refit, of 'train' and 'val' together (fold runs to calibrate the refit on, calibrate --fold-checkpoint)."
    ),
]
_LPatience = Annotated[int | None, typer.Option(help="Stop after this many epochs without a better validation MPJPE.")]
_LRefit = Annotated[
    bool | None,
    typer.Option(
        help="Train on the 'train' and 'val' splits together (Human3.6M: S1 S5 S6 S7 S8) for exactly --epochs "
        "epochs and keep the last: the final model, once an earlier run validated on 'val' has chosen the "
        "epochs. The 'val' error it prints is in-sample."
    ),
]
_LSeed = Annotated[int | None, typer.Option(min=0, help="Seed of shuffling, augmentation and initialisation.")]
_LInit = Annotated[
    str | None,
    typer.Option(
        help="Start from this lifter checkpoint's weights (a file or a shipped name) with a fresh optimizer and "
        "schedule: fine-tuning, or a warm restart of a finished run. A resumed run remembers it."
    ),
]


@train_app.command("lifter")
def train_lifter_command(
    recipe: Recipe = None,
    lifter: _LLifter = None,
    data: Data = None,
    keypoints: Keypoints = None,
    out: _LOut = None,
    epochs: _LEpochs = None,
    batch_size: _LBatchSize = None,
    lr: _LLr = None,
    schedule: _LSchedule = None,
    clip_grad_norm: _LClipGradNorm = None,
    weight_decay: _LWeightDecay = None,
    ema: _LEma = None,
    stride: Stride = None,
    val_stride: ValStride = None,
    augment: _LAugment = None,
    input_noise: _LInputNoise = None,
    dropout: _LDropout = None,
    fold: _LFold = None,
    patience: _LPatience = None,
    refit: _LRefit = None,
    seed: _LSeed = None,
    resume: Resume = None,
    init: _LInit = None,
    device: Device = None,
) -> None:
    """Train a single-hypothesis lifter (MPJPE loss, mirror augmentation) on the 'train' split, choosing
    the best epoch on the held-out 'val' split (Human3.6M: train S1 S5 S6 S7, val S8)."""
    require("posedeploy train lifter", "torch")
    from posedeploy.training.recipes import settings_from
    from posedeploy.training.runs import LifterRunSettings, train_lifter

    options = _given(
        lifter=lifter,
        data=data,
        keypoints=keypoints,
        out=out,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        schedule=schedule,
        clip_grad_norm=clip_grad_norm,
        weight_decay=weight_decay,
        ema=ema,
        stride=stride,
        val_stride=val_stride,
        augment=augment,
        input_noise=input_noise,
        dropout=dropout,
        fold=fold,
        patience=patience,
        refit=refit,
        seed=seed,
        resume=resume,
        init=init,
        device=device,
    )
    result = train_lifter(settings_from(LifterRunSettings, recipe, "lifter", options))
    if result.main:
        typer.echo(result.describe(2))


# The options of train avg.
_ACheckpoint = Annotated[Path | None, typer.Option(help="The trained lifter's checkpoint (best.pt of train lifter).")]
_AAvg = Annotated[str | None, typer.Option(help="AVG model: mlp or gcn (default: the lifter's PRPose pairing).")]
_AAlpha = Annotated[float | None, typer.Option(help="Noise scale stored in the checkpoint (default: 0.005).")]
_AKeypoints = Annotated[str | None, typer.Option(help="2D input (default: what the lifter was trained on).")]
_AOut = Annotated[Path | None, typer.Option(help="Run folder: best.pt (lifter + AVG), last.pt, log.jsonl.")]
_AEpochs = Annotated[int | None, typer.Option(help="Epochs to train (default 30).")]
_ABatchSize = Annotated[int | None, typer.Option(help="Batch size (default 512).")]
_ALr = Annotated[float | None, typer.Option(help="Initial learning rate (default 5e-4).")]
_ACacheDir = Annotated[Path | None, typer.Option(help="Pseudo-label cache (default: ~/.cache/posedeploy).")]
_AFoldLifter = Annotated[
    list[Path] | None,
    typer.Option(
        help="Lifters trained with --fold K/N, one per fold (repeatable): pseudo-labels from the one that did "
        "not see each subject."
    ),
]
_APatience = Annotated[int | None, typer.Option(help="Stop after this many epochs without a better validation MSE.")]
_ARefit = Annotated[
    bool | None,
    typer.Option(
        help="For a lifter trained with --refit: train on the 'train' and 'val' pseudo-labels together for "
        "exactly --epochs epochs and keep the last (the epochs chosen on the run without 'val')."
    ),
]
_ASeed = Annotated[int | None, typer.Option(min=0, help="Seed of shuffling and initialisation.")]


@train_app.command("avg")
def train_avg_command(
    recipe: Recipe = None,
    checkpoint: _ACheckpoint = None,
    avg: _AAvg = None,
    alpha: _AAlpha = None,
    data: Data = None,
    keypoints: _AKeypoints = None,
    out: _AOut = None,
    epochs: _AEpochs = None,
    batch_size: _ABatchSize = None,
    lr: _ALr = None,
    stride: Stride = None,
    val_stride: ValStride = None,
    cache_dir: _ACacheDir = None,
    fold_lifter: _AFoldLifter = None,
    patience: _APatience = None,
    refit: _ARefit = None,
    seed: _ASeed = None,
    resume: Resume = None,
    device: Device = None,
) -> None:
    """Train the AVG model on the frozen lifter's per-joint errors (weak supervision, cached pseudo-labels),
    choosing the best epoch on the held-out 'val' split."""
    require("posedeploy train avg", "torch")
    from posedeploy.training.recipes import settings_from
    from posedeploy.training.runs import AVGRunSettings, train_avg

    options = _given(
        checkpoint=checkpoint,
        avg=avg,
        alpha=alpha,
        data=data,
        keypoints=keypoints,
        out=out,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        stride=stride,
        val_stride=val_stride,
        cache_dir=cache_dir,
        fold_lifters=tuple(fold_lifter) if fold_lifter else None,
        patience=patience,
        refit=refit,
        seed=seed,
        resume=resume,
        device=device,
    )
    if recipe is None and checkpoint is None:
        raise typer.BadParameter("the trained lifter is needed: give --checkpoint (or a --recipe that names it)")
    result = train_avg(settings_from(AVGRunSettings, recipe, "avg", options))
    if result.main:
        typer.echo(result.describe(4))


@app.command("import-checkpoint")
def import_checkpoint_command(
    lifter: Annotated[str, typer.Option(help="Which official lifter: htnet or mgcn_lw.")],
    lifter_weights: Annotated[Path, typer.Option(help="Official lifter weights, e.g. ckpt/shhpe_model_htnet.pth.")],
    out: Annotated[Path, typer.Option(help="posedeploy checkpoint to write.")],
    avg_weights: Annotated[
        Path | None, typer.Option(help="Official AVG weights, e.g. ckpt/avg_model_htnet.pth.")
    ] = None,
    alpha: Annotated[float, typer.Option(help="Noise scale (0.005 is PRPose's Human3.6M setting).")] = 0.005,
) -> None:
    """Convert the official PRPose checkpoints into a posedeploy checkpoint."""
    require("posedeploy import-checkpoint", "torch")
    from posedeploy.training.official import ImportSettings, import_checkpoint

    typer.echo(import_checkpoint(ImportSettings(lifter, lifter_weights, out, avg_weights, alpha)).describe())


@app.command("predict")
def predict_command(
    keypoints: Annotated[
        Path, typer.Option(help="2D keypoints, a (B, 17, 2) .npy array: normalised, or pixels with --image-size.")
    ],
    out: Annotated[Path, typer.Option(help="Output .npz with sigma, hypotheses, pose, spread (metres).")],
    image_size: ImageSize = None,
    checkpoint: Checkpoint = None,
    noise: Annotated[Path | None, typer.Option(help="Standard normal noise, a (B, S, 2, 17, 2) .npy array.")] = None,
    hypotheses: Annotated[int, typer.Option(help="S, when the noise is drawn rather than given.")] = 200,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the drawn noise.")] = 0,
    max_poses: MaxPoses = None,
    device: Device = None,
) -> None:
    """Run the PyTorch reference pipeline and write the contract outputs."""
    require("posedeploy predict", "torch")
    from posedeploy.reference.commands import PredictSettings, predict

    settings = PredictSettings(keypoints, out, image_size, checkpoint, noise, hypotheses, seed, max_poses, device)
    result = predict(settings)
    typer.echo(
        f"wrote {result.out}: {result.poses} poses x {result.hypotheses} hypotheses "
        "(sigma, hypotheses, pose, spread; metres)"
    )


_ESplit = Annotated[
    str, typer.Option(help="test (final numbers only), or val (the held-out split every choice is made on).")
]
_EHypotheses = Annotated[int, typer.Option(help="S hypotheses per pose; 0 evaluates the lifter alone.")]
_ENoise = Annotated[
    str,
    typer.Option(
        help="Comma-separated: adaptive (AVG sigma), uniform (its mean on every joint), alpha (alpha on every joint)."
    ),
]
_EAlpha = Annotated[str | None, typer.Option(help="Comma-separated noise scales to sweep (default: the checkpoint's).")]
_EBestOf = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated S values of the best-of-S curve, each 1..S (first S of the same draw; default: "
        "1,5,10,50,200 up to S)."
    ),
]
_EActions = Annotated[str | None, typer.Option(help="Comma-separated Human3.6M actions (default: all 15).")]
_EStride = Annotated[int, typer.Option(help="Evaluate every STRIDE-th frame of each sequence (evenly spaced).")]
_ESeed = Annotated[int, typer.Option(min=0, help="Seed of the sampling noise (the same draws in every run).")]
_ECalibration = Annotated[
    str,
    typer.Option(
        help="The spread's calibration: checkpoint (the checkpoint's, where fitted for the run's noise and alpha), "
        "val (fitted for each run on the 'val' split first), crossfit (on 'val' itself: each half of its recordings "
        "calibrated on the other), or none."
    ),
]
_Draws = Annotated[str, typer.Option(help="Noise draws: random, or antithetic (low-discrepancy).")]
_EPlot = Annotated[
    Path | None, typer.Option(help="Draw the reliability diagram and the sparsification curves to this PNG.")
]


@app.command("eval")
def evaluate_command(
    checkpoint: Checkpoint = None,
    data: Data = "synthetic",
    keypoints: Keypoints = "gt",
    split: _ESplit = "test",
    hypotheses: _EHypotheses = 200,
    noise: _ENoise = "adaptive",
    alpha: _EAlpha = None,
    best_of: _EBestOf = None,
    actions: _EActions = None,
    stride: _EStride = 1,
    seed: _ESeed = 0,
    max_poses: MaxPoses = None,
    json_out: JsonOut = None,
    device: Device = None,
    calibration: _ECalibration = "checkpoint",
    draws: _Draws = "random",
    plot: _EPlot = None,
) -> None:
    """Per-action MPJPE / P-MPJPE / PCK / AUC: lifter alone, best-of-S and aggregated pose; the
    uncertainty: calibration (coverage, ECE), sparsification (AUSE, AURG), energy score, sharpness;
    several noise rules or alphas: a comparison with paired differences and bootstrap standard errors."""
    require("posedeploy eval", "torch", *(["matplotlib"] if plot else []))
    from posedeploy.reference.commands import EvalSettings, run_eval

    settings = EvalSettings(
        checkpoint=checkpoint,
        data=data or "synthetic",
        keypoints=keypoints or "gt",
        split=split,
        hypotheses=hypotheses,
        noises=_comma_list(noise, "noise"),
        alphas=_comma_list(alpha, "alpha", float) if alpha else None,
        best_of=_comma_list(best_of, "best-of", int) if best_of else None,
        actions=_comma_list(actions, "actions") if actions else None,
        stride=stride,
        seed=seed,
        max_poses=max_poses,
        device=device,
        calibration=calibration,
        draws=draws,
    )
    _show_eval(run_eval(settings), json_out, plot)


def _show_eval(result: EvalReport | EvalComparison, json_out: Path | None, plot: Path | None) -> None:
    from posedeploy.files import write_json
    from posedeploy.reference.reports import EvalReport, format_comparison, format_report

    typer.echo(format_report(result) if isinstance(result, EvalReport) else format_comparison(result))
    if json_out is not None:
        write_json(json_out, result.to_json())
    if plot is not None:
        from posedeploy.reference.uncertainty_plots import plot_uncertainty

        runs = [result] if isinstance(result, EvalReport) else result.runs
        typer.echo(f"wrote {plot_uncertainty(runs, plot)}")


_CFolds = Annotated[
    list[Path] | None,
    typer.Option(
        help="Fit on these fold runs (repeatable; lifter + AVG, one per fold K of N, each trained with --refit "
        "--fold K/N) instead of on --split: every subject of 'train' and 'val' lifted by the run that never saw it."
    ),
]
_CErrorRatio = Annotated[
    float | None,
    typer.Option(
        help="With --from or --fold-checkpoint: scale the spread by this ratio, the checkpoint's expected error over "
        "that of the runs it was fitted on (scripts/refit_error_ratio.py estimates it from a learning curve)."
    ),
]


@app.command("calibrate")
def calibrate_command(
    out: Annotated[Path, typer.Option(help="The calibrated copy of the checkpoint to write.")],
    checkpoint: Checkpoint = None,
    data: Data = "synthetic",
    keypoints: Annotated[
        str | None, typer.Option(help="gt or sh (default: what the checkpoint was trained on).")
    ] = None,
    split: Annotated[str, typer.Option(help="val (the held-out split every choice is made on) or train.")] = "val",
    hypotheses: Annotated[int, typer.Option(help="S hypotheses per pose the calibration is fitted at.")] = 200,
    alpha: Annotated[
        float | None, typer.Option(help="Noise scale to fit at, written into the copy (default: the checkpoint's).")
    ] = None,
    recommend: Annotated[
        int | None, typer.Option(help="The S users need, recorded with the calibration (default: --hypotheses).")
    ] = None,
    form: Annotated[
        str, typer.Option(help="scale, joint_scale, joint_affine, or auto (the lowest held-out ECE at every spread).")
    ] = "auto",
    draws: _Draws = "random",
    carry_from: Annotated[
        str | None,
        typer.Option("--from", help="Take this checkpoint's calibration (same models and alpha) instead of fitting."),
    ] = None,
    fold_checkpoint: _CFolds = None,
    error_ratio: _CErrorRatio = None,
    stride: Annotated[int, typer.Option(help="Use every STRIDE-th frame of each sequence.")] = 1,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the sampling noise.")] = 0,
    max_poses: MaxPoses = None,
    device: Device = None,
) -> None:
    """Fit the calibration of the spread on a validation split (so that spread and radius(p) mean
    what they say) and write a copy of the checkpoint that carries it."""
    require("posedeploy calibrate", "torch")
    from posedeploy.reference.calibrate import CalibrateSettings, calibrate

    settings = CalibrateSettings(
        out=out,
        checkpoint=checkpoint,
        data=data or "synthetic",
        keypoints=keypoints,
        split=split,
        hypotheses=hypotheses,
        alpha=alpha,
        recommended_hypotheses=recommend,
        form=form,
        draws=draws,
        carry_from=carry_from,
        folds=tuple(fold_checkpoint or ()),
        error_ratio=error_ratio,
        stride=stride,
        seed=seed,
        max_poses=max_poses,
        device=device,
    )
    typer.echo(calibrate(settings).describe())


@app.command("export")
def export_command(
    checkpoint: Checkpoint = None,
    out: Annotated[Path, typer.Option(help="Artifact directory to write (re-exporting over it is safe).")] = Path(
        "artifacts"
    ),
    fp16: Annotated[bool, typer.Option("--fp16", help="Also write pipeline.fp16.onnx (mixed precision).")] = False,
    format: Annotated[str, typer.Option(help="onnx, or triton to also lay out a Triton model repository.")] = "onnx",
    in_graph_noise: Annotated[
        bool, typer.Option("--in-graph-noise", help="Also write pipeline.rng*.onnx (noise drawn in the graph).")
    ] = False,
    int8: Annotated[
        bool,
        typer.Option("--int8", help="Also write pipeline.int8.onnx (lifter in INT8, calibrated on training poses)."),
    ] = False,
    calibration_data: Annotated[
        str, typer.Option(help="With --int8: Human3.6M folder, 'synthetic', or auto (Human3.6M when found).")
    ] = "auto",
    calibration_keypoints: Annotated[
        str | None, typer.Option(help="With --int8: gt or sh (default: what the checkpoint was trained on).")
    ] = None,
) -> None:
    """Export avg.onnx, lifter.onnx and the fused pipeline.onnx (+ FP16, INT8, Triton) with a manifest."""
    require("posedeploy export", "torch", "onnx", "onnxruntime")
    from posedeploy.export.command import ExportSettings, export

    settings = ExportSettings(
        checkpoint, out, fp16, format, in_graph_noise, int8, calibration_data, calibration_keypoints
    )
    manifest = export(settings)
    typer.echo(f"wrote {', '.join(manifest.files)} and manifest.json to {out}")


@app.command("build")
def build_command(
    artifacts: Artifacts = Path("artifacts"),
    precision: Annotated[
        str, typer.Option(help="fp16 (pipeline.fp16.onnx, strongly typed) or fp32 (pipeline.onnx).")
    ] = "fp16",
    batch: Annotated[str, typer.Option(help="Batch profile MIN:OPT:MAX.")] = "1:16:64",
    hypotheses: Annotated[str, typer.Option(help="Hypotheses profile MIN:OPT:MAX.")] = "1:200:200",
    workspace: Annotated[int | None, typer.Option(help="Workspace limit in MB (default: TensorRT's).")] = None,
    opt_level: Annotated[int, typer.Option(help="Builder optimisation level 0-5.")] = 3,
    timing_cache: Annotated[
        Path | None, typer.Option(help="Timing cache to reuse and update (default: beside the plan).")
    ] = None,
    version_compatible: Annotated[
        bool, typer.Option(help="Engine loadable by later TensorRT of the same major version.")
    ] = False,
    hardware_compatible: Annotated[bool, typer.Option(help="Engine for any Ampere or newer GPU (slower).")] = False,
    dla_core: Annotated[int | None, typer.Option(help="Run on this DLA core with GPU fallback (Jetson Orin).")] = None,
    compute_capability: Annotated[
        list[str] | None, typer.Option(help="TensorRT for RTX targets, e.g. 8.9, 12.0 (repeatable).")
    ] = None,
    flavour: Annotated[str, typer.Option(help="auto, tensorrt (datacenter, Jetson) or tensorrt_rtx.")] = "auto",
    typing: Annotated[
        str, typer.Option(help="auto (strongly typed where TensorRT can), strong, or weak (FP16 flag).")
    ] = "auto",
    in_graph_noise: Annotated[
        bool, typer.Option("--in-graph-noise", help="Build the variant that draws noise on the GPU.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Plan file (default: DIR/pipeline[.rng].PRECISION[.rtx].plan).")
    ] = None,
) -> None:
    """Compile the exported pipeline into a TensorRT engine (with its manifest and timing cache)."""
    from posedeploy.engines.build import BuildSettings, build_engine, parse_range

    settings = BuildSettings(
        artifacts=artifacts,
        out=out,
        precision=precision,
        batch=parse_range(batch, "batch"),
        hypotheses=parse_range(hypotheses, "hypotheses"),
        workspace_mb=workspace,
        optimization_level=opt_level,
        timing_cache=timing_cache,
        version_compatible=version_compatible,
        hardware_compatible=hardware_compatible,
        dla_core=dla_core,
        compute_capabilities=tuple(compute_capability or ()),
        flavour=flavour,
        typing=typing,
        in_graph_noise=in_graph_noise,
    )
    manifest = build_engine(settings)
    typer.echo(f"wrote {artifacts / manifest.plan.file} and its manifest")


# The options of parity.
_PCheckpoint = Annotated[
    Path | None,
    typer.Option(
        help="The checkpoint it was exported from: a file, or mgcn_lw or htnet (default: the one its manifest names)."
    ),
]
_PPrecision = Annotated[
    str,
    typer.Option(
        help="fp32 (pipeline.onnx), fp16 (pipeline.fp16.onnx) or int8 (pipeline.int8.onnx); openvino: also bf16 "
        "(it lowers pipeline.onnx itself)."
    ),
]
_PBackend = Annotated[
    str,
    typer.Option(help="onnxruntime, openvino, tensorrt (an engine from posedeploy build), or auto (the fastest here)."),
]
_PProvider = Annotated[str, typer.Option(help="ONNX Runtime provider: auto, cpu, cuda or tensorrt.")]
_PNoiseSource = Annotated[str, typer.Option(help="host (golden noise), or device (in-graph noise: free-noise check).")]
_PData = Annotated[str, typer.Option(help="Human3.6M folder, 'synthetic', or auto (Human3.6M when found).")]
_PSamples = Annotated[int, typer.Option(help="Test poses, evenly spaced over the test split.")]
_PHypotheses = Annotated[int, typer.Option(help="S hypotheses per pose.")]
_PSeed = Annotated[int, typer.Option(min=0, help="Seed of the noise.")]
_PFreeNoise = Annotated[
    bool, typer.Option("--free-noise", help="Each side draws its own noise: compare distributions.")
]
_PTolerance = Annotated[
    float | None,
    typer.Option(
        help="Allowed mean hypothesis error in mm (default: 0.01 fp32, 0.5 fp16); int8: allowed delta best-of-S "
        "(default 1)."
    ),
]


@app.command("parity")
def parity_command(
    artifacts: Artifacts = Path("artifacts"),
    checkpoint: _PCheckpoint = None,
    precision: _PPrecision = "fp32",
    backend: _PBackend = "onnxruntime",
    provider: _PProvider = "auto",
    noise_source: _PNoiseSource = "host",
    data: _PData = "auto",
    keypoints: Keypoints = "gt",
    samples: _PSamples = 256,
    hypotheses: _PHypotheses = 200,
    seed: _PSeed = 0,
    free_noise: _PFreeNoise = False,
    tolerance: _PTolerance = None,
    json_out: JsonOut = None,
) -> None:
    """Compare a deployed artifact with the PyTorch reference; exit 1 when over tolerance."""
    require("posedeploy parity", "torch")
    require_runtime("posedeploy parity")
    from posedeploy.files import write_json
    from posedeploy.parity import ParitySettings, parity

    settings = ParitySettings(
        artifacts=artifacts,
        checkpoint=checkpoint,
        precision=precision,
        backend=backend,
        provider=provider,
        noise_source=noise_source,
        data=data,
        keypoints=keypoints or "gt",
        samples=samples,
        hypotheses=hypotheses,
        seed=seed,
        free_noise=free_noise,
        tolerance_mm=tolerance,
    )
    report = parity(settings)
    typer.echo(report.format())
    if json_out is not None:
        write_json(json_out, report.to_json())
    if not report.passed:
        raise typer.Exit(1)


_BBackend = Annotated[
    str,
    typer.Option(
        help="Comma-separated: torch (eager FP32, the baseline; always timed), torch-compile (torch.compile, on "
        "a GPU with CUDA graphs: the strongest PyTorch path), onnxruntime, openvino, tensorrt (those not "
        "installed are skipped)."
    ),
]
_BPrecision = Annotated[
    str, typer.Option(help="Comma-separated precisions: fp32, fp16 (PyTorch: autocast, on a GPU), bf16 (openvino).")
]
_BHypotheses = Annotated[
    str | None,
    typer.Option(help="Comma-separated S values [default: 1,50,200 and the S the artifacts' calibration recommends]."),
]


_BCheckpoint = Annotated[
    Path | None, typer.Option(help="Checkpoint of the PyTorch baseline (default: the artifacts').")
]
_BStreaming = Annotated[
    bool,
    typer.Option(
        "--streaming", help="Also time PoseStream (track, lift, smooth) at 30 and 60 fps for 1, 4, 16 people."
    ),
]


@app.command("bench")
def bench_command(
    artifacts: Annotated[
        Path | None, typer.Option(help="Artifact directory (default: ./artifacts, else the shipped model).")
    ] = None,
    backend: _BBackend = "torch,onnxruntime,openvino,tensorrt",
    precision: _BPrecision = "fp32",
    hypotheses: _BHypotheses = None,
    batch: Annotated[str, typer.Option(help="Comma-separated B values.")] = "1,16,64",
    checkpoint: _BCheckpoint = None,
    min_seconds: Annotated[float, typer.Option(help="Time each cell at least this long.")] = 2.0,
    min_repeats: Annotated[int, typer.Option(help="Time each cell at least this many calls per backend.")] = 10,
    warmup: Annotated[int, typer.Option(help="Untimed calls per backend and cell.")] = 3,
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime / OpenVINO threads (default: all cores).")] = None,
    device: Annotated[str, typer.Option(help="Device of the PyTorch paths: cpu or cuda.")] = "cpu",
    stream_fps: Annotated[float | None, typer.Option(help="Also stream single frames at this camera rate.")] = None,
    stream_frames: Annotated[int, typer.Option(help="Frames of the streaming run.")] = 100,
    streaming: _BStreaming = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write latency/throughput plots as PNG.")] = None,
) -> None:
    """Latency, throughput and FLOP rate of each backend vs the PyTorch baseline and the measured peak."""
    from posedeploy.assets import resolve_checkpoint
    from posedeploy.bench.command import BenchSettings, bench
    from posedeploy.bench.report import SweepSettings, format_report
    from posedeploy.files import write_json

    sweep = SweepSettings(
        batches=list(_comma_list(batch, "batch", int)),
        hypotheses=list(_comma_list(hypotheses or "1,50,200", "hypotheses", int)),
        warmup=warmup,
        min_repeats=min_repeats,
        min_seconds=min_seconds,
    )
    settings = BenchSettings(
        artifacts=artifacts,
        backends=_comma_list(backend, "backend"),
        precisions=_comma_list(precision, "precision"),
        sweep=sweep,
        checkpoint=resolve_checkpoint(checkpoint) if checkpoint else None,
        threads=threads,
        torch_device=device,
        stream_fps=stream_fps,
        stream_frames=stream_frames,
        with_recommended=hypotheses is None,
        streaming=streaming,
    )
    report = bench(settings)
    typer.echo(format_report(report))
    if json_out is not None:
        write_json(json_out, report.to_json())
    if plot is not None:
        from posedeploy.bench.plot import plot_report

        plot_report(report, plot)


_RInput = Annotated[Path, typer.Option(help="2D keypoints: .npy (F,17,2|3), VideoPose3D .npz, or COCO/MMPose .json.")]
_ROut = Annotated[Path, typer.Option(help="Output .npz or .json: pose and spread in mm, camera frame, root-relative.")]
_RCamera = Annotated[Path | None, typer.Option(help="Camera JSON (f, c or K; width, height), for --aggregate jpma.")]
_RAggregate = Annotated[str, typer.Option(help="mean, median (joint-wise) or jpma (reprojection; needs --camera).")]
_RHypotheses = Annotated[
    int | None,
    typer.Option(help="S hypotheses per frame (default: the S the artifacts' calibration recommends, else 200)."),
]
_RRadius = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated probabilities p in (0, 1), e.g. 0.5,0.9: also write each joint's radius(p), the "
        "distance from pose (mm) within which the true joint lies with probability p."
    ),
]
_RPrecision = Annotated[str, typer.Option(help="fp32 or fp16 graph (openvino: fp32, fp16 or bf16 compute).")]
_RBackend = Annotated[
    str, typer.Option(help="auto (the fastest installed, measured once and cached), onnxruntime, openvino or tensorrt.")
]
_RMinConfidence = Annotated[float, typer.Option(help="Joints below this confidence count as missing.")]
_RMaxMissing = Annotated[
    int, typer.Option(min=0, max=16, help="Skip frames with more missing joints than this (others are interpolated).")
]

_RSmooth = Annotated[
    str,
    typer.Option(
        help="Smooth each track over time: offline (whole track), causal (one frame of lag, as PoseStream) or none."
    ),
]
_RFps = Annotated[float | None, typer.Option(help="Frame rate of the keypoint file, for smoothing [default: 30].")]
_RMaxGap = Annotated[float, typer.Option(help="Seconds a person may go unseen and keep their track.")]


@app.command("run")
def run_command(
    input: _RInput,
    out: _ROut,
    artifacts: Artifacts = Path("artifacts"),
    image_size: ImageSize = None,
    camera: _RCamera = None,
    aggregate: _RAggregate = "mean",
    hypotheses: _RHypotheses = None,
    radius: _RRadius = None,
    keep_hypotheses: Annotated[bool, typer.Option(help="Also write all hypotheses (npz output).")] = False,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the noise.")] = 0,
    precision: _RPrecision = "fp32",
    backend: _RBackend = "auto",
    min_confidence: _RMinConfidence = 0.3,
    max_missing: _RMaxMissing = 4,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG per frame into this folder.")] = None,
    gif: Annotated[bool, typer.Option("--gif", help="With --plot: also an animated GIF per sequence.")] = False,
    plot_every: Annotated[int, typer.Option(help="With --plot: every N-th frame.")] = 1,
    smooth: _RSmooth = "offline",
    fps: _RFps = None,
    max_gap: _RMaxGap = 1.0,
) -> None:
    """Lift every person of a file of 2D keypoints to 3D poses with per-joint uncertainty, tracked and
    smoothed over time (and pictures)."""
    require_runtime("posedeploy run")
    from posedeploy.run import RunSettings, run_file

    settings = RunSettings(
        input=input,
        out=out,
        artifacts=artifacts,
        image_size=image_size,
        camera=camera,
        aggregate=aggregate,
        keep_hypotheses=keep_hypotheses,
        hypotheses=hypotheses,
        radius=_comma_list(radius, "radius", float) if radius else (),
        seed=seed,
        precision=precision,
        backend=backend,
        min_confidence=min_confidence,
        max_missing=max_missing,
        plot=plot,
        gif=gif,
        plot_every=plot_every,
        smooth=smooth,
        fps=fps,
        max_gap_s=max_gap,
    )
    results = run_file(settings)
    frames = sum(len(r.pose) for r in results)
    skipped = sum(len(r.skipped) for r in results)
    tracks = sum(r.track_id is not None for r in results)
    what = f"{tracks} track(s)" if tracks > 1 else f"{len(results)} sequence(s)"
    typer.echo(f"wrote {out}: {frames} frames in {what}" + (f", {skipped} skipped" if skipped else ""))


@app.command("deploy")
def deploy_command(
    checkpoint: Checkpoint = None,
    out: Annotated[Path, typer.Option(help="Folder to write: artifacts/, sequence/, REPORT.md, report.json.")] = Path(
        "deploy"
    ),
    compute_capability: Annotated[
        list[str] | None,
        typer.Option(help="TensorRT for RTX engine targets, e.g. 8.9 (repeatable); needed where there is no GPU."),
    ] = None,
    hypotheses: Annotated[
        int | None,
        typer.Option(
            help="S hypotheses in parity, bench and the lifted sequence (default: the S the checkpoint's "
            "calibration recommends, else 200)."
        ),
    ] = None,
    parity_samples: Annotated[int, typer.Option(help="Built-in test poses for the parity checks.")] = 64,
    pictures: Annotated[bool, typer.Option(help="Draw the lifted sequence (PNG and GIF; needs matplotlib).")] = True,
    backend: Annotated[
        str,
        typer.Option(
            help="Runtime of the lifted sequence: auto (the fastest installed, measured), onnxruntime, openvino or "
            "tensorrt."
        ),
    ] = "auto",
) -> None:
    """The main job: export (FP32, FP16) -> engine -> parity -> bench -> a lifted sequence -> DIR/REPORT.md."""
    require("posedeploy deploy", "torch", "onnx", "onnxruntime")
    from posedeploy.deploy import DeploySettings, deploy
    from posedeploy.deploy_folder import REPORT_MD
    from posedeploy.deploy_report import DeployOptions

    options = DeployOptions(
        hypotheses=hypotheses,
        parity_samples=parity_samples,
        compute_capabilities=list(compute_capability or ()),
        pictures=pictures,
        backend=backend,
    )
    report = deploy(DeploySettings(checkpoint, out, options))
    for name, step in report.steps.items():
        detail = getattr(step, "reason", None) or step.error or ""
        typer.echo(f"{name:<9} {step.status:<8} {step.seconds:6.1f} s  {detail}".rstrip())
    verdict = "passed" if report.passed else "FAILED"
    typer.echo(f"deploy {verdict} in {report.seconds:.0f} s: {out / REPORT_MD}")
    if not report.passed:
        raise typer.Exit(1)


@app.command("doctor")
def doctor_command(
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the findings as JSON.")] = None,
) -> None:
    """What this machine can run (CPU/GPU, CUDA, TensorRT, ONNX Runtime, PyTorch) and what to install."""
    from posedeploy.doctor import diagnose, format_diagnosis
    from posedeploy.files import write_json

    diagnosis = diagnose()
    typer.echo(format_diagnosis(diagnosis))
    if json_out is not None:
        write_json(json_out, diagnosis.to_json())


def _missing_extra(exc: ModuleNotFoundError) -> None:
    """An optional package a code path needs that no check caught: one line naming its extra."""
    top = (exc.name or "").partition(".")[0]
    if top not in EXTRA_OF:
        raise exc
    typer.echo(
        f"error: this needs the '{top}' package, which is not installed; install it with: "
        f"pip install 'posedeploy[{EXTRA_OF[top]}]'",
        err=True,
    )
    sys.exit(1)


def _usage_error(exc: Exception) -> None:
    """typer's usage errors (unknown option, a value of the wrong type): one line, exit 2."""
    if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
        raise exc
    ctx, message = getattr(exc, "ctx", None), exc.format_message()
    if not message and ctx is not None:  # no command given: the help
        typer.echo(ctx.get_help())
    else:
        where = ctx.command_path if ctx is not None else "posedeploy"
        first = message.splitlines()[0] if message else type(exc).__name__
        typer.echo(f"error: {first} (see {where} --help)", err=True)
    sys.exit(exc.exit_code)


def main() -> None:
    from posedeploy import console

    console.configure()  # before any command runs; -q / -v adjust it
    try:
        code = app(standalone_mode=False)
    except PoseDeployError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except ModuleNotFoundError as exc:
        _missing_extra(exc)
    except OSError as exc:  # a file that cannot be read or written, outside the paths that say more
        where = f": {exc.filename}" if exc.filename else ""
        typer.echo(f"error: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)
    except Exception as exc:
        _usage_error(exc)
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
