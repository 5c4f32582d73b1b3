"""Exercises of notebook 04 (modules, layers, activations, initialisation)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from helpers.exercises import exercise
from helpers.exercises.hints import case_text, mismatch, shape_hint


@exercise("04.1", "output length of a transposed convolution")
def check_transposed_output_length(answer):
    settings = [  # (length, kernel, stride, padding, output_padding, dilation)
        (7, 4, 2, 1, 0, 1),
        (10, 3, 1, 0, 0, 1),
        (5, 3, 2, 1, 1, 1),
        (12, 5, 3, 2, 2, 1),
        (8, 3, 1, 1, 0, 2),
        (6, 2, 2, 0, 1, 3),
        (1, 1, 1, 0, 0, 1),
    ]
    for length, kernel, stride, padding, output_padding, dilation in settings:
        layer = nn.ConvTranspose1d(1, 1, kernel, stride, padding, output_padding, dilation=dilation)
        truth = layer(torch.zeros(1, 1, length)).shape[-1]
        got = answer(length, kernel, stride, padding, output_padding, dilation)
        if got != truth:
            case = case_text(length=length, kernel=kernel, stride=stride, padding=padding,
                             output_padding=output_padding, dilation=dilation)
            return mismatch(case, truth, got)
    return None


@exercise("04.2", "parameters of a convolution")
def check_conv2d_parameter_count(answer):
    for in_ch, out_ch, k, groups, bias in [
        (3, 8, 3, 1, True),
        (1, 16, 5, 1, False),
        (8, 8, 3, 8, True),
        (6, 12, 1, 3, True),
        (4, 2, 7, 2, False),
    ]:
        layer = nn.Conv2d(in_ch, out_ch, k, groups=groups, bias=bias)
        truth = sum(p.numel() for p in layer.parameters())
        got = answer(in_ch, out_ch, k, groups=groups, bias=bias)
        if got != truth:
            why = " (each output channel sees in_channels / groups inputs)" if groups > 1 else ""
            return mismatch(f"Conv2d({in_ch}, {out_ch}, {k}, groups={groups}, bias={bias})",
                            truth, got, why)
    return None


@exercise("04.3", "Xavier's uniform bound")
def check_xavier_uniform_limit(answer):
    for fan_in, fan_out, gain in [(64, 256, 1.0), (100, 100, 1.0), (12, 32, 5 / 3),
                                  (300, 10, math.sqrt(2))]:
        w = nn.init.xavier_uniform_(torch.empty(fan_out, fan_in), gain=gain,
                                    generator=torch.Generator().manual_seed(0))
        largest = w.abs().max().item()
        got = answer(fan_in, fan_out, gain)
        if not isinstance(got, (int, float)):
            return f"return a number, got {type(got).__name__}"
        if not largest <= got + 1e-6 or got > 1.01 * largest + 1e-3:
            return (f"for fan_in={fan_in}, fan_out={fan_out}, gain={gain:.3f}: xavier_uniform_ "
                    f"drew values up to {largest:.4f}, your bound is {got:.4f}; the variance "
                    "should be gain^2 * 2 / (fan_in + fan_out)")
    return None


def _nested_model():
    return nn.Sequential(
        nn.Linear(4, 8),
        nn.ReLU(),
        nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 8), nn.ReLU())),
        nn.Linear(8, 1),
    )


@exercise("04.4", "swap every ReLU")
def check_swap_relus(answer):
    torch.manual_seed(0)
    model = _nested_model()
    params_before = [p for p in model.parameters()]
    x = torch.randn(5, 4)
    result = answer(model, lambda: nn.LeakyReLU(0.2))
    if result is None:
        return "return the model"
    relus = [n for n, m in result.named_modules() if isinstance(m, nn.ReLU)]
    if relus:
        return f"ReLUs left at {relus}; look at every depth (named_modules walks the whole tree)"
    leaky = [n for n, m in result.named_modules() if isinstance(m, nn.LeakyReLU)]
    if len(leaky) != 3:
        return f"expected 3 LeakyReLU modules, found {len(leaky)} at {leaky}"
    if [p for p in result.parameters()] != params_before:
        return "the Linear layers must stay the same objects; replace only the activations"
    reference = _nested_model()
    reference.load_state_dict(result.state_dict())
    for parent in [reference, reference[2], reference[2][2]]:
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(parent, name, nn.LeakyReLU(0.2))
    if not torch.allclose(result(x), reference(x)):
        return "the swapped model computes something else than expected"
    return None


@exercise("04.5", "KL divergence")
def check_kl_divergence(answer):
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(4, 3, 6, generator=g), dim=-1)
    p[0, 0] = torch.tensor([0.5, 0.5, 0.0, 0.0, 0.0, 0.0])  # zeros in p: 0 * log 0 = 0
    q = torch.softmax(torch.randn(4, 3, 6, generator=g), dim=-1)
    truth = F.kl_div(q.log(), p, reduction="none").sum(dim=-1)
    got = answer(p, q)
    if hint := shape_hint(got, truth.shape):
        return hint + " (sum over the last dimension only)"
    if torch.isnan(got).any():
        return "NaN in the result: where p is 0 the term must be 0 (torch.xlogy helps)"
    if not torch.allclose(got, truth, atol=1e-6):
        return "the values differ from F.kl_div; KL(p || q) = sum p * (log p - log q)"
    if torch.allclose(answer(q, p), truth, atol=1e-6):
        return "the arguments are swapped: KL is not symmetric"
    return None
