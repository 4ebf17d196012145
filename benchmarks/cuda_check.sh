#!/usr/bin/env bash
# The CUDA path in one bounded run, for a machine with an NVIDIA GPU (nothing is downloaded):
#
#     bash benchmarks/cuda_check.sh [OUTDIR]      (default artifacts/cuda; about 10 minutes on one H100)
#
# 1. the shipped MNIST recipe's training time, in float32 (the default) and under bf16 autocast (--amp);
# 2. the 2-D recipe; 3. 16 digits at 20 NFE; 4. benchmarks/samplers_mnist.py on the GPU, guidance in the
# default interval and over the whole journey, and where the interval should start; 5. the core tests,
# where "auto" now means the GPU; 6. a 4x longer MNIST run and its figures. Each stage has its own time limit, so one failure costs
# only its stage. JSON and the trained checkpoints land in OUTDIR; tee the output to keep the log.
set -u
out=${1:-artifacts/cuda}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=.
py=${PYTHON:-python3}
stage() { echo; echo "== $1 ($(date +%T))"; }

stage "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$py -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(), 'bf16', torch.cuda.is_bf16_supported())"

stage "MNIST, shipped recipe (4,673 steps, batch 64), float32"
timeout 120 $py -m diffusion.train --dataset mnist --steps 4673 --device cuda --quiet --out "$out/mnist_cuda.safetensors"
stage "MNIST, 1,000 steps in float32 and under bf16 autocast (--amp)"
timeout 60 $py -m diffusion.train --dataset mnist --steps 1000 --device cuda --quiet --out /tmp/mnist_fp32.safetensors
timeout 60 $py -m diffusion.train --dataset mnist --steps 1000 --device cuda --amp --quiet --out /tmp/mnist_bf16.safetensors
stage "moons, shipped 2-D recipe (4,000 steps, batch 1,024)"
timeout 60 $py -m diffusion.train --dataset moons --device cuda --quiet --out /tmp/moons_cuda.safetensors

stage "16 digits at 20 NFE (DPM-Solver++), guided w = 1"
timeout 60 $py - <<'PY'
import time, torch
from diffusion.checkpoints import load_checkpoint
from diffusion.samplers import guided, prior_sample, sample
m = load_checkpoint("checkpoints/mnist.safetensors")[0].to("cuda")
lab = torch.arange(16, device="cuda") % 10
for i in range(4):
    torch.cuda.synchronize(); t0 = time.perf_counter()
    x = prior_sample(m.schedule, (16, 1, 28, 28), generator=torch.Generator().manual_seed(i)).to("cuda")
    y = sample(guided(m, lab, 1.0), x, m.schedule, "dpmpp_2m", 20, "uniform_logsnr")
    torch.cuda.synchronize(); print(f"run {i}: {time.perf_counter() - t0:.3f} s", flush=True)
PY

stage "sampler table, n = 2000, guidance in the default interval"
timeout 150 $py benchmarks/samplers_mnist.py --device cuda --n 2000 --interval -2 4 --json "$out/table_interval.json" 2>/dev/null

stage "sampler table, n = 2000, guidance everywhere"
timeout 150 $py benchmarks/samplers_mnist.py --device cuda --n 2000 --json "$out/table_full.json" 2>/dev/null
stage "where the guidance interval starts: dpmpp_2m, 20 NFE, n = 2000"
for lo in -3 -2.5 -1.5 -1; do
  timeout 40 $py -m diffusion.evaluate --checkpoint checkpoints/mnist.safetensors --device cuda --n 2000 \
    --guidance 1 2 3 --interval $lo 4 --quiet > /tmp/iv.json \
    && $py -c "import json; r = json.load(open('/tmp/iv.json')); [print('interval', x['interval'], 'w', x['guidance'], 'accuracy', x['accuracy'], 'fd ratio', x['fd_ratio']) for x in r['results']]"
done

stage "core tests (device auto = cuda)"
timeout 90 $py -m pytest -q -x -p no:cacheprovider tests/test_training.py tests/test_unet.py 2>&1 | tail -4

stage "MNIST, 4x the shipped steps (18,692), bf16"
timeout 130 $py -m diffusion.train --dataset mnist --steps 18692 --device cuda --quiet --out "$out/mnist_long.safetensors" \
  && timeout 90 $py -m diffusion.evaluate --checkpoint "$out/mnist_long.safetensors" --device cuda --n 2000 \
       --guidance 0 1 2 3 --interval -2 4 --quiet > "$out/mnist_long_eval.json" \
  && $py -c "import json; r = json.load(open('$out/mnist_long_eval.json')); print('floor', r['fd_floor']); [print(x['guidance'], x['accuracy'], x['fd_ratio']) for x in r['results']]"
stage "done"
