#!/usr/bin/env bash
# CPU backends of docs/PERFORMANCE.md (issue: OpenVINO, INT8, auto): both lifters, PyTorch eager vs
# ONNX Runtime and OpenVINO, FP32 and INT8, S=200, B in {1, 16}, in one interleaved bench run per
# lifter; then the auto choice for each. Run it on an otherwise idle machine.
# Usage: scripts/bench_cpu_backends.sh OUT_DIR [H36M_FOLDER]
# The HTNet weights are seeded random ones (speed does not depend on their values); INT8 is
# calibrated on the Human3.6M training split when the folder is given, else on the built-in one.
set -euo pipefail
out=${1:?output folder}
data=${2:-synthetic}
mgcn=$(python -c "from posedeploy.assets import DEFAULT_CHECKPOINT; print(DEFAULT_CHECKPOINT)")
htnet="$out/htnet_random.pt"
mkdir -p "$out"
[ -f "$htnet" ] || python -c "import sys; sys.path.insert(0, 'tests'); from helpers import random_checkpoint; from pathlib import Path; random_checkpoint(Path('$htnet'), lifter='htnet')"
posedeploy export --checkpoint "$mgcn" --out "$out/mgcn_lw" --int8 --calibration-data "$data"
posedeploy export --checkpoint "$htnet" --out "$out/htnet" --int8 --calibration-data synthetic
for lifter in mgcn_lw htnet; do
    ckpt=$([ $lifter = mgcn_lw ] && echo "$mgcn" || echo "$htnet")
    posedeploy bench --artifacts "$out/$lifter" --checkpoint "$ckpt" --backend torch,onnxruntime,openvino \
        --precision fp32,int8 --batch 1,16 --hypotheses 200 --min-seconds 2 --min-repeats 5 \
        --json "$out/$lifter.json" | tee "$out/$lifter.txt"
    POSEDEPLOY_CACHE="$out/cache" python -c "
from posedeploy.artifacts import read_manifest
from posedeploy.runtime.backend_choice import choose_backend
print('$lifter', choose_backend(read_manifest('$out/$lifter')).describe())" | tee -a "$out/auto.txt"
done
