"""The LSTM of notebook 06: a cell written out gate by gate, its unrolling, the LSTM forecaster,
and how much the gradient through time vanishes.

Shapes: a window of past readings is `(batch, time, features)` for one station or
`(batch, time, nodes, features)` for a whole network; a forecast is `(batch, horizon)` or
`(batch, horizon, nodes)`. Training recipes live in `helpers.train` (`fit_lstm_forecaster`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from helpers.checks import check_int

__all__ = ["LSTMCellFromScratch", "unroll", "LSTMForecaster", "gradient_norms_through_time"]


class LSTMCellFromScratch(nn.Module):
    """One LSTM step written gate by gate, with the equations of PyTorch's `nn.LSTM`: the LSTM of
    Hochreiter and Schmidhuber (1997) with the forget gate that Gers, Schmidhuber and Cummins (2000)
    added:

        f = sigmoid(W_f [x, h] + b_f)     forget gate: how much of the old cell state to keep
        i = sigmoid(W_i [x, h] + b_i)     input gate: how much of the candidate to write
        g = tanh(W_g [x, h] + b_g)        candidate values
        o = sigmoid(W_o [x, h] + b_o)     output gate: how much of the cell state to show
        c' = f * c + i * g                new cell state (the long-term memory)
        h' = o * tanh(c')                 new hidden state (the output at this step)

    forward(x, state=None): x (batch, input_size), state (h, c) each (batch, hidden_size) or
    None for zeros -> (h', c'). Each gate is one `nn.Linear(input_size + hidden_size, hidden_size)`
    acting on the concatenation [x, h]; `copy_from` loads the weights of a one-layer `nn.LSTM` or
    an `nn.LSTMCell`.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = check_int("input_size", input_size)
        self.hidden_size = check_int("hidden_size", hidden_size)
        width = input_size + hidden_size
        self.forget_gate = nn.Linear(width, hidden_size)
        self.input_gate = nn.Linear(width, hidden_size)
        self.candidate = nn.Linear(width, hidden_size)
        self.output_gate = nn.Linear(width, hidden_size)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, Tensor]:
        h, c = self._check(x, state)
        xh = torch.cat([x, h], dim=1)  # (batch, input_size + hidden_size)
        f = torch.sigmoid(self.forget_gate(xh))
        i = torch.sigmoid(self.input_gate(xh))
        g = torch.tanh(self.candidate(xh))
        o = torch.sigmoid(self.output_gate(xh))
        c = f * c + i * g
        h = o * torch.tanh(c)
        return h, c

    def _check(self, x: Tensor, state: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
        """The state (h, c) to start from (zeros for None), after checking the shapes."""
        if x.dim() != 2 or x.size(1) != self.input_size:
            raise ValueError(f"x must have shape (batch, {self.input_size}), got {tuple(x.shape)}")
        if state is None:
            zeros = x.new_zeros(x.size(0), self.hidden_size)
            return zeros, zeros
        h, c = state
        if h.shape != (x.size(0), self.hidden_size) or c.shape != h.shape:
            raise ValueError(f"h and c must have shape ({x.size(0)}, {self.hidden_size}), "
                             f"got {tuple(h.shape)} and {tuple(c.shape)}")
        return h, c

    @torch.no_grad()
    def copy_from(self, reference: nn.LSTM | nn.LSTMCell) -> LSTMCellFromScratch:
        """Load the weights of a one-layer, one-direction `nn.LSTM` or an `nn.LSTMCell` of the
        same sizes.

        PyTorch stacks the four gates in the order (input, forget, candidate, output) along the
        rows of `weight_ih` (4 * hidden, input) and `weight_hh` (4 * hidden, hidden), and keeps two
        biases that are simply added. Returns self.
        """
        suffix = "_l0" if isinstance(reference, nn.LSTM) else ""
        if isinstance(reference, nn.LSTM):
            if reference.num_layers != 1 or reference.bidirectional or reference.proj_size:
                raise ValueError("copy_from expects a one-layer, one-direction nn.LSTM without "
                                 f"projection, got num_layers={reference.num_layers}, "
                                 f"bidirectional={reference.bidirectional}, "
                                 f"proj_size={reference.proj_size}")
        elif not isinstance(reference, nn.LSTMCell):
            kind = type(reference).__name__
            raise TypeError(f"copy_from expects nn.LSTM or nn.LSTMCell, got {kind}")
        if (reference.input_size, reference.hidden_size) != (self.input_size, self.hidden_size):
            raise ValueError(f"sizes differ: this cell is (input {self.input_size}, hidden "
                             f"{self.hidden_size}), the reference is (input "
                             f"{reference.input_size}, hidden {reference.hidden_size})")
        w_ih = getattr(reference, "weight_ih" + suffix).chunk(4)
        w_hh = getattr(reference, "weight_hh" + suffix).chunk(4)
        has_bias = getattr(reference, "bias", True)
        zeros = [torch.zeros(self.hidden_size)] * 4
        b_ih = getattr(reference, "bias_ih" + suffix).chunk(4) if has_bias else zeros
        b_hh = getattr(reference, "bias_hh" + suffix).chunk(4) if has_bias else zeros
        # PyTorch's order of the gates
        gates = (self.input_gate, self.forget_gate, self.candidate, self.output_gate)
        for k, gate in enumerate(gates):
            gate.weight.copy_(torch.cat([w_ih[k], w_hh[k]], dim=1))
            gate.bias.copy_(b_ih[k] + b_hh[k])
        return self


def unroll(cell: nn.Module, x: Tensor, state: tuple[Tensor, Tensor] | None = None
           ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Run an LSTM cell along a sequence: x (time, batch, input_size) -> outputs (time, batch,
    hidden), (h, c).

    The loop over time is the recurrence itself: step t needs the state of step t - 1.
    Same layout and results as `nn.LSTM(input_size, hidden_size)` (batch_first=False).
    """
    if x.dim() != 3:
        raise ValueError(f"x must have shape (time, batch, input_size), got {tuple(x.shape)}")
    outputs = []
    for x_t in x:
        state = cell(x_t, state)
        outputs.append(state[0])
    return torch.stack(outputs), state


class LSTMForecaster(nn.Module):
    """Encode a window of past readings with an LSTM; map its last hidden state to the next
    `horizon` values.

    forward(x): x (batch, time, features) -> (batch, horizon), or x (batch, time, nodes, features)
    -> (batch, horizon, nodes): every station is an independent sequence through the same weights
    (no graph). A many-to-one encoder with a linear multi-step head: all horizon steps at once.

    truncate=k runs the encoder over chunks of k steps and detaches the state (h, c) between
    chunks: truncated backpropagation through time. The forward values are unchanged; the gradient
    reaches only the last k input steps (the last chunk, which may be shorter). None: full BPTT.
    """

    def __init__(self, in_features: int = 1, hidden_size: int = 32, horizon: int = 1,
                 num_layers: int = 1, dropout: float = 0.0, truncate: int | None = None):
        super().__init__()
        self.in_features = check_int("in_features", in_features)
        self.hidden_size = check_int("hidden_size", hidden_size)
        self.horizon = check_int("horizon", horizon)
        self.truncate = None if truncate is None else check_int("truncate", truncate)
        check_int("num_layers", num_layers)
        self.lstm = nn.LSTM(in_features, hidden_size, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.head = nn.Linear(hidden_size, horizon)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() not in (3, 4) or x.size(-1) != self.in_features:
            raise ValueError(f"x must have shape (batch, time, {self.in_features}) or "
                             f"(batch, time, nodes, {self.in_features}), got {tuple(x.shape)}")
        if x.dim() == 4:  # every node is a sequence of its own: (batch * nodes, time, features)
            batch, time, nodes, features = x.shape
            seqs = x.permute(0, 2, 1, 3).reshape(batch * nodes, time, features)
            return self.forward(seqs).reshape(batch, nodes, self.horizon).transpose(1, 2)
        if self.truncate is None:
            _, (h, _) = self.lstm(x)  # h: (num_layers, batch, hidden)
            return self.head(h[-1])  # (batch, horizon)
        ends = list(range(x.size(1), 0, -self.truncate))[::-1]  # the last chunk has k steps
        state = None
        for start, stop in zip([0, *ends[:-1]], ends, strict=True):
            if state is not None:
                state = tuple(s.detach() for s in state)  # gradients stop here
            _, state = self.lstm(x[:, start:stop], state)
        return self.head(state[0][-1])  # (batch, horizon)


def gradient_norms_through_time(model: nn.RNN | nn.LSTM | nn.GRU, seq_len: int,
                                batch_size: int = 64, seed: int = 0) -> Tensor:
    """How much the last output of a recurrent layer depends on each earlier input:
    ||d h_T / d x_t||.

    model: a batch_first `nn.RNN`, `nn.LSTM` or `nn.GRU`. Feeds `batch_size` random sequences
    (standard normal, drawn from a generator seeded with `seed`) of `seq_len` steps, back-propagates
    the sum of the last step's output and returns the mean over the batch of the gradient norm at
    each input step: shape (seq_len,), index t = input step t (the last entry is the step that
    produced the output).
    A curve that falls by orders of magnitude towards t = 0 is a vanishing gradient.
    """
    if not isinstance(model, (nn.RNN, nn.LSTM, nn.GRU)) or not model.batch_first:
        raise ValueError(f"model must be a batch_first nn.RNN, nn.LSTM or nn.GRU, got {model!r}")
    check_int("seq_len", seq_len)
    check_int("batch_size", batch_size)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, seq_len, model.input_size, generator=generator).requires_grad_(True)
    output = model(x)[0]  # (batch, time, hidden)
    (grad,) = torch.autograd.grad(output[:, -1].sum(), x)
    return grad.norm(dim=-1).mean(dim=0)
