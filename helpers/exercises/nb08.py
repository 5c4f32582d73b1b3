"""Exercises of notebook 08 (the full STGCN)."""

import torch
import torch.nn.functional as F

from helpers.exercises import exercise
from helpers.exercises.hints import case_text, mismatch, numbered, shape_hint
from helpers.models import STGCNConfig, TemporalGatedConv, count_parameters


@exercise("08.1", "time steps that reach the output block")
def check_output_steps(answer):
    for input_len, kt, blocks in [(12, 3, 2), (12, 2, 2), (24, 3, 3), (9, 2, 4), (5, 1, 3)]:
        config = STGCNConfig(num_nodes=1, input_len=input_len, Kt=kt, blocks=((4, 2, 4),) * blocks)
        got = answer(input_len, kt, blocks)
        if got != config.time_left:
            return mismatch(case_text(input_len=input_len, kt=kt, num_blocks=blocks),
                            config.time_left, got, "; each block has two temporal convolutions, "
                            "each removing kt - 1 steps")
    return None


@exercise("08.2", "from the notes' layout (batch, nodes, time, features) to ours")
def check_notes_to_ours(answer):
    ours = numbered(2, 5, 3, 4)  # (batch, time 5, nodes 3, features)
    notes = ours.transpose(1, 2).contiguous()  # (batch, nodes 3, time 5, features)
    result = answer(notes)
    if hint := shape_hint(result, ours.shape):
        return hint + " (ours is (batch, time, nodes, features))"
    if not torch.equal(result, ours):
        return ("the shape is right but the values are scrambled: swap the nodes and time axes, "
                "do not reshape")
    return None


@exercise("08.3", "the paper's gated linear unit with the residual inside the gate")
def check_paper_gate(answer):
    g = torch.Generator().manual_seed(7)
    p, q, residual = (torch.randn(2, 3, 4, 5, generator=g) for _ in range(3))
    result = answer(p, q, residual)
    if hint := shape_hint(result, p.shape):
        return hint
    expected = F.glu(torch.cat([p + residual, q], dim=-1), dim=-1)
    if torch.allclose(result, p * torch.sigmoid(q) + residual, atol=1e-6):
        return ("that adds the residual after the gate (the notes' order); the paper adds it to P "
                "before gating")
    if not torch.allclose(result, expected, atol=1e-6):
        return "compare with (P + residual) * sigmoid(Q)"
    return None


@exercise("08.4", "parameters of a temporal gated convolution")
def check_temporal_conv_parameters(answer):
    for c_in, c_out, kt, gate in [(1, 64, 3, "glu"), (64, 16, 3, "glu"), (16, 64, 2, "notes"),
                                  (32, 32, 4, "glu"), (64, 16, 3, "notes")]:
        expected = count_parameters(TemporalGatedConv(c_in, c_out, kt, gate=gate))
        got = answer(c_in, c_out, kt, gate)
        if got != expected:
            projects = gate == "glu" and c_in > c_out
            why = " (did you count the 1x1 projection of the residual?)" if projects else ""
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
