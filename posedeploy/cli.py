"""The posedeploy command line: thin typer commands over the stage functions.

Every user-facing problem is a PoseDeployError, printed as one line on stderr with exit code 1; a
usage error (unknown option, a value of the wrong type) is one line too, with exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from posedeploy.errors import PoseDeployError
from posedeploy.extras import EXTRA_OF, require, require_runtime

app = typer.Typer(
    help="Multi-hypothesis 3D human pose lifting with adaptive noise sampling (PRPose): "
    "train, evaluate, export and deploy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
train_app = typer.Typer(help="Train a lifter, or the AVG model of a trained lifter.", no_args_is_help=True)


@app.callback()
def _verbosity(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Show only warnings and errors on stderr."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show debugging detail on stderr."),
) -> None:
    from posedeploy import console

    console.configure(int(verbose) - int(quiet))


app.add_typer(train_app, name="train")

# Each lifter's official recipe (HTNet: main.py/opt.py; Modulated GCN: main_gcn.py), the learning
# rate's decay expressed per training sample so that it carries over to 10 Hz data.
RECIPES = {
    "htnet": {"lr": 5e-4, "batch_size": 512, "schedule": "epoch", "clip_grad_norm": None},
    "mgcn_lw": {"lr": 1e-3, "batch_size": 64, "schedule": "samples", "clip_grad_norm": 1.0},
}


def _device(device: str | None) -> str:
    from posedeploy.training.device import resolve_device

    return resolve_device(device)


def _keypoints_for(data: str, source: str) -> str:
    """The keypoint kind a checkpoint was trained on, if it comes from the same kind of data."""
    kind, _, keypoints = source.partition("/")
    same = (kind == "synthetic") == (data == "synthetic")
    return keypoints if same and keypoints else "gt"


@train_app.command("lifter")
def train_lifter(
    lifter: str = typer.Option("mgcn_lw", help="Lifter model: mgcn_lw or htnet."),
    data: str = typer.Option("synthetic", help="Human3.6M folder (VideoPose3D format) or 'synthetic'."),
    keypoints: str = typer.Option("gt", help="2D input: gt or sh (Human3.6M); gt or noisy (synthetic)."),
    out: Path = typer.Option(Path("runs/lifter"), help="Run folder: best.pt, last.pt, log.jsonl."),
    epochs: int = typer.Option(30, help="Epochs to train (with --resume: the total, including earlier ones)."),
    batch_size: int | None = typer.Option(
        None, help="Batch size, summed over processes under torchrun (default: 64 mgcn_lw, 512 htnet)."
    ),
    lr: float | None = typer.Option(None, help="Initial learning rate (default: 1e-3 mgcn_lw, 5e-4 htnet)."),
    schedule: str | None = typer.Option(
        None,
        help="Learning-rate decay: epoch (x0.95, x0.5 every 5th; htnet), samples (x0.96 per 6.4M samples; mgcn_lw) or cosine (to 1% over --epochs).",
    ),
    clip_grad_norm: float | None = typer.Option(None, help="Clip the gradient norm (default: 1 mgcn_lw, none htnet)."),
    weight_decay: float = typer.Option(
        0.0, help="Decoupled (AdamW) weight decay per step, times the learning rate (default: none)."
    ),
    ema: float | None = typer.Option(
        None,
        help="Validate and write an exponential moving average of the weights with this decay per step (e.g. 0.9998, reached after ~5,000 steps; default: the weights themselves).",
    ),
    stride: int = typer.Option(1, help="Use every STRIDE-th training frame."),
    val_stride: int = typer.Option(1, help="Validate on every VAL_STRIDE-th validation frame."),
    augment: bool = typer.Option(True, help="Mirror a random half of every batch."),
    input_noise: float = typer.Option(
        0.0,
        help="Add Gaussian noise of this standard deviation to every training 2D coordinate, in normalised screen units (0.002 = 1 px of a 1000-px-wide image; default: none).",
    ),
    dropout: float = typer.Option(
        0.0,
        help="Drop each hidden feature of mgcn_lw's graph convolution blocks with this probability while training (default: none).",
    ),
    fold: str | None = typer.Option(
        None, help="K/N: train without the subjects of fold K of N (for held-out AVG pseudo-labels)."
    ),
    patience: int | None = typer.Option(None, help="Stop after this many epochs without a better validation MPJPE."),
    refit: bool = typer.Option(
        False,
        help="Train on the 'train' and 'val' splits together (Human3.6M: S1 S5 S6 S7 S8) for exactly --epochs epochs and keep the last: the final model, once an earlier run validated on 'val' has chosen the epochs. The 'val' error it prints is in-sample.",
    ),
    seed: int = typer.Option(0, min=0, help="Seed of shuffling, augmentation and initialisation."),
    resume: bool = typer.Option(False, help="Continue the run in OUT from its last.pt."),
    init: str | None = typer.Option(
        None,
        help="Start from this lifter checkpoint's weights (a file or a shipped name) with a fresh optimizer and schedule: fine-tuning, or a warm restart of a finished run. A resumed run remembers it.",
    ),
    device: str | None = typer.Option(None, help="cpu, cuda or cuda:N (default: cuda if available)."),
) -> None:
    """Train a single-hypothesis lifter (MPJPE loss, mirror augmentation) on the 'train' split, choosing
    the best epoch on the held-out 'val' split (Human3.6M: train S1 S5 S6 S7, val S8)."""
    require("posedeploy train lifter", "torch")
    import torch

    from posedeploy.assets import resolve_checkpoint
    from posedeploy.data import load_dataset
    from posedeploy.errors import CheckpointError, InputError
    from posedeploy.training import distributed
    from posedeploy.training.folds import parse_fold, without_fold
    from posedeploy.training.lifter_training import LifterTask, StartingPoint, check_regularisers
    from posedeploy.training.trainer import TrainSettings, fit, saved_identity

    recipe = RECIPES.get(lifter, RECIPES["mgcn_lw"])
    settings = TrainSettings(
        epochs=epochs,
        batch_size=recipe["batch_size"] if batch_size is None else batch_size,
        lr=recipe["lr"] if lr is None else lr,
        seed=seed,
        patience=patience,
        schedule=recipe["schedule"] if schedule is None else schedule,
        clip_grad_norm=clip_grad_norm if clip_grad_norm is not None else recipe["clip_grad_norm"],
        weight_decay=weight_decay,
        ema=ema,
    )
    settings.validate()  # before minutes of data loading
    check_regularisers(lifter, input_noise, dropout)
    if refit and (patience is not None or fold is not None):
        raise InputError(
            f"--refit trains on every training subject for a fixed number of epochs; it takes neither "
            f"{'--patience' if patience is not None else '--fold'} (choose the epochs on a run without --refit)"
        )
    held_out = list(parse_fold(fold)) if fold else None
    # The starting point is checked before minutes of data loading; a resumed run takes it from its
    # last.pt (its weights are long replaced there), so --init is optional then, and must agree.
    start, start_record = None, saved_identity(out).get("init") if resume else None
    if init is not None:
        start = StartingPoint.read(resolve_checkpoint(init), label=init)
        start.check(lifter, held_out, out)
        if resume and (start_record or {}).get("sha256") != start.sha256:
            was = f"started from {start_record['path']}" if start_record else "not started from a checkpoint"
            raise CheckpointError(
                f"the run in {out} was {was}, not from --init {init} (another file, or changed "
                f"since): resume it without --init"
            )
        start_record = start_record or start.describe()
    ctx = distributed.setup(_device(device))
    try:
        train = load_dataset(data, "train", keypoints, stride=stride)
        if held_out:
            train = without_fold(train, held_out)
        val = load_dataset(data, "val", keypoints, stride=val_stride)
        if refit:
            train = _joined_with_val(train, val, data, keypoints, stride, val_stride)
        torch.manual_seed(seed)
        task = LifterTask(
            lifter,
            train,
            val,
            augment=augment,
            init=start_record,
            input_noise=input_noise,
            dropout=dropout,
            refit=refit,
        )
        if start is not None and not resume:
            start.load_into(task.model)
        if ctx.is_main:
            typer.echo(
                f"training {lifter} on {len(train):,} samples ({train.source}), validating on {len(val):,}", err=True
            )
        summary = fit(task, settings, out, ctx, resume=resume)
        if ctx.is_main:
            which = "last (refit; in-sample)" if refit else "best"
            typer.echo(
                f"{which} {summary['metric']} {summary['best']:.2f} at epoch {summary['best_epoch']}: {out / 'best.pt'}"
            )
    finally:
        distributed.teardown(ctx)


@train_app.command("avg")
def train_avg(
    checkpoint: Path = typer.Option(..., help="The trained lifter's checkpoint (best.pt of train lifter)."),
    avg: str | None = typer.Option(None, help="AVG model: mlp or gcn (default: the lifter's PRPose pairing)."),
    alpha: float | None = typer.Option(None, help="Noise scale stored in the checkpoint (default: 0.005)."),
    data: str = typer.Option("synthetic", help="Human3.6M folder (VideoPose3D format) or 'synthetic'."),
    keypoints: str | None = typer.Option(None, help="2D input (default: what the lifter was trained on)."),
    out: Path = typer.Option(Path("runs/avg"), help="Run folder: best.pt (lifter + AVG), last.pt, log.jsonl."),
    epochs: int = typer.Option(30, help="Epochs to train."),
    batch_size: int = typer.Option(512, help="Batch size."),
    lr: float = typer.Option(5e-4, help="Initial learning rate."),
    stride: int = typer.Option(1, help="Use every STRIDE-th training frame."),
    val_stride: int = typer.Option(1, help="Validate on every VAL_STRIDE-th validation frame."),
    cache_dir: Path | None = typer.Option(None, help="Pseudo-label cache (default: ~/.cache/posedeploy)."),
    fold_lifter: list[Path] = typer.Option(
        [],
        help="Lifters trained with --fold K/N, one per fold (repeatable): "
        "pseudo-labels from the one that did not see each subject.",
    ),
    patience: int | None = typer.Option(None, help="Stop after this many epochs without a better validation MSE."),
    refit: bool = typer.Option(
        False,
        help="For a lifter trained with --refit: train on the 'train' and 'val' pseudo-labels together for exactly --epochs epochs and keep the last (the epochs chosen on the run without 'val').",
    ),
    seed: int = typer.Option(0, min=0, help="Seed of shuffling and initialisation."),
    resume: bool = typer.Option(False, help="Continue the run in OUT from its last.pt."),
    device: str | None = typer.Option(None, help="cpu, cuda or cuda:N (default: cuda if available)."),
) -> None:
    """Train the AVG model on the frozen lifter's per-joint errors (weak supervision, cached pseudo-labels),
    choosing the best epoch on the held-out 'val' split."""
    require("posedeploy train avg", "torch")
    import torch

    from posedeploy.assets import resolve_checkpoint
    from posedeploy.data import load_dataset
    from posedeploy.errors import InputError
    from posedeploy.training import distributed
    from posedeploy.training.avg_training import AVGTask
    from posedeploy.training.checkpoint import load_checkpoint
    from posedeploy.training.pseudo_labels import default_cache_dir
    from posedeploy.training.trainer import TrainSettings, fit

    lifter_path = resolve_checkpoint(checkpoint)
    if lifter_path.resolve().parent == out.resolve():
        raise InputError(
            f"--out {out} is the folder of the lifter checkpoint {lifter_path}: training there would "
            f"replace it; write the AVG run to its own folder"
        )
    if refit and (patience is not None or fold_lifter):
        raise InputError(
            f"--refit trains on every training subject for a fixed number of epochs; it takes neither "
            f"{'--patience' if patience is not None else '--fold-lifter'} (choose the epochs on a run without --refit)"
        )
    settings = TrainSettings(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, patience=patience)
    settings.validate()
    lifter_ckpt = load_checkpoint(lifter_path)
    lifter_refitted = bool(lifter_ckpt.config.training.get("refit"))
    if refit and not lifter_refitted:
        raise InputError(
            f"--refit is for a lifter trained with --refit; {lifter_path} was not: its 'val' errors are "
            f"held out, unlike its 'train' ones. Train without --refit and choose the epoch on 'val'"
        )
    ctx = distributed.setup(_device(device))
    try:
        if lifter_refitted and not refit and ctx.is_main:
            typer.echo(
                f"note: {lifter_path} was refitted with 'val' among its training data: the 'val' "
                f"pseudo-labels are in-sample errors, so they cannot choose this AVG model's epoch fairly; "
                f"fix --epochs on a lifter trained without 'val' and pass --refit",
                err=True,
            )
        keypoints = keypoints or _keypoints_for(data, lifter_ckpt.config.keypoints)
        train = load_dataset(data, "train", keypoints, stride=stride)
        val = load_dataset(data, "val", keypoints, stride=val_stride)
        if refit:
            train = _joined_with_val(train, val, data, keypoints, stride, val_stride)
        torch.manual_seed(seed)
        task = AVGTask(
            lifter_ckpt,
            train,
            val,
            avg=avg,
            alpha=alpha,
            cache_dir=cache_dir or default_cache_dir(),
            device=ctx.device,
            fold_lifters=[load_checkpoint(resolve_checkpoint(f)) for f in fold_lifter],
            refit=refit,
        )
        if ctx.is_main:
            typer.echo(
                f"training AVG '{task.config.avg}' on {len(task.inputs):,} pseudo-labels ({train.source}; "
                f"errors of {task.pseudo_labels['from']})",
                err=True,
            )
        summary = fit(task, settings, out, ctx, resume=resume)
        if ctx.is_main:
            which = "last (refit; in-sample)" if refit else "best"
            typer.echo(
                f"{which} {summary['metric']} {summary['best']:.4f} at epoch {summary['best_epoch']}: {out / 'best.pt'}"
            )
    finally:
        distributed.teardown(ctx)


def _joined_with_val(train, val, data: str, keypoints: str, stride: int, val_stride: int):
    """A refit's training data: 'train' and 'val' together, both at the training stride."""
    from posedeploy.data import load_dataset

    return train.join(val if val_stride == stride else load_dataset(data, "val", keypoints, stride=stride))


