"""Exercises of notebook 09 (faster and lighter training)."""

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.exercises import exercise
from helpers.exercises.hints import mismatch, parameter_gap
from helpers.train import Callback, fit, warmup_cosine


@exercise("09.1", "fold BatchNorm into a Linear layer")
def check_fold_linear(answer):
    torch.manual_seed(0)
    for bias in (True, False):
        linear, bn = nn.Linear(5, 4, bias=bias), nn.BatchNorm1d(4)
        bn.train()
        for _ in range(3):
            bn(torch.randn(16, 4) * 2 + 1)
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_()
        bn.eval()
        fused = answer(linear, bn)
        if not isinstance(fused, nn.Linear) or fused.weight.shape != linear.weight.shape:
            return ("return an nn.Linear of the same shape as the input layer "
                    f"({tuple(linear.weight.shape)})")
        x = torch.randn(8, 5)
        with torch.no_grad():
            difference = (bn(linear(x)) - fused(x)).abs().max().item()
        if not difference < 1e-5:
            why = (" (did you fold the Linear's own bias?)" if bias
                   else " (the layer had no bias: start from zeros)")
            return f"fused(x) differs from bn(linear(x)) by {difference:.4f}{why}"
    return None


@exercise("09.2", "bytes of Adam's state")
def check_adam_state_bytes(answer):
    torch.manual_seed(0)
    models = (nn.Linear(7, 3),
              nn.Sequential(nn.Conv1d(2, 5, 3), nn.Flatten(), nn.Linear(5 * 8, 1)).double())
    for model, input_shape in zip(models, [(2, 7), (2, 2, 10)], strict=True):
        optimizer = torch.optim.Adam(model.parameters())
        model(torch.randn(input_shape, dtype=next(model.parameters()).dtype)).sum().backward()
        optimizer.step()
        moments = [s[k] for s in optimizer.state.values() for k in ("exp_avg", "exp_avg_sq")]
        truth = sum(m.numel() * m.element_size() for m in moments)
        got = answer(model)
        if got != truth:
            return mismatch(type(model).__name__, f"{truth} bytes", got,
                            " (two moments per parameter element)")
    return None


@exercise("09.3", "one optimiser step with gradient accumulation")
def check_accumulate_step(answer):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    x, y = torch.randn(12, 4, dtype=torch.float64), torch.randn(12, 1, dtype=torch.float64)
    ours, theirs = copy.deepcopy(model), copy.deepcopy(model)
    optimizer = torch.optim.SGD(theirs.parameters(), lr=0.1)
    optimizer.zero_grad()
    F.mse_loss(theirs(x), y).backward()
    optimizer.step()
    answer(ours, x, y, torch.optim.SGD(ours.parameters(), lr=0.1), 3)
    difference = parameter_gap(ours, theirs)
    if not difference < 1e-12:
        return (f"after your step the weights differ from one step on the whole batch by "
                f"{difference:.2e}: divide each micro-batch loss by the number of micro-batches, "
                "step once at the end")
    return None


@exercise("09.4", "linear warmup, then linear decay")
def check_warmup_linear(answer):
    cases = {(0, 4, 12): 0.25, (3, 4, 12): 1.0, (4, 4, 12): 1.0, (8, 4, 12): 0.5, (12, 4, 12): 0.0,
             (20, 4, 12): 0.0, (0, 1, 3): 1.0, (2, 1, 3): 0.5}
    for (step, warmup, total), truth in cases.items():
        got = answer(step, warmup, total)
        if not isinstance(got, (int, float)) or not math.isclose(got, truth, abs_tol=1e-12):
            return f"answer({step}, {warmup}, {total}) should be {truth}, got {got!r}"
    return None


@exercise("09.5", "a callback that records the learning rate")
def check_lr_recorder(answer):
    recorder = answer()
    if not isinstance(recorder, Callback):
        return "return an instance of a helpers.train.Callback subclass"
    torch.manual_seed(0)
    x = torch.randn(40, 3)
    loader = DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=8)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = warmup_cosine(optimizer, warmup_steps=3, total_steps=10)
    fit(model, loader, F.mse_loss, optimizer, epochs=2, scheduler=scheduler, callbacks=[recorder])
    # the lr after steps 1, 2, 3 (the scheduler steps first)
    truth = [0.1 * f for f in (2 / 3, 1.0, 1.0)]
    lrs = getattr(recorder, "lrs", None)
    if not isinstance(lrs, list) or len(lrs) != 10:
        return ("keep a list `self.lrs` with one learning rate per batch: 10 batches ran, "
                f"got {lrs!r}")
    if not all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(lrs[:3], truth, strict=True)):
        expected, got = [round(v, 4) for v in truth], [round(v, 4) for v in lrs[:3]]
        return f"the first learning rates should be {expected}, got {got}"
    return None
