#!/usr/bin/env bash
# The GPU check (issue 15): at most ~8 minutes on one GPU; never part of the tests.
#
#   benchmarks/gpu_check.sh [hand|body]
#
# 1. benchmarks/gpu_check.py: every stage at full size (supervised, Baseline, +pseudo, +rec),
#    images/s and peak memory in fp32 / bf16 x channels-last off / on, the reference loop in
#    the baselines' style (DataLoader workers, per-sample transforms, fp32) and the ratio, and
#    the renderer's images/s on the GPU  ->  results/gpu_check-<time>/steps.json
# 2. the headless command at full size with a handful of iterations (ResNet-101, 256 px):
#    one process, and with torchrun + DDP (NCCL) over every visible GPU when there are several.
#    (The notebooks take EPOCHS but no iterations or data-size knob, so a full-mode notebook
#    pass would render 40 000 images and train 500 iterations: not in 8 minutes.)
# Everything is written under results/gpu_check-<time>/ with a short summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TASK=${1:-hand}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TQDM_DISABLE=1 SRPOSE_INTERACTIVE=0
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check.sh: no CUDA device (torch.cuda.is_available() is False); this check needs a GPU')"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=results/gpu_check-$STAMP
mkdir -p "$OUT"
CACHE=$(mktemp -d)
trap 'rm -rf "$CACHE"' EXIT
t0=$(date +%s)

echo "== 1/3 training steps at full size, reference loop, renderer"
timeout 330 "$PY" benchmarks/gpu_check.py --task "$TASK" --out "$OUT/steps.json" | tee "$OUT/steps.txt"

SMALL=(-p train.epochs 1 -p train.iters_per_epoch 20 -p benchmark.num_train 640 -p benchmark.num_val 64
       -p benchmark.num_test 64)
echo "== 2/3 headless source_only, full size, 20 iterations, 1 process"
timeout 120 "$PY" -m srpose_lib.train source_only --task "$TASK" --mode full "${SMALL[@]}" \
  --cache-dir "$CACHE/one" 2>&1 | tee "$OUT/headless_1gpu.txt"

NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if [ "$NGPU" -gt 1 ]; then
  echo "== 3/3 the same under torchrun --nproc_per_node $NGPU (DDP, NCCL)"
  timeout 120 "$PY" -m torch.distributed.run --nproc_per_node "$NGPU" -m srpose_lib.train source_only \
    --task "$TASK" --mode full "${SMALL[@]}" --cache-dir "$CACHE/ddp" 2>&1 | tee "$OUT/headless_ddp.txt"
else
  echo "== 3/3 skipped: one GPU visible (torchrun needs several for a DDP figure)" | tee "$OUT/headless_ddp.txt"
fi

{
  echo "# GPU check $STAMP ($TASK)"
  echo
  "$PY" -c "import json, sys; sys.path.insert(0, 'benchmarks'); import gpu_check; r = json.load(open('$OUT/steps.json')); print(r['device_name'], '| torch', r['versions'].get('torch'), '| git', r['git_sha']); print(); print(gpu_check.table(r)); print(); print('renderer:', r.get('renderer'))"
  echo
  echo "headless 1 GPU: $(grep -E 'img/s' "$OUT/headless_1gpu.txt" | tail -1)"
  echo "headless DDP:   $(grep -E 'img/s|skipped' "$OUT/headless_ddp.txt" | tail -1)"
  echo
  echo "wall time: $(( $(date +%s) - t0 )) s"
} > "$OUT/summary.md"
cat "$OUT/summary.md"
