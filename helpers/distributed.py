"""Training on several processes at once: DistributedDataParallel (DDP) on CPU processes (gloo) or
GPUs (nccl), and the `Runtime` that tells a training run where it executes.

`torchrun --nproc_per_node=N -m helpers.train ...` starts N copies of the same command. Each copy is
one process that owns one device; torchrun tells it who it is through environment variables: RANK
(0 .. WORLD_SIZE-1, unique over all machines), LOCAL_RANK (0 .. LOCAL_WORLD_SIZE-1 on this machine:
which GPU to use), WORLD_SIZE (processes in the whole job), and MASTER_ADDR/MASTER_PORT (where the
processes meet). Every process builds the same model, reads a different part of each epoch
(`DistributedSampler`), and after each `backward` DDP averages the gradients over all processes, so
every copy takes the same optimizer step: N processes with batch B train like one process with
batch N x B.

- `Runtime`: the device (and process rank) a run uses; the one place that decides who logs and
  writes. `setup_runtime(device, backend)`: this process's Runtime, joining the torchrun job if any.
- `launch_info()`: this process's `LaunchInfo` (rank, local rank, world size, ...), None when not
  started by torchrun; `rank_table(nnodes, nproc_per_node)`: how ranks map onto machines and
  devices.
- `choose_backend`, `init_distributed` (joins the process group, returns a `Runtime`), `shutdown`.
- `DistributedModel` / `wrap_model`: a DDP wrapper whose `state_dict` is the wrapped model's, so
  checkpoints of one process and of N processes are interchangeable; `distributed_loader`: a loader
  over this rank's share.
- `combine_moments` and `all_reduce_moments`: the batch mean and variance over all processes, as
  synchronised BatchNorm computes them.

A tiny DDP run to watch (notebook 10, the tests) is `torchrun -m helpers.ddp_demo`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from helpers.checks import check_choice, check_int
from helpers.data import shuffled_loader

__all__ = [
    "BACKENDS",
    "Runtime",
    "setup_runtime",
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
]

#: Backends accepted by `choose_backend` ("auto" picks one of these).
BACKENDS = ("gloo", "nccl")
_DEVICES = ("auto", "cpu", "cuda")
_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


# --- where a run executes -------------------------------------------------------------------------
@dataclass
class Runtime:
    """Where a run executes: its device, and its process's rank among `world_size` processes.

    One process (the default) is rank 0 of 1. Everything that must happen once per run rather than
    once per process (progress bars, printing, writing checkpoints and results) asks `is_main`; the
    loss of an epoch is averaged over processes by `mean_over_processes`, and the training loader is
    built by `train_loader`, so a multi-process (DistributedDataParallel) run changes these places
    only.
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean_over_processes(self, value: float) -> float:
        """The mean of `value` over all processes (the value itself for a single process)."""
        if self.world_size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.item() / self.world_size

    def train_loader(self, dataset: Dataset, batch_size: int, seed: int) -> DataLoader:
        """A shuffling loader with its own seeded generator (reproducible, and saved in
        checkpoints); with several processes, this process's share of each epoch
        (`distributed_loader`)."""
        if self.world_size > 1:
            return distributed_loader(dataset, batch_size, self, seed)
        return shuffled_loader(dataset, batch_size, seed)

    def value_from_main(self, compute: Callable[[], float]) -> float:
        """compute() run by the main process only (e.g. a validation pass); every process gets its
        value."""
        if self.world_size == 1:
            return compute()
        value = compute() if self.is_main else 0.0
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return t.item()

    def check_memory(self, build: Callable[[], nn.Module], example: tuple[int, ...], sizes: str
                     ) -> None:
        """Refuse, before anything is allocated, a model too large to train on this device.

        build() makes the model; it runs on the "meta" device (shapes, no memory), with one batch of
        shape `example`. Training needs about 4 bytes x (5 per parameter: weights, gradients, Adam's
        two moments, the best epoch's copy; 2 per activation: kept for backward, and its
        gradient); more than the device's memory raises a one-line ValueError naming `sizes`."""
        with torch.device("meta"):
            model = build().to("meta")
            params = sum(p.numel() for p in model.parameters())
            outputs = []
            hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out))
                     for m in model.modules()]
            try:
                model(torch.empty(example))
            finally:
                for hook in hooks:
                    hook.remove()
        acts = sum(t.numel() for out in outputs for t in (out if isinstance(out, tuple) else [out])
                   if isinstance(t, torch.Tensor))
        need = 4 * (5 * params + 2 * acts)
        have = (torch.cuda.get_device_properties(self.device).total_memory
                if self.device.type == "cuda" else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        if need > have:
            raise ValueError(f"{sizes}: training would need about {need / 2**30:,.0f} GiB ({params:.2g} "
                             f"parameters, {acts:.2g} activations per batch), more than the "
                             f"{have / 2**30:,.0f} GiB of {self.device.type} memory here; expected smaller sizes")

    def wrap(self, model: nn.Module, seed: int | None = None) -> nn.Module:
        """The model to train: itself for one process, else DDP's wrapper (`wrap_model`)."""
        if self.world_size == 1:
            return model
        return wrap_model(model, self, seed)


def setup_runtime(device: str | torch.device = "auto", backend: str = "auto") -> Runtime:
    """The `Runtime` of this process: device "auto" (CUDA when available, else CPU), "cpu" or
    "cuda".

    Started by torchrun with WORLD_SIZE > 1, the process joins the job (`init_distributed`: backend
    "auto", "gloo" or "nccl") and trains on its own device as one rank of the world.
    """
    info = launch_info()
    if info is not None and info.world_size > 1:
        return init_distributed(str(device), backend)
    check_choice("backend", backend, ("auto", *BACKENDS))
    if isinstance(device, torch.device):
        return Runtime(device)
    check_choice("device", device, _DEVICES)
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA GPU "
                         "(use --device cpu or auto)")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return Runtime(torch.device(device))


