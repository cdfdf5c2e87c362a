#!/usr/bin/env bash
# Issue #33 on a lent GPU machine, in one or two device calls: every GPU check and measurement, each
# step's output and exit status written under OUT (text and JSON), a summary.md at the end.
#   scripts/gpu_proof.sh OUT [all|mgcn_lw|htnet]
# Run it after ../shared/gpu/on-device (ONNX Runtime GPU, pycuda, the Human3.6M files in place).
# PROOF_DEVICE=cpu runs the same steps on this CPU at toy sizes, to test the script before device time is spent.
set -uo pipefail  # not -e: a failing step is recorded and the next one still runs
out=$(mkdir -p "$1" && cd "$1" && pwd) part=${2:-all}
work=$(mktemp -d)
data=${DATA:-../shared/data/h36m}
if [ "${PROOF_DEVICE:-cuda}" = cpu ]; then
  device=cpu provider=cpu batches=1,2 hypotheses=5 samples=8 seconds=0 calls=3 marker="gpu"
else
  device=cuda provider=cuda batches=1,16,64,256 hypotheses=200 samples=256 seconds=0.5 calls=50 marker="gpu or trt"
fi
lifters=(mgcn_lw htnet)
[ "$part" = all ] || lifters=("$part")

step() {  # step NAME COMMAND...: its output in OUT/NAME.txt, its status and time in OUT/steps.jsonl
  local name=$1 start rc
  shift
  start=$(date +%s)
  echo "== $name: $*" | tee "$out/$name.txt"
  "$@" >> "$out/$name.txt" 2>&1
  rc=$?
  printf '{"step": "%s", "rc": %d, "seconds": %d}\n' "$name" "$rc" "$(($(date +%s) - start))" | tee -a "$out/steps.jsonl"
}

step versions python - <<'PY'
import importlib, platform, subprocess
print("python", platform.python_version())
try:
    print(subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True, check=True).stdout.strip())
except (OSError, subprocess.CalledProcessError) as exc:
    print("nvidia-smi:", exc)
for name in ("torch", "onnxruntime", "cuda.bindings", "pycuda", "numpy", "tensorrt", "tensorrt_rtx"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as exc:  # a missing or broken package is a finding, not a failure of this step
        print(name, "missing:", type(exc).__name__, exc)
import torch
if torch.cuda.is_available():
    print("torch cuda", torch.version.cuda, torch.cuda.get_device_name(0))
import onnxruntime
print("onnxruntime providers", onnxruntime.get_available_providers())
PY

for name in "${lifters[@]}"; do
  step "export_$name" posedeploy export --checkpoint "$name" --out "$work/$name" --fp16 --in-graph-noise
done
[ "$part" = htnet ] || step pytest_gpu python -m pytest -m "$marker" -rs -p no:cacheprovider tests/test_gpu.py

for name in "${lifters[@]}"; do
  for precision in fp32 fp16; do
    step "parity_${name}_$precision" posedeploy parity --artifacts "$work/$name" --checkpoint "$name" \
      --provider "$provider" --precision "$precision" --data "$data" --keypoints sh --samples "$samples" \
      --hypotheses "$hypotheses" --json "$out/parity_${name}_$precision.json"
  done
  step "parity_${name}_device_noise" posedeploy parity --artifacts "$work/$name" --checkpoint "$name" \
    --provider "$provider" --noise-source device --data "$data" --keypoints sh --samples "$samples" \
    --hypotheses "$hypotheses" --json "$out/parity_${name}_device_noise.json"
  step "bench_$name" posedeploy bench --artifacts "$work/$name" --checkpoint "$name" \
    --backend torch,torch-compile,onnxruntime --precision fp32,fp16 --device "$device" --batch "$batches" \
    --hypotheses "$hypotheses" --min-seconds "$seconds" --min-repeats 10 --streaming --stream-frames 100 \
    --json "$out/bench_$name.json"
  step "noise_source_$name" python scripts/noise_source_timing.py "$work/$name" --provider "$provider" \
    --batch 1,64 --hypotheses "$hypotheses" --precision fp32,fp16 --calls "$calls" --json "$out/noise_source_$name.json"
done
python scripts/gpu_proof_summary.py "$out" > "$out/summary.md" 2> "$out/summary.err"
cat "$out/summary.md"
rm -rf "$work"
