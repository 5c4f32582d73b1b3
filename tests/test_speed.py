"""helpers.speed, helpers.hooks and the notebook-08 parts of helpers.train: Conv-BN fusion is exact (with and
without the conv's bias, 1-d and 2-d); accumulated micro-batch gradients equal the whole batch's; every
memory-neutral trick leaves the training step unchanged; the memory breakdown counts the tensors it names;
the CPU peak-memory measurement sees a known allocation; the non-finite-loss callback stops training at the
first bad batch; warmup + cosine has the promised shape; hooks report what they should."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.hooks import activation_stats, gradient_norms
from helpers.models import STGCN, STGCNConfig, count_parameters
from helpers.plots import cost_bars
from helpers.speed import (
    InplaceActivations,
    accumulated_gradients,
    checkpoint_blocks,
    fuse_conv_bn,
    make_train_step,
    measure_step,
    memory_breakdown,
    noise_band,
    peak_memory,
    time_spread,
    time_verdict,
)
from helpers.train import Callback, StopOnNonFiniteLoss, fit, warmup_cosine, warmup_cosine_factor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _ring(n: int) -> torch.Tensor:
    adj = torch.zeros(n, n)
    idx = torch.arange(n)
    adj[idx, (idx + 1) % n] = adj[(idx + 1) % n, idx] = 1.0
    return adj


def small_stgcn(dtype=torch.float64, **kw) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    config = STGCNConfig(num_nodes=6, input_len=8, horizon=2, in_channels=2, blocks=((8, 4, 8), (8, 4, 8)),
                         Kt=2, Ks=2, hidden_channels=8, **kw)
    model = STGCN(config, _ring(6)).to(dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 8, 6, 2, generator=g, dtype=dtype)
    y = torch.randn(8, 2, 6, generator=g, dtype=dtype)
    return model, x, y


# --- fusion -----------------------------------------------------------------------------------------
def _trained_bn(bn: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    """A BatchNorm with non-trivial affine parameters and running statistics, in evaluation mode."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(bn.num_features, generator=g))
    bn.train()
    for _ in range(3):
        bn(torch.randn(*shape, generator=g) * 3 + 1)
    return bn.eval()


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("groups", [1, 2])
def test_fuse_conv_bn_is_exact_and_keeps_the_shape(dims, bias, groups):
    torch.manual_seed(0)
    conv_cls, bn_cls = (nn.Conv1d, nn.BatchNorm1d) if dims == 1 else (nn.Conv2d, nn.BatchNorm2d)
    conv = conv_cls(4, 6, 3, stride=2, padding=1, groups=groups, bias=bias)
    if bias:
        with torch.no_grad():
            conv.bias.normal_(0, 2)  # a bias that matters: dropping it shows
    x = torch.randn(5, 4, *([11] * dims))
    bn = _trained_bn(bn_cls(6), (5, 6, *([6] * dims)))
    fused = fuse_conv_bn(conv, bn)
    assert type(fused) is conv_cls and fused.weight.shape == conv.weight.shape
    assert (fused.stride, fused.padding, fused.groups) == (conv.stride, conv.padding, conv.groups)
    with torch.no_grad():
        expected, got = bn(conv(x)), fused(x)
    assert (expected - got).abs().max().item() < 1e-5
    assert conv.bias is None or not torch.equal(conv.bias, fused.bias)  # the original is left alone


def test_fuse_conv_bn_rejects_mismatches():
    with pytest.raises(ValueError, match="num_features"):
        fuse_conv_bn(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(4))
    with pytest.raises(TypeError, match="BatchNorm1d"):
        fuse_conv_bn(nn.Conv1d(3, 8, 3), nn.BatchNorm2d(8))
    with pytest.raises(TypeError, match="Conv1d, Conv2d or Conv3d"):
        fuse_conv_bn(nn.Linear(3, 8), nn.BatchNorm1d(8))
    with pytest.raises(ValueError, match="running statistics"):
        fuse_conv_bn(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8, track_running_stats=False))


# --- gradient accumulation and the other tricks ----------------------------------------------------
def test_accumulated_gradients_equal_the_whole_batch():
    model, x, y = small_stgcn()
    whole = torch.autograd.grad(F.mse_loss(model(x), y), list(model.parameters()))
    pieces = accumulated_gradients(model, F.mse_loss, x, y, micro_batches=4)
    assert max((a - b).abs().max().item() for a, b in zip(whole, pieces, strict=True)) < 1e-12
    with pytest.raises(ValueError, match="equal micro-batches"):
        accumulated_gradients(model, F.mse_loss, x, y, micro_batches=3)


@pytest.mark.parametrize("tricks", [("accumulate",), ("inplace",), ("free",), ("checkpoint",),
                                    ("inplace", "free", "accumulate", "checkpoint")])
def test_memory_tricks_leave_the_training_step_unchanged(tricks):
    model, x, y = small_stgcn()
    baseline, tricked = make_train_step(model, x, y), make_train_step(model, x, y, tricks)
    for _ in range(2):
        assert abs(baseline() - tricked()) < 1e-12
    pairs = zip(baseline.model.parameters(), tricked.model.parameters(), strict=True)
    assert max((a - b).abs().max().item() for a, b in pairs) < 1e-12