# --- who am I: torchrun's variables ---------------------------------------------------------------
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
    """This process's place in a torchrun job, or None when WORLD_SIZE is not set (started on its
    own).

    env: the environment to read (default os.environ). Raises ValueError when the variables are
    incomplete or inconsistent (e.g. RANK >= WORLD_SIZE), naming what was expected and what was
    found.
    """
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env:
        return None
    missing = [k for k in _ENV if k not in env]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ValueError(f"WORLD_SIZE is set, so this looks like a distributed launch, but "
                         f"{', '.join(missing)} {verb} not: expected all of {', '.join(_ENV)} "
                         f"(start the job with torchrun, which sets them)")
    numbers = [k for k in _ENV if k != "MASTER_ADDR"]
    try:
        values = {k.lower(): int(env[k]) for k in numbers}
    except ValueError:
        raise ValueError("expected integers in " + ", ".join(f"{k}={env[k]!r}" for k in numbers)
                         ) from None
    info = LaunchInfo(master_addr=env["MASTER_ADDR"], **values)
    if info.world_size < 1 or not 0 <= info.rank < info.world_size:
        raise ValueError(f"expected 0 <= RANK < WORLD_SIZE, got RANK={info.rank}, "
                         f"WORLD_SIZE={info.world_size}")
    if not 0 <= info.local_rank < info.local_world_size <= info.world_size:
        raise ValueError(f"expected 0 <= LOCAL_RANK < LOCAL_WORLD_SIZE <= WORLD_SIZE, got "
                         f"LOCAL_RANK={info.local_rank}, LOCAL_WORLD_SIZE={info.local_world_size}, "
                         f"WORLD_SIZE={info.world_size}")
    return info


