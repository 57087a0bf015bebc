#!/usr/bin/env bash
# On a machine with a CUDA GPU, in the repository root: the GPU tests (tests/test_cuda.py with the layer tests
# they build on), the speed tables of the README (bench-layers at CIFAR and SSD sizes, bench-classify for the
# networks of Tables 4 and 5), and the classification app on the GPU, once with AMP and once under torchrun
# (DDP over NCCL), and the fused standardization (pws.nn.fuse_standardization: its tests, CUDA cases included,
# and bench/bench_fused.py, which also counts the CUDA kernels of one standardization step). Each step's output
# goes to OUTDIR/<step>.txt; the exit status is 1 if any step failed.
#
#   bench/gpu_checks.sh OUTDIR                # PYTHON=... picks the interpreter (default: python)
#   STEPS="fused_tests bench_fused" bench/gpu_checks.sh OUTDIR   # only the named steps (a few minutes)
set -uo pipefail
out=${1:?usage: bench/gpu_checks.sh OUTDIR}
py=${PYTHON:-python}
runs=$(mktemp -d)
mkdir -p "$out"
export WANDB_MODE=${WANDB_MODE:-disabled} PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
failed=0

step() {  # step NAME COMMAND...: run it, keep its output in OUTDIR/NAME.txt, remember a failure
  local name=$1
  shift
  if [[ -n "${STEPS:-}" && " $STEPS " != *" $name "* ]]; then return 0; fi
  echo "== $name: $*"
  "$@" 2>&1 | tee "$out/$name.txt" || { echo "!! $name failed"; failed=1; }
}

classify() {  # classify NAME COMMAND...: a smoke-scale run of the app on the GPU, then its metrics.json
  local name=$1
  shift
  "$@" data=synthetic_cifar scale=smoke train.device=cuda runs_root="$runs/$name" || return 1
  find "$runs/$name" -name metrics.json -exec cat {} +
}

nvidia-smi -L
step gpu_tests "$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_pws_conv.py tests/test_fold.py
step bench_layers "$py" bench/bench_layers.py --sizes 32x64,320x8 --warmup 5 --repeats 30 --inference-repeats 30
step bench_classify "$py" bench/bench_classify.py --warmup 5 --repeats 15
step classify_amp classify amp "$py" -m pws.classify model=resnet_cifar norm=pws train.amp=true
step classify_ddp classify ddp "$py" -m torch.distributed.run --standalone --nproc_per_node 1 -m pws.classify norm=bn
step fused_tests "$py" -m pytest -q -p no:cacheprovider -rs tests/test_fused.py
step bench_fused "$py" bench/bench_fused.py --sizes 32x64,320x8 --warmup 5 --repeats 30 --inference-repeats 30 --std-repeats 50
rm -rf "$runs"
exit $failed
