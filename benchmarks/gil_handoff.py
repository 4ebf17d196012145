"""Why the app shortens Python's GIL switch interval and runs heavy work in worker processes.

    python benchmarks/gil_handoff.py            # about a minute on 2 cores

A page's sampling run is thousands of small torch calls. Each releases the GIL for its kernel and has to
win it back before the next call; while another thread runs plain Python (another session's script
building a figure), each win-back can wait a whole switch interval. This times 10 and 5 Heun steps of the
moons model on 2,000 points (the reverse page's error-against-steps curve, cut short) alone, beside one
busy Python thread at several switch intervals, and in a worker process (ui/workers.py) beside the same
busy thread. It also prints the busy thread's own throughput, the price of a shorter interval.
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
    import torch

    from diffusion.checkpoints import load_checkpoint
    from diffusion.metrics import EnergyReference
    from diffusion.schedules import make_schedule
    from toy_data import get_dataset
    from ui import reverse, workers

    torch.set_num_threads(1)
    dist, sched = get_dataset("moons"), make_schedule("cosine")
    net, _ = load_checkpoint(os.path.join(ROOT, "checkpoints", "moons.safetensors"))
    ref = EnergyReference(dist, 2000, 1)
    loops = [0]

    def busy(stop):
        while not stop.is_set():
            sum(i * i for i in range(1000))
            loops[0] += 1

    def timed(fn, busy_threads: int):
        loops[0] = 0
        stop = threading.Event()
        threads = [threading.Thread(target=busy, args=(stop,)) for _ in range(busy_threads)]
        for t in threads:
            t.start()
        t0 = time.perf_counter()
        fn()
        took = time.perf_counter() - t0
        stop.set()
        for t in threads:
            t.join()
        return took, loops[0] / took

    def here():
        reverse.ed_vs_steps(net, dist, sched, "heun", (5, 10), ref, 1, 1)

    def there():
        workers.offload(reverse.ed_vs_steps, net, dist, sched, "heun", (5, 10), ref, 1, 1)

    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print("| where | switch interval | busy Python threads | seconds | busy thread loops/s |")
    print("|---|---|---|---|---|")
    for interval in (5e-3, 1e-3, 2e-4, 1e-4):
        sys.setswitchinterval(interval)
        for n in (0, 1):
            took, rate = timed(here, n)
            print(f"| server thread | {interval * 1e3:g} ms | {n} | {took:.2f} | {rate:.0f} |", flush=True)
    os.environ.setdefault(workers.ENV, "1")
    workers.offload(os.getpid)  # start the worker outside the timing
    for interval in (5e-3, 2e-4):
        sys.setswitchinterval(interval)
        for n in (0, 1):
            took, rate = timed(there, n)
            print(f"| worker process | {interval * 1e3:g} ms | {n} | {took:.2f} | {rate:.0f} |", flush=True)
    workers.shutdown()


if __name__ == "__main__":
    main()