def test_inplace_activations_run_relu_in_place_and_keep_gradients():
    x = torch.randn(5, requires_grad=True)
    h = x * 2
    with InplaceActivations():
        out = torch.relu(h)
    assert out.data_ptr() == h.data_ptr()
    out.sum().backward()
    assert torch.equal(x.grad, 2.0 * (x > 0))


def test_tricks_are_checked():
    model, x, y = small_stgcn()
    with pytest.raises(ValueError, match="tricks must be names"):
        make_train_step(model, x, y, ("turbo",))
    with pytest.raises(ValueError, match="divisible by 4"):
        make_train_step(model, x[:6], y[:6], ("accumulate",))
    with pytest.raises(ValueError, match="blocks"):
        checkpoint_blocks(nn.Linear(2, 2))


# --- memory -----------------------------------------------------------------------------------------
def test_memory_breakdown_counts_parameters_gradients_and_adam_state():
    model, x, y = small_stgcn(dtype=torch.float32)
    x, y = x.float(), y.float()
    m = memory_breakdown(model, F.mse_loss, x, y, torch.optim.Adam(model.parameters()))
    n = count_parameters(model)
    tensors = len(list(model.parameters()))
    assert m.parameters == m.gradients == 4 * n
    assert m.optimizer_state == 2 * 4 * n + 4 * tensors  # two moments, and one float32 step counter each
    assert m.activations > x.numel() * 4  # at least one activation larger than the input
    checkpointed = checkpoint_blocks(model)
    kept = memory_breakdown(checkpointed, F.mse_loss, x, y, torch.optim.Adam(checkpointed.parameters()))
    assert kept.activations < m.activations  # checkpointing keeps only the blocks' inputs


def test_peak_memory_sees_a_known_allocation_and_its_release():
    def make_and_free():
        a = torch.ones(250_000)  # 1,000,000 bytes
        b = torch.ones(250_000)
        del a, b
        return torch.ones(10)

    peak = peak_memory(make_and_free)
    assert 2_000_000 <= peak < 2_100_000
    with pytest.raises(ValueError, match="CPU or CUDA"):
        peak_memory(make_and_free, "meta")


def test_accumulation_lowers_the_measured_peak_and_no_grad_lowers_evaluation():
    model, x, y = small_stgcn(dtype=torch.float32)
    x, y = x.float(), y.float()
    plain = measure_step(model, x, y, repeats=1)
    accumulated = measure_step(model, x, y, ("accumulate",), repeats=1)
    assert accumulated["peak_bytes"] < plain["peak_bytes"]
    assert (measure_step(model, x, y, ("no_grad",), repeats=1, mode="eval")["peak_bytes"]
            < measure_step(model, x, y, repeats=1, mode="eval")["peak_bytes"])
    fig = cost_bars({"baseline": plain, "accumulate": accumulated}, "baseline")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["baseline", "accumulate"]


# --- callbacks and schedules ----------------------------------------------------------------------
def test_stop_on_non_finite_loss_stops_at_the_first_bad_batch(capsys):
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    loader = DataLoader(TensorDataset(x, x @ torch.ones(3, 1)), batch_size=8)
    model = nn.Linear(3, 1)
    steps = []

    class Steps(Callback):  # records every batch's loss
        def on_batch_end(self, state):
            steps.append(state.batch_loss)

    history = fit(model, loader, F.mse_loss, torch.optim.SGD(model.parameters(), lr=1e3), epochs=5,
                  callbacks=[Steps(), StopOnNonFiniteLoss()])
    first_bad = next(i for i, loss in enumerate(steps) if not math.isfinite(loss))
    assert len(steps) == first_bad + 1  # nothing trained after the first non-finite loss
    assert len(history.train_loss) == 1 and history.stop_reason.startswith("stopped: the loss is")
    assert f"step {first_bad + 1}" in history.stop_reason
    assert history.stop_reason in capsys.readouterr().out
    finite = fit(nn.Linear(3, 1), loader, F.mse_loss, torch.optim.SGD(model.parameters(), lr=1e-3), epochs=2,
                 callbacks=[StopOnNonFiniteLoss()])
    assert finite.stop_reason is None and len(finite.train_loss) == 2


def test_warmup_cosine_rises_linearly_then_decays_to_the_floor():
    factors = [warmup_cosine_factor(s, 4, 14, min_factor=0.1) for s in range(16)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and abs(factors[9] - 0.55) < 1e-12 and factors[14] == factors[15] == 0.1
    assert all(a >= b for a, b in zip(factors[3:], factors[4:], strict=False))
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.2)
    scheduler = warmup_cosine(optimizer, 4, 14, 0.1)
    lrs = []
    for _ in range(6):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert all(abs(a - 0.2 * f) < 1e-12 for a, f in zip(lrs, factors, strict=False))
    with pytest.raises(ValueError, match="total_steps must exceed"):
        warmup_cosine_factor(0, 10, 10)


