"""Training on several processes at once: DistributedDataParallel (DDP) on CPU processes (gloo) or GPUs (nccl).

`torchrun --nproc_per_node=N -m helpers.train ...` starts N copies of the same command. Each copy is one process
that owns one device; torchrun tells it who it is through environment variables: RANK (0 .. WORLD_SIZE-1, unique
over all machines), LOCAL_RANK (0 .. LOCAL_WORLD_SIZE-1 on this machine: which GPU to use), WORLD_SIZE (processes
in the whole job), and MASTER_ADDR/MASTER_PORT (where the processes meet). Every process builds the same model,
reads a different part of each epoch (`DistributedSampler`), and after each `backward` DDP averages the gradients
over all processes, so every copy takes the same optimiser step: N processes with batch B train like one process
with batch N x B.

- `launch_info()`: this process's `LaunchInfo` (rank, local rank, world size, ...), None when not started by
  torchrun; `rank_table(nnodes, nproc_per_node)`: how ranks map onto machines and devices.
- `choose_backend`, `init_distributed` (joins the process group, returns a `helpers.train.Runtime`), `shutdown`.
- `DistributedModel` / `wrap_model`: a DDP wrapper whose `state_dict` is the wrapped model's, so checkpoints of
  one process and of N processes are interchangeable; `distributed_loader`: a loader over this rank's share.
- `combine_moments` and `all_reduce_moments`: the batch mean and variance over all processes, as
  synchronised BatchNorm computes them.
- `demo_training` and the command line `python -m helpers.distributed` (run it under torchrun): a tiny STGCN
  trained for a few steps with a log line per rank, used by notebook 09 and the tests to show that DDP equals
  one process with the combined batch, and what happens when one rank fails.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

__all__ = [
    "BACKENDS",
    "LaunchInfo",
    "launch_info",
    "rank_table",
    "choose_backend",
    "init_distributed",
    "shutdown",
    "DistributedModel",
    "wrap_model",
    "distributed_loader",
    "combine_moments",
    "all_reduce_moments",
    "demo_training",
    "main",
]

#: Backends accepted by `choose_backend` ("auto" picks one of these).
BACKENDS = ("gloo", "nccl")
_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class LaunchInfo:
    """Who this process is in a torchrun job (read from the environment torchrun sets)."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    master_addr: str
    master_port: int


def launch_info(env: dict | None = None) -> LaunchInfo | None:
    """This process's place in a torchrun job, or None when WORLD_SIZE is not set (started on its own).

    env: the environment to read (default os.environ). Raises ValueError when the variables are incomplete
    or inconsistent (e.g. RANK >= WORLD_SIZE), naming what was expected and what was found.
    """
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env:
        return None
    missing = [k for k in _ENV if k not in env]
    if missing:
        raise ValueError(f"WORLD_SIZE is set, so this looks like a distributed launch, but {', '.join(missing)} "
                         f"{'is' if len(missing) == 1 else 'are'} not: expected all of {', '.join(_ENV)} "
                         f"(start the job with torchrun, which sets them)")
    try:
        values = {k.lower(): int(env[k]) for k in _ENV if k != "MASTER_ADDR"}
    except ValueError:
        raise ValueError("expected integers in " + ", ".join(f"{k}={env[k]!r}" for k in _ENV if k != "MASTER_ADDR")
                         ) from None
    info = LaunchInfo(master_addr=env["MASTER_ADDR"], **values)
    if info.world_size < 1 or not 0 <= info.rank < info.world_size:
        raise ValueError(f"expected 0 <= RANK < WORLD_SIZE, got RANK={info.rank}, WORLD_SIZE={info.world_size}")
    if not 0 <= info.local_rank < info.local_world_size <= info.world_size:
        raise ValueError(f"expected 0 <= LOCAL_RANK < LOCAL_WORLD_SIZE <= WORLD_SIZE, got LOCAL_RANK="
                         f"{info.local_rank}, LOCAL_WORLD_SIZE={info.local_world_size}, WORLD_SIZE={info.world_size}")
    return info


