"""Exercises of notebook 02 (autograd). Each checker calls the learner's function on small float64
inputs and compares with an answer computed here by other means: a formula written out, a
Jacobian from `torch.autograd.functional.jacobian`, gradient descent with the gradient in closed
form, `gradcheck`. Where an exercise asks for work autograd could do in one call, the check runs the
answer with that call blocked (`_shortcuts_blocked`) or without autograd (`torch.no_grad`)."""

import math
from contextlib import contextmanager

import torch
import torch.autograd.functional
import torch.func

from helpers.exercises import exercise
from helpers.exercises.hints import shape_hint, shape_or_type


def _windows(n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A small float64 regression problem shaped like lagged inflow windows: X (n, k), y (n,)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, k, generator=g, dtype=torch.float64)
    y = X @ torch.linspace(-0.5, 1.0, k, dtype=torch.float64) + 0.3 + 0.1 * torch.randn(
        n, generator=g, dtype=torch.float64)
    return X, y


class _ShortcutCalled(Exception):
    """Raised by a blocked library function the exercise asks the learner to replace."""


# the library functions that would do exercises 02.1 and 02.2 in one call
_SHORTCUTS = [(torch.autograd.functional, "jacobian"), (torch.autograd.functional, "vjp"),
              (torch.func, "jacrev"), (torch.func, "jacfwd"), (torch.func, "vjp"),
              (torch.func, "grad"), (torch.func, "grad_and_value")]


@contextmanager
def _shortcuts_blocked():
    """While inside, each function in _SHORTCUTS raises _ShortcutCalled naming itself; the
    originals are restored on the way out, whatever happens."""
    originals = [(module, name, getattr(module, name)) for module, name in _SHORTCUTS]

    def refuse(qualified):
        def blocked(*args, **kwargs):
            raise _ShortcutCalled(qualified)
        return blocked

    try:
        for module, name, _ in originals:
            setattr(module, name, refuse(f"{module.__name__}.{name}"))
        yield
    finally:
        for module, name, original in originals:
            setattr(module, name, original)


def _pair(result, names: str) -> str | None:
    """None for a tuple or list of two tensors, else a hint naming the two expected values."""
    if isinstance(result, (tuple, list)) and len(result) == 2 and all(
            isinstance(r, torch.Tensor) for r in result):
        return None
    return f"return two tensors, ({names}); got {shape_or_type(result)}"


@exercise("02.1", "the forecaster's gradient by hand")
def check_mse_gradients(answer):
    X, y = _windows(12, 3, seed=1)
    w = torch.tensor([0.2, -0.1, 0.4], dtype=torch.float64)
    b = torch.tensor(0.05, dtype=torch.float64)
    try:  # "without autograd": under no_grad, backward() and torch.autograd.grad find no graph
        with torch.no_grad(), _shortcuts_blocked():
            result = answer(X, y, w, b)
    except _ShortcutCalled as exc:
        return (f"your function calls {exc}: derive the gradient by hand and compute it with "
                "tensor operations")
    except RuntimeError as exc:
        if "does not require grad" not in str(exc):
            raise
        return ("your function uses autograd; the check calls it under torch.no_grad(), where "
                "backward() has no graph. Derive the gradient on paper and compute it with tensor "
                "operations")
    if hint := _pair(result, "grad_w, grad_b"):
        return hint
    grad_w, grad_b = result
    if hint := shape_hint(grad_w, (3,), "grad_w") or shape_hint(grad_b, (), "grad_b"):
        return hint + " (each gradient has the shape of its parameter)"
    n = X.shape[0]
    residual = [sum(X[i, j].item() * w[j].item() for j in range(3)) + b.item() - y[i].item()
                for i in range(n)]
    truth_w = torch.tensor([2 / n * sum(residual[i] * X[i, j].item() for i in range(n))
                            for j in range(3)], dtype=torch.float64)
    truth_b = torch.tensor(2 / n * sum(residual), dtype=torch.float64)
    got = torch.cat([grad_w.reshape(-1), grad_b.reshape(-1)]).double()
    truth = torch.cat([truth_w, truth_b.reshape(1)])
    if torch.allclose(got, truth, atol=1e-8):
        return None
    for factor, why in [(0.5, "the derivative of r**2 is 2r: you lost the factor 2"),
                        (-1.0, "the sign is flipped: the residual is prediction - y, not y - prediction"),
                        (n, "the loss is the mean over the n windows: divide the sum by n"),
                        (n / 2, "the loss is the mean of the squares: keep the 2 and divide by n")]:
        if torch.allclose(got, factor * truth, atol=1e-8):
            return why
    if torch.allclose(got[3], truth[3], atol=1e-8):
        return ("grad_b is right but not grad_w: each window's residual r_i multiplies that "
                "window's inputs, dL/dw_j = 2/n * (sum over windows i of r_i * X[i, j])")
    return ("with r_i = X[i] @ w + b - y[i], the residual of window i, L = 1/n * (sum over i of "
            "r_i**2); differentiate one term at a time: d(r_i**2)/dw_j = 2 * r_i * X[i, j] and "
            "d(r_i**2)/db = 2 * r_i")