def rank_table(nnodes: int, nproc_per_node: int) -> list[dict[str, int]]:
    """The ranks of a job of `nnodes` machines with `nproc_per_node` processes (devices) each, as
    torchrun numbers them: rank = node_rank x nproc_per_node + local_rank, world_size = nnodes x
    nproc_per_node.

    Returns one dict per process: {"node_rank", "local_rank", "rank", "world_size"}, in rank order.
    """
    check_int("nnodes", nnodes)
    check_int("nproc_per_node", nproc_per_node)
    world = nnodes * nproc_per_node
    return [{"node_rank": node, "local_rank": local, "rank": node * nproc_per_node + local,
             "world_size": world}
            for node in range(nnodes) for local in range(nproc_per_node)]


# --- joining and leaving the job ------------------------------------------------------------------
def choose_backend(requested: str = "auto", device: str | torch.device = "cpu") -> str:
    """The communication backend for processes on `device`: nccl for CUDA GPUs, gloo for CPUs.

    requested: "auto", "gloo" or "nccl". Raises ValueError for an unknown name, for nccl on a CPU
    device, and for a backend this PyTorch build lacks.
    """
    check_choice("backend", requested, ("auto", *BACKENDS))
    device = torch.device(device)
    backend = requested if requested != "auto" else ("nccl" if device.type == "cuda" else "gloo")
    if backend == "nccl" and device.type != "cuda":
        raise ValueError(f"backend 'nccl' exchanges tensors between CUDA GPUs, but this process "
                         f"trains on {device.type}: use --backend gloo (or auto) for CPU processes")
    available = dist.is_nccl_available() if backend == "nccl" else dist.is_gloo_available()
    if not available:
        built = [b for b in BACKENDS if getattr(dist, f"is_{b}_available")()]
        raise ValueError(f"backend {backend!r} is not built into this PyTorch "
                         f"({torch.__version__}); expected one of {built}")
    return backend


def init_distributed(device: str = "auto", backend: str = "auto", timeout_s: float = 300.0,
                     env: dict | None = None) -> Runtime:
    """Join the torchrun job this process belongs to; returns its `Runtime` (device, rank, world).

    device: "auto" (this process's GPU, cuda:LOCAL_RANK, when CUDA is available, else the CPU),
    "cpu" or "cuda". backend: "auto" (nccl on GPUs, gloo on CPUs), "gloo" or "nccl". timeout_s: how
    long a collective operation (an all-reduce, a broadcast) may wait for the other processes
    before raising instead of hanging. Raises ValueError when not launched by torchrun, for a
    backend that cannot serve the device, or when nccl is asked for more processes on this machine
    than it has GPUs.
    """
    info = launch_info(env)
    if info is None:
        raise ValueError("init_distributed: expected a process started by torchrun (WORLD_SIZE, "
                         "RANK, ... set), found no WORLD_SIZE; run e.g. torchrun "
                         "--nproc_per_node=2 -m helpers.train ...")
    check_choice("device", device, _DEVICES)
    auto_cuda = device == "auto" and backend != "gloo" and torch.cuda.is_available()
    use_cuda = device == "cuda" or auto_cuda
    torch_device = _process_gpu(info) if use_cuda else torch.device("cpu")
    name = choose_backend(backend, torch_device)
    if not dist.is_initialized():
        dist.init_process_group(name, rank=info.rank, world_size=info.world_size,
                                timeout=timedelta(seconds=timeout_s))
    return Runtime(torch_device, info.rank, info.world_size)


def _process_gpu(info: LaunchInfo) -> torch.device:
    """This process's GPU, cuda:LOCAL_RANK, made the current device; one process per GPU."""
    gpus = torch.cuda.device_count()
    if gpus == 0:
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA GPU "
                         "(use --device cpu or auto)")
    if info.local_world_size > gpus:
        raise ValueError(f"world size: torchrun started {info.local_world_size} processes on this "
                         f"machine but it has {gpus} GPU(s); one process per GPU is expected: use "
                         f"--nproc_per_node={gpus} or fewer (or --device cpu for CPU processes "
                         f"with gloo)")
    torch.cuda.set_device(info.local_rank)
    return torch.device("cuda", info.local_rank)


