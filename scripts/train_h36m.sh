#!/usr/bin/env bash
# Train a PRPose lifter and its AVG model on Human3.6M, for one keypoint source.
#   scripts/train_h36m.sh LIFTER KEYPOINTS [EPOCHS] [extra train-lifter options...]
# e.g. scripts/train_h36m.sh mgcn_lw gt 30
#      AVG_EPOCHS=10 AVG_STRIDE=4 scripts/train_h36m.sh htnet gt 15 --stride 2 --val-stride 4
# Writes runs/h36m/LIFTER_KEYPOINTS/{lifter,avg}/; the final checkpoint is .../avg/best.pt.
set -euo pipefail
lifter=${1:?lifter: mgcn_lw or htnet}
keypoints=${2:?keypoints: gt or sh}
epochs=${3:-30}
shift $(( $# < 3 ? $# : 3 ))
data=${H36M:-../shared/data/h36m}
run=runs/h36m/${lifter}_${keypoints}
posedeploy train lifter --lifter "$lifter" --data "$data" --keypoints "$keypoints" \
    --epochs "$epochs" --out "$run/lifter" "$@"
posedeploy train avg --checkpoint "$run/lifter/best.pt" --data "$data" --keypoints "$keypoints" \
    --epochs "${AVG_EPOCHS:-30}" --stride "${AVG_STRIDE:-1}" --out "$run/avg"
