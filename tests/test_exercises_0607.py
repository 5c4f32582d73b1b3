"""The checkers of notebooks 06 and 07's exercises: the solutions pass, and each hint fires for the
plausible mistake it names (a hint that can never fire would be a defect)."""

import math

import pytest
import torch

from helpers.exercises import get_exercise
from helpers.graph import normalized_adjacency


def run(exercise_id, answer):
    return get_exercise(exercise_id).test(answer)


# --- 06.1 truncated BPTT ------------------------------------------------------------------------------
def truncated(lstm, x, k, detach=True, carry=True, per_step=False, keep=None):
    outputs, state = [], None
    for start in range(0, x.size(1), k):
        if state is not None and detach:
            state = tuple(s.detach() for s in state)
        chunk = x[:, start : start + k]
        if per_step:  # detach at every step
            for t in range(chunk.size(1)):
                out, state = lstm(chunk[:, t : t + 1], state)
                outputs.append(out)
                state = tuple(s.detach() for s in state)
            continue
        out, state = lstm(chunk, state if carry else None)
        outputs.append(out)
    outputs = outputs if keep is None else outputs[keep:]
    return torch.cat(outputs, dim=1)


@pytest.mark.parametrize("answer, words", [
    (lambda lstm, x, k: truncated(lstm, x, k), None),
    (lambda lstm, x, k: truncated(lstm, x, k, detach=False), "detach h and c"),
    (lambda lstm, x, k: truncated(lstm, x, k, carry=False), "carry (h, c)"),
    (lambda lstm, x, k: truncated(lstm, x, k, per_step=True), "not at every step"),
    (lambda lstm, x, k: truncated(lstm, x, k, keep=-1), "every step"),
    (lambda lstm, x, k: truncated(lstm, x, k).detach(), "carry no gradient"),
])
def test_06_1(answer, words):
    hint = run("06.1", answer)
    assert hint is None if words is None else words in hint, hint


# --- 06.6 a clipped training step ---------------------------------------------------------------------
def step(order, clip=torch.nn.utils.clip_grad_norm_):
    def answer(model, loss_fn, x, y, optimizer, max_norm):
        loss = None
        for action in order:
            if action == "zero":
                optimizer.zero_grad()
            elif action == "backward":
                loss = loss_fn(model(x), y)
                loss.backward()
            elif action == "clip":
                clip(model.parameters(), max_norm)
            elif action == "step":
                optimizer.step()
        return loss.item()
    return answer


def clip_each(parameters, max_norm):
    for p in parameters:
        torch.nn.utils.clip_grad_norm_([p], max_norm)


@pytest.mark.parametrize("answer, words", [
    (step(["zero", "backward", "clip", "step"]), None),
    (step(["backward", "clip", "step", "zero"]), None),
    (step(["clip", "backward", "step"]), "unclipped gradient"),  # the code given in the notebook
    (step(["backward", "clip", "step"]), "zero_grad"),
    (step(["zero", "backward", "clip"]), "optimizer.step()"),
    (step(["zero", "backward", "step", "clip"]), "unclipped gradient"),
    (step(["zero", "backward", "clip", "step"], clip=torch.nn.utils.clip_grad_value_), "clip_grad_value_"),
    (step(["zero", "backward", "clip", "step"], clip=clip_each), "separately"),
    (lambda *args: step(["zero", "backward", "clip", "step"])(*args) * 2, "Python float"),
])
def test_06_6(answer, words):
    hint = run("06.6", answer)
    assert hint is None if words is None else words in hint, hint


