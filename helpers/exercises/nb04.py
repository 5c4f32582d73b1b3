"""Exercises of notebook 04 (modules, layers, activations, initialisation)."""

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


def _forecaster_hint(cls) -> str | None:
    """None when cls(window, hidden, depth) is a trainable ReLU forecaster, else a hint."""
    torch.manual_seed(0)
    model = cls(window=12, hidden=16, depth=3)
    if not isinstance(model, nn.Module):
        return f"FixedForecaster(...) must build an nn.Module, got {type(model).__name__}"
    expected = (12 * 16 + 16) + 2 * (16 * 16 + 16) + (16 + 1)
    counted = sum(p.numel() for p in model.parameters())
    if counted == 16 + 1:
        return ("model.parameters() holds only the head's 17 numbers: layers kept in a plain Python "
                "list are not registered, so the optimiser never sees them (nn.ModuleList registers them)")
    if counted != expected:
        return (f"depth 3, window 12, hidden 16 should give {expected} parameters (3 hidden Linear "
                f"layers and a head), got {counted}")
    x = torch.randn(32, 12, generator=torch.Generator().manual_seed(1))
    out = model(x)
    if hint := shape_hint(out, (32, 1), "model(x) for x (32, 12)"):
        return hint
    a, b = x[:16], x[16:]
    if torch.allclose(model((a + b) / 2), (model(a) + model(b)) / 2, atol=1e-5):
        return ("the model is affine (f of a mean equals the mean of f): without an activation "
                "between them, stacked Linear layers collapse into one")
    target = torch.sin(x.sum(dim=1, keepdim=True))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        optimizer.zero_grad()
        F.mse_loss(model(x), target).backward()
        optimizer.step()
    unchanged = [i for i, (p, q) in enumerate(zip(model.parameters(), first, strict=True))
                 if torch.equal(p, q)]
    if unchanged:
        return (f"{len(unchanged)} parameter tensors did not move in 3 Adam steps: is every layer "
                "used in forward?")
    return None


@exercise("04.3", "the forecaster that cannot learn")
def check_fixed_forecaster(answer):
    return _forecaster_hint(answer)


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
    swapped = F.kl_div(p.log(), q, reduction="none").sum(dim=-1)  # KL(q || p): p has zeros -> inf
    got = answer(p, q)
    if hint := shape_hint(got, truth.shape):
        return hint + " (sum over the last dimension only)"
    finite = torch.isfinite(swapped)
    if torch.isinf(got).any() and torch.allclose(got[finite], swapped[finite], atol=1e-6):
        return ("you computed KL(q || p): the sum runs over p's distribution, sum p * log(p / q); "
                "KL is not symmetric")
    if torch.isnan(got).any():
        return "NaN in the result: where p is 0 the term must be 0 (torch.xlogy helps)"
    if not torch.allclose(got, truth, atol=1e-6):
        return "the values differ from F.kl_div; KL(p || q) = sum p * (log p - log q)"
    return None