# --- hooks ------------------------------------------------------------------------------------------
def test_hooks_report_activations_and_gradient_norms():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    stats = activation_stats(model, x)
    assert list(stats) == ["0", "1", "2"]
    with torch.no_grad():
        hidden = torch.relu(model[0](x))
    assert abs(stats["1"]["zeros"] - (hidden == 0).float().mean().item()) < 1e-12
    assert abs(stats["0"]["mean"] - model[0](x).mean().item()) < 1e-6
    norms = gradient_norms(model, F.mse_loss, x, y)
    grads = torch.autograd.grad(F.mse_loss(model(x), y), list(model.parameters()))
    names = [name for name, _ in model.named_parameters()]
    assert set(norms) == set(names)
    assert all(abs(norms[n] - g.norm().item()) < 1e-6 for n, g in zip(names, grads, strict=True))
    assert not model[0]._forward_hooks and model[0].weight.grad is None


# --- notebook 09's claims on the shipped metro data --------------------------------------------------
@pytest.fixture(scope="module")
def metro_splits():
    from helpers.data import load_metro, make_splits

    metro = load_metro()
    return metro, make_splits(metro, input_len=12, output_len=3)


def test_saved_activations_explain_the_measured_peak_of_a_metro_step(metro_splits):
    metro, splits = metro_splits
    torch.manual_seed(0)
    model = STGCN(STGCNConfig(num_nodes=metro.num_nodes, in_channels=metro.num_channels), metro.adjacency)
    x, y = splits.train.inputs[:8].nan_to_num(0.0), splits.train.targets[:8].nan_to_num(0.0)
    breakdown = memory_breakdown(model, F.mse_loss, x, y, torch.optim.Adam(model.parameters()))
    assert breakdown.activations > 5 * (breakdown.parameters + breakdown.gradients + breakdown.optimizer_state)
    step = make_train_step(model, x, y)
    step()  # gradients and Adam's state exist from here on
    assert 0.9 <= breakdown.activations / peak_memory(step) <= 1.1


class BatchLosses(Callback):
    def __init__(self):
        self.losses = []

    def on_batch_end(self, state):
        self.losses.append(state.batch_loss)


def test_warmup_tames_the_first_steps_at_a_high_learning_rate_over_three_seeds(metro_splits):
    """Notebook 09's claim: over seeds 0-2, the largest loss of the first 20 steps is lower with 15 warmup
    steps than without in every seed (the ranges do not overlap)."""
    from torch.utils.data import Subset

    from helpers.train import masked_loss

    metro, splits = metro_splits
    small = STGCNConfig(num_nodes=metro.num_nodes, in_channels=2, blocks=((16, 8, 16), (16, 8, 16)),
                        hidden_channels=32)
    spike = {}
    for warmup_steps in (0, 15):
        for seed in (0, 1, 2):
            torch.manual_seed(seed)
            net = STGCN(small, metro.adjacency)
            optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
            loader = DataLoader(Subset(splits.train, range(640)), batch_size=32, shuffle=True,
                                generator=torch.Generator().manual_seed(seed))
            recorder = BatchLosses()
            fit(net, loader, masked_loss("mse"), optimizer, epochs=1,
                scheduler=warmup_cosine(optimizer, warmup_steps, 3 * len(loader)), callbacks=[recorder])
            spike[warmup_steps, seed] = max(recorder.losses[:20])
    assert max(spike[15, s] for s in range(3)) < min(spike[0, s] for s in range(3))


def test_time_spread_gives_ordered_quartiles_and_the_verdict_respects_the_noise():
    spread = time_spread(lambda: sum(range(1000)), repeats=5)
    assert spread["seconds_q1"] <= spread["seconds"] <= spread["seconds_q3"]

    def timing(median, width):
        return {"seconds": median, "seconds_q1": median - width, "seconds_q3": median + width}

    plain, again = timing(1.0, 0.01), timing(1.3, 0.01)  # the same step drifted by 30%
    band = noise_band(plain, again)
    assert band == pytest.approx(0.3)
    assert noise_band(again, plain) == pytest.approx(0.3)  # symmetric: x1.3 and x1/1.3 are the same drift
    assert time_verdict(timing(1.2, 0.01), plain, band) == "no difference"  # ranges apart, inside the drift
    assert time_verdict(timing(1.2, 0.01), plain) == "slower"               # no band: the ranges decide
    assert time_verdict(timing(1.5, 0.01), plain, band) == "slower"
    assert time_verdict(timing(0.5, 0.01), plain, band) == "faster"
    assert time_verdict(timing(0.5, 0.6), plain, band) == "no difference"   # a wide range overlaps


def test_peak_memory_cannot_see_the_release_of_a_block_allocated_before_it():
    older = [torch.ones(500_000)]  # 2,000,000 bytes allocated before the measurement

    def free_older_and_allocate():
        older.pop()
        return torch.ones(250_000).sum()  # 1,000,000 bytes

    assert 1_000_000 <= peak_memory(free_older_and_allocate) < 1_100_000  # not 1 MB - 2 MB
