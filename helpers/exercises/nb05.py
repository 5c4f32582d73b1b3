"""Exercises of notebook 05 (optimisers and the training loop)."""

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from helpers.exercises import exercise
from helpers.exercises.hints import case_text, mismatch, parameter_gap, shape_hint


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g, dtype=torch.float64)
    y = torch.sin(x @ torch.randn(5, 1, generator=g, dtype=torch.float64))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    return model, x, y


def _compare_with_torch(step, optimizer_class, kwargs, steps=100, torch_extra=None):
    """Max |difference| of parameters after `steps` full-batch steps with `step` vs the torch
    optimiser (built with kwargs plus torch_extra)."""
    model, x, y = _problem()
    ours, theirs = copy.deepcopy(model), copy.deepcopy(model)
    states = {name: {} for name, _ in ours.named_parameters()}
    optimizer = optimizer_class(theirs.parameters(), **kwargs, **(torch_extra or {}))
    for _ in range(steps):
        ours.zero_grad()
        F.mse_loss(ours(x), y).backward()
        with torch.no_grad():
            for name, p in ours.named_parameters():
                new = step(p, p.grad, states[name], **kwargs)
                if not isinstance(new, torch.Tensor) or new.shape != p.shape:
                    raise ValueError("the step must return the new parameter, a tensor of shape "
                                     f"{tuple(p.shape)}")
                p.copy_(new)
        optimizer.zero_grad()
        F.mse_loss(theirs(x), y).backward()
        optimizer.step()
    return parameter_gap(ours, theirs)


def _torch_hint(step, optimizer_class, settings, why: str, torch_extra=None) -> str | None:
    """None when `step` follows the torch optimiser for each of `settings` (kwargs), else a hint
    ending with `why`."""
    name = f"torch.optim.{optimizer_class.__name__}"
    name += f"({case_text(**torch_extra)})" if torch_extra else ""
    for kwargs in settings:
        difference = _compare_with_torch(step, optimizer_class, kwargs, torch_extra=torch_extra)
        if not difference < 1e-6:
            return (f"with {case_text(**kwargs)} your parameters differ from {name} by "
                    f"{difference:.2e} after 100 steps; {why}")
    return None


@exercise("05.1", "Nesterov momentum")
def check_nesterov(answer):
    settings = [{"lr": 0.05, "momentum": 0.9}, {"lr": 0.1, "momentum": 0.5}]
    return _torch_hint(answer, torch.optim.SGD, settings, "the step is lr * (g + momentum * buf)",
                       torch_extra={"nesterov": True})


@exercise("05.2", "AdamW")
def check_adamw(answer):
    settings = [{"lr": 0.01, "weight_decay": 0.1},
                {"lr": 0.02, "betas": (0.8, 0.99), "weight_decay": 0.5}]
    return _torch_hint(answer, torch.optim.AdamW, settings, "shrink p by (1 - lr * weight_decay) "
                       "before the Adam step, and do not add it to g")


@exercise("05.3", "warmup, then cosine decay")
def check_warmup_cosine(answer):
    warmup, total = 10, 50
    for step in range(0, 60):
        if step < warmup:
            truth = (step + 1) / warmup
        elif step >= total:
            truth = 0.0
        else:
            truth = 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        got = float(answer(step, warmup, total))
        if not math.isclose(got, truth, abs_tol=1e-6):
            return (f"at step {step} (warmup {warmup}, total {total}) expected {truth:.4f}, "
                    f"got {got:.4f}")
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.5)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: answer(s, 4, 8))
    for _ in range(3):
        optimizer.step()
        schedule.step()
    if not math.isclose(optimizer.param_groups[0]["lr"], 0.5, rel_tol=1e-6):
        return ("used with LambdaLR, the learning rate should reach its full value at the end of "
                "warmup")
    return None


@exercise("05.4", "gradients by accumulation")
def check_accumulated_gradients(answer):
    model, x, y = _problem()
    reference = copy.deepcopy(model)
    F.mse_loss(reference(x), y).backward()
    for p in model.parameters():  # stale gradients the answer must clear
        p.grad = torch.ones_like(p)
    for parts in (4, 8):
        grads = answer(model, x, y, parts)
        if len(grads) != len(list(reference.parameters())):
            return "return one gradient per parameter, in the order of model.parameters()"
        for g, p in zip(grads, reference.parameters(), strict=True):
            if g is None or g.shape != p.shape:
                return "return p.grad for every parameter after the backward passes"
            if not torch.allclose(g, p.grad, atol=1e-10):
                ratio = (g.norm() / p.grad.norm()).item()
                why = (f" (yours is {ratio:.2f} times the full-batch gradient: divide each loss by "
                       "the parts)") if ratio > 1.5 else ""
                return "the accumulated gradient differs from the full-batch gradient" + why
    return None


@exercise("05.5", "balanced class weights")
def check_balanced_class_weights(answer):
    labels = torch.tensor([0] * 90 + [1] * 8 + [2] * 2)
    got = answer(labels, 3)
    if hint := shape_hint(got, (3,)):
        return hint
    truth = torch.tensor([100 / (3 * 90), 100 / (3 * 8), 100 / (3 * 2)])
    if not torch.allclose(got.float(), truth):
        return mismatch("counts (90, 8, 2)", [round(v, 4) for v in truth.tolist()], got.tolist())
    logits = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
    per_class = [F.cross_entropy(logits[labels == c], labels[labels == c], reduction="sum")
                 for c in range(3)]
    weighted = F.cross_entropy(logits, labels, weight=got.float(), reduction="none")
    shares = torch.stack([weighted[labels == c].sum() / per_class[c] * (labels == c).sum()
                          for c in range(3)])
    if not torch.allclose(shares, shares[0].expand(3), rtol=1e-4):
        return "with these weights every class should carry the same total weight in the loss"
    return None
