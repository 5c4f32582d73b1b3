"""The checkers of notebook 08's exercises: right answers pass, and each hint fires for the mistake
it names (a hint that can never fire would be a defect)."""

import pytest
import torch

from helpers.exercises import get_exercise


def run(exercise_id, answer):
    return get_exercise(exercise_id).test(answer)


# --- 08.1 ------------------------------------------------------------------------------------------
def test_output_steps_right_and_wrong():
    assert run("08.1", lambda t, kt, b: t - 2 * (kt - 1) * b) is None
    assert "TWO temporal convolutions" in run("08.1", lambda t, kt, b: t - (kt - 1) * b)
    assert "kt - 1 steps, not kt" in run("08.1", lambda t, kt, b: t - 2 * kt * b)
    assert "Python int" in run("08.1", lambda t, kt, b: torch.tensor(t - 2 * (kt - 1) * b))


# --- 08.2 ------------------------------------------------------------------------------------------
def fixed(conv_out, x, kt):
    p, q = conv_out.chunk(2, dim=-1)
    return (p + x[:, kt - 1 :]) * torch.sigmoid(q)


def as_given(conv_out, x, kt):  # the buggy gate shown in the notebook
    p, q = conv_out.chunk(2, dim=-1)
    return p + torch.sigmoid(q) + x[:, : x.shape[1] - kt + 1]


@pytest.mark.parametrize("answer, words", [
    (as_given, "a GLU multiplies"),
    (lambda c, x, kt: (c.chunk(2, -1)[0] + x[:, : x.shape[1] - kt + 1]) * torch.sigmoid(c.chunk(2, -1)[1]),
     "STARTS on"),
    (lambda c, x, kt: c.chunk(2, -1)[0] * torch.sigmoid(c.chunk(2, -1)[1]) + x[:, kt - 1 :], "after the gate"),
    (lambda c, x, kt: c.chunk(2, -1)[0] * torch.sigmoid(c.chunk(2, -1)[1]), "without the residual"),
    (lambda c, x, kt: (c.chunk(2, -1)[1] + x[:, kt - 1 :]) * torch.sigmoid(c.chunk(2, -1)[0]), "swapped"),
    (lambda c, x, kt: x, "expected shape"),
    (lambda c, x, kt: fixed(c, x, kt) * 1.01, "differ"),
])
def test_fixed_gate_hints(answer, words):
    assert run("08.2", fixed) is None
    hint = run("08.2", answer)
    assert hint is not None and words in hint, hint


def test_fixed_gate_agrees_with_the_helpers_layer():
    from helpers.models import TemporalGatedConv

    torch.manual_seed(0)
    layer = TemporalGatedConv(4, 4, 3, gate="glu")
    x = torch.randn(2, 6, 3, 4)
    conv_out = layer.conv(x)  # (B, T', N, 2 C): TemporalConv takes channels-last input
    assert torch.allclose(fixed(conv_out, x, 3), layer(x), atol=1e-6)


# --- 08.3 ------------------------------------------------------------------------------------------
def to_workbook(x, source):
    return x.permute(0, 2, 1, 3) if source == "notes" else x


@pytest.mark.parametrize("answer, words", [
    (lambda x, s: x.permute(0, 2, 1, 3), "needs no conversion"),  # converts the authors' layout too
    (lambda x, s: x, "came back in its own layout"),  # forgets the notes' swap
    (lambda x, s: x.permute(0, 3, 1, 2) if s == "notes" else x, "Conv2d"),
    (lambda x, s: x.reshape(x.shape[0], x.shape[2], x.shape[1], x.shape[3]) if s == "notes" else x, "scrambled"),
    (lambda x, s: x.numpy(), "return a tensor"),
])
def test_layout_hints(answer, words):
    assert run("08.3", to_workbook) is None
    hint = run("08.3", answer)
    assert hint is not None and words in hint, hint


