"""The checkers of notebooks 04 and 05's exercises: the notebooks' solutions pass, and each hint fires for the
mistake it names (a hint that can never fire would be a defect)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers.exercises import get_exercise

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(exercise_id, answer):
    return get_exercise(exercise_id).test(answer)


# --- 04.1 and 04.2 --------------------------------------------------------------------------------
def test_transposed_output_length():
    def right(n, k, s=1, p=0, op=0, d=1):
        return (n - 1) * s - 2 * p + d * (k - 1) + op + 1

    assert run("04.1", right) is None
    assert "expected" in run("04.1", lambda n, k, s=1, p=0, op=0, d=1: (n - 1) * s - 2 * p + k + op)


def test_conv2d_parameter_count():
    assert run("04.2", lambda i, o, k, groups=1, bias=True: o * (i // groups) * k * k + (o if bias else 0)) is None
    ignores_groups = lambda i, o, k, groups=1, bias=True: o * i * k * k + (o if bias else 0)  # noqa: E731
    assert "in_channels / groups" in run("04.2", ignores_groups)


# --- 04.3: the forecaster that cannot learn --------------------------------------------------------
class Fixed(nn.Module):
    def __init__(self, window=12, hidden=32, depth=3):
        super().__init__()
        self.hidden = nn.ModuleList(nn.Linear(window if i == 0 else hidden, hidden) for i in range(depth))
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.head(x)


class AsGiven(Fixed):  # the notebook's BrokenForecaster: a plain list hides the layers
    def __init__(self, window=12, hidden=32, depth=3):
        nn.Module.__init__(self)
        self.hidden = [nn.Linear(window if i == 0 else hidden, hidden) for i in range(depth)]
        self.head = nn.Linear(hidden, 1)


class NoActivation(Fixed):
    def forward(self, x):
        for layer in self.hidden:
            x = layer(x)
        return self.head(x)


class SkipsALayer(Fixed):
    def forward(self, x):
        for layer in list(self.hidden)[:1]:
            x = torch.relu(layer(x))
        return self.head(torch.relu(x))


class OneLayerTooFew(Fixed):
    def __init__(self, window=12, hidden=32, depth=3):
        super().__init__(window, hidden, depth - 1)


@pytest.mark.parametrize("answer, words", [
    (AsGiven, "plain Python list"),
    (NoActivation, "affine"),
    (OneLayerTooFew, "parameters (3 hidden Linear"),
    (lambda **kw: None, "must build an nn.Module"),
])
def test_fixed_forecaster_hints(answer, words):
    assert run("04.3", Fixed) is None
    assert words in run("04.3", answer)


def test_fixed_forecaster_unused_layer_is_caught():
    # same parameter count, non-affine, but two hidden layers never used: the check sees them not move
    hint = run("04.3", SkipsALayer)
    assert hint is not None and "did not move" in hint


# --- 04.4 and 04.5 --------------------------------------------------------------------------------
def test_swap_relus_only_top_level_is_caught():
    def top_level_only(model, make):
        for name, child in list(model.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(model, name, make())
        return model

    assert "every depth" in run("04.4", top_level_only)


def test_kl_divergence_hints():
    assert run("04.5", lambda p, q: (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1)) is None
    assert "KL(q || p)" in run("04.5", lambda p, q: (torch.xlogy(q, q) - torch.xlogy(q, p)).sum(-1))
    assert "NaN" in run("04.5", lambda p, q: (p * (p.log() - q.log())).sum(-1))
    assert "last dimension" in run("04.5", lambda p, q: (torch.xlogy(p, p) - torch.xlogy(p, q)).sum())
    assert "differ from F.kl_div" in run("04.5", lambda p, q: (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1) + 0.1)


# --- 05.1 -------------------------------------------------------------------------------------------
def test_nesterov():
    def right(p, g, state, lr, momentum=0.9):
        state["buf"] = g.clone() if "buf" not in state else momentum * state["buf"] + g
        return p - lr * (g + momentum * state["buf"])

    def plain_momentum(p, g, state, lr, momentum=0.9):
        state["buf"] = g.clone() if "buf" not in state else momentum * state["buf"] + g
        return p - lr * state["buf"]

    assert run("05.1", right) is None
    assert "g + momentum * buf" in run("05.1", plain_momentum)


# --- 05.2: the largest stable learning rate ---------------------------------------------------------
@pytest.mark.parametrize("answer, words", [
    (lambda a, b: 1 / min(a, b), "flat direction"),
    (lambda a, b: 2 / max(a, b), "curvature of b y^2 is f'' = 2b"),
    (lambda a, b: 0.5 / max(a, b), "curvature of b y^2 is f'' = 2b"),
    (lambda a, b: 0.5 / max(a, b) * 1.3, "go higher"),
    (lambda a, b: -1.0, "positive number"),
])
def test_largest_stable_lr_hints(answer, words):
    assert run("05.2", lambda a, b: 1 / max(a, b)) is None
    assert words in run("05.2", answer)


# --- 05.3: the training loop that never improves ----------------------------------------------------
def fixed_train(model, loader, epochs, lr):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        model.train()
        total = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
        losses.append(total / len(loader.dataset))
    return losses


def broken_train(model, loader, epochs, lr):  # as shown in notebook 05
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for x, y in loader:
            loss = F.mse_loss(model(x), y)
            loss.backward()
            optimizer.zero_grad()
            optimizer.step()
            total += loss.item() * len(x)
        losses.append(total / len(loader.dataset))
    return losses


def no_zero_grad(model, loader, epochs, lr):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(epochs):
        for x, y in loader:
            F.mse_loss(model(x), y).backward()
            optimizer.step()
    return [1.0, 0.5, 0.2, 0.1]


def wrong_losses(model, loader, epochs, lr):
    fixed_train(model, loader, epochs, lr)
    return [0.0] * epochs


@pytest.mark.parametrize("answer, words", [
    (broken_train, "zero_grad between backward and step"),
    (no_zero_grad, "pile up"),
    (wrong_losses, "do not fall"),
    (lambda model, loader, epochs, lr: None, "list of the 4 epoch losses"),
    (lambda model, loader, epochs, lr: fixed_train(model, loader, epochs, 2 * lr), "differ from four epochs"),
])
def test_fixed_train_hints(answer, words):
    assert run("05.3", fixed_train) is None
    assert words in run("05.3", answer)


# --- 05.4: accumulation with a smaller last micro-batch ---------------------------------------------
def accumulated(model, x, y, size, weight):
    model.zero_grad()
    parts = list(zip(x.split(size), y.split(size), strict=True))
    for x_part, y_part in parts:
        (F.mse_loss(model(x_part), y_part) * weight(len(x_part), len(x), len(parts))).backward()
    return [p.grad for p in model.parameters()]


@pytest.mark.parametrize("weight, words", [
    (lambda part, n, parts: 1 / parts, "over-weights it"),
    (lambda part, n, parts: 1.0, "times it"),
])
def test_accumulated_gradient_hints(weight, words):
    assert run("05.4", lambda m, x, y, s: accumulated(m, x, y, s, lambda part, n, parts: part / n)) is None
    assert words in run("05.4", lambda m, x, y, s: accumulated(m, x, y, s, weight))


def test_accumulated_gradient_without_zeroing_is_caught():
    def stale(model, x, y, size):
        for x_part, y_part in zip(x.split(size), y.split(size), strict=True):
            (F.mse_loss(model(x_part), y_part) * len(x_part) / len(x)).backward()
        return [p.grad for p in model.parameters()]

    assert "zeroed gradients" in run("05.4", stale)


# --- 05.5: a threshold for a rare class -------------------------------------------------------------
def best_threshold(logits, truth):
    order = logits.argsort(descending=True)
    hits = truth[order].float().cumsum(0)
    f1 = 2 * hits / (torch.arange(1, len(logits) + 1) + truth.sum())
    return logits[order][f1.argmax()].item()


def best_accuracy_threshold(logits, truth):
    candidates = torch.cat([logits, torch.tensor([math.inf])])
    accuracy = torch.stack([((logits >= c) == truth).float().mean() for c in candidates])
    return candidates[accuracy.argmax()].item()


def as_probability(logits, truth):
    t = best_threshold(logits, truth)
    return 1 / (1 + math.exp(-t))


@pytest.mark.parametrize("answer, words", [
    (best_accuracy_threshold, "maximises accuracy"),
    (as_probability, "looks like a probability"),
    (lambda logits, truth: 0.0, "logit 0 (probability 0.5)"),
    (lambda logits, truth: -100.0, "F1 at your threshold"),
    (lambda logits, truth: "high", "one number"),
])
def test_best_threshold_hints(answer, words):
    assert run("05.5", best_threshold) is None
    assert run("05.5", lambda logits, truth: torch.tensor(best_threshold(logits, truth))) is None
    assert words in run("05.5", answer)
