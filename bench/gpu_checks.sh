#!/usr/bin/env bash
# Every GPU measurement of docs/speed.md in one call, in the repository root of a machine with a CUDA GPU.
# Each step has its own time limit (870 s in all: more than one 10-minute call; `STEPS=rehearse` alone takes
# at most 7 minutes), so a slow step cannot take the others' time. Each step's output goes to
# OUTDIR/<step>.txt; OUTDIR/summary.txt lists each step's exit status and seconds; the exit status is 1 if
# any step failed.
#
#   bench/gpu_checks.sh OUTDIR                 # the default steps (below); PYTHON=... picks the interpreter
#   STEPS="fused_tests bench_fused" bench/gpu_checks.sh OUTDIR     # only the named steps
#   STEPS=all bench/gpu_checks.sh OUTDIR       # also the earlier checks (bench_ops, bench_layers, bench_classify, the
#                                              # app with AMP and under torchrun: several more minutes)
#   QUICK=1 bench/gpu_checks.sh OUTDIR         # a dry run on a CPU: every python entry point with
#                                              # --device cpu --quick (checks the script, measures nothing)
#   TIMM_SRC=<a timm package folder> ...       # timm for the comparison where it is not installed (timm is
#                                              # pure Python: the folder of another environment's timm works)
#
# Default steps:
#   install_check scripts/mmcv_check.py check: mmcv's ops compiled with CUDA and equal on CUDA and CPU tensors
#   refusal       a full-scale run with the GPU hidden (CUDA_VISIBLE_DEVICES=""): exit 2 before any work
#   fused_tests   tests/test_fused.py and tests/test_cuda.py: the fused standardization on CUDA against the
#                 per-layer path and eq. 12/13, the CUDA kernels per step flat in depth, timm's kernel
#   bench_fused   VGG-16 stack at 320x320 batch 8 and 32x32 batch 64: plain conv, BN, PWS per layer, PWS
#                 fused, timm's ScaledStdConv2d; each also captured into one CUDA graph per step
#   bench_app     the classification app (resnet_cifar + PWS, batch 128) end to end against its bare step:
#                 defaults, data.on_device, train.fused_pws, train.compile=reduce-overhead
#   rehearse      reproduce_table.py --rehearse on CUDA: one full-scale cell of every model kind (SSD320-VGG16,
#                 SSD320-ResNet-50, Mask R-CNN R50-FPN, ConvPool-CNN-C, the CIFAR ResNet, ResNet-50; generated
#                 stand-ins, mmcv's CUDA ops checked) and Table 1's batch-8 cells of every method; then Table 1's
#                 FPS column (train_fps at batch 8) beside the paper's (RTX 2080 Ti). Tables: OUTDIR/rehearsal/
set -uo pipefail
out=${1:?usage: bench/gpu_checks.sh OUTDIR}
py=${PYTHON:-python}
quick=${QUICK:-}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export WANDB_MODE=${WANDB_MODE:-disabled} PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [[ -n "${TIMM_SRC:-}" ]]; then  # a folder named timm on the path, from wherever it was carried
  timm_dir=$(mktemp -d)
  ln -s "$(cd "$TIMM_SRC" && pwd)" "$timm_dir/timm"
  export PYTHONPATH="$PYTHONPATH:$timm_dir"
fi
runs=$(mktemp -d)
failed=0
default_steps="install_check refusal fused_tests bench_fused bench_app rehearse"
steps=${STEPS:-$default_steps}
if [[ "$steps" == all ]]; then
  steps="$default_steps gpu_tests bench_ops bench_layers bench_classify classify_amp classify_ddp"
fi
dev=(); q=()
if [[ -n "$quick" ]]; then dev=(--device cpu); q=(--quick); fi

step() {  # step NAME LIMIT_S COMMAND...: run it under a time limit, keep its output in OUTDIR/NAME.txt
  local name=$1 limit=$2
  shift 2
  if [[ " $steps " != *" $name "* ]]; then return 0; fi
  echo "== $name (limit ${limit}s): $*"
  local start=$SECONDS rc
  timeout --signal=TERM --kill-after=10 "$limit" bash -c '"$@"' _ "$@" >"$out/$name.txt" 2>&1
  rc=$?
  tail -n 30 "$out/$name.txt"
  echo "$name rc=$rc seconds=$((SECONDS - start))" | tee -a "$out/summary.txt"
  if [[ $rc -ne 0 ]]; then echo "!! $name failed (rc $rc; 124: over its limit)"; failed=1; fi
}

classify() {  # classify NAME COMMAND...: a smoke-scale run of the app on the GPU, then its metrics.json
  local name=$1
  shift
  "$@" data=synthetic_cifar scale=smoke train.device=cuda runs_root="$runs/$name" || return 1
  find "$runs/$name" -name metrics.json -exec cat {} +
}

