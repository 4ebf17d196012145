"""Crash safety: a training CLI killed while it writes its checkpoint leaves the previous file loadable.

A real kill (SIGKILL) at many moments during saves: after each one the checkpoint on disk is a whole
old or whole new file, never half of one, and no temporary file is left in its place.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from diffusion.checkpoints import load_checkpoint

# A child that saves a (large) checkpoint over and over, each with a new generation number.
CHILD = r"""
import sys, torch
from diffusion.checkpoints import save_checkpoint
from diffusion.models import DiffusionModel
from diffusion.nets import MLP2D, MLPConfig
from diffusion.schedules import make_schedule
torch.manual_seed(0)
model = DiffusionModel(MLP2D(MLPConfig(width=512, depth=8)), "v", make_schedule("cosine"))  # ~9 MB
gen = 0
print("ready", flush=True)
while True:
    gen += 1
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float(gen))
    save_checkpoint(sys.argv[1], model, generation=gen)
"""


@pytest.mark.slow  # six real processes, each killed mid-save
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_a_kill_during_saving_leaves_a_whole_checkpoint(tmp_path):
    path = tmp_path / "model.safetensors"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    generations = []
    for delay in (0.05, 0.15, 0.3, 0.45, 0.6, 0.9):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], cwd=root, stdout=subprocess.PIPE,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.stdout.readline().strip() == b"ready"
        while not path.exists():  # at least one whole save, so there is a previous file to protect
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        model, config = load_checkpoint(path)  # whole: loads, and every weight is its generation's value
        gen = config["generation"]
        assert all(torch.all(p == float(gen)) for p in model.parameters())
        generations.append(gen)
        for leftover in tmp_path.glob(".tmp-*"):  # a killed writer's temporary file: never the checkpoint itself
            leftover.unlink()
    assert max(generations) > 1, "the kills came after several saves"
