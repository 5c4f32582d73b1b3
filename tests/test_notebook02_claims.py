"""The claims notebook 02 (autograd) makes, checked here without the notebook: autograd's gradients equal
the ones derived by hand (second derivatives too, with create_graph), backward with a `gradient` is a
vector-Jacobian product, `.grad` accumulates across calls (so a loop without zero_grad, or one whose
backward runs through a running total of losses, steps with the sum of all gradients so far), the
version counter catches in-place writes through PyTorch operations but not through `.data`, inference
tensors can be neither saved for backward nor written outside inference mode, a hand-written backward
for a masked loss passes gradcheck where masking after the arithmetic gives NaN (and a wrong one, or a
float32 check, fails it), a linear forecaster trained with tensors and autograd alone reaches the
least-squares solution, and the activations autograd saves grow linearly with depth (and vanish under
no_grad)."""

import math

import pytest
import torch

from helpers.data import load_metro

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def central():
    """Central's inflow as (56 days, 72 steps), in hundreds of passengers, NaN where missing."""
    metro = load_metro()
    station = metro.node_names.index("Central")
    return metro.values[:, station, 0].reshape(-1, metro.meta["steps_per_day"]) / 100


def test_autograd_equals_the_gradient_worked_out_by_hand(central):
    x, y = central[0, 10], central[0, 11]
    w = torch.tensor(0.9, requires_grad=True)
    b = torch.tensor(0.1, requires_grad=True)
    ((w * x + b - y) ** 2).backward()
    r = 0.9 * x.item() + 0.1 - y.item()
    assert math.isclose(w.grad.item(), 2 * r * x.item(), rel_tol=1e-5)
    assert math.isclose(b.grad.item(), 2 * r, rel_tol=1e-5)
    # the mean squared error of a linear forecaster over many windows (exercise 02.1's formula)
    g = torch.Generator().manual_seed(0)
    X, target = torch.randn(30, 4, generator=g, dtype=torch.float64), torch.randn(30, generator=g, dtype=torch.float64)
    w4 = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    b4 = torch.zeros((), dtype=torch.float64, requires_grad=True)
    ((X @ w4 + b4 - target) ** 2).mean().backward()
    residual = (X @ w4 + b4 - target).detach()
    assert torch.allclose(w4.grad, 2 / 30 * X.T @ residual)
    assert torch.allclose(b4.grad, 2 / 30 * residual.sum())


def test_create_graph_gives_the_second_derivative(central):
    x, y = central[0, 10], central[0, 11]
    w = torch.tensor(0.9, requires_grad=True)
    loss = (w * x + 0.1 - y) ** 2
    (dw,) = torch.autograd.grad(loss, w, create_graph=True)
    assert dw.requires_grad and w.grad is None
    (d2w,) = torch.autograd.grad(dw, w)
    assert math.isclose(d2w.item(), 2 * x.item() ** 2, rel_tol=1e-6)


def test_backward_with_a_gradient_is_a_vector_jacobian_product(central):
    counts = central[0, 10:14].clone().requires_grad_()
    v = torch.tensor([1.0, 0.0, 0.0, -1.0])
    (counts / counts.sum()).backward(gradient=v)
    jacobian = torch.autograd.functional.jacobian(lambda c: c / c.sum(), counts.detach())
    assert torch.allclose(counts.grad, v @ jacobian, atol=1e-7)


def test_grad_accumulates_so_a_loop_without_zero_grad_steps_with_the_running_sum():
    w = torch.tensor([0.5, -0.2], requires_grad=True)
    x = torch.tensor([1.5, 2.0])
    grads = []
    for scale in (1.0, 2.0, 3.0):
        (scale * (w * x).sum() ** 2).backward()
        grads.append(scale * 2 * (w * x).sum().item() * x)
    assert torch.allclose(w.grad, sum(grads))
    # gradient accumulation on purpose: 4 micro-batches of mean loss / 4 equal the full batch
    g = torch.Generator().manual_seed(1)
    X, target = torch.randn(8, 2, generator=g), torch.randn(8, generator=g)
    w.grad = None
    ((X @ w - target) ** 2).mean().backward()
    full, w.grad = w.grad.clone(), None
    for part, part_target in zip(X.split(2), target.split(2), strict=True):
        (((part @ w - part_target) ** 2).mean() / 4).backward()
    assert torch.allclose(w.grad, full, atol=1e-6)
    # unequal micro-batches (5 + 3): 1/k weights are wrong, n_i / n weights are right
    for weights, equal in (((0.5, 0.5), False), ((5 / 8, 3 / 8), True)):
        w.grad = None
        for part, part_target, weight in zip(X.split([5, 3]), target.split([5, 3]), weights, strict=True):
            (weight * ((part @ w - part_target) ** 2).mean()).backward()
        assert torch.allclose(w.grad, full, atol=1e-6) == equal


