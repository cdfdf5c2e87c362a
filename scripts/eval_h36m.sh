#!/usr/bin/env bash
# Evaluate a trained checkpoint on Human3.6M S9/S11, all 15 actions, as reported in docs/RESULTS.md.
#   scripts/eval_h36m.sh CHECKPOINT KEYPOINTS OUT_PREFIX [STRIDE]
# 1. the lifter alone on every test frame;
# 2. best-of-200 and the aggregated pose with adaptive noise, on every STRIDE-th frame;
# 3. the same with uniform noise (the adaptive sigma's mean on every joint), same frames and noise draws.
set -euo pipefail
ckpt=${1:?checkpoint}
keypoints=${2:?keypoints: gt or sh}
out=${3:?output prefix, e.g. runs/h36m/mgcn_lw_gt/eval}
stride=${4:-5}
data=${H36M:-../shared/data/h36m}
mkdir -p "$(dirname "$out")"
posedeploy eval --checkpoint "$ckpt" --data "$data" --keypoints "$keypoints" --hypotheses 0 \
    --json "${out}_single.json" | tee "${out}_single.txt"
for noise in adaptive uniform; do
    posedeploy eval --checkpoint "$ckpt" --data "$data" --keypoints "$keypoints" --hypotheses 200 \
        --noise "$noise" --stride "$stride" --seed 0 --json "${out}_s200_${noise}.json" | tee "${out}_s200_${noise}.txt"
done