def test_06_other_solutions_pass():
    def rnn_step(x_t, h, w_ih, w_hh, b_ih, b_hh):
        return torch.tanh(x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh)

    def count(i, h, n):
        return 4 * h * (i + h + 2) + (n - 1) * 4 * h * (2 * h + 2)

    def open_gate(lstm, p):
        h = lstm.hidden_size
        with torch.no_grad():
            for layer in range(lstm.num_layers):
                getattr(lstm, f"bias_ih_l{layer}")[h : 2 * h] = math.log(p / (1 - p))
                getattr(lstm, f"bias_hh_l{layer}")[h : 2 * h] = 0.0

    assert run("06.2", count) is None
    assert run("06.5", open_gate) is None
    assert "four gates" in run("06.2", lambda i, h, n: 4 * h * (i + h + 2) * n)


# --- 07.1 degrees of a directed edge list -------------------------------------------------------------
@pytest.mark.parametrize("answer, words", [
    (lambda ei, w, n: torch.zeros(n).index_add_(0, ei[1], w), None),
    (lambda ei, w, n: torch.zeros(n).index_add_(0, ei[0], w), "source"),
    (lambda ei, w, n: torch.zeros(n).index_add_(0, ei[1], torch.ones_like(w)), "counted"),
    (lambda ei, w, n: torch.zeros(n + 1).index_add_(0, ei[1], w), "expected shape"),
    (lambda ei, w, n: 2 * torch.zeros(n).index_add_(0, ei[1], w), "target node"),
])
def test_07_1(answer, words):
    hint = run("07.1", answer)
    assert hint is None if words is None else words in hint, hint


# --- 07.2 debug a propagation -------------------------------------------------------------------------
def as_given(operator, x):  # the broken function shown in the notebook
    batch, steps, n, c = x.shape
    flat = x.reshape(n, batch * steps * c)
    return (flat.T @ operator).T.reshape(batch, steps, n, c)


def fixed(operator, x):
    moved = x.movedim(-2, 0)
    return (operator @ moved.reshape(x.size(-2), -1)).reshape(moved.shape).movedim(0, -2)


@pytest.mark.parametrize("answer, words", [
    (fixed, None),
    (lambda op, x: torch.einsum("ij,btjc->btic", op, x), None),
    (as_given, "use einsum; and the operator is applied transposed"),
    (lambda op, x: as_given(op.T, x), "node axis is not first"),
    (lambda op, x: fixed(op.T, x), "applied transposed"),
    (lambda op, x: fixed(op, x)[:, :, :-1], "expected shape"),
    (lambda op, x: fixed(op, x) + 1.0, "values differ"),
])
def test_07_2(answer, words):
    hint = run("07.2", answer)
    assert hint is None if words is None else words in hint, hint


def test_07_2_the_bug_hides_on_a_symmetric_operator():
    """Why the exercise's check uses a directed graph: on the symmetric A_hat the transposed operator gives the
    right answer."""
    adj = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 2.0], [0.0, 2.0, 0.0]])
    op, x = normalized_adjacency(adj), torch.randn(1, 1, 3, 2)
    assert torch.allclose(as_given(op, x), fixed(op, x), atol=1e-6)


# --- 07.3 - 07.5 --------------------------------------------------------------------------------------
def test_07_other_solutions_pass():
    def k_hop(adj, k):
        step_ = ((adj > 0) | torch.eye(adj.shape[0], dtype=torch.bool)).float()
        reach = torch.eye(adj.shape[0])
        for _ in range(k):
            reach = (reach @ step_).clamp(max=1.0)
        return reach > 0

    def sgc(x, adj, k):
        a_hat = normalized_adjacency(adj)
        for _ in range(k):
            x = a_hat @ x
        return x

    def dirichlet(x, adj):
        return 0.5 * (adj * (x[:, None] - x[None]).square().sum(-1)).sum().item()

    assert run("07.3", k_hop) is None and run("07.4", sgc) is None and run("07.5", dirichlet) is None
    assert "k hops" in run("07.3", lambda adj, k: k_hop(adj, k + 1))
    assert "k times" in run("07.4", lambda x, adj, k: sgc(x, adj, k + 1))
    assert "appears twice" in run("07.5", lambda x, adj: 2 * dirichlet(x, adj))