def test_retain_graph_allows_a_second_backward_and_inplace_on_saved_tensors_fails():
    w = torch.tensor(0.9, requires_grad=True)
    loss = (w * 2.0) ** 2
    loss.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()
    once = w.grad.clone()
    w.grad = None
    loss = (w * 2.0) ** 2
    loss.backward(retain_graph=True)
    loss.backward()                                  # works, and accumulates: twice the gradient
    assert torch.allclose(w.grad, 2 * once)
    gate = torch.sigmoid(torch.tensor([0.1, 0.2], requires_grad=True))
    gate.mul_(2)
    assert gate._version == 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        gate.sum().backward()


def test_writes_through_data_or_numpy_escape_the_version_counter():
    w = torch.tensor([0.05, 0.3, 0.45], dtype=torch.float64, requires_grad=True)
    s = torch.sigmoid(w.detach())
    for write in (lambda t: t.data.mul_(2), lambda t: t.detach().numpy().__imul__(2)):
        gate = torch.sigmoid(w)
        write(gate)
        assert gate._version == 0
        (silent,) = torch.autograd.grad(gate.sum(), w)
        assert torch.allclose(silent, 2 * s * (1 - 2 * s))            # the doubled output, used silently
        assert not torch.allclose(silent, s * (1 - s))


def test_detach_shares_the_version_counter_and_a_no_grad_update_invalidates_old_graphs():
    w = torch.tensor(0.9, requires_grad=True)
    prediction = w * 1.5 + 0.1
    frozen = prediction.detach()
    assert frozen.data_ptr() == prediction.data_ptr() and prediction._version == 0
    frozen.add_(1)
    assert prediction._version == 1
    w4 = torch.tensor([0.1, 0.1, 0.3, 0.5], dtype=torch.float64, requires_grad=True)
    stale = (w4**2).sum()                                                # pow saves w4 itself
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w4 -= 0.1
    assert w4._version == 0                                              # the refused write changed nothing
    with torch.no_grad():
        w4 -= 0.1
    assert w4.is_leaf and w4._version == 1
    with pytest.raises(RuntimeError, match="is at version 1; expected version 0"):
        stale.backward()


def test_inference_tensors_can_be_neither_saved_for_backward_nor_written_outside_inference_mode():
    g = torch.Generator().manual_seed(0)
    X, W = torch.randn(256, 51, generator=g), torch.randn(51, 51, generator=g).requires_grad_()
    with torch.inference_mode():
        fast = torch.tanh(X @ W)
    assert fast.is_inference() and not fast.requires_grad
    with pytest.raises(RuntimeError, match="Inference tensors do not track version counter"):
        _ = fast._version
    with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
        fast @ W                                                         # mm saves fast: W needs grad
    with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside InferenceMode"):
        fast.mul_(2)
    (grad,) = torch.autograd.grad((fast + W.sum()).sum(), W)           # add saves nothing: works
    assert torch.allclose(grad, torch.full_like(W, fast.numel()))
    with torch.no_grad():
        plain = torch.tanh(X @ W)
    assert plain._version == 0 and not plain.is_inference()


def test_a_running_total_of_losses_keeps_every_graph_unless_under_no_grad():
    g = torch.Generator().manual_seed(2)
    data = torch.randn(40, 5, generator=g, dtype=torch.float64)
    w = torch.tensor([0.1, 0.1, 0.3, 0.5], dtype=torch.float64, requires_grad=True)

    def nodes(t):
        seen, todo = set(), [t.grad_fn]
        while todo:
            node = todo.pop()
            if node is not None and node not in seen:
                seen.add(node)
                todo.extend(parent for parent, _ in node.next_functions)
        return len(seen)

    mse = lambda batch: ((batch[:, :4] @ w - batch[:, 4]) ** 2).mean()  # noqa: E731
    total = sum(mse(batch) for batch in data.split(8))
    with torch.no_grad():
        assert sum(mse(batch) for batch in data.split(8)).grad_fn is None
    total_train = 0.0
    for batch in data.split(8):
        batch_loss = mse(batch)
        batch_loss.backward()
        total_train = total_train + batch_loss
    assert nodes(total_train) == nodes(total) > 5 * 3                   # every batch's nodes are kept
    with pytest.raises(RuntimeError, match="saved tensors after they have already been freed"):
        _ = batch_loss.grad_fn.next_functions[0][0]._saved_self         # but their saved tensors are gone


