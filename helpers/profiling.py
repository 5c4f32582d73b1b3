"""Measuring what a computation costs: the activation memory autograd keeps for backward, and wall time.

On a GPU, `torch.cuda.max_memory_allocated` gives the true peak; a CPU has no such counter, but the
part of the peak that depends on the model's depth and that gradient checkpointing removes is the set
of tensors autograd saves during the forward pass. `saved_tensor_bytes` counts exactly those.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["saved_tensor_bytes", "time_call"]


def saved_tensor_bytes(fn: Callable[[], object]) -> tuple[object, int]:
    """Run `fn()` and count the bytes of the tensors autograd saves for the backward pass.

    Returns (fn's result, bytes). A tensor saved several times (a weight used by many operations, the
    same input of two products) counts once: distinct storages are summed. Parameters count too
    (autograd saves the weights it needs), so compare runs of the same model. Tensors saved inside a
    checkpointed region are not kept, and are not counted: that is the memory checkpointing saves.
    """
    storages: dict[tuple[int, torch.device], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.layout == torch.strided:
            storage = t.untyped_storage()
            storages[(storage.data_ptr(), t.device)] = storage.nbytes()
        else:  # a sparse operator: count its values and indices
            storages[(id(t), t.device)] = sum(p.numel() * p.element_size() for p in _sparse_parts(t))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = fn()
    return result, sum(storages.values())


def _sparse_parts(t: torch.Tensor) -> list[torch.Tensor]:
    if t.layout == torch.sparse_coo:
        return [t._values(), t._indices()]
    return [t.values(), t.crow_indices(), t.col_indices()]


def time_call(fn: Callable[[], object], repeats: int = 3) -> float:
    """The best of `repeats` wall-clock times of `fn()`, in seconds (the minimum is the least noisy)."""
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