def _load(checkpoint: Path | None):
    from posedeploy.assets import resolve_checkpoint
    from posedeploy.training.checkpoint import load_checkpoint

    return load_checkpoint(resolve_checkpoint(checkpoint))


def _load_array(path: Path, what: str):
    import zipfile

    from posedeploy.errors import InputError
    from posedeploy.safe_npz import load_npy

    if not path.is_file():
        raise InputError(f"{what} file not found: {path}")
    if zipfile.is_zipfile(path):
        raise InputError(f"{path} holds several arrays (an .npz); {what} must be a single .npy array")
    try:
        return load_npy(path)
    except InputError as exc:
        raise InputError(f"cannot read {what}: {exc}") from None


@app.command("import-checkpoint")
def import_checkpoint(
    lifter: str = typer.Option(..., help="Which official lifter: htnet or mgcn_lw."),
    lifter_weights: Path = typer.Option(..., help="Official lifter weights, e.g. ckpt/shhpe_model_htnet.pth."),
    avg_weights: Path | None = typer.Option(None, help="Official AVG weights, e.g. ckpt/avg_model_htnet.pth."),
    out: Path = typer.Option(..., help="posedeploy checkpoint to write."),
    alpha: float = typer.Option(0.005, help="Noise scale (0.005 is PRPose's Human3.6M setting)."),
) -> None:
    """Convert the official PRPose checkpoints into a posedeploy checkpoint."""
    require("posedeploy import-checkpoint", "torch")
    from posedeploy.files import refuse_overwrite
    from posedeploy.training.checkpoint import save_checkpoint
    from posedeploy.training.official import import_official

    refuse_overwrite(out, {"--lifter-weights": lifter_weights, "--avg-weights": avg_weights})
    ckpt = import_official(lifter, lifter_weights, avg_weights, alpha)
    save_checkpoint(out, ckpt)
    typer.echo(f"wrote {out}: {lifter}" + (f" + AVG '{ckpt.config.avg}'" if ckpt.has_avg else "") + f", alpha {alpha}")