def _shares(c: torch.Tensor) -> torch.Tensor:
    return c / c.sum()


def _mixed(c: torch.Tensor) -> torch.Tensor:
    # (5,) -> (3,): a non-square Jacobian catches a transposed answer
    weights = torch.tensor([[1.0, -2.0, 0.5, 0.0, 1.0], [0.0, 1.0, 3.0, -1.0, 0.5],
                            [2.0, 0.0, -1.0, 1.0, 0.0]], dtype=torch.float64)
    return weights @ torch.tanh(c) + c[0] * c[-1]


@exercise("02.2", "the Jacobian, one vector-Jacobian product per row")
def check_jacobian_by_vjp(answer):
    cases = [("shares of 4 stations", _shares, torch.tensor([1.2, 0.8, 2.5, 0.4], dtype=torch.float64)),
             ("a map from 5 to 3 numbers", _mixed, torch.tensor([0.3, -1.0, 0.5, 2.0, -0.2],
                                                               dtype=torch.float64))]
    for name, f, x in cases:
        truth = torch.autograd.functional.jacobian(f, x)
        try:
            with _shortcuts_blocked():
                result = answer(f, x.clone())
        except _ShortcutCalled as exc:
            return (f"your function calls {exc}, which builds the whole Jacobian for you; build it "
                    "yourself, one backward pass (or torch.autograd.grad call) per row")
        m, n = truth.shape
        if isinstance(result, torch.Tensor) and m != n and tuple(result.shape) == (n, m):
            return (f"for {name}: got shape {(n, m)}, the transpose: row i of the Jacobian is "
                    "the vector-Jacobian product with the i-th one-hot vector of the output")
        if hint := shape_hint(result, (m, n), f"for {name}"):
            return hint + " (outputs, inputs)"
        result = result.detach().double()
        if torch.allclose(result, truth, atol=1e-8):
            continue
        if m > 1 and torch.allclose(result, result[:1].expand(m, n), atol=1e-12) and any(
                torch.allclose(result[0], row, atol=1e-8)
                for row in (truth.sum(dim=0), truth[-1], torch.zeros_like(truth[0]))):
            return (f"for {name}: every row is the same: you appended x.grad itself, one tensor "
                    "that later backward calls change in place; clone x.grad, or use "
                    "torch.autograd.grad, which returns a new tensor each time")
        if torch.allclose(result, truth.cumsum(dim=0), atol=1e-8):
            return (f"for {name}: row i holds the sum of rows 0..i: .grad accumulates across "
                    "backward calls; zero it between rows, or use torch.autograd.grad")
        if m == n and torch.allclose(result, truth.T, atol=1e-8):
            return (f"for {name}: you built the transpose: row i is d(output i)/d(inputs), "
                    "the product of the i-th one-hot vector with the Jacobian")
        gap = (result - truth).abs().max().item()
        return (f"for {name}: values differ from the Jacobian by up to {gap:.4g}; for each output "
                "i, backpropagate the one-hot vector e_i (grad_outputs=e_i) to get row i")
    return None


def _glu_truth(a, g, grad_output):
    s = 1 / (1 + torch.exp(-g))
    return grad_output * s, grad_output * a * s * (1 - s)


