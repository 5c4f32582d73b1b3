"""Faster and lighter training, measured: where a step's memory goes, what each trick costs, saves.

- `fuse_conv_bn(conv, bn)`: one convolution that computes `bn(conv(x))` of an evaluation-mode
  BatchNorm, for `Conv1d`/`Conv2d`/`Conv3d` with or without a bias (folded in; the shape is kept).
- `MemoryBreakdown`, `memory_breakdown(model, loss_fn, x, y, optimizer)`: bytes of parameters,
  gradients, optimizer state and saved activations of one training step, counted from the tensors.
- `peak_memory(fn)`: the peak bytes a call allocates above what was live before it; measured by
  `torch.cuda.max_memory_allocated` on a GPU, by the allocation events of torch's profiler on a CPU.
- `time_spread(fn)`, `median_seconds(fn)`: the median (and quartiles) of the wall time of repeated
  calls, after a warm-up call; `noise_band(baseline, again)`: the relative noise of a step timed
  twice; `time_verdict(trick, baseline, band)`: faster, slower, or no difference.
- `TRICKS`, `make_train_step(model, x, y, tricks)`: one STGCN training step with any combination of
  `inplace` activations (`InplaceActivations`), `free` (gradients set to None between steps),
  `accumulate` (4 micro-batches), `checkpoint` (`checkpoint_blocks`, `CheckpointedBlock`: the
  ST-Conv blocks recompute in backward), `bf16` / `fp16` autocast, `compile`.
- `accumulated_gradients(model, loss_fn, x, y, micro_batches)`: the gradients of one batch computed
  in pieces; they equal the whole batch's (tested).
- `measure_step(model, x, y, tricks)`: time and peak memory of one step, as notebook 09's tables.
- `keep_freed_memory()`: glibc keeps freed blocks for the next allocation (the command line calls it).
The figure of these costs is `helpers.plots.cost_bars`.
"""

from __future__ import annotations

import copy
import ctypes
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.profiler import ProfilerActivity, profile
from torch.utils.checkpoint import checkpoint

from helpers.checks import check_choice, check_int

__all__ = [
    "fuse_conv_bn",
    "MemoryBreakdown",
    "memory_breakdown",
    "peak_memory",
    "time_spread",
    "median_seconds",
    "noise_band",
    "time_verdict",
    "TRICKS",
    "InplaceActivations",
    "CheckpointedBlock",
    "checkpoint_blocks",
    "make_train_step",
    "accumulated_gradients",
    "measure_step",
]


# --- inference: folding BatchNorm into the convolution before it ----------------------------------
def fuse_conv_bn(conv: nn.Module, bn: nn.Module) -> nn.Module:
    """A convolution equal to `bn(conv(x))` with `bn` in evaluation mode (its running statistics).

    With s = gamma / sqrt(running_var + eps), per output channel:
        weight' = weight * s        bias' = (bias - running_mean) * s + beta   (bias = 0 if none)
    conv: nn.Conv1d/Conv2d/Conv3d (any kernel, stride, padding, dilation, groups; bias or not);
    bn: the matching nn.BatchNorm1d/2d/3d over conv's output channels, with running statistics.
    Returns a new layer of conv's class and shape, always with a bias; conv and bn are not changed.
    """
    _check_fusable(conv, bn)
    fused = copy.deepcopy(conv)
    if fused.bias is None:
        w = conv.weight
        fused.bias = nn.Parameter(torch.zeros(conv.out_channels, dtype=w.dtype, device=w.device))
    with torch.no_grad():
        gamma = bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)
        beta = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
        scale = gamma / torch.sqrt(bn.running_var + bn.eps)  # (out_channels,)
        fused.weight.mul_(scale.reshape(-1, *([1] * (conv.weight.dim() - 1))))
        fused.bias.copy_((fused.bias - bn.running_mean) * scale + beta)
    return fused