@app.command("predict")
def predict(
    keypoints: Path = typer.Option(
        ..., help="2D keypoints, a (B, 17, 2) .npy array: normalised, or pixels with --image-size."
    ),
    image_size: tuple[float, float] | None = typer.Option(None, help="Image width and height, for pixel keypoints."),
    out: Path = typer.Option(..., help="Output .npz with sigma, hypotheses, pose, spread (metres)."),
    checkpoint: Path | None = typer.Option(
        None, help="Checkpoint file, or a shipped one by name: mgcn_lw (default) or htnet."
    ),
    noise: Path | None = typer.Option(None, help="Standard normal noise, a (B, S, 2, 17, 2) .npy array."),
    hypotheses: int = typer.Option(200, help="S, when the noise is drawn rather than given."),
    seed: int = typer.Option(0, min=0, help="Seed of the drawn noise."),
    max_poses: int | None = typer.Option(
        None, help="Lifter inputs per batched call (default: 2048 on a CPU, 16384 on a GPU)."
    ),
    device: str | None = typer.Option(None, help="cpu, cuda or cuda:N (default: cuda if available)."),
) -> None:
    """Run the PyTorch reference pipeline and write the contract outputs."""
    require("posedeploy predict", "torch")
    import numpy as np

    from posedeploy.contract import normalise_keypoints
    from posedeploy.files import atomic_path, refuse_overwrite
    from posedeploy.reference.sampler import PipelineModule, run_reference

    refuse_overwrite(out, {"--keypoints": keypoints, "--noise": noise, "--checkpoint": checkpoint})
    ckpt = _load(checkpoint)
    kp = normalise_keypoints(_load_array(keypoints, "keypoints"), image_size)  # refuses pixels taken for normalised
    given = _load_array(noise, "noise") if noise is not None else None
    dev = _device(device)
    pipeline = PipelineModule(ckpt.build_lifter(dev), ckpt.build_avg(dev), ckpt.config.alpha)
    result = run_reference(pipeline, kp, noise=given, hypotheses=hypotheses, seed=seed, max_poses=max_poses)
    result.check_finite()  # NaN poses are an error, not an output
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, **result.as_dict())
    s = result.hypotheses.shape[1]
    typer.echo(f"wrote {out}: {len(kp)} poses x {s} hypotheses (sigma, hypotheses, pose, spread; metres)")