# --- 07.6 over-smoothing or hard to train? ------------------------------------------------------------
def worse(shallow, deep):
    return sum(deep) / len(deep) > max(shallow)


def strictly_worse(shallow, deep):
    return min(deep) > max(shallow)


def diagnose(shallow, deep, shallow_control, deep_control):
    if not worse(shallow, deep):
        return "no problem"
    return "hard to train" if worse(shallow_control, deep_control) else "over-smoothing"


def mean_worse(shallow, deep):
    return sum(deep) / len(deep) > sum(shallow) / len(shallow)


@pytest.mark.parametrize("answer, words", [
    (diagnose, None),
    (lambda s, d, sc, dc: "over-smoothing" if worse(s, d) else "no problem", "nothing to smooth"),
    (lambda s, d, sc, dc: ("hard to train" if mean_worse(sc, dc) else "over-smoothing")
     if mean_worse(s, d) else "no problem", "no difference"),
    (lambda s, d, sc, dc: "hard to train" if worse(sc, dc) else diagnose(s, d, sc, dc), "control failing alone"),
    (lambda s, d, sc, dc: "over-smoothing" if worse(d, s) else diagnose(s, d, sc, dc), "deeper is better"),
    (lambda s, d, sc, dc: "smoothing", "return one of"),
    (lambda s, d, sc, dc: ("hard to train" if strictly_worse(sc, dc) else "over-smoothing")
     if strictly_worse(s, d) else "no problem", "compare the deep mean"),
])
def test_07_6(answer, words):
    hint = run("07.6", answer)
    assert hint is None if words is None else words in hint, hint


# --- 06.3 - 06.5: planted mistakes --------------------------------------------------------------------
def shapes(seq_len, batch, features, hidden, layers, batch_first, bidirectional, directions_in_state=True):
    d = 2 if bidirectional else 1
    out = (batch, seq_len, d * hidden) if batch_first else (seq_len, batch, d * hidden)
    state = ((d if directions_in_state else 1) * layers, batch, hidden)
    return out, state, state


def gru(x, h, w_ih, w_hh, b_ih, b_hh, reset_bias=True):
    x_r, x_z, x_n = (x @ w_ih.T + b_ih).chunk(3, dim=1)
    h_r, h_z, h_n = (h @ w_hh.T + b_hh).chunk(3, dim=1)
    if not reset_bias:  # the reset gate multiplies h W_hn^T only, and b_hn is added outside it
        hidden = h.shape[1]
        h_n = h @ w_hh[2 * hidden :].T
        x_n = x_n + b_hh[2 * hidden :]
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    return (1 - z) * torch.tanh(x_n + r * h_n) + z * h


def open_gate_ih_only(lstm, p):
    h = lstm.hidden_size
    with torch.no_grad():
        for layer in range(lstm.num_layers):
            getattr(lstm, f"bias_ih_l{layer}")[h : 2 * h] = math.log(p / (1 - p))


def open_gate_everywhere(lstm, p):
    with torch.no_grad():
        for layer in range(lstm.num_layers):
            getattr(lstm, f"bias_ih_l{layer}").fill_(math.log(p / (1 - p)))
            getattr(lstm, f"bias_hh_l{layer}").zero_()


@pytest.mark.parametrize("exercise_id, answer, words", [
    ("06.3", shapes, None),
    ("06.3", lambda *a: shapes(*a, directions_in_state=False), "expected (out, h, c) shapes"),
    ("06.4", gru, None),
    ("06.4", lambda *a: gru(*a, reset_bias=False), "bias included"),
    ("06.5", open_gate_ih_only, "two biases"),
    ("06.5", open_gate_everywhere, "only the forget gate's slice"),
])
def test_06_planted_mistakes(exercise_id, answer, words):
    hint = run(exercise_id, answer)
    assert hint is None if words is None else words in hint, hint