def rank_table(nnodes: int, nproc_per_node: int) -> list[dict[str, int]]:
    """The ranks of a job of `nnodes` machines with `nproc_per_node` processes (devices) each, as torchrun
    numbers them: rank = node_rank x nproc_per_node + local_rank, world_size = nnodes x nproc_per_node.

    Returns one dict per process: {"node_rank", "local_rank", "rank", "world_size"}, in rank order.
    """
    for name, value in (("nnodes", nnodes), ("nproc_per_node", nproc_per_node)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    world = nnodes * nproc_per_node
    return [{"node_rank": node, "local_rank": local, "rank": node * nproc_per_node + local, "world_size": world}
            for node in range(nnodes) for local in range(nproc_per_node)]


def choose_backend(requested: str = "auto", device: str | torch.device = "cpu") -> str:
    """The communication backend for processes on `device`: nccl for CUDA GPUs, gloo for CPUs.

    requested: "auto", "gloo" or "nccl". Raises ValueError for an unknown name, for nccl on a CPU device, and
    for a backend this PyTorch build lacks.
    """
    if requested not in ("auto", *BACKENDS):
        raise ValueError(f"backend must be 'auto', 'gloo' or 'nccl', got {requested!r}")
    device = torch.device(device)
    backend = requested if requested != "auto" else ("nccl" if device.type == "cuda" else "gloo")
    if backend == "nccl" and device.type != "cuda":
        raise ValueError(f"backend 'nccl' exchanges tensors between CUDA GPUs, but this process trains on "
                         f"{device.type}: use --backend gloo (or auto) for CPU processes")
    available = dist.is_nccl_available() if backend == "nccl" else dist.is_gloo_available()
    if not available:
        raise ValueError(f"backend {backend!r} is not built into this PyTorch ({torch.__version__}); "
                         f"expected one of {[b for b in BACKENDS if getattr(dist, f'is_{b}_available')()]}")
    return backend


def init_distributed(device: str = "auto", backend: str = "auto", timeout_s: float = 300.0, env: dict | None = None):
    """Join the torchrun job this process belongs to; returns its `helpers.train.Runtime` (device, rank, world).

    device: "auto" (this process's GPU, cuda:LOCAL_RANK, when CUDA is available, else the CPU), "cpu" or "cuda".
    backend: "auto" (nccl on GPUs, gloo on CPUs), "gloo" or "nccl". timeout_s: how long a collective operation
    (an all-reduce, a broadcast) may wait for the other processes before raising instead of hanging.
    Raises ValueError when not launched by torchrun, for a backend that cannot serve the device, or when nccl
    is asked for more processes on this machine than it has GPUs.
    """
    from helpers.train import Runtime

    info = launch_info(env)
    if info is None:
        raise ValueError("init_distributed: expected a process started by torchrun (WORLD_SIZE, RANK, ... set), "
                         "found no WORLD_SIZE; run e.g. torchrun --nproc_per_node=2 -m helpers.train ...")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    use_cuda = device == "cuda" or (device == "auto" and backend != "gloo" and torch.cuda.is_available())
    if use_cuda:
        gpus = torch.cuda.device_count()
        if gpus == 0:
            raise ValueError("device 'cuda' was asked for, but torch sees no CUDA GPU (use --device cpu or auto)")
        if info.local_world_size > gpus:
            raise ValueError(f"world size: torchrun started {info.local_world_size} processes on this machine but "
                             f"it has {gpus} GPU(s); one process per GPU is expected: use --nproc_per_node={gpus} "
                             f"or fewer (or --device cpu for CPU processes with gloo)")
        torch.cuda.set_device(info.local_rank)
        torch_device = torch.device("cuda", info.local_rank)
    else:
        torch_device = torch.device("cpu")
    name = choose_backend(backend, torch_device)
    if not dist.is_initialized():
        dist.init_process_group(name, rank=info.rank, world_size=info.world_size,
                                timeout=timedelta(seconds=timeout_s))
    return Runtime(torch_device, info.rank, info.world_size)


def shutdown() -> None:
    """Leave the process group (when one was joined), so the process exits cleanly."""
    if dist.is_initialized():
        dist.destroy_process_group()


class DistributedModel(DistributedDataParallel):
    """DistributedDataParallel whose `state_dict` / `load_state_dict` are the wrapped model's (no "module."
    prefix), so a checkpoint written by N processes loads into a plain model and the other way round."""

    def state_dict(self, *args, **kwargs):
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)