@app.command("eval")
def evaluate_command(
    checkpoint: Path | None = typer.Option(
        None, help="Checkpoint file, or a shipped one by name: mgcn_lw (default) or htnet."
    ),
    data: str = typer.Option("synthetic", help="Human3.6M folder (VideoPose3D format) or 'synthetic'."),
    keypoints: str = typer.Option("gt", help="2D input: gt or sh (Human3.6M); gt or noisy (synthetic)."),
    split: str = typer.Option(
        "test", help="test (final numbers only), or val (the held-out split every choice is made on)."
    ),
    hypotheses: int = typer.Option(200, help="S hypotheses per pose; 0 evaluates the lifter alone."),
    noise: str = typer.Option(
        "adaptive",
        help="Comma-separated: adaptive (AVG sigma), uniform (its mean on every joint), alpha (alpha on every joint).",
    ),
    alpha: str | None = typer.Option(None, help="Comma-separated noise scales to sweep (default: the checkpoint's)."),
    best_of: str | None = typer.Option(
        None,
        help="Comma-separated S values of the best-of-S curve, each 1..S (first S of the same draw; default: 1,5,10,50,200 up to S).",
    ),
    actions: str | None = typer.Option(None, help="Comma-separated Human3.6M actions (default: all 15)."),
    stride: int = typer.Option(1, help="Evaluate every STRIDE-th frame of each sequence (evenly spaced)."),
    seed: int = typer.Option(0, min=0, help="Seed of the sampling noise (the same draws in every run)."),
    max_poses: int | None = typer.Option(
        None, help="Lifter inputs per batched call (default: 2048 on a CPU, 16384 on a GPU)."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the full report as JSON."),
    device: str | None = typer.Option(None, help="cpu, cuda or cuda:N (default: cuda if available)."),
) -> None:
    """Per-action MPJPE / P-MPJPE / PCK / AUC: lifter alone, best-of-S and aggregated pose; several
    noise rules or alphas: a comparison with paired differences and bootstrap standard errors."""
    require("posedeploy eval", "torch")
    from posedeploy.data import load_dataset
    from posedeploy.errors import InputError
    from posedeploy.files import write_json
    from posedeploy.reference.evaluation import MAX_ALPHAS, best_of_curve, check_alpha, evaluate
    from posedeploy.reference.noise_comparison import comparison_report
    from posedeploy.reference.reports import format_comparison, format_report
    from posedeploy.reference.sampler import NOISE_MODES

    ckpt = _load(checkpoint)
    if split == "val" and ckpt.config.training.get("refit"):
        typer.echo(
            f"note: {checkpoint or 'the default checkpoint'}'s lifter was refitted with 'val' among its "
            f"training data: these 'val' numbers are in-sample, fit to choose nothing",
            err=True,
        )
    noises = [n.strip() for n in noise.split(",") if n.strip()]
    unknown = [n for n in noises if n not in NOISE_MODES]
    if unknown or not noises or len(set(noises)) != len(noises):
        raise InputError(f"noise must be some of {', '.join(NOISE_MODES)}, each once, got '{noise[:80]}'")
    try:
        alphas = [float(a) for a in alpha.split(",") if a.strip()] if alpha else [ckpt.config.alpha]
    except ValueError:
        raise InputError(f"alpha must be comma-separated numbers, got '{alpha[:80]}'") from None
    alphas = [check_alpha(a) for a in alphas]
    if len(set(alphas)) != len(alphas) or len(alphas) > MAX_ALPHAS:
        raise InputError(
            f"alpha must list at most {MAX_ALPHAS} different values, got {len(alphas)} ({len(set(alphas))} different)"
        )
    curve = tuple(_int_list(best_of, "best-of")) if best_of else None
    best_of_curve(curve, hypotheses)  # before minutes of data loading
    chosen = [a.strip() for a in actions.split(",") if a.strip()] if actions else None
    test = load_dataset(data, split, keypoints, actions=chosen, stride=stride)
    runs = [(n, a) for a in alphas for n in noises] if hypotheses > 0 else [(noises[0], alphas[0])]
    reports = []
    for n, a in runs:
        report = evaluate(
            ckpt,
            test,
            hypotheses=hypotheses,
            noise=n,
            seed=seed,
            device=_device(device),
            max_poses=max_poses,
            alpha=a,
            best_of=curve,
        )
        report.settings.checkpoint = str(checkpoint) if checkpoint else "default"
        report.settings.split = split
        reports.append(report)
    if len(reports) == 1:
        typer.echo(format_report(reports[0]))
        doc = reports[0].to_json()
    else:
        comparison = comparison_report(reports, test)
        typer.echo(format_comparison(comparison))
        doc = comparison.to_json()
    if json_out is not None:
        write_json(json_out, doc)


@app.command("export")
def export_command(
    checkpoint: Path | None = typer.Option(
        None, help="Checkpoint file, or a shipped one by name: mgcn_lw (default) or htnet."
    ),
    out: Path = typer.Option(Path("artifacts"), help="Artifact directory to write (re-exporting over it is safe)."),
    fp16: bool = typer.Option(False, "--fp16", help="Also write pipeline.fp16.onnx (mixed precision)."),
    format: str = typer.Option("onnx", help="onnx, or triton to also lay out a Triton model repository."),
    in_graph_noise: bool = typer.Option(
        False, "--in-graph-noise", help="Also write pipeline.rng*.onnx (noise drawn in the graph)."
    ),
    int8: bool = typer.Option(
        False, "--int8", help="Also write pipeline.int8.onnx (lifter in INT8, calibrated on training poses)."
    ),
    calibration_data: str = typer.Option(
        "auto", help="With --int8: Human3.6M folder, 'synthetic', or auto (Human3.6M when found)."
    ),
    calibration_keypoints: str | None = typer.Option(
        None, help="With --int8: gt or sh (default: what the checkpoint was trained on)."
    ),
) -> None:
    """Export avg.onnx, lifter.onnx and the fused pipeline.onnx (+ FP16, INT8, Triton) with a manifest."""
    require("posedeploy export", "torch", "onnx", "onnxruntime")
    from posedeploy.assets import resolve_checkpoint
    from posedeploy.errors import InputError
    from posedeploy.export.onnx_export import export_artifacts

    if format not in ("onnx", "triton"):
        raise InputError(f"export format must be onnx or triton, got '{format}'")
    checkpoint = resolve_checkpoint(checkpoint)
    calibration = _int8_calibration(checkpoint, calibration_data, calibration_keypoints) if int8 else None
    manifest = export_artifacts(
        checkpoint,
        out,
        fp16=fp16,
        triton=format == "triton",
        in_graph_noise=in_graph_noise,
        int8_calibration=calibration,
    )
    typer.echo(f"wrote {', '.join(manifest.files)} and manifest.json to {out}")


def _int8_calibration(checkpoint: Path, data: str, keypoints: str | None):
    """Evenly spaced training-split poses (never the test subjects) to calibrate INT8 on."""
    from posedeploy.data import evenly_spaced, load_dataset, resolve_data
    from posedeploy.export.int8 import CALIBRATION_POSES
    from posedeploy.training.checkpoint import load_checkpoint

    source = resolve_data(data)
    kind = keypoints or _keypoints_for(source, load_checkpoint(checkpoint).config.keypoints)
    return evenly_spaced(load_dataset(source, "train", kind), CALIBRATION_POSES)


@app.command("build")
def build_command(
    artifacts: Path = typer.Option(Path("artifacts"), help="Artifact directory written by posedeploy export."),
    precision: str = typer.Option("fp16", help="fp16 (pipeline.fp16.onnx, strongly typed) or fp32 (pipeline.onnx)."),
    batch: str = typer.Option("1:16:64", help="Batch profile MIN:OPT:MAX."),
    hypotheses: str = typer.Option("1:200:200", help="Hypotheses profile MIN:OPT:MAX."),
    workspace: int | None = typer.Option(None, help="Workspace limit in MB (default: TensorRT's)."),
    opt_level: int = typer.Option(3, help="Builder optimisation level 0-5."),
    timing_cache: Path | None = typer.Option(None, help="Timing cache to reuse and update (default: beside the plan)."),
    version_compatible: bool = typer.Option(False, help="Engine loadable by later TensorRT of the same major version."),
    hardware_compatible: bool = typer.Option(False, help="Engine for any Ampere or newer GPU (slower)."),
    dla_core: int | None = typer.Option(None, help="Run on this DLA core with GPU fallback (Jetson Orin)."),
    compute_capability: list[str] = typer.Option([], help="TensorRT for RTX targets, e.g. 8.9, 12.0 (repeatable)."),
    flavour: str = typer.Option("auto", help="auto, tensorrt (datacenter, Jetson) or tensorrt_rtx."),
    typing: str = typer.Option("auto", help="auto (strongly typed where TensorRT can), strong, or weak (FP16 flag)."),
    in_graph_noise: bool = typer.Option(
        False, "--in-graph-noise", help="Build the variant that draws noise on the GPU."
    ),
    out: Path | None = typer.Option(None, help="Plan file (default: DIR/pipeline[.rng].PRECISION[.rtx].plan)."),
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
        compute_capabilities=tuple(compute_capability),
        flavour=flavour,
        typing=typing,
        in_graph_noise=in_graph_noise,
    )
    manifest = build_engine(settings)
    typer.echo(f"wrote {artifacts / manifest.plan.file} and its manifest")


@app.command("parity")
def parity_command(
    artifacts: Path = typer.Option(Path("artifacts"), help="Artifact directory written by posedeploy export."),
    checkpoint: Path | None = typer.Option(
        None,
        help="The checkpoint it was exported from: a file, or mgcn_lw or htnet (default: the one its manifest names).",
    ),
    precision: str = typer.Option(
        "fp32",
        help="fp32 (pipeline.onnx), fp16 (pipeline.fp16.onnx) or int8 (pipeline.int8.onnx); openvino: also bf16 (it lowers pipeline.onnx itself).",
    ),
    backend: str = typer.Option(
        "onnxruntime",
        help="onnxruntime, openvino, tensorrt (an engine from posedeploy build), or auto (the fastest here).",
    ),
    provider: str = typer.Option("auto", help="ONNX Runtime provider: auto, cpu, cuda or tensorrt."),
    noise_source: str = typer.Option("host", help="host (golden noise), or device (in-graph noise: free-noise check)."),
    data: str = typer.Option("auto", help="Human3.6M folder, 'synthetic', or auto (Human3.6M when found)."),
    keypoints: str = typer.Option("gt", help="2D input: gt or sh (Human3.6M); gt or noisy (synthetic)."),
    samples: int = typer.Option(256, help="Test poses, evenly spaced over the test split."),
    hypotheses: int = typer.Option(200, help="S hypotheses per pose."),
    seed: int = typer.Option(0, min=0, help="Seed of the noise."),
    free_noise: bool = typer.Option(
        False, "--free-noise", help="Each side draws its own noise: compare distributions."
    ),
    tolerance: float | None = typer.Option(
        None,
        help="Allowed mean hypothesis error in mm (default: 0.01 fp32, 0.5 fp16); int8: allowed delta best-of-S (default 1).",
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the report as JSON."),
) -> None:
    """Compare a deployed artifact with the PyTorch reference; exit 1 when over tolerance."""
    require("posedeploy parity", "torch")
    require_runtime("posedeploy parity")
    from posedeploy.assets import resolve_checkpoint
    from posedeploy.data import evenly_spaced, load_dataset, resolve_data
    from posedeploy.files import write_json
    from posedeploy.parity import run_parity

    source = resolve_data(data)
    test = evenly_spaced(load_dataset(source, "test", keypoints), samples)
    report = run_parity(
        None if checkpoint is None else resolve_checkpoint(checkpoint),
        artifacts,
        test,
        hypotheses=hypotheses,
        precision=precision,
        seed=seed,
        provider=provider,
        free_noise=free_noise,
        tolerance_mm=tolerance,
        backend=backend,
        noise_source=noise_source,
    )
    typer.echo(report.format())
    if json_out is not None:
        write_json(json_out, report.to_json())
    if not report.passed:
        raise typer.Exit(1)


def _int_list(text: str, name: str) -> list[int]:
    from posedeploy.errors import InputError

    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{name} must be comma-separated whole numbers, got '{text}'") from None


@app.command("bench")
def bench_command(
    artifacts: Path | None = typer.Option(
        None, help="Artifact directory (default: ./artifacts, else the shipped model)."
    ),
    backend: str = typer.Option(
        "torch,onnxruntime,openvino,tensorrt",
        help="Comma-separated: torch, onnxruntime, openvino, tensorrt (those not installed are skipped).",
    ),
    precision: str = typer.Option(
        "fp32", help="Comma-separated precisions of the deployed backends: fp32, fp16 (bf16: openvino)."
    ),
    hypotheses: str = typer.Option("1,50,200", help="Comma-separated S values."),
    batch: str = typer.Option("1,16,64", help="Comma-separated B values."),
    checkpoint: Path | None = typer.Option(None, help="Checkpoint of the PyTorch baseline (default: the artifacts')."),
    min_seconds: float = typer.Option(2.0, help="Time each cell at least this long."),
    min_repeats: int = typer.Option(10, help="Time each cell at least this many calls per backend."),
    warmup: int = typer.Option(3, help="Untimed calls per backend and cell."),
    threads: int | None = typer.Option(None, help="ONNX Runtime / OpenVINO threads (default: all cores)."),
    device: str = typer.Option("cpu", help="Device of the PyTorch baseline: cpu or cuda."),
    stream_fps: float | None = typer.Option(None, help="Also stream single frames at this camera rate."),
    stream_frames: int = typer.Option(100, help="Frames of the streaming run."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the report as JSON."),
    plot: Path | None = typer.Option(None, help="Write latency/throughput plots as PNG."),
) -> None:
    """Latency, throughput and FLOP rate of each backend vs the PyTorch baseline and the measured peak."""
    from posedeploy.assets import resolve_checkpoint
    from posedeploy.bench.command import BenchSettings, bench
    from posedeploy.bench.report import SweepSettings, format_report
    from posedeploy.files import write_json

    sweep = SweepSettings(
        batches=_int_list(batch, "batch"),
        hypotheses=_int_list(hypotheses, "hypotheses"),
        warmup=warmup,
        min_repeats=min_repeats,
        min_seconds=min_seconds,
    )
    settings = BenchSettings(
        artifacts=artifacts,
        backends=tuple(b.strip() for b in backend.split(",") if b.strip()),
        precisions=tuple(p.strip() for p in precision.split(",") if p.strip()),
        sweep=sweep,
        checkpoint=resolve_checkpoint(checkpoint) if checkpoint else None,
        threads=threads,
        torch_device=device,
        stream_fps=stream_fps,
        stream_frames=stream_frames,
    )
    report = bench(settings)
    typer.echo(format_report(report))
    if json_out is not None:
        write_json(json_out, report.to_json())
    if plot is not None:
        from posedeploy.bench.plot import plot_report

        plot_report(report, plot)


@app.command("run")
def run_command(
    input: Path = typer.Option(..., help="2D keypoints: .npy (F,17,2|3), VideoPose3D .npz, or COCO/MMPose .json."),
    out: Path = typer.Option(..., help="Output .npz or .json: pose and spread in mm, camera frame, root-relative."),
    artifacts: Path = typer.Option(Path("artifacts"), help="Artifact directory written by posedeploy export."),
    image_size: tuple[float, float] | None = typer.Option(None, help="Image width and height, for pixel input."),
    camera: Path | None = typer.Option(None, help="Camera JSON (f, c or K; width, height), for --aggregate jpma."),
    aggregate: str = typer.Option("mean", help="mean, median (joint-wise) or jpma (reprojection; needs --camera)."),
    hypotheses: int = typer.Option(200, help="S hypotheses per frame."),
    keep_hypotheses: bool = typer.Option(False, help="Also write all hypotheses (npz output)."),
    seed: int = typer.Option(0, min=0, help="Seed of the noise."),
    precision: str = typer.Option("fp32", help="fp32 or fp16 graph (openvino: fp32, fp16 or bf16 compute)."),
    backend: str = typer.Option(
        "auto", help="auto (the fastest installed, measured once and cached), onnxruntime, openvino or tensorrt."
    ),
    min_confidence: float = typer.Option(0.3, help="Joints below this confidence count as missing."),
    max_missing: int = typer.Option(
        4, min=0, max=16, help="Skip frames with more missing joints than this (others are interpolated)."
    ),
    plot: Path | None = typer.Option(None, help="Write a PNG per frame into this folder."),
    gif: bool = typer.Option(False, "--gif", help="With --plot: also an animated GIF per sequence."),
    plot_every: int = typer.Option(1, help="With --plot: every N-th frame."),
) -> None:
    """Lift a file of 2D keypoints to 3D poses with per-joint uncertainty (and pictures)."""
    require_runtime("posedeploy run")
    from posedeploy.files import refuse_overwrite
    from posedeploy.run import run_file

    refuse_overwrite(out, {"--input": input, "--camera": camera})
    results = run_file(
        artifacts,
        input,
        out,
        image_size,
        camera,
        aggregate,
        keep_hypotheses,
        hypotheses,
        seed,
        precision,
        backend,
        min_confidence,
        max_missing,
        plot,
        gif,
        plot_every,
    )
    frames = sum(len(r.pose) for r in results)
    skipped = sum(len(r.skipped) for r in results)
    typer.echo(
        f"wrote {out}: {frames} frames in {len(results)} sequence(s)" + (f", {skipped} skipped" if skipped else "")
    )


@app.command("deploy")
def deploy_command(
    checkpoint: Path | None = typer.Option(
        None, help="Checkpoint file, or a shipped one by name: mgcn_lw (default) or htnet."
    ),
    out: Path = typer.Option(Path("deploy"), help="Folder to write: artifacts/, sequence/, REPORT.md, report.json."),
    compute_capability: list[str] = typer.Option(
        [], help="TensorRT for RTX engine targets, e.g. 8.9 (repeatable); needed where there is no GPU."
    ),
    hypotheses: int = typer.Option(200, help="S hypotheses in parity, bench and the lifted sequence."),
    parity_samples: int = typer.Option(64, help="Built-in test poses for the parity checks."),
    pictures: bool = typer.Option(True, help="Draw the lifted sequence (PNG and GIF; needs matplotlib)."),
    backend: str = typer.Option(
        "auto",
        help="Runtime of the lifted sequence: auto (the fastest installed, measured), onnxruntime, openvino or tensorrt.",
    ),
) -> None:
    """The main job: export (FP32, FP16) -> engine -> parity -> bench -> a lifted sequence -> DIR/REPORT.md."""
    require("posedeploy deploy", "torch", "onnx", "onnxruntime")
    from posedeploy.deploy import REPORT_MD, DeployOptions, DeploySettings, deploy

    options = DeployOptions(
        hypotheses=hypotheses,
        parity_samples=parity_samples,
        compute_capabilities=list(compute_capability),
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
    json_out: Path | None = typer.Option(None, "--json", help="Also write the findings as JSON."),
) -> None:
    """What this machine can run (CPU/GPU, CUDA, TensorRT, ONNX Runtime, PyTorch) and what to install."""
    from posedeploy.doctor import diagnose, format_diagnosis
    from posedeploy.files import write_json

    report = diagnose()
    typer.echo(format_diagnosis(report))
    if json_out is not None:
        write_json(json_out, report)


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
    except ModuleNotFoundError as exc:  # an optional package a code path needs that no check above caught
        top = (exc.name or "").partition(".")[0]
        if top not in EXTRA_OF:
            raise
        typer.echo(
            f"error: this needs the '{top}' package, which is not installed; install it with: "
            f"pip install 'posedeploy[{EXTRA_OF[top]}]'",
            err=True,
        )
        sys.exit(1)
    except OSError as exc:  # a file that cannot be read or written, outside the paths that say more
        where = f": {exc.filename}" if exc.filename else ""
        typer.echo(f"error: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)
    except Exception as exc:
        # typer's usage errors (unknown option, a value of the wrong type): one line, exit 2.
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        ctx, message = getattr(exc, "ctx", None), exc.format_message()
        if not message and ctx is not None:  # no command given: the help
            typer.echo(ctx.get_help())
        else:
            where = ctx.command_path if ctx is not None else "posedeploy"
            typer.echo(
                f"error: {message.splitlines()[0] if message else type(exc).__name__} (see {where} --help)", err=True
            )
        sys.exit(exc.exit_code)
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
