"""Exercises of notebook 06 (RNN and LSTM)."""

import math

import torch
from torch import nn

from helpers.exercises import exercise
from helpers.exercises.hints import case_text, close_hint, mismatch, shape_hint


def _cell_hint(answer, cell: nn.RNNCellBase, batch: int) -> str | None:
    """`close_hint` of answer(x, h, the cell's weights and biases) against cell(x, h), for a random
    batch of inputs x and hidden states h."""
    x, h = torch.randn(batch, cell.input_size), torch.randn(batch, cell.hidden_size)
    with torch.no_grad():
        got = answer(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
        return close_hint(got, cell(x, h), f"input {cell.input_size}, hidden {cell.hidden_size}",
                          reference="PyTorch's")


@exercise("06.1", "truncated backpropagation through time")
def check_run_truncated(answer):
    for steps, k in [(12, 4), (10, 3), (5, 5), (6, 1), (7, 10)]:
        torch.manual_seed(steps)
        lstm = nn.LSTM(2, 3, batch_first=True)
        x = torch.randn(4, steps, 2, requires_grad=True)
        case = f"{steps} steps in chunks of k={k}"
        out = answer(lstm, x, k)
        if hint := shape_hint(out, (4, steps, 3), case):
            return hint + (" (return the output of every step: the chunks' outputs concatenated "
                           "along the time axis)")
        full, _ = lstm(x)
        if not torch.allclose(out, full, atol=1e-5):
            return (f"{case}: the outputs differ from nn.LSTM over the whole sequence; carry (h, c) "
                    "from one chunk into the next (lstm(chunk, state)) instead of starting each "
                    "chunk from zeros: truncation changes the gradient, never the forward values")
        if not out.requires_grad:
            return (f"{case}: the outputs carry no gradient at all; detach only the state handed "
                    "from one chunk to the next, not the outputs")
        (grad,) = torch.autograd.grad(out[:, -1].sum(), x)
        reached = (grad.abs().sum(dim=(0, 2)) > 0).tolist()
        last_start = (steps - 1) // k * k  # the first step of the last chunk
        leaks = [t for t in range(last_start) if reached[t]]
        if leaks:
            return (f"{case}: the gradient of the last output reaches input step {leaks[-1]}, in an "
                    f"earlier chunk (the last chunk starts at step {last_start}); detach h and c "
                    "where one chunk hands them to the next")
        blocked = [t for t in range(last_start, steps) if not reached[t]]
        if blocked:
            return (f"{case}: no gradient reaches input step {blocked[0]}, inside the last chunk "
                    f"(steps {last_start} to {steps - 1}); detach between chunks only, not at "
                    "every step")
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


def _sgd_reference(model: nn.Linear, x: torch.Tensor, y: torch.Tensor, lr: float, max_norm: float,
                   how: str) -> list[torch.Tensor]:
    """The parameters after one SGD step on the mean squared error, with the gradient clipped
    `how`: "norm" (all parameters together, the right way), "none", "value" (each entry to
    [-max_norm, max_norm]) or "each" (each parameter's norm on its own)."""
    params = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    loss = ((x @ params[0].T + params[1] - y) ** 2).mean()
    grads = torch.autograd.grad(loss, params)
    if how == "norm":
        total = torch.cat([g.flatten() for g in grads]).norm()
        grads = [g * min(1.0, max_norm / (total.item() + 1e-6)) for g in grads]
    elif how == "value":
        grads = [g.clamp(-max_norm, max_norm) for g in grads]
    elif how == "each":
        grads = [g * min(1.0, max_norm / (g.norm().item() + 1e-6)) for g in grads]
    return [(p - lr * g).detach() for p, g in zip(params, grads, strict=True)]


def _same(model: nn.Module, expected: list[torch.Tensor]) -> bool:
    return all(torch.allclose(p, e, atol=1e-5) for p, e in zip(model.parameters(), expected, strict=True))


@exercise("06.6", "a clipped training step")
def check_clipped_step(answer):
    torch.manual_seed(3)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.MSELoss()
    max_norm = 0.5
    for call in (1, 2):  # two calls: the second shows gradients left over from the first
        x, y = 4 * torch.randn(8, 3), 10 * torch.randn(8, 2)
        with torch.no_grad():
            expected_loss = loss_fn(model(x), y).item()
        expected = {how: _sgd_reference(model, x, y, 0.1, max_norm, how)
                    for how in ("norm", "none", "value", "each")}
        before = [p.detach().clone() for p in model.parameters()]
        stale = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
        loss = answer(model, loss_fn, x, y, optimizer, max_norm)
        if _same(model, expected["norm"]):
            if not isinstance(loss, float) or abs(loss - expected_loss) > 1e-4 * max(1.0, expected_loss):
                return (f"call {call}: the parameters are right; return the batch's loss before the "
                        f"update as a Python float ({expected_loss:.4f}), got {loss!r}")
            continue
        if _same(model, before):
            return f"call {call}: the parameters did not change; the step must end with optimizer.step()"
        if _same(model, expected["none"]):
            return (f"call {call}: the update used the unclipped gradient; clip after loss.backward() "
                    "and before optimizer.step() (clipping earlier shortens the previous batch's "
                    "gradients, which backward then adds to)")
        if _same(model, expected["value"]):
            return (f"call {call}: each entry of the gradient was clipped on its own (clip_grad_value_"
                    "); clip_grad_norm_ rescales the whole gradient to norm max_norm and keeps its "
                    "direction")
        if _same(model, expected["each"]):
            return (f"call {call}: each parameter's gradient was clipped to max_norm separately; "
                    "the norm is taken over all parameters together (pass model.parameters())")
        if call == 2 and any(s.abs().sum() > 0 for s in stale):
            return ("call 2: the update differs from one clipped step on this batch; the gradients "
                    "of the first call were still there: call optimizer.zero_grad() before "
                    "backward")
        return (f"call {call}: the parameters differ from one SGD step with the gradient clipped to "
                "norm max_norm (order: zero_grad, forward, backward, clip_grad_norm_, step)")
    return None