export -f classify
export runs py
{ nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"; "$py" -c "import torch; print('torch', torch.__version__,
'cuda', torch.cuda.is_available())"; "$py" -c "import mmengine, hydra; print('mmengine', mmengine.__version__)" \
  || echo "mmengine/hydra missing: bench_app and rehearse will fail"; } | tee "$out/machine.txt"
: >"$out/summary.txt"

refusal() {  # a full-scale run that would train on the CPU (the GPU hidden): exit 2 before any work
  local err
  err=$(CUDA_VISIBLE_DEVICES="" "$py" -m pws.classify scale=full data=cifar10 data.root="$runs/none" \
    wandb.mode=disabled hydra.run.dir="$runs/refusal" 2>&1 >/dev/null)
  local rc=$?
  echo "$err" | tail -3
  [[ $rc -eq 2 && "$err" == *"would train on the CPU"* ]]
}
export -f refusal
# the install check: mmcv's ops on CUDA tensors where torch sees a GPU (scripts/install_mmcv.sh's own check)
step install_check 120 "$py" scripts/mmcv_check.py check "$("$py" -c 'import mmcv; print(mmcv.__version__)')"
step refusal 120 refusal
if [[ -n "$quick" ]]; then
  step fused_tests 300 "$py" -m pytest -q -p no:cacheprovider -rs tests/test_fused.py -k "cuda or timm"
else
  step fused_tests 120 "$py" -m pytest -q -p no:cacheprovider -rs tests/test_fused.py tests/test_cuda.py
fi
if [[ -n "$quick" ]]; then
  step bench_fused 300 "$py" bench/bench_fused.py --cuda-graphs "${dev[@]}" "${q[@]}"
else
  step bench_fused 120 "$py" bench/bench_fused.py --sizes 320x8,32x64 --warmup 5 --repeats 20 \
    --inference-repeats 10 --std-repeats 30 --cuda-graphs
fi
if [[ -n "$quick" ]]; then
  step bench_app 300 "$py" bench/bench_app.py --root "$runs/app" --workers 0 "${dev[@]}" "${q[@]}"
else
  step bench_app 210 "$py" bench/bench_app.py --root "$runs/app" --variants app,on_device,fused,compile \
    --steps 150
fi
rehearse() {  # rehearse ITERS BATCH_ARGS...: one cell of every kind, Table 1's batch-8 row; its FPS column
  local iters=$1 rc=0
  shift
  local common=(--scale full --rehearse --iters "$iters" --eval-images 2 --runs "$runs/rehearse" --out "$out")
  "$py" scripts/reproduce_table.py table1 "${common[@]}" "$@" \
    --cells bs8/in,bs8/bn,bs8/gn,bs8/sn,bs8/wn,bs8/pws || rc=1
  "$py" scripts/reproduce_table.py table2 "${common[@]}" "$@" --cells lr1e-2/r50/pws/gamma1e-3 || rc=1
  "$py" scripts/reproduce_table.py table3 "${common[@]}" "$@" --cells mask_rcnn/1x/pws || rc=1
  "$py" scripts/reproduce_table.py table4 "${common[@]}" "$@" --cells plain/lr0.1/pws,residual/lr0.1/pws || rc=1
  "$py" scripts/reproduce_table.py table5 "${common[@]}" "$@" --cells pws || rc=1
  "$py" - "$out/rehearsal/table1.csv" <<'PY' || rc=1
import csv, sys
from pws.paper.published import paper_value
print("Table 1's FPS column: train_fps at batch 8 (images/s; the paper's: an RTX 2080 Ti)")
print("| method | ours | device | paper |")
print("|---|--:|---|--:|")
for row in csv.DictReader(open(sys.argv[1])):
    print(f"| {row['method']} | {row['images_per_s'] or row['status']} | {row['device']} | "
          f"{paper_value('table1', row['cell'], 'train_fps')} |")
PY
  return $rc
}
export -f rehearse
export out
if [[ -n "$quick" ]]; then
  step rehearse 600 rehearse 1 --device cpu --batch 1
else
  step rehearse 420 rehearse 20 --device cuda
fi
step gpu_tests 120 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_pws_conv.py tests/test_fold.py
ops_device=cuda; [[ -n "$quick" ]] && ops_device=cpu
step bench_ops 90 "$py" bench/bench_ops.py --device "$ops_device"   # mmcv's ops against torchvision's
step bench_layers 200 "$py" bench/bench_layers.py --sizes 32x64,320x8 --warmup 5 --repeats 30 --inference-repeats 30
step bench_classify 200 "$py" bench/bench_classify.py --warmup 5 --repeats 15
step classify_amp 150 classify amp "$py" -m pws.classify model=resnet_cifar norm=pws train.amp=true
step classify_ddp 150 classify ddp "$py" -m torch.distributed.run --standalone --nproc_per_node 1 -m pws.classify \
  norm=bn
rm -rf "$runs" "${timm_dir:-/nonexistent}"
exit $failed
