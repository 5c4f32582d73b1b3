"""Exercises of notebook 05 (optimisers and the training loop)."""

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from helpers.exercises import exercise
from helpers.exercises.hints import case_text, parameter_gap


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


def _bowl_diverges(lr: float, a: float, b: float, steps: int = 300) -> bool:
    """Whether plain gradient descent on f = a x^2 + b y^2 from (1, 1) at `lr` fails to converge."""
    p = torch.tensor([1.0, 1.0], dtype=torch.float64)
    curvature = torch.tensor([2 * a, 2 * b], dtype=torch.float64)  # f'' along x and y
    for _ in range(steps):
        p = p - lr * curvature * p  # the gradient of a x^2 + b y^2 is (2 a x, 2 b y)
    return not bool(p.abs().max() < 1.0)


@exercise("05.2", "the largest stable learning rate")
def check_largest_stable_lr(answer):
    for a, b in [(0.1, 2.0), (3.0, 0.5), (1.0, 1.0), (0.02, 50.0)]:
        got = answer(a, b)
        if not isinstance(got, (int, float)) or not math.isfinite(got) or got <= 0:
            return f"return a positive number (a learning rate), got {got!r}"
        stable, unstable = not _bowl_diverges(0.98 * got, a, b), _bowl_diverges(1.02 * got, a, b)
        if stable and unstable:
            continue
        case = f"for f = {a} x^2 + {b} y^2"
        if math.isclose(got, 1 / min(a, b), rel_tol=1e-6) and a != b:
            return (f"{case} you used the flat direction; the steep one (larger curvature) "
                    "diverges first")
        if math.isclose(got, 2 / max(a, b), rel_tol=1e-6) or math.isclose(got, 0.5 / max(a, b),
                                                                          rel_tol=1e-6):
            return (f"{case}: the curvature of b y^2 is f'' = 2b, not b, and a step multiplies y "
                    "by (1 - lr * f''), which must stay above -1")
        if stable:
            return f"{case} your lr {got:.4g} is stable but 2% more is too; go higher"
        return f"{case} gradient descent at 0.98 x your lr {got:.4g} already diverges"
    return None


def _regression_loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 3, generator=g)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5]]) + 0.3
    dataset = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(dataset, batch_size=16)  # fixed order: runs comparable


