"""Exercises of notebook 08 (the full STGCN).

08.1 time steps left after the blocks; 08.2 debug a temporal gate; 08.3 decide the layout conversion
a port needs; 08.4 count a temporal convolution's parameters; 08.5 MAE per station with missing
targets; 08.6 judge an ablation (Chebyshev order) over seeds.
"""

import torch
import torch.nn.functional as F

from helpers.exercises import exercise
from helpers.exercises.hints import case_text, int_hint, mismatch, numbered, shape_hint
from helpers.models import STGCNConfig, TemporalGatedConv, count_parameters


@exercise("08.1", "time steps that reach the output block")
def check_output_steps(answer):
    for input_len, kt, blocks in [(12, 3, 2), (12, 2, 2), (24, 3, 3), (9, 2, 4), (5, 1, 3)]:
        config = STGCNConfig(num_nodes=1, input_len=input_len, Kt=kt, blocks=((4, 2, 4),) * blocks)
        got = answer(input_len, kt, blocks)
        if hint := int_hint(got):
            return hint
        if got != config.time_left:
            why = ""
            if got == input_len - (kt - 1) * blocks:
                why = "; each block has TWO temporal convolutions, each removing kt - 1 steps"
            elif got == input_len - 2 * kt * blocks:
                why = "; a kernel of kt steps without padding removes kt - 1 steps, not kt"
            return mismatch(case_text(input_len=input_len, kt=kt, num_blocks=blocks), config.time_left, got, why)
    return None