@exercise("02.3", "the backward of the gated linear unit")
def check_glu_backward(answer):
    gen = torch.Generator().manual_seed(3)
    a, g = (torch.randn(3, 4, generator=gen, dtype=torch.float64) for _ in range(2))
    grad_output = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    result = answer(a, g, grad_output)
    if hint := _pair(result, "grad_a, grad_g"):
        return hint
    grad_a, grad_g = result
    if hint := shape_hint(grad_a, (3, 4), "grad_a") or shape_hint(grad_g, (3, 4), "grad_g"):
        return hint + " (each gradient has the shape of its input)"
    truth_a, truth_g = _glu_truth(a, g, grad_output)
    ok_a = torch.allclose(grad_a.double(), truth_a, atol=1e-8)
    ok_g = torch.allclose(grad_g.double(), truth_g, atol=1e-8)
    if not (ok_a and ok_g):
        ones_a, ones_g = _glu_truth(a, g, torch.ones_like(g))
        if torch.allclose(grad_a.double(), ones_a, atol=1e-8) or torch.allclose(
                grad_g.double(), ones_g, atol=1e-8):
            return ("multiply by grad_output: backward receives dL/d(output) and returns "
                    "dL/d(input) = dL/d(output) * d(output)/d(input)")
        if torch.allclose(grad_a.double(), truth_g, atol=1e-8) and torch.allclose(
                grad_g.double(), truth_a, atol=1e-8):
            return "return the gradients in the order of the inputs: (grad_a, grad_g)"
        if ok_a:
            s = torch.sigmoid(g)
            if torch.allclose(grad_g.double(), grad_output * a * s, atol=1e-8):
                return "grad_g: the derivative of sigmoid(g) is sigmoid(g) * (1 - sigmoid(g))"
            return "grad_a is right; grad_g = grad_output * a * (the derivative of sigmoid at g)"
        return "grad_a: a * sigmoid(g) is linear in a, so d(output)/da = sigmoid(g)"

    class _GLU(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, g):
            ctx.save_for_backward(a, g)
            return a * torch.sigmoid(g)

        @staticmethod
        def backward(ctx, grad_output):
            return tuple(answer(*ctx.saved_tensors, grad_output))

    inputs = tuple(t.clone().requires_grad_() for t in (a, g))
    if not torch.autograd.gradcheck(_GLU.apply, inputs, raise_exception=False):
        return "right on one input but gradcheck fails: does your backward depend on anything else?"
    return None


def _stalled_or_steady(X, y, steps, lr, zero_grad):
    """Gradient descent on mean((X @ w + b - y)**2) from zeros, gradient in closed form; without
    zero_grad each step uses the sum of every gradient so far: what .grad holds when it is never
    cleared, and what the notebook's stalled_fit computes although it clears .grad, because its
    backward runs through a running total of every step's loss."""
    n, k = X.shape
    w, b = torch.zeros(k, dtype=X.dtype), torch.zeros((), dtype=X.dtype)
    total_w, total_b = torch.zeros_like(w), torch.zeros_like(b)
    for _ in range(steps):
        r = X @ w + b - y
        grad_w, grad_b = 2 / n * X.T @ r, 2 / n * r.sum()
        total_w = grad_w if zero_grad else total_w + grad_w
        total_b = grad_b if zero_grad else total_b + grad_b
        w, b = w - lr * total_w, b - lr * total_b
    return w, b


