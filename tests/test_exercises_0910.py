"""Exercises of notebooks 09 and 10: a right answer passes, and each targeted hint fires for the
mistake it names (so no hint is dead)."""

import statistics

import torch
import torch.nn.functional as F
from torch import nn

from helpers.exercises import get_exercise


def run(id, answer):
    return get_exercise(id).test(answer)


# --- 09.2: timing verdicts --------------------------------------------------------------------
def quartiles(times):
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return q1, median, q3


def verdict(baseline, again, trick, use_drift=True, use_spread=True, centre=statistics.median):
    b, a, t = quartiles(baseline), quartiles(again), quartiles(trick)
    ratio_again = a[1] / b[1]
    band = max(max(ratio_again, 1 / ratio_again) - 1 if use_drift else 0.0,
               (b[2] - b[0]) / b[1], (a[2] - a[0]) / a[1])
    ratio = centre(trick) / centre(baseline)
    apart_below = t[2] < b[0] if use_spread else True
    apart_above = t[0] > b[2] if use_spread else True
    if apart_below and ratio < 1 / (1 + band):
        return "faster"
    if apart_above and ratio > 1 + band:
        return "slower"
    return "no difference"


def test_09_2_accepts_the_rule_and_names_each_mistake():
    assert run("09.2", verdict) is None
    assert "overlap" in run("09.2", lambda b, a, t: verdict(b, a, t, use_spread=False))
    assert "medians, not means" in run("09.2", lambda b, a, t: verdict(b, a, t, centre=statistics.mean))
    assert "drift" in run("09.2", lambda b, a, t: verdict(b, a, t, use_drift=False))
    assert "one of 'faster'" in run("09.2", lambda b, a, t: True)


# --- 09.3: repairing gradient accumulation ---------------------------------------------------
def accumulate(model, x, y, optimizer, micro_batches, weight="share", zero_inside=False):
    optimizer.zero_grad()
    for xb, yb in zip(x.chunk(micro_batches), y.chunk(micro_batches), strict=True):
        if zero_inside:
            optimizer.zero_grad()
        w = {"share": len(xb) / len(x), "count": 1 / micro_batches, "none": 1.0}[weight]
        (F.mse_loss(model(xb), yb) * w).backward()
    optimizer.step()


def test_09_3_accepts_weighted_pieces_and_names_each_bug():
    assert run("09.3", accumulate) is None
    assert "zero the gradients once" in run("09.3", lambda *a: accumulate(*a, zero_inside=True))
    assert "scale each loss down" in run("09.3", lambda *a: accumulate(*a, weight="none"))
    assert "unequal" in run("09.3", lambda *a: accumulate(*a, weight="count"))


# --- 09.5: the first non-finite layer ---------------------------------------------------------
def first_non_finite(model, x, order="run", remove=True, leaves_only=True):
    found, handles = [], []
    for name, module in model.named_modules():
        if name and (not leaves_only or not list(module.children())):
            def hook(_m, _i, out, name=name):
                if not torch.isfinite(out).all():
                    found.append(name)
            handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    if remove:
        for h in handles:
            h.remove()
    if order == "registration":
        names = [n for n, _ in model.named_modules()]
        found.sort(key=names.index)
    if order == "last":
        found.reverse()
    return found[0] if found else None


def test_09_5_accepts_hooks_in_execution_order_and_names_each_mistake():
    assert run("09.5", first_non_finite) is None
    assert "handle.remove()" in run("09.5", lambda m, x: first_non_finite(m, x, remove=False))
    assert "registration order" in run("09.5", lambda m, x: first_non_finite(m, x, order="registration"))
    assert "propagates" in run("09.5", lambda m, x: first_non_finite(m, x, order="last"))
    assert "return None" in run("09.5", lambda m, x: "log")


def test_09_1_and_09_4_still_check_their_answers():
    assert "nn.Linear" in run("09.1", lambda linear, bn: nn.Conv1d(1, 1, 1))
    assert "should be" in run("09.4", lambda step, warmup, total: 1.0)


# --- notebook 10 ------------------------------------------------------------------------------
def all_gather(t, rank, world, all_reduce, fill="zeros"):
    out = torch.zeros(world, *t.shape) if fill == "zeros" else t.expand(world, *t.shape).clone()
    out[rank] = t
    all_reduce(out)
    return out


def test_10_2_accepts_a_gather_by_all_reduce_and_names_each_mistake():
    assert run("10.2", all_gather) is None
    assert "zeros in the others" in run("10.2", lambda *a: all_gather(*a, fill="copies"))

    def twice(t, rank, world, all_reduce):
        out = torch.zeros(world, *t.shape)
        out[rank] = t
        all_reduce(out)
        again = torch.zeros_like(out)
        all_reduce(again)
        return out

    assert "one is enough" in run("10.2", twice)

    def rank_zero_only(t, rank, world, all_reduce):
        out = torch.zeros(world, *t.shape)
        out[rank] = t
        if rank == 0:
            all_reduce(out)
        return out

    assert "same number of times" in run("10.2", rank_zero_only)  # a partner that never comes


def masked_loss(prediction, target, world, all_reduce, divide="global", scale=True):
    observed = ~torch.isnan(target)
    squared = ((prediction - target.nan_to_num()) ** 2)[observed].sum()
    count = observed.sum().double()
    if divide == "global":
        count = all_reduce(count.clone())
    return squared / count * (world if scale else 1)


def test_10_5_accepts_a_globally_counted_loss_and_names_each_mistake():
    assert run("10.5", masked_loss) is None
    assert "its own number" in run("10.5", lambda *a: masked_loss(*a, divide="local", scale=False))
    assert "multiply by world_size" in run("10.5", lambda *a: masked_loss(*a, scale=False))
    assert "NaN" in run("10.5", lambda p, t, w, r: ((p - t) ** 2).mean())
    assert "gradients" in run("10.5", lambda *a: masked_loss(*a).detach() + 0 * a[0].sum())


def test_10_1_10_3_10_4_still_check_their_answers():
    assert "expected" in run("10.1", lambda nnodes, nproc, node, local: (local, nproc))
    assert "pad by repeating" in run("10.3", lambda n, world, rank: list(range(rank, n, world)))
    assert "spread of the group means" in run(
        "10.4", lambda n1, m1, v1, n2, m2, v2: ((n1 * m1 + n2 * m2) / (n1 + n2), (v1 + v2) / 2))