class _MaskedMSE(torch.autograd.Function):
    """Mean of (prediction - target)**2 where target is not NaN, with its backward written out."""

    @staticmethod
    def forward(ctx, prediction, target):
        observed = ~torch.isnan(target)
        diff = torch.where(observed, prediction - target.nan_to_num(), 0.0)
        ctx.save_for_backward(diff, observed.sum())
        return (diff**2).sum() / observed.sum()

    @staticmethod
    def backward(ctx, grad_output):
        diff, count = ctx.saved_tensors
        return grad_output * 2 * diff / count, None


def test_masked_loss_function_passes_gradcheck_where_masking_after_the_arithmetic_gives_nan(central):
    tuesday = central[8]  # 2025-03-11, Central's gates silent for 17 quarter-hours
    observed = ~torch.isnan(tuesday)
    assert int((~observed).sum()) == 17
    profile = central[[2, 3, 4, 7]].mean(dim=0).requires_grad_()
    ((profile - tuesday) ** 2)[observed].mean().backward()
    assert int(profile.grad.isnan().sum()) == 17
    inputs = (profile.detach().double().requires_grad_(), tuesday.double())
    assert torch.autograd.gradcheck(_MaskedMSE.apply, inputs)
    reference = profile.detach().clone().requires_grad_()
    ((reference[observed] - tuesday[observed]) ** 2).mean().backward()
    profile.grad = None
    _MaskedMSE.apply(profile, tuesday).backward()
    assert (profile.grad - reference.grad).abs().max().item() < 1e-8   # the tolerance the notebook states


class _SlackMSE(_MaskedMSE):
    """The notebook's slip: the backward forgets to divide by the count."""

    @staticmethod
    def backward(ctx, grad_output):
        diff, _ = ctx.saved_tensors
        return grad_output * 2 * diff, None


def test_gradcheck_catches_a_wrong_backward_and_fails_in_float32(central):
    tuesday = central[8].double()
    profile = central[[2, 3, 4, 7]].mean(dim=0).double().requires_grad_()
    assert not torch.autograd.gradcheck(_SlackMSE.apply, (profile, tuesday), raise_exception=False)
    lagged = central[0].unfold(0, 5, 1)[28:36]
    w4 = torch.tensor([0.1, 0.1, 0.3, 0.5], requires_grad=True)
    b4 = torch.tensor(0.0, requires_grad=True)
    forecast = lambda w_, b_: lagged[:, :4] @ w_ + b_  # noqa: E731
    with pytest.warns(UserWarning, match="not of double precision"):
        assert not torch.autograd.gradcheck(forecast, (w4, b4), raise_exception=False)
    wide = (w4.detach().double().requires_grad_(), b4.detach().double().requires_grad_())
    assert torch.autograd.gradcheck(lambda w_, b_: lagged[:, :4].double() @ w_ + b_, wide)


def test_tensors_only_linear_forecaster_reaches_least_squares(central):
    windows = central.unfold(1, 5, 1).reshape(-1, 5)
    windows = windows[~windows.isnan().any(dim=1)]
    mean, std = windows.mean(), windows.std()
    X, target = (windows[:, :4] - mean) / std, (windows[:, 4] - mean) / std
    design = torch.cat([X, torch.ones(len(X), 1)], dim=1).double()
    best = torch.linalg.lstsq(design, target.double()[:, None]).solution[:, 0]
    w, b = torch.zeros(4, requires_grad=True), torch.zeros((), requires_grad=True)
    for _ in range(500):  # the notebook's loop: lr 0.25, 500 steps, float32
        ((X @ w + b - target) ** 2).mean().backward()
        with torch.no_grad():
            w -= 0.25 * w.grad
            b -= 0.25 * b.grad
        w.grad, b.grad = None, None
    fitted = torch.cat([w.detach(), b.detach()[None]]).double()
    assert (fitted - best).abs().max().item() < 1e-6  # the tolerance the notebook states; measured 2.8e-7
    # exercise 02.4's stalled loop clears .grad, but its backward runs through a running total of the
    # losses (with retain_graph=True): each step uses the sum of all gradients so far, exactly like a loop
    # that never clears .grad, and the loss swings back up instead of settling
    runs = {}
    for variant in ("running total", "never cleared"):
        w, b, losses, total = torch.zeros(4, requires_grad=True), torch.zeros((), requires_grad=True), [], 0.0
        for _ in range(40):
            mse = ((X @ w + b - target) ** 2).mean()
            if variant == "running total":
                total += mse
                total.backward(retain_graph=True)
            else:
                mse.backward()
            with torch.no_grad():
                w -= 0.1 * w.grad
                b -= 0.1 * b.grad
            if variant == "running total":
                w.grad, b.grad = None, None
            losses.append(mse.item())
        runs[variant] = losses
        assert min(losses) < 0.5 and max(losses[10:]) > 0.9  # measured: 0.1646 at step 5, 1.0407 at step 10
    assert max(abs(a - b) for a, b in zip(*runs.values(), strict=True)) < 1e-4
    # without retain_graph the running total fails at the second step
    w, b, total = torch.zeros(4, requires_grad=True), torch.zeros((), requires_grad=True), 0.0
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        for _ in range(2):
            total += ((X @ w + b - target) ** 2).mean()
            total.backward()