def shutdown() -> None:
    """Leave the process group (when one was joined), so the process exits cleanly.

    Call it where every rank has finished its work: it waits for all of them at a barrier first, so
    no rank tears down its connections while another is still busy (rank 0 writing files, say).
    Without the barrier, the ranks leave at different times, and gloo, which has no coordinated
    shutdown (pytorch/pytorch issue 130345), tears down each process's connections on its own
    schedule; a 2-process job aborted at exit ("terminate called without an active exception") in
    about 1 run in 8 that way.
    """
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


# --- the model and the data of one rank -----------------------------------------------------------
class DistributedModel(DistributedDataParallel):
    """DistributedDataParallel whose `state_dict` / `load_state_dict` are the wrapped model's (no
    "module." prefix), so a checkpoint written by N processes loads into a plain model and the other
    way round."""

    def state_dict(self, *args, **kwargs):
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)


def wrap_model(model: nn.Module, runtime: Runtime, seed: int | None = None) -> nn.Module:
    """The model to train in this process: `model` itself for one process, else a
    `DistributedModel`.

    DDP copies rank 0's parameters and buffers to every rank when it wraps, and averages gradients
    over the ranks in every `backward`. seed: then reseed torch with seed + rank, so random layers
    (dropout) draw different numbers on each rank instead of N identical copies.
    """
    if runtime.world_size == 1:
        return model
    model.to(runtime.device)
    ids = [runtime.device.index] if runtime.device.type == "cuda" else None
    wrapped = DistributedModel(model, device_ids=ids)
    if seed is not None:
        torch.manual_seed(seed + runtime.rank)
    return wrapped


def distributed_loader(dataset: Dataset, batch_size: int, runtime: Runtime, seed: int,
                       shuffle: bool = True) -> DataLoader:
    """A loader over this rank's share of `dataset`: a `DistributedSampler` shuffles all indices
    with the same seed on every rank (reshuffled per epoch by `sampler.set_epoch`), and rank r takes
    every world_size-th one starting at r. The ranks' batches of one step together are the step's
    batch of world_size x batch_size samples (the dataset is padded by repeating samples to a
    multiple of world_size)."""
    check_int("batch_size", batch_size)
    sampler = DistributedSampler(dataset, num_replicas=runtime.world_size, rank=runtime.rank,
                                 shuffle=shuffle, seed=seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler)


# --- statistics over all processes (synchronised BatchNorm) ---------------------------------------
def combine_moments(counts: torch.Tensor, means: torch.Tensor, variances: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (biased) variance of the union of several groups from each group's count, mean and
    variance.

    counts: (groups,); means, variances: (groups, features). Returns (mean, variance), each
    (features,): mean = sum n_g m_g / n, variance = sum n_g (v_g + (m_g - mean)^2) / n (the spread
    within each group plus the spread of the group means).
    """
    if means.shape != variances.shape or means.ndim != 2 or counts.shape != means.shape[:1]:
        raise ValueError(f"expected counts (groups,), means and variances (groups, features), got "
                         f"{tuple(counts.shape)}, {tuple(means.shape)}, {tuple(variances.shape)}")
    weights = (counts / counts.sum()).to(means.dtype)[:, None]  # (groups, 1)
    mean = (weights * means).sum(dim=0)
    variance = (weights * (variances + (means - mean) ** 2)).sum(dim=0)
    return mean, variance


def all_reduce_moments(x: torch.Tensor, runtime: Runtime) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of the batch of ALL processes, as `nn.SyncBatchNorm`
    computes them.

    x: this process's (batch, channels, ...) activations. Each process contributes its sample count,
    sum and sum of squares per channel (one all-reduce of 1 + 2 x channels numbers, in float64);
    every process gets the same (mean, variance), each (channels,). With one process it is the local
    batch's.
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