def wrap_model(model: nn.Module, runtime, seed: int | None = None) -> nn.Module:
    """The model to train in this process: `model` itself for one process, else a `DistributedModel`.

    DDP copies rank 0's parameters and buffers to every rank when it wraps, and averages gradients over the
    ranks in every `backward`. seed: then reseed torch with seed + rank, so random layers (dropout) draw
    different numbers on each rank instead of N identical copies.
    """
    if runtime.world_size == 1:
        return model
    model.to(runtime.device)
    ids = [runtime.device.index] if runtime.device.type == "cuda" else None
    wrapped = DistributedModel(model, device_ids=ids)
    if seed is not None:
        torch.manual_seed(seed + runtime.rank)
    return wrapped


def distributed_loader(dataset: Dataset, batch_size: int, runtime, seed: int, shuffle: bool = True) -> DataLoader:
    """A loader over this rank's share of `dataset`: a `DistributedSampler` shuffles all indices with the same
    seed on every rank (reshuffled per epoch by `sampler.set_epoch`), and rank r takes every world_size-th
    one starting at r. The ranks' batches of one step together are the step's batch of world_size x
    batch_size samples (the dataset is padded by repeating samples to a multiple of world_size)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    sampler = DistributedSampler(dataset, num_replicas=runtime.world_size, rank=runtime.rank, shuffle=shuffle,
                                 seed=seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler)


# --- statistics over all processes (synchronised BatchNorm) ----------------------------------------------
def combine_moments(counts: torch.Tensor, means: torch.Tensor, variances: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (biased) variance of the union of several groups from each group's count, mean and variance.

    counts: (groups,); means, variances: (groups, features). Returns (mean, variance), each (features,):
    mean = sum n_g m_g / n, variance = sum n_g (v_g + (m_g - mean)^2) / n (the spread within each group plus
    the spread of the group means).
    """
    if means.shape != variances.shape or means.ndim != 2 or counts.shape != means.shape[:1]:
        raise ValueError(f"expected counts (groups,), means and variances (groups, features), got "
                         f"{tuple(counts.shape)}, {tuple(means.shape)}, {tuple(variances.shape)}")
    weights = (counts / counts.sum()).to(means.dtype)[:, None]  # (groups, 1)
    mean = (weights * means).sum(dim=0)
    variance = (weights * (variances + (means - mean) ** 2)).sum(dim=0)
    return mean, variance