def test_the_fitted_forecast_trails_the_actual_by_about_a_step(central):
    windows = central.unfold(1, 5, 1).reshape(-1, 5)
    windows = windows[~windows.isnan().any(dim=1)]
    mean, std = windows.mean(), windows.std()
    X, target = (windows[:, :4] - mean) / std, (windows[:, 4] - mean) / std
    design = torch.cat([X, torch.ones(len(X), 1)], dim=1).double()
    best = torch.linalg.lstsq(design, target.double()[:, None]).solution[:, 0].float()
    day = central[9].unfold(0, 5, 1)                                     # Wednesday 12 March, in the fit
    forecast = ((day[:, :4] - mean) / std @ best[:4] + best[4]) * std + mean
    against_target = (100 * (forecast - day[:, 4])).abs().mean().item()
    against_previous = (100 * (forecast - day[:, 3])).abs().mean().item()
    persistence = (100 * (day[:, 3] - day[:, 4])).abs().mean().item()
    # measured: 23.93, 12.64 and 28.04 passengers per 15 minutes
    assert against_previous < 0.6 * against_target < against_target < persistence


def test_finite_differences_are_useful_in_float64_only(central):
    x = central[0, 10].item()
    exact = x * (1 - math.tanh(0.9 * x) ** 2)
    best = {}
    for dtype in (torch.float32, torch.float64):
        h = torch.logspace(-12, -1, 45, dtype=torch.float64).to(dtype)
        w0, xd = torch.tensor(0.9, dtype=dtype), torch.tensor(x, dtype=dtype)
        fd = (torch.tanh((w0 + h) * xd) - torch.tanh((w0 - h) * xd)) / (2 * h)
        best[dtype] = (fd.double() - exact).abs().min().item()
    # measured: float32 9.9e-07, float64 2.3e-12
    assert 1e-7 < best[torch.float32] < 1e-5 and best[torch.float64] < 1e-10
    # the flat float32 stretch: for h up to 1.8e-8, 0.9 +- h rounds to 0.9 and the difference is 0
    w32, h = torch.tensor(0.9), torch.logspace(-12, -1, 45, dtype=torch.float64)
    lost = (w32 + h.float() == w32) & (w32 - h.float() == w32)
    assert int(lost.sum()) == 18 and math.isclose(h[lost].max().item(), 1.78e-8, rel_tol=1e-2)
    assert (torch.nextafter(w32, torch.tensor(1.0)) - w32).item() == 2.0**-24


def _saved(fn):
    count, distinct = 0, {}

    def pack(t):
        nonlocal count
        count += 1
        distinct[t.data_ptr()] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, count, distinct


def test_saved_activations_grow_linearly_with_depth_and_vanish_under_no_grad():
    g = torch.Generator().manual_seed(0)
    batch = torch.randn(256, 51, generator=g)
    layers = [(0.1 * torch.randn(51, 51, generator=g)).requires_grad_() for _ in range(16)]

    def stack(depth):
        h = batch
        for W in layers[:depth]:
            h = torch.tanh(h @ W)
        return h.sum()

    exist_anyway = {W.data_ptr() for W in layers} | {batch.data_ptr()}
    for depth in (1, 2, 4, 8, 16):
        out, count, distinct = _saved(lambda depth=depth: stack(depth))
        activations = sum(n for ptr, n in distinct.items() if ptr not in exist_anyway)
        assert count == 3 * depth - 1
        assert activations == depth * 256 * 51 * 4
        out.backward()
    for context in (torch.no_grad, torch.inference_mode):
        with context():
            out, count, _ = _saved(lambda: stack(16))
        assert count == 0 and not out.requires_grad and out.grad_fn is None


def test_mm_saves_only_the_factor_each_gradient_needs():
    g = torch.Generator().manual_seed(0)
    X, W = torch.randn(256, 51, generator=g), torch.randn(51, 51, generator=g).requires_grad_()
    h = X @ W                                                          # X needs no grad
    assert h.grad_fn._saved_mat2 is None and h.grad_fn._saved_self is not None
    h = X.clone().requires_grad_() @ W                                 # both need grad: both saved
    assert h.grad_fn._saved_mat2 is not None and h.grad_fn._saved_self is not None
    w, x = torch.tensor(0.9, requires_grad=True), torch.tensor(1.46)
    scaled = w * x                                                     # mul saves the other factor only
    assert scaled.grad_fn._saved_other is not None and scaled.grad_fn._saved_self is None
