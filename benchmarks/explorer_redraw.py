"""How long the optimiser explorer (notebook 05) takes to redraw after a control changes.

    .venv/bin/python benchmarks/explorer_redraw.py

Measures `OptimizerExplorer.redraw` (paths + figure + PNG) on each surface, with the surface's
suggested steps and with the maximum of 600 steps, all five optimisers ticked, one torch thread
(as notebook 05 sets it). Prints the median and worst of several redraws; the issue asks for "well
under a second". Timings vary with the machine and its load; they are reported, never asserted.
"""

from __future__ import annotations

import statistics
import time

import torch

from helpers.optim import OPTIMIZERS, SURFACES
from helpers.widgets import EXPLORER_LRS, OptimizerExplorer


def main(repeats: int = 5) -> None:
    torch.set_num_threads(1)  # notebook 05: setup_notebook(seed=0, threads=1)
    explorer = OptimizerExplorer(optimizers=list(OPTIMIZERS))
    print(f"{'surface':22s} {'steps':>5s} {'median s':>9s} {'worst s':>8s}")
    for name, surface in SURFACES.items():
        explorer.surface.value = name
        for steps in (surface.steps, explorer.steps.max):
            explorer.steps.value = steps
            times = []
            for i in range(repeats):
                t0 = time.perf_counter()
                sgd_lr = EXPLORER_LRS[name]["SGD"]
                explorer.lrs["SGD"].value = sgd_lr * (1.1 if i % 2 else 1 / 1.1)  # each change redraws once
                times.append(time.perf_counter() - t0)
            print(f"{name:22s} {steps:5d} {statistics.median(times):9.3f} {max(times):8.3f}")


if __name__ == "__main__":
    main()
