"""A tiny DistributedDataParallel run to watch: `torchrun --nproc_per_node=N -m helpers.ddp_demo`.

`demo_training` trains a tiny STGCN on the metro data for a few steps with `helpers.train.fit`, one
log line per rank and step. Notebook 10 and the tests use it to show that N processes with batch B
end with the same weights as one process with batch N x B, and what happens to the job when one
rank fails (`--fail-rank`).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Subset

from helpers.data import load_metro, make_splits
from helpers.distributed import (
    BACKENDS,
    Runtime,
    distributed_loader,
    init_distributed,
    launch_info,
    shutdown,
    wrap_model,
)
from helpers.files import write_atomic
from helpers.models import STGCN, STGCNConfig
from helpers.train import Callback, fit, make_optimizer

__all__ = ["demo_training", "main"]


def demo_training(runtime: Runtime, batch_size: int = 8, steps: int = 4, seed: int = 0,
                  fail_rank: int | None = None, log: Callable[[str], None] | None = None
                  ) -> dict[str, torch.Tensor]:
    """Train a tiny STGCN on the metro data for `steps` optimizer steps with `helpers.train.fit`;
    returns its final weights (a state_dict).

    The samples are the first `steps x world_size x batch_size` training windows without missing
    targets, shuffled by a `distributed_loader` (one pass), loss MSE, SGD with momentum. Each rank
    trains on `batch_size` samples per step, so a run of N processes and a one-process run with
    batch N x batch_size see the same samples at every step and end with the same weights (up to
    float rounding). log: called with one line per rank and step (default: print, flushed).
    fail_rank: that rank raises RuntimeError at step 2 (to show what a failing process does to a
    job).
    """
    log = log or _print_line
    ds = load_metro()
    splits = make_splits(ds, 12, 3)
    complete = torch.isfinite(splits.train.targets).flatten(1).all(dim=1).nonzero().flatten()
    needed = steps * runtime.world_size * batch_size
    if len(complete) < needed:
        raise ValueError(f"steps x world_size x batch_size must be at most {len(complete)}, "
                         f"got {needed}")
    samples = Subset(splits.train, complete[:needed].tolist())
    torch.manual_seed(seed)
    config = STGCNConfig(num_nodes=ds.num_nodes, in_channels=ds.num_channels, blocks=((8, 4, 8),),
                         Ks=2)
    model = STGCN(config, ds.adjacency)
    trained = wrap_model(model, runtime, seed)
    loader = distributed_loader(samples, batch_size, runtime, seed)
    tag = f"rank {runtime.rank}/{runtime.world_size}"

    class Log(Callback):
        def on_batch_end(self, state):
            if fail_rank == runtime.rank and state.step == 2:
                raise RuntimeError(f"{tag}: simulated failure at step {state.step}")
            log(f"{tag} step {state.step}: {batch_size} samples, local loss {state.batch_loss:.4f}")

    optimizer = make_optimizer("Momentum", trained.parameters(), 0.05)
    history = fit(trained, loader, nn.functional.mse_loss, optimizer, epochs=1, callbacks=[Log()],
                  restore_best=False, runtime=runtime)
    if runtime.is_main:
        log(f"{tag} epoch 1: loss averaged over ranks {history.train_loss[0]:.4f}")
    return model.state_dict()


def _print_line(line: str) -> None:
    """One write per line, flushed: lines of several processes sharing a pipe do not interleave."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """`torchrun --nproc_per_node=N -m helpers.ddp_demo --out weights.pt`: run `demo_training` on N
    processes; rank 0 writes the final weights to --out (atomically). Returns the exit status (2 for
    a bad launch)."""
    p = argparse.ArgumentParser(prog="python -m helpers.ddp_demo", description=main.__doc__)
    p.add_argument("--batch-size", type=int, default=8, help="samples per process and step")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=("auto", *BACKENDS), default="auto")
    p.add_argument("--fail-rank", type=int, help="this rank raises at step 2 (a fault to watch)")
    p.add_argument("--out", help="file for the final weights (torch.save), written by rank 0")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        runtime = init_distributed("cpu", args.backend) if launch_info() else Runtime()
        weights = demo_training(runtime, args.batch_size, args.steps, args.seed, args.fail_rank)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out and runtime.is_main:
        buffer = io.BytesIO()
        torch.save(weights, buffer)
        write_atomic(Path(args.out), buffer.getvalue())
    shutdown()
    return 0


if __name__ == "__main__":
    from torch.distributed.elastic.multiprocessing.errors import record

    sys.exit(record(main)())  # record: a failing rank's traceback goes to torchrun's summary
