#!/usr/bin/env bash
# A shipped checkpoint's uncertainty on Human3.6M (SH 2D): its calibration, fitted on S8 with the
# recipe's model trained without S8, carried to the shipped file when that is a refit on S1-S8; then
# S9/S11: the calibrated checkpoint at its S, and the noise rules compared (each calibrated on S8).
#   scripts/uncertainty_h36m.sh BASE SHIPPED ALPHA S CALIBRATION_STRIDE TEST_STRIDE OUT
# BASE: the checkpoint trained on S1 S5 S6 S7; SHIPPED: the file to ship (BASE itself, or its refit).
set -euo pipefail
base=$1 shipped=$2 alpha=$3 s=$4 cal_stride=$5 test_stride=$6 out=$7
data=${DATA:-../shared/data/h36m}
mkdir -p "$out"
posedeploy calibrate --checkpoint "$base" --data "$data" --keypoints sh --alpha "$alpha" --hypotheses "$s" \
  --stride "$cal_stride" --out "$out/base_calibrated.pt" | tee "$out/calibrate.txt"
if [ "$shipped" = "$base" ]; then
  cp "$out/base_calibrated.pt" "$out/calibrated.pt"
else  # a refit's own S8 errors are in-sample: it takes the calibration of the run without S8
  posedeploy calibrate --checkpoint "$shipped" --from "$out/base_calibrated.pt" --alpha "$alpha" \
    --out "$out/calibrated.pt" | tee -a "$out/calibrate.txt"
fi
posedeploy eval --checkpoint "$out/calibrated.pt" --data "$data" --keypoints sh --hypotheses "$s" --best-of "$s" \
  --stride "$test_stride" --json "$out/test.json" --plot "$out/test.png" > "$out/test.txt"
posedeploy eval --checkpoint "$out/base_calibrated.pt" --data "$data" --keypoints sh --hypotheses "$s" \
  --best-of "$s" --stride "$test_stride" --noise adaptive,uniform,alpha --calibration val \
  --json "$out/rules.json" > "$out/rules.txt"