def _gate_inputs(kt: int, seed: int):
    """conv_out (2, 7 - kt, 3, 8) and x (2, 6, 3, 4): a window of 6 steps, 4 channels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 6, 3, 4, generator=g)
    conv_out = torch.randn(2, 6 - kt + 1, 3, 8, generator=g)
    return conv_out, x


@exercise("08.2", "find the bugs in a temporal gate")
def check_fixed_gate(answer):
    for kt in (3, 2, 4):
        conv_out, x = _gate_inputs(kt, seed=kt)
        result = answer(conv_out, x, kt)
        p, q = conv_out.chunk(2, dim=-1)
        last, first = x[:, kt - 1 :], x[:, : x.shape[1] - kt + 1]
        if hint := shape_hint(result, p.shape, f"kt={kt}"):
            return hint + " ((batch, time - kt + 1, nodes, channels))"
        expected = F.glu(torch.cat([p + last, q], dim=-1), dim=-1)  # torch's GLU: a * sigmoid(b)
        if torch.allclose(result, expected, atol=1e-6):
            continue
        wrong = {
            "the gate is still added: a GLU multiplies, P * sigmoid(Q), it does not add sigmoid(Q)":
                [p + torch.sigmoid(q) + r for r in (first, last)] + [(p + r) + torch.sigmoid(q) for r in (first, last)],
            "the residual is taken from the steps each window STARTS on; take the steps it ends on, "
            "x[:, kt - 1:]": [(p + first) * torch.sigmoid(q)],
            "the residual is added after the gate; the authors' code adds it to P inside the gate, "
            "(P + x) * sigmoid(Q)": [p * torch.sigmoid(q) + r for r in (first, last)],
            "that is P * sigmoid(Q) without the residual (the paper's equation); this gate also adds "
            "the input's last steps to P": [p * torch.sigmoid(q)],
            "P and Q are swapped: P is the first half of conv_out's channels, Q (the gate) the second":
                [(q + last) * torch.sigmoid(p)],
        }
        for why, candidates in wrong.items():
            if any(torch.allclose(result, c, atol=1e-6) for c in candidates):
                return f"for kt={kt}: {why}"
        gap = (result - expected).abs().max().item()
        return f"for kt={kt}: values differ from (P + x[:, kt-1:]) * sigmoid(Q) by up to {gap:.3g}"
    return None


LAYOUTS = {  # the layout each source feeds its STGCN, as (batch, ...) axis names
    "authors": ("batch", "time", "nodes", "channels"),  # models/layers.py of the authors' TF code
    "pyg_temporal": ("batch", "time", "nodes", "channels"),  # STConv.forward's docstring
    "notes": ("batch", "nodes", "time", "channels"),  # the study notes, FelixOpolka's port
}


@exercise("08.3", "which layout conversion does each source need?")
def check_to_workbook_layout(answer):
    ours = numbered(2, 5, 3, 4)  # (batch, time 5, nodes 3, channels 4): every entry is unique
    for source, names in LAYOUTS.items():
        order = [("batch", "time", "nodes", "channels").index(n) for n in names]
        given = ours.permute(*order).contiguous()
        result = answer(given, source)
        if hint := shape_hint(result, ours.shape, f"source={source!r}"):
            if isinstance(result, torch.Tensor) and tuple(result.shape) == tuple(given.shape) and order != [0, 1, 2, 3]:
                return f"source={source!r}: the data came back in its own layout; swap time and nodes"
            if isinstance(result, torch.Tensor) and result.dim() == 4 and result.shape[1] == ours.shape[-1]:
                return (f"source={source!r}: that is (batch, channels, time, nodes), what Conv2d wants "
                        f"inside the layer; the model itself takes (batch, time, nodes, channels)")
            if source != "notes" and isinstance(result, torch.Tensor):
                return (f"source={source!r}: this source is already (batch, time, nodes, channels) (see the "
                        f"comparison table): it needs no conversion")
            return hint + " (this workbook's (batch, time, nodes, channels))"
        if not torch.equal(result, ours):
            return (f"source={source!r}: the shape is right but the values are scrambled: permute axes, "
                    f"never reshape or view to a new shape")
    return None


@exercise("08.4", "parameters of a temporal gated convolution")
def check_temporal_conv_parameters(answer):
    for c_in, c_out, kt, gate in [(1, 64, 3, "glu"), (64, 16, 3, "glu"), (16, 64, 2, "notes"),
                                  (32, 32, 4, "glu"), (64, 16, 3, "notes")]:
        expected = count_parameters(TemporalGatedConv(c_in, c_out, kt, gate=gate))
        got = answer(c_in, c_out, kt, gate)
        if hint := int_hint(got):
            return hint
        if got != expected:
            parts = 2 if gate == "glu" else 3
            projection = c_in * c_out if gate == "glu" and c_in > c_out else 0
            why = ""
            if got == expected - projection and projection:
                why = " (did you count the 1x1 projection of the residual? c_in > c_out here)"
            elif got == expected - parts * c_out:
                why = " (each output channel of the convolution has a bias)"
            elif got == expected + c_in * c_out and not projection:
                why = " (a projection is needed only when c_in > c_out, and only for gate 'glu')"
            return mismatch(case_text(c_in=c_in, c_out=c_out, kt=kt, gate=gate), expected, got, why)
    return None


@exercise("08.5", "MAE per station with missing readings")
def check_station_mae(answer):
    g = torch.Generator().manual_seed(5)
    target = torch.randn(6, 2, 4, generator=g)
    pred = target + torch.randn(6, 2, 4, generator=g)
    target[0, 0, 1] = target[3, 1, 1] = float("nan")
    target[:, :, 3] = float("nan")  # a station with no observed target at all
    result = answer(pred, target)
    if hint := shape_hint(result, (4,)):
        return hint + " (one number per station: (nodes,))"
    errors = (pred - target).abs()
    expected = torch.stack([errors[..., k][~torch.isnan(errors[..., k])].mean() for k in range(4)])
    if not torch.isnan(result[3]):
        return "a station with no observed target should get NaN (0 / 0), not a number"
    if torch.isnan(result[:3]).any():
        return ("a missing target made a whole station NaN: leave the missing entries out of the "
                "sum and the count")
    if not torch.allclose(result[:3], expected[:3], atol=1e-6):
        return "divide each station's sum of absolute errors by its number of OBSERVED targets"
    return None


VERDICT_CASES = [  # (errors of a over seeds, errors of b over seeds, expected verdict)
    ([15.1, 15.3, 15.2], [16.0, 16.4, 15.9], "a"),
    ([17.0, 16.6, 16.8], [15.2, 15.0, 15.5], "b"),
    ([15.0, 15.9, 15.2], [15.4, 16.1, 15.6], "no difference"),  # means differ, ranges overlap
    ([15.4, 15.0, 15.2, 15.1, 15.3], [15.6, 15.8, 15.7], "a"),  # unequal numbers of seeds
    ([16.0, 15.0, 15.1], [15.5, 15.4, 15.6], "no difference"),  # every pair but one favours a
]


@exercise("08.6", "is an ablation a difference, or seed noise?")
def check_verdict(answer):
    for a, b, expected in VERDICT_CASES:
        got = answer(list(a), list(b))
        if got not in ("a", "b", "no difference"):
            return f"return 'a', 'b' or 'no difference', not {got!r}"
        if got == expected:
            continue
        case = case_text(errors_a=a, errors_b=b)
        mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
        if expected == "no difference":
            why = ("the means differ, but the seeds' ranges overlap: the gap is inside the seed noise"
                   if got == ("a" if mean_a < mean_b else "b") else "the ranges overlap")
        elif got == ("b" if expected == "a" else "a"):
            why = "these are errors: LOWER is better"
        else:
            why = ("every seed of one lies below every seed of the other: compare the worst seed of one "
                   "with the best seed of the other (max of one < min of the other), whatever the seed counts")
        return f"for {case}: expected {expected!r}, got {got!r}: {why}"
    return None