def _check_fusable(conv: nn.Module, bn: nn.Module) -> None:
    """TypeError or ValueError unless `bn` is a BatchNorm to follow `conv`, with statistics."""
    if not isinstance(conv, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        raise TypeError(f"conv must be an nn.Conv1d, Conv2d or Conv3d, got {type(conv).__name__}")
    bn_types = {nn.Conv1d: nn.BatchNorm1d, nn.Conv2d: nn.BatchNorm2d, nn.Conv3d: nn.BatchNorm3d}
    bn_type = bn_types[type(conv)]
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or not isinstance(bn, bn_type):
        raise TypeError(f"bn must be an nn.{bn_type.__name__} to follow a {type(conv).__name__}, "
                        f"got {type(bn).__name__}")
    if bn.num_features != conv.out_channels:
        raise ValueError(f"bn.num_features must equal conv.out_channels = {conv.out_channels}, "
                         f"got {bn.num_features}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("bn must track running statistics (track_running_stats=True) to be fused; "
                         "it has none")


# --- memory ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes of one training step's tensors: what a GPU must hold, computed rather than guessed."""

    parameters: int
    gradients: int
    optimizer_state: int
    activations: int

    def as_dict(self) -> dict[str, int]:
        return {"parameters": self.parameters, "gradients": self.gradients,
                "optimizer state": self.optimizer_state, "activations": self.activations}


def _nbytes(t: Tensor) -> int:
    return t.numel() * t.element_size()


def memory_breakdown(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor,
                     y: Tensor, optimizer: torch.optim.Optimizer) -> MemoryBreakdown:
    """Run one training step of `model` on (x, y) and count the bytes of its four kinds of tensors.

    parameters: every trainable parameter; gradients: their `.grad` after backward; optimizer state:
    the tensors in `optimizer.state` after the step (Adam: two moments per parameter, and a step
    counter); activations: the distinct storages autograd saved for backward during the forward
    pass, leaving out the parameters and the input batch (they exist anyway). x, y: one batch.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    param_storages = {t.untyped_storage().data_ptr() for t in (*params, x)}
    saved: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        if t.layout == torch.strided:
            storage = t.untyped_storage()
            if storage.data_ptr() not in param_storages:
                saved[storage.data_ptr()] = storage.nbytes()
        else:  # a sparse graph operator: its values and indices
            saved[id(t)] = sum(_nbytes(part) for part in (t._values(), t._indices()))
        return t

    model.train()
    optimizer.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(model(x), y)
    loss.backward()
    gradients = sum(_nbytes(p.grad) for p in params if p.grad is not None)
    optimizer.step()
    state = sum(_nbytes(v) for s in optimizer.state.values() for v in s.values()
                if isinstance(v, Tensor))
    return MemoryBreakdown(sum(_nbytes(p) for p in params), gradients, state, sum(saved.values()))


def peak_memory(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Peak bytes allocated while `fn()` runs, above what was allocated when it started.

    CUDA: `torch.cuda.max_memory_allocated` (exact, the caching allocator's own count).
    CPU: torch's profiler with `profile_memory=True` records every allocation and free by torch's
    CPU allocator; the running sum of those events, in time order, peaks at the returned value.
    Limits: only memory torch allocates is seen (not NumPy's, not the Python objects'), and the
    profiler knows nothing of blocks allocated before it started: when one is freed during the call
    the release is dropped (torch warns "Memory block of unknown size was allocated before the
    profiling started"), so the result is the peak of what the call itself allocates, which can
    exceed the rise of the total when the call frees older blocks.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - start
    if device.type != "cpu":
        raise ValueError(f"device must be a CPU or CUDA device, got {device}")
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():  # the profiler logs "profiler_start/stop" lines straight to descriptor 2
        prof.__enter__()
    try:
        fn()
    finally:
        with _quiet_stderr():
            prof.__exit__(None, None, None)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        if e.device_type() == torch.device("cpu").type or str(e.device_type()).endswith("CPU"):
            live += e.nbytes()
            peak = max(peak, live)
    return peak


def keep_freed_memory(trim_bytes: int = 2**30) -> bool:
    """Make glibc's malloc keep freed memory for the next allocation instead of returning it.

    A CPU training step allocates and frees activations of tens of megabytes. glibc serves blocks
    above 32 MB with mmap and unmaps them when freed, so the next step's blocks are new pages
    that the kernel zero-fills on first touch (page faults: system time). On a 675-node network
    an STGCN step took much longer without this (benchmarks/results/large_network.json).
    With mmap off, freed blocks go back to the heap and are reused; up to `trim_bytes` of free
    memory at its top is kept. PyTorch's performance tuning guide suggests the same aim with
    jemalloc or TCMalloc. Returns False, changing nothing, where the C library is not glibc.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # macOS, Windows, musl
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, trim_bytes))