def _reference_train(model, loader, epochs, lr, zero_grad=True):
    """The loop of section 6 (SGD); zero_grad=False is the loop that forgets to clear .grad."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            if zero_grad:
                optimizer.zero_grad()
            F.mse_loss(model(x), y).backward()
            optimizer.step()
    return model


@exercise("05.3", "the training loop that never improves")
def check_fixed_train(answer):
    loader = _regression_loader()
    torch.manual_seed(0)
    start = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    model, reference = copy.deepcopy(start), copy.deepcopy(start)
    losses = answer(model, loader, 4, 0.05)
    if not isinstance(losses, (list, tuple)) or len(losses) != 4:
        return "return the list of the 4 epoch losses (one float per epoch)"
    if parameter_gap(model, start) == 0:
        return ("the parameters never change: zero_grad between backward and step wipes the "
                "gradients just computed; clear them before the forward pass")
    _reference_train(reference, loader, 4, 0.05)
    if parameter_gap(model, reference) < 1e-5:
        if not losses[-1] < losses[0]:
            return "the model learns, but the losses you return do not fall: report each epoch's mean"
        return None
    piled_up = _reference_train(copy.deepcopy(start), loader, 4, 0.05, zero_grad=False)
    if parameter_gap(model, piled_up) < 1e-5:
        return ("gradients pile up across batches: without zero_grad each step adds every earlier "
                "batch's gradient again")
    return ("the parameters differ from four epochs of the section-6 loop (SGD, one step per batch, "
            "zero_grad, forward, loss, backward, step)")


@exercise("05.4", "gradients by accumulation, uneven micro-batches")
def check_accumulated_gradients(answer):
    model, x, y = _problem()  # 64 samples
    for size in (16, 24, 10):  # 24 and 10 leave a smaller last micro-batch
        reference = copy.deepcopy(model)
        F.mse_loss(reference(x), y).backward()
        for p in model.parameters():  # stale gradients the answer must clear
            p.grad = torch.ones_like(p)
        grads = answer(model, x, y, size)
        if not isinstance(grads, (list, tuple)) or len(grads) != len(list(reference.parameters())):
            return "return one gradient per parameter, in the order of model.parameters()"
        for g, p in zip(grads, reference.parameters(), strict=True):
            if not isinstance(g, torch.Tensor) or g.shape != p.shape:
                return "return p.grad for every parameter after the backward passes"
        truth = torch.cat([p.grad.flatten() for p in reference.parameters()])
        got = torch.cat([g.flatten() for g in grads])
        if torch.allclose(got, truth, atol=1e-10):
            continue
        per_part = copy.deepcopy(model)
        per_part.zero_grad()
        parts = list(zip(x.split(size), y.split(size), strict=True))
        for x_part, y_part in parts:
            (F.mse_loss(per_part(x_part), y_part) / len(parts)).backward()
        equal_shares = torch.cat([p.grad.flatten() for p in per_part.parameters()])
        if torch.allclose(got, equal_shares, atol=1e-10):
            return (f"with micro-batches of {size} the last one holds {len(x) % size} samples: "
                    "dividing every loss by the number of parts over-weights it; weight each "
                    "micro-batch's mean loss by its share of the samples, len(part) / len(x)")
        ratio = (got.norm() / truth.norm()).item()
        why = f" (yours is {ratio:.2f} times it)" if abs(ratio - 1) > 0.05 else ""
        return (f"with micro-batches of {size} the accumulated gradient differs from the "
                f"full-batch gradient{why}; did you start from zeroed gradients?")
    return None


def _f1(flagged: torch.Tensor, truth: torch.Tensor) -> float:
    hits = (flagged & truth).sum().item()
    return 2 * hits / max(flagged.sum().item() + truth.sum().item(), 1)


@exercise("05.5", "a decision threshold for a rare class")
def check_best_threshold(answer):
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(2000, generator=g) < 0.03  # 3% positives
    logits = torch.randn(2000, generator=g) * 1.5 - 4.5 + 3.5 * truth  # positives score higher
    got = answer(logits.clone(), truth.clone())
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if not isinstance(got, (int, float)) or not math.isfinite(got):
        return f"return one number, the threshold on the logits, got {got!r}"
    candidates = torch.cat([logits, torch.tensor([math.inf])])  # flag logit >= threshold
    f1s = torch.tensor([_f1(logits >= c, truth) for c in candidates])
    best = f1s.max().item()
    yours = _f1(logits >= got, truth)
    if yours >= best - 1e-9:
        return None
    accuracy = torch.tensor([((logits >= c) == truth).float().mean() for c in candidates])
    at_best_accuracy = _f1(logits >= candidates[accuracy.argmax()], truth)
    if 0 < got < 1 and _f1(logits >= math.log(got / (1 - got)), truth) >= best - 1e-9:
        return ("your threshold looks like a probability; the model gives logits (compare with "
                "logit(p) = log(p / (1 - p)), or threshold on torch.sigmoid(logits))")
    if abs(yours - at_best_accuracy) < 1e-9:
        return (f"your threshold maximises accuracy (F1 {yours:.3f}); with 3% positives that "
                f"flags too little. Maximise F1 instead: the best reaches {best:.3f}")
    if got == 0:
        return (f"logit 0 (probability 0.5) gives F1 {yours:.3f}; try every candidate threshold "
                f"(the logits themselves) and keep the one with the best F1 ({best:.3f})")
    return f"F1 at your threshold is {yours:.3f}; the best threshold reaches {best:.3f}"
