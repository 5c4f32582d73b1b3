"""Looking inside a model while it runs: forward hooks for activation statistics, tensor hooks for
gradient norms.

- `activation_stats(model, x)`: one forward pass; for each leaf module, the mean, standard deviation
  and fraction of zeros of its output.
- `gradient_norms(model, loss_fn, x, y)`: one forward and backward pass; the L2 norm of each
  parameter's gradient, collected by hooks registered on the parameters.
Both remove their hooks before returning (a forgotten hook keeps running, and keeps what it captures
alive).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["activation_stats", "gradient_norms"]


def activation_stats(model: nn.Module, x: Tensor) -> dict[str, dict[str, float]]:
    """Statistics of every leaf module's output in one forward pass of `model(x)` (no gradients).

    Returns {module name: {"mean", "std", "zeros"}} in the order the modules ran; "zeros" is the
    fraction of exactly-zero outputs (dead ReLUs, dropout). Modules whose output is not a tensor are
    left out.
    """
    stats: dict[str, dict[str, float]] = {}

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            if isinstance(output, Tensor) and output.is_floating_point() and output.numel():
                o = output.detach().float()
                stats[name] = {"mean": o.mean().item(),
                               "std": o.std().item() if o.numel() > 1 else 0.0,
                               "zeros": (o == 0).float().mean().item()}

        return hook

    leaves = [(name, m) for name, m in model.named_modules()
              if name and not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook_for(name)) for name, m in leaves]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return stats


def gradient_norms(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor,
                   y: Tensor) -> dict[str, float]:
    """L2 norm of the gradient of each trainable parameter for `loss_fn(model(x), y)`, read by
    tensor hooks.

    Returns {parameter name: norm} in the order backward produced them (output layers first). The
    model's `.grad`s are not changed (the pass uses `torch.autograd.grad`).
    """
    norms: dict[str, float] = {}
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters")

    def hook_for(name: str):
        def hook(grad: Tensor) -> None:
            norms[name] = grad.detach().norm().item()

        return hook

    handles = [p.register_hook(hook_for(name)) for name, p in named]
    try:
        loss = loss_fn(model(x), y)
        torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    return norms