@exercise("02.4", "a loss that stops decreasing")
def check_steady_fit(answer):
    X, y = _windows(40, 3, seed=4)
    steps, lr = 60, 0.1
    try:
        result = answer(X.clone(), y.clone(), steps, lr)
    except RuntimeError as exc:
        if "second time" in str(exc):
            return ("backward ran into a graph that an earlier backward had freed: the tensor you "
                    "call backward on still carries an earlier step's graph. Which tensor lives "
                    "across steps?")
        if "does not require grad" in str(exc):
            return ("the weights stopped requiring grad: `w = w - lr * w.grad` under no_grad makes "
                    "a new tensor that autograd does not track; update in place, w -= lr * w.grad, "
                    "so that w stays the same leaf")
        raise
    except TypeError as exc:
        if "NoneType" not in str(exc):
            raise
        return ("a .grad was None: after `w = w - lr * w.grad` outside no_grad, w is a new "
                "non-leaf tensor, whose .grad autograd does not fill; update the leaf in place "
                "under torch.no_grad(): w -= lr * w.grad")
    if isinstance(result, (tuple, list)) and len(result) == 3:
        return "return only (w, b), without the list of losses"
    if hint := _pair(result, "w, b"):
        return hint
    if result[0].dtype != X.dtype or result[1].dtype != X.dtype:
        return (f"start from zeros of X's dtype ({X.dtype}); got w {result[0].dtype} and "
                f"b {result[1].dtype}")
    w, b = (t.detach() for t in result)
    if hint := shape_hint(w, (3,), "w") or shape_hint(b, (), "b"):
        return hint
    got = torch.cat([w, b.reshape(1)])
    truth = torch.cat([*(t.reshape(-1) for t in _stalled_or_steady(X, y, steps, lr, True))])
    stalled = torch.cat([*(t.reshape(-1) for t in _stalled_or_steady(X, y, steps, lr, False))])
    if torch.allclose(got, truth, atol=1e-6):
        return None
    if torch.allclose(got, stalled, atol=1e-6):
        return ("each step still moves by the sum of all gradients so far. Two things do that: "
                ".grad not cleared after the update, or a backward that runs through the graphs of "
                "earlier steps too: what does the tensor you call backward on hold at step 2? "
                "(retain_graph=True silenced the error that said so)")
    for other in (steps - 1, steps + 1):
        near = torch.cat([t.reshape(-1) for t in _stalled_or_steady(X, y, other, lr, True)])
        if torch.allclose(got, near, atol=1e-6):
            return f"you took {other} steps; take exactly steps={steps}"
    A = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], dim=1)
    best = torch.linalg.lstsq(A, y[:, None]).solution.squeeze(1)
    if torch.allclose(got, best, atol=1e-6):
        return (f"that is the least-squares solution; the exercise asks for where {steps} steps "
                f"of gradient descent with lr={lr} from zeros arrive")
    gap = (got - truth).abs().max().item()
    return (f"after {steps} steps with lr={lr} your weights differ from gradient descent's by "
            f"{gap:.4g}; start from zeros, compute each step's loss afresh, step "
            "w -= lr * w.grad (same for b) under no_grad, and clear both gradients every step")


def _log_cosh_truth(r: float) -> float:
    r = abs(r)
    return math.log(math.cosh(r)) if r < 20 else r - math.log(2.0) + math.log1p(math.exp(-2 * r))


@exercise("02.5", "log-cosh that passes gradcheck")
def check_log_cosh(answer):
    r = torch.tensor([-1e4, -800.0, -30.0, -1.5, -0.2, 0.0, 0.3, 2.0, 50.0, 720.0, 1e4],
                     dtype=torch.float64, requires_grad=True)
    result = answer(r)
    if hint := shape_hint(result, tuple(r.shape)):
        return hint + " (one value per residual)"
    if not torch.isfinite(result).all():
        bad = r[~torch.isfinite(result)].detach()
        return (f"not finite at r = {bad.tolist()}: cosh(r) overflows float64 for |r| above "
                "about 710.5; "
                "write log(cosh(r)) as |r| plus a term that stays small, using "
                "cosh(r) = exp(|r|) * (1 + exp(-2|r|)) / 2")
    truth = torch.tensor([_log_cosh_truth(v) for v in r.tolist()], dtype=torch.float64)
    if not torch.allclose(result.detach().double(), truth, rtol=1e-9, atol=1e-9):
        i = int((result.detach().double() - truth).abs().argmax())
        return f"at r = {r[i].item():g} expected {truth[i].item():.6f}, got {result[i].item():.6f}"
    if not result.requires_grad:
        return "the result does not depend on r through autograd: no .detach(), .item() or NumPy"
    (grad,) = torch.autograd.grad(result.sum(), r)
    if not torch.isfinite(grad).all():
        bad = r[~torch.isfinite(grad)].detach()
        return (f"values are right but the gradient is not finite at r = {bad.tolist()}: a piece "
                "of your expression overflows in backward (torch.where differentiates the branch "
                "it did not pick too, and 0 * inf is NaN); find one expression finite for every r")
    if not torch.allclose(grad, torch.tanh(r.detach()), atol=1e-9):
        return "the gradient should be tanh(r); check the branch each |r| takes"
    points = torch.tensor([-900.0, -3.0, -0.7, 0.4, 1.1, 25.0, 800.0], dtype=torch.float64,
                          requires_grad=True)
    if not torch.autograd.gradcheck(answer, (points,), raise_exception=False):
        return "gradcheck fails: autograd's gradient disagrees with finite differences"
    return None