def all_reduce_moments(x: torch.Tensor, runtime) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of the batch of ALL processes, as `nn.SyncBatchNorm` computes them.

    x: this process's (batch, channels, ...) activations. Each process contributes its sample count, sum and
    sum of squares per channel (one all-reduce of 1 + 2 x channels numbers, in float64); every process gets
    the same (mean, variance), each (channels,). With one process it is the local batch's.
    """
    if x.ndim < 2:
        raise ValueError(f"x must be (batch, channels, ...), got shape {tuple(x.shape)}")
    dims = [0, *range(2, x.ndim)]
    x64 = x.detach().double()
    count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float64, device=x.device)
    packed = torch.cat([count, x64.sum(dim=dims), (x64**2).sum(dim=dims)])
    if runtime.world_size > 1:
        dist.all_reduce(packed)
    n, channels = packed[0], x.shape[1]
    mean = packed[1:1 + channels] / n
    variance = packed[1 + channels:] / n - mean**2
    return mean.to(x.dtype), variance.to(x.dtype)


# --- a tiny run, for the notebook and the tests ---------------------------------------------------------
def demo_training(runtime, batch_size: int = 8, steps: int = 4, seed: int = 0, fail_rank: int | None = None,
                  log: Callable[[str], None] | None = None) -> dict[str, torch.Tensor]:
    """Train a tiny STGCN on the metro data for `steps` optimiser steps with `helpers.train.fit`; returns
    its final weights (a state_dict).

    The samples are the first `steps x world_size x batch_size` training windows without missing targets,
    shuffled by a `distributed_loader` (one pass), loss MSE, SGD with momentum. Each rank trains on
    `batch_size` samples per step, so a run of N processes and a one-process run with batch N x batch_size
    see the same samples at every step and end with the same weights (up to float rounding).
    log: called with one line per rank and step (default: print, flushed).
    fail_rank: that rank raises RuntimeError at step 2 (to show what a failing process does to a job).
    """
    from helpers.data import load_metro, make_splits
    from helpers.stgcn import STGCN, STGCNConfig
    from helpers.train import Callback, fit, make_optimizer

    log = log or _print_line
    ds = load_metro()
    splits = make_splits(ds, 12, 3)
    complete = torch.isfinite(splits.train.targets).flatten(1).all(dim=1).nonzero().flatten()
    needed = steps * runtime.world_size * batch_size
    if len(complete) < needed:
        raise ValueError(f"steps x world_size x batch_size must be at most {len(complete)}, got {needed}")
    samples = torch.utils.data.Subset(splits.train, complete[:needed].tolist())
    torch.manual_seed(seed)
    model = STGCN(STGCNConfig(num_nodes=ds.num_nodes, in_channels=ds.num_channels, blocks=((8, 4, 8),), Ks=2),
                  ds.adjacency)
    trained = wrap_model(model, runtime, seed)
    loader = distributed_loader(samples, batch_size, runtime, seed)
    tag = f"rank {runtime.rank}/{runtime.world_size}"

    class Log(Callback):
        def on_batch_end(self, state):
            if fail_rank == runtime.rank and state.step == 2:
                raise RuntimeError(f"{tag}: simulated failure at step {state.step}")
            log(f"{tag} step {state.step}: {batch_size} samples, local loss {state.batch_loss:.4f}")

    history = fit(trained, loader, nn.functional.mse_loss, make_optimizer("Momentum", trained.parameters(), 0.05),
                  epochs=1, callbacks=[Log()], restore_best=False, runtime=runtime)
    if runtime.is_main:
        log(f"{tag} epoch 1: loss averaged over ranks {history.train_loss[0]:.4f}")
    return model.state_dict()


def _print_line(line: str) -> None:
    """One write per line, flushed: lines of several processes sharing a pipe do not interleave."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """`torchrun --nproc_per_node=N -m helpers.distributed --out weights.pt`: run `demo_training` on N processes;
    rank 0 writes the final weights to --out (atomically). Returns the exit status (2 for a bad launch)."""
    from helpers.data import write_atomic

    p = argparse.ArgumentParser(prog="python -m helpers.distributed", description=main.__doc__)
    p.add_argument("--batch-size", type=int, default=8, help="samples per process and step")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=("auto", *BACKENDS), default="auto")
    p.add_argument("--fail-rank", type=int, help="this rank raises at step 2 (a fault to watch)")
    p.add_argument("--out", help="file for the final weights (torch.save), written by rank 0")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        runtime = init_distributed("cpu", args.backend) if launch_info() else _single_runtime()
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


def _single_runtime():
    from helpers.train import Runtime

    return Runtime()


if __name__ == "__main__":
    from torch.distributed.elastic.multiprocessing.errors import record  # a failing rank's traceback in the summary

    sys.exit(record(main)())
