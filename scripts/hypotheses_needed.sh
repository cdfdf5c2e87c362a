#!/usr/bin/env bash
# How many hypotheses a user needs: ECE, AUSE, energy score and best-of-S on the validation split for
# S in {5, 10, 20, 50, 100, 200}, with random and antithetic noise, each calibrated by cross-fitting
# on the split itself (posedeploy eval --calibration crossfit). One JSON per run in OUT.
#   scripts/hypotheses_needed.sh CHECKPOINT DATA KEYPOINTS STRIDE OUT [S_VALUES [DRAWS]]
set -euo pipefail
checkpoint=$1 data=$2 keypoints=$3 stride=$4 out=$5
s_values=${6:-5 10 20 50 100 200} draw_kinds=${7:-random antithetic}
mkdir -p "$out"
for draws in $draw_kinds; do
  for s in $s_values; do
    posedeploy -q eval --checkpoint "$checkpoint" --data "$data" --keypoints "$keypoints" --split val \
      --stride "$stride" --hypotheses "$s" --best-of "$s" --draws "$draws" --calibration crossfit \
      --json "$out/s${s}_${draws}.json" > "$out/s${s}_${draws}.txt"
    echo "S=$s $draws done"
  done
done
