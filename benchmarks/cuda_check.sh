#!/usr/bin/env bash
# The CUDA path, for a machine with an NVIDIA GPU (nothing is downloaded):
#
#     bash benchmarks/cuda_check.sh [OUTDIR] [train|sample|captured|all]    (default artifacts/cuda all)
#
# train (about 7 minutes on one H100): MNIST training time at 1,000 and 2,000 steps in float32 (the
# default), at batch 512, under bf16 autocast (--amp), and the shipped recipe's 9,000 steps; the 2-D
# recipe; the core tests, where "auto" now means the GPU.
# sample (about 5 minutes): 16 digits at 20 NFE; benchmarks/samplers_mnist.py at n = 2000 with guidance
# in the default interval and over the whole journey; where the interval should start.
# captured (about 8 minutes, one device run by itself): benchmarks/gpu_train.py, steps/s of the eager loop
# against the replayed CUDA graph at batches 64, 256, 1024, then the training time to the MNIST targets;
# its checkpoint is OUTDIR/mnist_captured.safetensors, its figures OUTDIR/gpu_train.json.
# Each stage has its own time limit, so one failure costs only its stage. JSON and a trained checkpoint
# land in OUTDIR; tee the output to keep the log. docs/measurements.md's "Training on a GPU" figures come from here.
set -u
out=${1:-artifacts/cuda}
what=${2:-all}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=.
py=${PYTHON:-python3}
stage() { echo; echo "== $1 ($(date +%T))"; }
train() { timeout "$1" $py -m diffusion.train --dataset "$2" --device cuda --quiet --capture off "${@:3}"; }  # the eager loop

stage "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$py -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(), 'bf16', torch.cuda.is_bf16_supported())"

if [ "$what" = captured ] || [ "$what" = all ]; then
  stage "captured against eager, and the time to the MNIST targets (benchmarks/gpu_train.py)"
  timeout 570 $py benchmarks/gpu_train.py --device cuda --out "$out/mnist_captured.safetensors" --json "$out/gpu_train.json"
  stage "captured-step tests on the GPU"
  timeout 120 $py -m pytest -q -x -p no:cacheprovider tests/test_captured.py 2>&1 | tail -4
fi

if [ "$what" = train ] || [ "$what" = all ]; then
  stage "MNIST, float32: 1,000 steps, 2,000 steps, and 500 steps at batch 512"
  train 60 mnist --steps 1000 --out /tmp/m1.safetensors
  train 80 mnist --steps 2000 --out /tmp/m2.safetensors
  train 60 mnist --steps 500 --batch 512 --out /tmp/m3.safetensors
  stage "MNIST, 1,000 steps under bf16 autocast (--amp)"
  train 90 mnist --steps 1000 --amp --out /tmp/m4.safetensors
  stage "MNIST, the shipped recipe (9,000 steps, batch 64), float32"
  train 200 mnist --steps 9000 --out "$out/mnist_cuda.safetensors"
  stage "moons, the shipped 2-D recipe (4,000 steps, batch 1,024)"
  train 60 moons --out /tmp/moons_cuda.safetensors
  stage "core tests (device auto = cuda)"
  timeout 90 $py -m pytest -q -x -p no:cacheprovider tests/test_training.py tests/test_unet.py 2>&1 | tail -4
fi

if [ "$what" = sample ] || [ "$what" = all ]; then
  stage "16 digits at 20 NFE (DPM-Solver++), guided w = 1"
  timeout 60 $py - <<'PY'
import time, torch
from diffusion.checkpoints import load_checkpoint
from diffusion.samplers import guided, prior_sample, sample
m = load_checkpoint("checkpoints/mnist.safetensors")[0].to("cuda")
lab = torch.arange(16, device="cuda") % 10
for i in range(4):
    torch.cuda.synchronize(); t0 = time.perf_counter()
    x = prior_sample(m.schedule, (16, 1, 28, 28), seed=i).to("cuda")
    y = sample(guided(m, lab, 1.0), x, m.schedule, "dpmpp_2m", 20, "uniform_logsnr")
    torch.cuda.synchronize(); print(f"run {i}: {time.perf_counter() - t0:.3f} s", flush=True)
PY
  stage "sampler table, n = 2000, guidance for -2 <= lambda < 4"
  timeout 150 $py benchmarks/samplers_mnist.py --device cuda --n 2000 --interval -2 4 --json "$out/table_interval.json" 2>/dev/null
  stage "sampler table, n = 2000, guidance everywhere"
  timeout 150 $py benchmarks/samplers_mnist.py --device cuda --n 2000 --json "$out/table_full.json" 2>/dev/null
  stage "where the guidance interval starts: dpmpp_2m, 20 NFE, n = 2000"
  for lo in -3 -2.5 -1.5 -1; do
    timeout 40 $py -m diffusion.evaluate --checkpoint checkpoints/mnist.safetensors --device cuda --n 2000 \
      --guidance 1 2 3 --interval $lo 4 --quiet > /tmp/iv.json \
      && $py -c "import json; r = json.load(open('/tmp/iv.json')); [print('interval', x['interval'], 'w', x['guidance'], 'accuracy', x['accuracy'], 'fd ratio', x['fd_ratio']) for x in r['results']]"
  done
fi
stage "done"
