#!/usr/bin/env bash
# The noise study of docs/RESULTS.md for one trained lifter: AVG models (MLP and GCN) on the
# lifter's training-split errors, then every choice on the held-out S8 and the final numbers on S9/S11.
#   scripts/noise_study_h36m.sh RUN KEYPOINTS [VAL_STRIDE] [TEST_STRIDE]
#   e.g. scripts/noise_study_h36m.sh runs/h36m2/mgcn_lw_gt gt 40 20
# RUN/lifter/best.pt must exist (posedeploy train lifter ... --out RUN/lifter).
# 1. train avg --avg mlp and --avg gcn (best epoch on S8's pseudo-labels; AVG_EPOCHS, GCN_STRIDE);
# 2. on S8 (every VAL_STRIDE-th frame): adaptive and uniform noise for both AVG models, and alpha on
#    every joint, at alpha 0.0025 / 0.005 / 0.01, S=200, the same noise draws in every run;
# 3. on S9/S11 (every TEST_STRIDE-th frame) the lifter alone on every frame, and the three noise rules
#    at the alpha the AVG model named in CHOSEN_AVG (default mlp) did best at on S8, with CHOSEN_ALPHA.
set -euo pipefail
run=${1:?run folder holding lifter/best.pt}
keypoints=${2:?keypoints: gt or sh}
val_stride=${3:-40}
test_stride=${4:-20}
data=${H36M:-../shared/data/h36m}
alphas=${ALPHAS:-0.0025,0.005,0.01}
for avg in mlp gcn; do
    if [ ! -f "$run/avg_$avg/best.pt" ]; then
        # The GCN AVG costs ~300x the MLP per sample (28 min per full epoch on one CPU core): it is
        # trained on every GCN_STRIDE-th training frame.
        stride=1; [ "$avg" = gcn ] && stride=${GCN_STRIDE:-10}
        posedeploy train avg --checkpoint "$run/lifter/best.pt" --avg "$avg" --data "$data" --keypoints "$keypoints" \
            --epochs "${AVG_EPOCHS:-20}" --patience 4 --stride "$stride" --out "$run/avg_$avg"
    fi
    noises=adaptive,uniform; [ "$avg" = mlp ] && noises=adaptive,uniform,alpha  # alpha mode needs no AVG: once
    posedeploy eval --checkpoint "$run/avg_$avg/best.pt" --data "$data" --keypoints "$keypoints" --split val \
        --stride "$val_stride" --noise "$noises" --alpha "$alphas" --json "$run/val_$avg.json" \
        | tee "$run/val_$avg.txt"
done
posedeploy eval --checkpoint "$run/lifter/best.pt" --data "$data" --keypoints "$keypoints" --hypotheses 0 \
    --json "$run/test_single.json" | tee "$run/test_single.txt"
if [ -n "${CHOSEN_ALPHA:-}" ]; then
    posedeploy eval --checkpoint "$run/avg_${CHOSEN_AVG:-mlp}/best.pt" --data "$data" --keypoints "$keypoints" \
        --stride "$test_stride" --noise adaptive,uniform,alpha --alpha "$CHOSEN_ALPHA" --json "$run/test_s200.json" \
        | tee "$run/test_s200.txt"
fi
