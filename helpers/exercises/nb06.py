"""Exercises of notebook 06 (RNN and LSTM)."""

import math

import torch
from torch import nn

from helpers.exercises import exercise
from helpers.exercises.hints import case_text, close_hint, mismatch


def _cell_hint(answer, cell: nn.RNNCellBase, batch: int) -> str | None:
    """`close_hint` of answer(x, h, the cell's weights and biases) against cell(x, h), for a random
    batch of inputs x and hidden states h."""
    x, h = torch.randn(batch, cell.input_size), torch.randn(batch, cell.hidden_size)
    with torch.no_grad():
        got = answer(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
        return close_hint(got, cell(x, h), f"input {cell.input_size}, hidden {cell.hidden_size}",
                          reference="PyTorch's")


@exercise("06.1", "one step of a plain RNN")
def check_rnn_step(answer):
    torch.manual_seed(0)
    for input_size, hidden_size, batch in [(1, 4, 3), (5, 8, 2), (3, 3, 1)]:
        if hint := _cell_hint(answer, nn.RNNCell(input_size, hidden_size), batch):
            return hint + " (h_t = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh))"
    return None


@exercise("06.2", "parameters of an LSTM")
def check_lstm_parameter_count(answer):
    for input_size, hidden_size, num_layers in [(1, 32, 1), (4, 16, 2), (10, 20, 4), (3, 1, 1)]:
        truth = sum(p.numel() for p in nn.LSTM(input_size, hidden_size, num_layers).parameters())
        got = answer(input_size, hidden_size, num_layers)
        if got != truth:
            return mismatch(f"nn.LSTM({input_size}, {hidden_size}, num_layers={num_layers})",
                            truth, got, " (four gates, two biases each, and layers above the first "
                            "read hidden_size inputs)")
    return None


@exercise("06.3", "shapes of nn.LSTM's outputs")
def check_lstm_shapes(answer):
    cases = [(5, 3, 10, 20, 4, False, False), (12, 8, 2, 16, 1, True, False),
             (7, 2, 3, 5, 2, True, True), (1, 1, 1, 1, 1, False, True)]
    for seq_len, batch, features, hidden, layers, batch_first, bidirectional in cases:
        lstm = nn.LSTM(features, hidden, layers, batch_first=batch_first,
                       bidirectional=bidirectional)
        x = torch.zeros((batch, seq_len, features) if batch_first else (seq_len, batch, features))
        out, (h, c) = lstm(x)
        truth = (tuple(out.shape), tuple(h.shape), tuple(c.shape))
        got = answer(seq_len, batch, features, hidden, layers, batch_first, bidirectional)
        got = tuple(tuple(s) for s in got) if isinstance(got, (tuple, list)) else got
        if got != truth:
            case = case_text(seq_len=seq_len, batch=batch, features=features, hidden=hidden,
                             layers=layers, batch_first=batch_first, bidirectional=bidirectional)
            return mismatch(case, f"(out, h, c) shapes {truth}", got)
    return None


@exercise("06.4", "a GRU cell from scratch")
def check_gru_cell(answer):
    torch.manual_seed(1)
    for input_size, hidden_size, batch in [(2, 3, 4), (6, 5, 1)]:
        if hint := _cell_hint(answer, nn.GRUCell(input_size, hidden_size), batch):
            return hint + (" (rows are stacked as reset, update, new; the reset gate multiplies "
                           "h W_hn^T + b_hn, bias included)")
    return None


@exercise("06.5", "open the forget gate")
def check_open_forget_gate(answer):
    for num_layers, hidden_size, probability in [(1, 4, 0.9), (3, 2, 0.75)]:
        torch.manual_seed(2)
        lstm = nn.LSTM(3, hidden_size, num_layers)
        before = {name: p.detach().clone() for name, p in lstm.named_parameters()}
        answer(lstm, probability)
        h = hidden_size
        for layer in range(num_layers):
            b_ih, b_hh = getattr(lstm, f"bias_ih_l{layer}"), getattr(lstm, f"bias_hh_l{layer}")
            forget = torch.sigmoid(b_ih[h : 2 * h] + b_hh[h : 2 * h])
            if not torch.allclose(forget, torch.full_like(forget, probability), atol=1e-5):
                logit = math.log(probability / (1 - probability))
                return (f"layer {layer}: with zero input the forget gate should be {probability}, "
                        f"got {forget.tolist()} (the bias is the logit, log(p / (1 - p)) = "
                        f"{logit:.4f}, and PyTorch adds two biases)")
        for name, p in lstm.named_parameters():
            if name.startswith("weight") and not torch.equal(p, before[name]):
                return f"leave the weights alone: {name} changed"
            if name.startswith("bias"):
                others = torch.cat([p[:h], p[2 * h :]]).detach()
                if not torch.equal(others, torch.cat([before[name][:h], before[name][2 * h :]])):
                    return ("change only the forget gate's slice [hidden_size:2*hidden_size] "
                            f"of {name}")
    return None
