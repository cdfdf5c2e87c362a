#!/usr/bin/env bash
# CPU benchmark of docs/PERFORMANCE.md: both lifters, PyTorch eager vs ONNX Runtime FP32, in one
# interleaved run each. Usage: scripts/bench_cpu.sh OUT_DIR [MGCN_CHECKPOINT] [HTNET_CHECKPOINT]
# Checkpoints default to the shipped MGCN-lw model and to seeded random HTNet weights (speed does
# not depend on the values of the weights).
set -euo pipefail
out=${1:?output folder}
mgcn=${2:-$(python -c "from posedeploy.assets import DEFAULT_CHECKPOINT; print(DEFAULT_CHECKPOINT)")}
htnet=${3:-}
mkdir -p "$out"
if [ -z "$htnet" ]; then
    htnet="$out/htnet_random.pt"
    python -c "import sys; sys.path.insert(0, 'tests'); from helpers import random_checkpoint; from pathlib import Path; random_checkpoint(Path('$htnet'), lifter='htnet')"
fi
posedeploy export --checkpoint "$mgcn" --out "$out/mgcn_lw" --fp16
posedeploy export --checkpoint "$htnet" --out "$out/htnet" --fp16
posedeploy bench --artifacts "$out/mgcn_lw" --checkpoint "$mgcn" --backend torch,onnxruntime --precision fp32,fp16 \
    --batch 1,16,64 --hypotheses 1,50,200 --stream-fps 30 --json "$out/mgcn_lw.json" --plot "$out/mgcn_lw.png" | tee "$out/mgcn_lw.txt"
posedeploy bench --artifacts "$out/htnet" --checkpoint "$htnet" --backend torch,onnxruntime --precision fp32 \
    --batch 1,16 --hypotheses 1,50,200 --min-seconds 1 --min-repeats 3 --json "$out/htnet.json" --plot "$out/htnet.png" | tee "$out/htnet.txt"