def test_layout_table_agrees_with_the_model():
    """The authors' layout is the one helpers.models.STGCN takes: no conversion, it runs."""
    from helpers.exercises.nb08 import LAYOUTS
    from helpers.models import STGCN, STGCNConfig

    model = STGCN(STGCNConfig(num_nodes=3, input_len=5, blocks=((4, 2, 4),), Kt=2), torch.ones(3, 3))
    x = torch.randn(2, 5, 3, 1)  # (batch, time, nodes, channels)
    assert LAYOUTS["authors"] == LAYOUTS["pyg_temporal"] == ("batch", "time", "nodes", "channels")
    assert model(to_workbook(x, "authors")).shape == (2, 3, 3)


# --- 08.4 ------------------------------------------------------------------------------------------
def parameters(c_in, c_out, kt, gate):
    parts = 2 if gate == "glu" else 3
    return parts * c_out * (c_in * kt + 1) + (c_in * c_out if gate == "glu" and c_in > c_out else 0)


@pytest.mark.parametrize("answer, words", [
    (lambda i, o, k, g: (2 if g == "glu" else 3) * o * (i * k + 1), "1x1 projection"),
    (lambda i, o, k, g: parameters(i, o, k, g) - (2 if g == "glu" else 3) * o, "bias"),
    (lambda i, o, k, g: (2 if g == "glu" else 3) * o * (i * k + 1) + i * o, "only when c_in > c_out"),
    (lambda i, o, k, g: float(parameters(i, o, k, g)), "Python int"),
])
def test_parameter_hints(answer, words):
    assert run("08.4", parameters) is None
    hint = run("08.4", answer)
    assert hint is not None and words in hint, hint


# --- 08.5 ------------------------------------------------------------------------------------------
def station_mae(pred, target):
    observed = ~torch.isnan(target)
    errors = torch.where(observed, (pred - target).abs(), torch.zeros_like(pred))
    return errors.sum(dim=(0, 1)) / observed.sum(dim=(0, 1))


@pytest.mark.parametrize("answer, words", [
    (lambda p, t: (p - t).abs().mean(dim=(0, 1)), "whole station NaN"),
    (lambda p, t: torch.nan_to_num(station_mae(p, t)), "NaN (0 / 0)"),
    (lambda p, t: station_mae(p, t) * (~t.isnan()).sum(dim=(0, 1)) / (t.shape[0] * t.shape[1]), "OBSERVED"),
    (lambda p, t: (p - t).abs().nanmean(), "one number per station"),
])
def test_station_mae_hints(answer, words):
    assert run("08.5", station_mae) is None
    assert run("08.5", lambda p, t: (p - t).abs().nanmean(dim=(0, 1))) is None  # torch's own
    hint = run("08.5", answer)
    assert hint is not None and words in hint, hint


# --- 08.6 ------------------------------------------------------------------------------------------
def verdict(errors_a, errors_b):
    if max(errors_a) < min(errors_b):
        return "a"
    if max(errors_b) < min(errors_a):
        return "b"
    return "no difference"


def by_means(a, b):
    return "a" if sum(a) / len(a) < sum(b) / len(b) else "b"


def by_pairs(a, b):  # majority of seed-by-seed comparisons (zip stops at the shorter list)
    wins = sum(x < y for x, y in zip(a, b, strict=False))
    return "a" if wins > len(list(zip(a, b, strict=False))) / 2 else "b"


@pytest.mark.parametrize("answer, words", [
    (by_means, "inside the seed noise"),
    (by_pairs, "seed noise"),
    (lambda a, b: {"a": "b", "b": "a"}.get(verdict(a, b), "no difference"), "LOWER is better"),
    (lambda a, b: "no difference", "worst seed of one"),
    (lambda a, b: True, "return 'a', 'b' or 'no difference'"),
])
def test_verdict_hints(answer, words):
    assert run("08.6", verdict) is None
    hint = run("08.6", answer)
    assert hint is not None and words in hint, hint