@contextmanager
def _quiet_stderr():
    """Send what is written to file descriptor 2 (C++ logging included) to os.devnull meanwhile."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def time_spread(fn: Callable[[], object], repeats: int = 5, warmup: int = 1,
                device: torch.device | str = "cpu") -> dict[str, float]:
    """Wall-clock seconds of `repeats` calls of `fn()` after `warmup` untimed calls, summarised:
    {"seconds": median, "seconds_q1": first quartile, "seconds_q3": third quartile}.

    The quartiles use the inclusive method (they lie between the fastest and the slowest call).
    On CUDA the device is synchronised around each call (kernels run asynchronously).
    """
    check_int("repeats", repeats)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive") if repeats > 1 else times * 3
    return {"seconds": median, "seconds_q1": q1, "seconds_q3": q3}


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1,
                   device: torch.device | str = "cpu") -> float:
    """The median wall-clock seconds of `repeats` calls of `fn()`, after `warmup` untimed calls."""
    return time_spread(fn, repeats, warmup, device)["seconds"]


def noise_band(baseline: Mapping[str, float], again: Mapping[str, float]) -> float:
    """The relative noise b of a timing, from the same step timed twice (`time_spread` results):
    the largest of the drift between the two medians and each one's interquartile range, relative
    to its median. A ratio of two times between 1 / (1 + b) and 1 + b is inside the noise."""
    ratio = again["seconds"] / baseline["seconds"]
    drift = max(ratio, 1.0 / ratio) - 1.0
    widths = [(t["seconds_q3"] - t["seconds_q1"]) / t["seconds"] for t in (baseline, again)]
    return max(drift, *widths)


def time_verdict(trick: Mapping[str, float], baseline: Mapping[str, float], band: float = 0.0) -> str:
    """"faster", "slower" or "no difference": does `trick`'s time differ from `baseline`'s beyond
    the noise?

    Both are `time_spread` results; band: the relative noise (`noise_band`). "faster" needs the
    interquartile ranges [seconds_q1, seconds_q3] apart and the ratio of the medians below
    1 / (1 + band); "slower" likewise above 1 + band; everything else is "no difference".
    """
    ratio = trick["seconds"] / baseline["seconds"]
    if trick["seconds_q3"] < baseline["seconds_q1"] and ratio < 1.0 / (1.0 + band):
        return "faster"
    if trick["seconds_q1"] > baseline["seconds_q3"] and ratio > 1.0 + band:
        return "slower"
    return "no difference"


# --- the tricks -----------------------------------------------------------------------------------
#: Names accepted by `make_train_step` (any combination; "bf16" and "fp16" exclude each other).
TRICKS = ("inplace", "free", "accumulate", "checkpoint", "bf16", "fp16", "compile")
#: Micro-batches of the "accumulate" trick.
MICRO_BATCHES = 4


class InplaceActivations(TorchFunctionMode):
    """Inside `with InplaceActivations():` every `torch.relu(t)` / `F.relu(t)` runs in place.

    The same as building the model with `nn.ReLU(inplace=True)`, for models that call the function.
    Autograd checks every in-place change: where the input was needed for backward, backward raises
    instead of computing a wrong gradient, so a step that runs is a correct one.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.relu, F.relu) and args and isinstance(args[0], Tensor):
            return torch.relu_(args[0])
        return func(*args, **kwargs)


class CheckpointedBlock(nn.Module):
    """Wraps a block so its activations are recomputed in backward instead of kept (gradient
    checkpointing). forward(*inputs) = block(*inputs); in training only its inputs are saved.
    """

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, *inputs):
        if not torch.is_grad_enabled():
            return self.block(*inputs)
        return checkpoint(self.block, *inputs, use_reentrant=False)


def checkpoint_blocks(model: nn.Module) -> nn.Module:
    """A copy of an STGCN (anything with a `blocks` ModuleList), its blocks `CheckpointedBlock`s.

    Same parameters and outputs; the state_dict keys gain a `.block` part.
    """
    if not isinstance(getattr(model, "blocks", None), nn.ModuleList):
        raise ValueError(f"model must have a `blocks` nn.ModuleList (like helpers.models.STGCN), "
                         f"got {type(model).__name__}")
    model = copy.deepcopy(model)
    model.blocks = nn.ModuleList(CheckpointedBlock(b) for b in model.blocks)
    return model


def _check_tricks(tricks: Iterable[str]) -> frozenset[str]:
    tricks = frozenset(tricks)
    unknown = tricks - set(TRICKS)
    if unknown:
        raise ValueError(f"tricks must be names from {TRICKS}, got {sorted(unknown)}")
    if {"bf16", "fp16"} <= tricks:
        raise ValueError("tricks: choose one of 'bf16' and 'fp16', got both")
    return tricks


