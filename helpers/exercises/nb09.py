"""Exercises of notebook 09 (faster and lighter training)."""

import copy
import math
import statistics
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from helpers.exercises import exercise
from helpers.exercises.hints import parameter_gap


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


# (baseline, baseline timed again, trick) in milliseconds -> the verdict, and the hint for the
# plausible wrong verdict of each case
_TIMING_CASES = [
    ([100, 101, 99, 100, 102, 98, 100], [101, 100, 99, 100, 101, 100, 102],
     [60, 61, 59, 60, 62, 60, 61], "faster", None),
    ([100, 101, 99, 100, 102, 98, 100], [101, 100, 99, 100, 101, 100, 102],
     [103, 97, 109, 101, 105, 99, 107], "no difference",
     "the medians differ by 3%, but the interquartile ranges of the two overlap: that is noise"),
    ([100, 101, 99, 100, 102, 98, 100], [101, 100, 99, 100, 101, 100, 102],
     [60, 61, 59, 60, 62, 61, 900], "faster",
     "one slow call (a busy machine) pulls the mean up; compare medians, not means"),
    ([100, 101, 99, 100, 102, 98, 100], [140, 141, 139, 140, 142, 138, 140],
     [125, 126, 124, 125, 127, 125, 126], "no difference",
     "the same plain step, timed again, moved by 40%: a change of 25% is inside that drift"),
    ([100, 101, 99, 100, 102, 98, 100], [101, 100, 99, 100, 101, 100, 102],
     [150, 151, 149, 150, 152, 150, 151], "slower", None),
]


@exercise("09.2", "does a trick help, or is it noise?")
def check_timing_verdict(answer):
    for baseline, again, trick, truth, hint in _TIMING_CASES:
        got = answer([t / 1000 for t in baseline], [t / 1000 for t in again],
                     [t / 1000 for t in trick])
        if got not in ("faster", "slower", "no difference"):
            return f"return one of 'faster', 'slower', 'no difference', got {got!r}"
        if got != truth:
            median = statistics.median(trick) / statistics.median(baseline)
            case = f"trick/baseline median ratio {median:.2f}, baseline again {again[:3]}... ms"
            return f"for {case}: expected {truth!r}, got {got!r}" + (f" ({hint})" if hint else "")
    return None


def _sgd_after(model, pieces, weights, lr=0.1):
    """The model after one SGD step on the sum of weighted micro-batch losses."""
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    optimizer.zero_grad()
    for (xb, yb), w in zip(pieces, weights, strict=True):
        (F.mse_loss(model(xb), yb) * w).backward()
    optimizer.step()
    return model


@exercise("09.3", "repair a gradient-accumulation step")
def check_accumulate_step(answer):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    for batch, micro_batches in ((12, 3), (10, 3), (10, 4)):
        x = torch.randn(batch, 4, dtype=torch.float64)
        y = torch.randn(batch, 1, dtype=torch.float64)
        pieces = list(zip(x.chunk(micro_batches), y.chunk(micro_batches), strict=True))
        truth = _sgd_after(model, [(x, y)], [1.0])
        ours = copy.deepcopy(model)
        answer(ours, x, y, torch.optim.SGD(ours.parameters(), lr=0.1), micro_batches)
        if parameter_gap(ours, truth) < 1e-12:
            continue
        sizes = [len(xb) for xb, _ in pieces]
        shares = [size / batch for size in sizes]
        scales = ([1.0] * len(pieces), [1.0 / len(pieces)] * len(pieces), shares)
        mistakes = {
            "only the last micro-batch's gradient is left: zero the gradients once, before the loop":
                [_sgd_after(model, pieces[-1:], w[-1:]) for w in scales],
            "the step is as long as the sum of the micro-batch losses: scale each loss down":
                [_sgd_after(model, pieces, scales[0])],
            f"the pieces are unequal here ({sizes} samples): dividing by the number of pieces "
            "weighs the small one too much; weigh each loss by its share of the samples":
                [_sgd_after(model, pieces, scales[1])],
        }
        for hint, wrongs in mistakes.items():
            if any(parameter_gap(ours, wrong) < 1e-12 for wrong in wrongs):
                return f"a batch of {batch} in {micro_batches} micro-batches: {hint}"
        return (f"a batch of {batch} in {micro_batches} micro-batches: the weights differ from one "
                f"step on the whole batch by {parameter_gap(ours, truth):.2e}")
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


class _Log(nn.Module):
    def forward(self, x):
        return torch.log(x)  # NaN for negative inputs


class _OutOfOrder(nn.Module):
    """Registers `later` before `first` but runs `first` first."""

    def __init__(self):
        super().__init__()
        self.later = nn.Linear(3, 3)
        self.first = _Log()

    def forward(self, x):
        return self.later(self.first(x))


@exercise("09.5", "find the first layer that produces NaN")
def check_first_non_finite(answer):
    torch.manual_seed(0)
    x = torch.randn(4, 3)
    chain = nn.Sequential(OrderedDict(lin=nn.Linear(3, 3), act=nn.Tanh(), log=_Log(),
                                      proj=nn.Linear(3, 3), out=nn.ReLU()))
    cases = [(chain, "log"), (nn.Sequential(nn.Linear(3, 3), nn.Tanh()), None),
             (nn.Sequential(OrderedDict(pre=nn.Tanh(), block=_OutOfOrder())), "block.first")]
    for model, truth in cases:
        got = answer(model, x)
        if any(m._forward_hooks for m in model.modules()):
            return "your hooks are still registered: keep the handles and call handle.remove()"
        if got == truth:
            continue
        if truth is None:
            return f"no output of this model is NaN or infinite: return None, got {got!r}"
        if got == "block.later":
            return ("you returned the first module in registration order; hooks fire in the order "
                    "the modules run")
        if got in ("proj", "out", "block"):
            return (f"expected {truth!r}, got {got!r}: NaN propagates to every later layer, so the "
                    "culprit is the first leaf module (no children) whose output is not finite")
        return f"expected {truth!r}, got {got!r}"
    return None
