"""helpers.models.lstm: the from-scratch LSTM cell against torch's nn.LSTM / nn.LSTMCell with copied weights,
the LSTM forecaster's shapes, and the gradient-through-time measurement against autograd by hand."""

import pytest
import torch
from torch import nn

from helpers.models import LSTMCellFromScratch, LSTMForecaster, gradient_norms_through_time, unroll


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("bias", [True, False])
def test_lstm_cell_from_scratch_matches_nn_lstm_with_copied_weights(bias):
    torch.manual_seed(0)
    reference = nn.LSTM(input_size=3, hidden_size=5, bias=bias)
    cell = LSTMCellFromScratch(3, 5).copy_from(reference)
    x = torch.randn(9, 4, 3)  # (time, batch, features), nn.LSTM's default layout
    h0, c0 = torch.randn(1, 4, 5), torch.randn(1, 4, 5)
    out_ref, (h_ref, c_ref) = reference(x, (h0, c0))
    out, (h, c) = unroll(cell, x, (h0[0], c0[0]))
    assert out.shape == out_ref.shape == (9, 4, 5)
    assert max_diff(out, out_ref) < 1e-6
    assert max_diff(h, h_ref[0]) < 1e-6
    assert max_diff(c, c_ref[0]) < 1e-6
    # gradients agree too: the same function of the same weights
    out.sum().backward()
    out_ref.sum().backward()
    w_forget = torch.cat([reference.weight_ih_l0.grad[5:10], reference.weight_hh_l0.grad[5:10]], dim=1)
    assert max_diff(cell.forget_gate.weight.grad, w_forget) < 1e-5


def test_lstm_cell_from_scratch_matches_nn_lstmcell_and_starts_from_zeros():
    torch.manual_seed(1)
    reference = nn.LSTMCell(2, 6)
    cell = LSTMCellFromScratch(2, 6).copy_from(reference)
    x = torch.randn(7, 2)
    h_ref, c_ref = reference(x)  # no state given: zeros
    h, c = cell(x)
    assert max_diff(h, h_ref) < 1e-6 and max_diff(c, c_ref) < 1e-6


def test_copy_from_and_cell_refuse_what_does_not_fit():
    with pytest.raises(ValueError, match="one-layer, one-direction nn.LSTM .* got num_layers=2"):
        LSTMCellFromScratch(3, 5).copy_from(nn.LSTM(3, 5, num_layers=2))
    with pytest.raises(ValueError, match=r"this cell is \(input 3, hidden 5\), the reference is \(input 3, hidden 4\)"):
        LSTMCellFromScratch(3, 5).copy_from(nn.LSTM(3, 4))
    with pytest.raises(TypeError, match="got GRU"):
        LSTMCellFromScratch(3, 5).copy_from(nn.GRU(3, 5))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3\), got \(2, 4\)"):
        LSTMCellFromScratch(3, 5)(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"h and c must have shape \(2, 5\), got \(2, 4\) and \(2, 5\)"):
        LSTMCellFromScratch(3, 5)(torch.randn(2, 3), (torch.zeros(2, 4), torch.zeros(2, 5)))
    with pytest.raises(ValueError, match="hidden_size must be an int >= 1, got 0"):
        LSTMCellFromScratch(3, 0)


def test_lstm_forecaster_shapes_and_nodes_as_independent_sequences():
    torch.manual_seed(0)
    model = LSTMForecaster(in_features=2, hidden_size=8, horizon=3)
    one_station = torch.randn(4, 12, 2)  # (batch, time, features)
    network = torch.randn(4, 12, 5, 2)  # (batch, time, nodes, features)
    assert model(one_station).shape == (4, 3)
    out = model(network)
    assert out.shape == (4, 3, 5)
    # node 2 of the network is forecast exactly as a sequence on its own
    assert max_diff(out[:, :, 2], model(network[:, :, 2])) < 1e-6
    with pytest.raises(ValueError, match=r"\(batch, time, 2\) .* got \(4, 12, 3\)"):
        model(torch.randn(4, 12, 3))
    with pytest.raises(ValueError, match="horizon must be an int >= 1, got 0"):
        LSTMForecaster(horizon=0)


def test_gradient_norms_through_time_against_autograd_by_hand():
    torch.manual_seed(0)
    rnn = nn.RNN(1, 4, batch_first=True)
    norms = gradient_norms_through_time(rnn, seq_len=6, batch_size=3, seed=5)
    x = torch.randn(3, 6, 1, generator=torch.Generator().manual_seed(5))
    for t in range(6):
        grads = []
        for b in range(3):
            xb = x[b : b + 1].clone().requires_grad_(True)
            rnn(xb)[0][0, -1].sum().backward()
            grads.append(xb.grad[0, t].norm())
        assert norms[t].item() == pytest.approx(torch.stack(grads).mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="batch_first"):
        gradient_norms_through_time(nn.RNN(1, 4), seq_len=5)