def make_train_step(model: nn.Module, x: Tensor, y: Tensor, tricks: Iterable[str] = (),
                    lr: float = 1e-3) -> Callable[[], float]:
    """One training step (Adam, mean squared error) of `model` on the batch (x, y), with `tricks`.

    Returns step() -> loss value (with `step.model`, the copy it trains); each call is one optimizer
    step on the same batch. The baseline (no trick) is the loop as older code writes it:
    `zero_grad(set_to_none=False)` (gradients stay allocated and are zero-filled), out-of-place
    activations, float32, one pass over the whole batch. Tricks:
    inplace: ReLUs run in place (`InplaceActivations`); free: gradients are set to None before the
    forward pass and the output and loss are dropped before the optimizer step; accumulate: 4
    micro-batches of len(x) / 4, each loss divided by 4, one optimizer step; checkpoint: every
    ST-Conv block recomputes its activations in backward; bf16: autocast to bfloat16; fp16: autocast
    to float16 with a `GradScaler` (CUDA); compile: `torch.compile(model)`.
    The model is copied (so tricks never change it); x and y must be on the model's device.
    """
    tricks = _check_tricks(tricks)
    if len(x) != len(y) or len(x) < 1:
        raise ValueError(f"x and y must hold the same positive number of samples, "
                         f"got {len(x)} and {len(y)}")
    if "accumulate" in tricks and len(x) % MICRO_BATCHES:
        raise ValueError(f"accumulate splits the batch into {MICRO_BATCHES}: expected a batch size "
                         f"divisible by {MICRO_BATCHES}, got {len(x)}")
    model = checkpoint_blocks(model) if "checkpoint" in tricks else copy.deepcopy(model)
    model.train()
    device_type = x.device.type
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    forward = torch.compile(model) if "compile" in tricks else model
    dtype = torch.bfloat16 if "bf16" in tricks else torch.float16 if "fp16" in tricks else None
    scaler = torch.amp.GradScaler(device_type) if "fp16" in tricks else None
    pieces = [(x, y)]
    if "accumulate" in tricks:
        pieces = list(zip(x.chunk(MICRO_BATCHES), y.chunk(MICRO_BATCHES), strict=True))

    def step() -> float:
        optimizer.zero_grad(set_to_none="free" in tricks)
        total = 0.0
        for xb, yb in pieces:
            with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
                if "inplace" in tricks:
                    with InplaceActivations():
                        out = forward(xb)
                else:
                    out = forward(xb)
                loss = F.mse_loss(out.float(), yb) / len(pieces)
            (scaler.scale(loss) if scaler is not None else loss).backward()
            total += loss.item()
            if "free" in tricks:
                del out, loss
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        return total

    step.model = model  # the step's own copy, for inspection
    return step


def accumulated_gradients(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor,
                          y: Tensor, micro_batches: int) -> list[Tensor]:
    """The gradients of `loss_fn(model(x), y)` computed in `micro_batches` equal pieces, each loss
    divided by the number of pieces.

    With a mean loss and no batch-dependent layer (BatchNorm in training mode would differ), they
    equal the gradients of the whole batch in one pass. Returns one tensor per trainable parameter;
    the model's own `.grad`s are left as they were.
    """
    check_int("micro_batches", micro_batches)
    if len(x) % micro_batches:
        raise ValueError(f"the batch of {len(x)} samples must split into {micro_batches} equal "
                         f"micro-batches")
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [torch.zeros_like(p) for p in params]
    for xb, yb in zip(x.chunk(micro_batches), y.chunk(micro_batches), strict=True):
        loss = loss_fn(model(xb), yb) / micro_batches
        pieces = torch.autograd.grad(loss, params, allow_unused=True)
        for g, piece in zip(grads, pieces, strict=True):
            if piece is not None:
                g += piece
    return grads


def measure_step(model: nn.Module, x: Tensor, y: Tensor, tricks: Iterable[str] = (),
                 repeats: int = 5, mode: str = "train") -> dict[str, float]:
    """Time and peak memory of one step: {"seconds": median of `repeats`, "seconds_q1",
    "seconds_q3": its quartiles, "peak_bytes": above the start}.

    mode="train": a `make_train_step` step with `tricks`; mode="eval": a forward pass in evaluation
    mode, with autograd on (tricks=()) or under `torch.no_grad()` (tricks=("no_grad",)).
    The peak is measured on a separate call (the profiler slows the call it watches).
    """
    check_choice("mode", mode, ("train", "eval"))
    if mode == "train":
        step = make_train_step(model, x, y, tricks)
    else:
        tricks = frozenset(tricks)
        if not tricks <= {"no_grad"}:
            raise ValueError(f"mode 'eval' takes tricks () or ('no_grad',), got {sorted(tricks)}")
        model = copy.deepcopy(model).eval()

        def step():
            with torch.set_grad_enabled("no_grad" not in tricks):
                return model(x).sum().item()
    spread = time_spread(step, repeats=repeats, warmup=1, device=x.device)
    return {**spread, "peak_bytes": peak_memory(step, x.device)}
