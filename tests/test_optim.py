"""helpers.optim: the from-scratch update rules follow torch.optim; surfaces and paths behave; the schedules
of notebook 05 (helpers.train: warmup_factor, scaled_lr)."""

import copy
import inspect
import math

import pytest
import torch

from helpers.optim import (
    OPTIMIZERS,
    SURFACES,
    adagrad_step,
    adam_step,
    get_surface,
    momentum_step,
    optimizer_paths,
    rmsprop_step,
    rosenbrock,
    saddle,
    sgd_step,
    surface_grid,
)
from helpers.train import scaled_lr, warmup_factor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


STEPS = 150


def regression_problem():
    """A small full-batch regression in float64 whose gradient changes every step (non-linear model)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g, dtype=torch.float64)
    y = torch.sin(x @ torch.randn(5, 1, generator=g, dtype=torch.float64))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    return model, x, y


def train_with_torch(optimizer_cls, kwargs, steps=STEPS):
    model, x, y = regression_problem()
    opt = optimizer_cls(model.parameters(), **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return model


def train_with_helper(step, kwargs, steps=STEPS):
    model, x, y = regression_problem()
    states = {name: {} for name, _ in model.named_parameters()}
    for _ in range(steps):
        model.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(step(p, p.grad, states[name], **kwargs))
    return model


def max_param_diff(a, b):
    return max((pa - pb).abs().max().item() for pa, pb in zip(a.parameters(), b.parameters(), strict=True))


CASES = [
    # (helper, its kwargs, torch optimiser, its kwargs)
    (sgd_step, {"lr": 0.1}, torch.optim.SGD, {"lr": 0.1}),
    (sgd_step, {"lr": 0.1, "weight_decay": 0.05}, torch.optim.SGD, {"lr": 0.1, "weight_decay": 0.05}),
    (momentum_step, {"lr": 0.05, "momentum": 0.9}, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    (
        momentum_step,
        {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01},
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01},
    ),
    (
        momentum_step,
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    ),
    (adagrad_step, {"lr": 0.1}, torch.optim.Adagrad, {"lr": 0.1}),
    (
        adagrad_step,
        {"lr": 0.2, "lr_decay": 0.01, "weight_decay": 0.01, "eps": 1e-6, "initial_accumulator_value": 0.1},
        torch.optim.Adagrad,
        {"lr": 0.2, "lr_decay": 0.01, "weight_decay": 0.01, "eps": 1e-6, "initial_accumulator_value": 0.1},
    ),
    (rmsprop_step, {"lr": 0.01}, torch.optim.RMSprop, {"lr": 0.01}),
    (
        rmsprop_step,
        {"lr": 0.005, "alpha": 0.9, "eps": 1e-6, "momentum": 0.5, "centered": True, "weight_decay": 0.01},
        torch.optim.RMSprop,
        {"lr": 0.005, "alpha": 0.9, "eps": 1e-6, "momentum": 0.5, "centered": True, "weight_decay": 0.01},
    ),
    (adam_step, {"lr": 0.01}, torch.optim.Adam, {"lr": 0.01}),
    (
        adam_step,
        {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01},
        torch.optim.Adam,
        {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01},
    ),
    (
        adam_step,
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
        torch.optim.AdamW,
        {"lr": 0.01, "weight_decay": 0.1},
    ),
]


@pytest.mark.parametrize(
    "step, kwargs, torch_cls, torch_kwargs", CASES, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)]
)
def test_helper_follows_torch_optim(step, kwargs, torch_cls, torch_kwargs):
    ours = train_with_helper(step, kwargs)
    theirs = train_with_torch(torch_cls, torch_kwargs)
    start, _, _ = regression_problem()
    moved = max_param_diff(theirs, start)
    assert moved > 1e-2, f"the problem is too easy to tell optimisers apart (params moved {moved})"
    assert max_param_diff(ours, theirs) < 1e-6


def test_different_hyperparameters_give_different_parameters():
    """The comparison above can fail: a changed hyperparameter moves the parameters by far more than 1e-6."""
    ours = train_with_helper(adam_step, {"lr": 0.01, "betas": (0.9, 0.99)})
    theirs = train_with_torch(torch.optim.Adam, {"lr": 0.01})
    assert max_param_diff(ours, theirs) > 1e-4


def test_state_matches_torch_optim_state():
    model, x, y = regression_problem()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    ours = copy.deepcopy(model)
    states = {name: {} for name, _ in ours.named_parameters()}
    for _ in range(5):
        for m in (model, ours):
            m.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
        opt.step()
        with torch.no_grad():
            for name, p in ours.named_parameters():
                p.copy_(adam_step(p, p.grad, states[name], lr=0.01))
    p0 = next(model.parameters())
    ref, mine = opt.state[p0], states["0.weight"]
    assert mine["step"] == int(ref["step"]) == 5
    torch.testing.assert_close(mine["exp_avg"], ref["exp_avg"])
    torch.testing.assert_close(mine["exp_avg_sq"], ref["exp_avg_sq"])


@pytest.mark.parametrize("nesterov, dampening", [(False, 0.0), (False, 0.3), (True, 0.0)])
def test_momentum_buffer_matches_torch_under_a_changing_learning_rate(nesterov, dampening):
    """The buffer holds gradients, not lr-scaled steps (torch's convention): with a learning rate that changes
    every step the parameters and the buffer both follow torch.optim.SGD."""
    lrs = [0.05, 0.2, 0.01, 0.1, 0.3, 0.02] * 5
    model, x, y = regression_problem()
    opt = torch.optim.SGD(model.parameters(), lr=lrs[0], momentum=0.9, dampening=dampening, nesterov=nesterov)
    ours = copy.deepcopy(model)
    states = {name: {} for name, _ in ours.named_parameters()}
    for lr in lrs:
        for m in (model, ours):
            m.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
        opt.param_groups[0]["lr"] = lr
        opt.step()
        with torch.no_grad():
            for name, p in ours.named_parameters():
                p.copy_(momentum_step(p, p.grad, states[name], lr=lr, momentum=0.9, dampening=dampening,
                                      nesterov=nesterov))
    assert max_param_diff(ours, model) < 1e-10
    for (name, _), p in zip(ours.named_parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(states[name]["momentum_buffer"], opt.state[p]["momentum_buffer"],
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "step, torch_cls, renames",
    [
        (adagrad_step, torch.optim.Adagrad, {}),
        (rmsprop_step, torch.optim.RMSprop, {}),
        (adam_step, torch.optim.Adam, {}),
        (momentum_step, torch.optim.SGD, {"momentum": None}),  # our default momentum 0.9 is a choice
    ],
)
def test_defaults_are_torch_defaults(step, torch_cls, renames):
    ours = {
        k: p.default for k, p in inspect.signature(step).parameters.items() if p.default is not inspect.Parameter.empty
    }
    theirs = inspect.signature(torch_cls.__init__).parameters
    for name, value in ours.items():
        if name in renames or name == "decoupled_weight_decay":
            continue
        assert theirs[name].default == value, (
            f"{step.__name__}: default {name}={value}, torch has {theirs[name].default}"
        )


def test_adam_default_beta2_is_0_999():
    assert inspect.signature(adam_step).parameters["betas"].default == (0.9, 0.999)


def test_step_functions_do_not_modify_param_in_place():
    p, g = torch.ones(3, dtype=torch.float64), torch.full((3,), 0.5, dtype=torch.float64)
    for step in OPTIMIZERS.values():
        new = step(p, g, {}, lr=0.1)
        assert torch.equal(p, torch.ones(3, dtype=torch.float64))
        assert new.shape == p.shape and not torch.equal(new, p)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: sgd_step(torch.ones(3), torch.ones(2), {}, lr=0.1), ["(3,)", "(2,)"]),
        (lambda: sgd_step(torch.ones(3), torch.ones(3), {}, lr=-0.1), ["lr", "-0.1"]),
        (lambda: sgd_step(torch.ones(3, dtype=torch.long), torch.ones(3), {}, lr=0.1), ["floating", "int64"]),
        (lambda: momentum_step(torch.ones(3), torch.ones(3), {}, lr=0.1, momentum=1.0), ["momentum", "1.0"]),
        (
            lambda: momentum_step(torch.ones(3), torch.ones(3), {}, lr=0.1, momentum=0.0, nesterov=True),
            ["nesterov", "momentum=0.0"],
        ),
        (lambda: adagrad_step(torch.ones(3), torch.ones(3), None, lr=0.1), ["dict", "NoneType"]),
        (lambda: rmsprop_step(torch.ones(3), torch.ones(3), {}, alpha=1.5), ["alpha", "1.5"]),
        (lambda: adam_step(torch.ones(3), torch.ones(3), {}, betas=(0.9,)), ["pair", "(0.9,)"]),
        (lambda: adam_step(torch.ones(3), torch.ones(3), {}, betas=(0.9, 1.0)), ["beta2", "1.0"]),
        (lambda: adam_step(torch.ones(3), torch.ones(3), {}, eps=float("nan")), ["eps", "nan"]),
        (lambda: rosenbrock(torch.ones(3)), ["(..., 2)", "(3,)"]),
        (lambda: get_surface("sphere"), ["Rosenbrock", "'sphere'"]),
        (lambda: optimizer_paths("saddle", {"Nadam": {"lr": 0.1}}, 10), ["Adam", "Nadam"]),
        (lambda: optimizer_paths("saddle", {}, 10), ["non-empty", "{}"]),
        (lambda: optimizer_paths("saddle", {"SGD": {"lr": 0.1}}, 0), ["steps", "0"]),
        (lambda: optimizer_paths("saddle", {"SGD": {"lr": 0.1}}, 5, start=(1.0,)), ["(x, y)", "(1.0,)"]),
        (lambda: optimizer_paths("saddle", {"SGD": {"lr": -1.0}}, 5), ["lr", "-1.0"]),
        (lambda: surface_grid("saddle", resolution=1), ["resolution", "1"]),
    ],
)
def test_bad_input_raises_value_error_naming_expected_and_given(call, words):
    with pytest.raises(ValueError) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"


# --- surfaces -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SURFACES))
def test_surface_minimum_is_a_stationary_point_with_the_stated_loss(name):
    s = SURFACES[name]
    p = torch.tensor(s.minimum, dtype=torch.float64, requires_grad=True)
    loss = s(p)
    (grad,) = torch.autograd.grad(loss, p)
    assert loss.item() == pytest.approx(s.min_loss, abs=1e-12)
    assert grad.abs().max().item() < 1e-9
    grid = surface_grid(s, 50)[2]
    assert grid.min().item() >= s.min_loss - 1e-12  # nothing in the window lies below the minimum
    assert s.xlim[0] < s.start[0] < s.xlim[1] and s.ylim[0] < s.start[1] < s.ylim[1]


def test_surfaces_are_vectorised():
    pts = torch.randn(4, 7, 2, dtype=torch.float64)
    for s in SURFACES.values():
        out = s(pts)
        assert out.shape == (4, 7)
        torch.testing.assert_close(out[2, 3], s(pts[2, 3]))


def test_saddle_origin_is_a_saddle_point():
    hessian = torch.autograd.functional.hessian(saddle, torch.zeros(2, dtype=torch.float64))
    eig = torch.linalg.eigvalsh(hessian)
    assert eig[0] < 0 < eig[1]


def test_surface_grid_shapes():
    X, Y, Z = surface_grid("Rosenbrock", 30)
    assert X.shape == Y.shape == Z.shape == (30, 30)
    assert X[0, 0] == -2.0 and X[0, -1] == 2.0 and Y[0, 0] == -1.0 and Y[-1, 0] == 3.0
    assert Z[5, 7] == rosenbrock(torch.stack([X[5, 7], Y[5, 7]]))


# --- paths ----------------------------------------------------------------------------------------


def test_path_shapes_start_and_losses():
    paths = optimizer_paths("Rosenbrock", {"SGD": {"lr": 1e-3}, "Adam": {"lr": 0.01}}, steps=40)
    assert list(paths) == ["SGD", "Adam"]
    for path in paths.values():
        assert path.xy.shape == (41, 2) and path.loss.shape == (41,)
        assert path.xy[0].tolist() == [-1.2, 1.0]
        torch.testing.assert_close(path.loss, rosenbrock(path.xy))
        assert path.diverged_at is None and torch.isfinite(path.xy).all()


def test_path_equals_a_hand_loop_over_the_step_function():
    """Stacking optimisers into one tensor does not change any of them."""
    hyper = {"Momentum": {"lr": 0.05, "momentum": 0.8}, "RMSProp": {"lr": 0.05, "alpha": 0.9}}
    paths = optimizer_paths("saddle", hyper, steps=30, start=(-2.0, 0.1))
    for name, kwargs in hyper.items():
        p, state, points = torch.tensor([-2.0, 0.1], dtype=torch.float64), {}, []
        for _ in range(30):
            points.append(p)
            q = p.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(saddle(q), q)
            p = OPTIMIZERS[name](p, g, state, **kwargs)
        points.append(p)
        torch.testing.assert_close(paths[name].xy, torch.stack(points), rtol=0, atol=1e-12)


def test_gradient_noise_is_added_to_each_gradient_and_shared_by_all_optimizers():
    hyper = {"SGD": {"lr": 0.05}, "Adam": {"lr": 0.05}}
    exact = optimizer_paths("saddle", hyper, steps=20)
    assert all(torch.equal(exact[n].xy, optimizer_paths("saddle", hyper, steps=20, noise=0.0)[n].xy) for n in hyper)
    noisy = optimizer_paths("saddle", hyper, steps=20, noise=0.3, seed=4)
    draws = 0.3 * torch.randn(21, 1, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for name, kwargs in hyper.items():  # every optimizer sees the same noise draws, step by step
        p, state, points = torch.tensor(SURFACES["saddle"].start, dtype=torch.float64), {}, []
        for t in range(20):
            points.append(p)
            q = p.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(saddle(q), q)
            p = OPTIMIZERS[name](p, g + draws[t, 0], state, **kwargs)
        points.append(p)
        torch.testing.assert_close(noisy[name].xy, torch.stack(points), rtol=0, atol=1e-12)
        assert not torch.equal(noisy[name].xy, exact[name].xy)
    with pytest.raises(ValueError, match="noise must be a finite number in \\[0, inf\\], got -1"):
        optimizer_paths("saddle", hyper, steps=5, noise=-1.0)


def test_every_optimizer_reduces_the_loss_with_suggested_settings():
    for s in SURFACES.values():
        hyper = {name: {"lr": s.lr} for name in OPTIMIZERS}
        for name, path in optimizer_paths(s, hyper, steps=s.steps).items():
            if name == "AdaGrad" and s.name == "Rosenbrock":
                continue  # AdaGrad's steps shrink like lr / sqrt(t): at lr 1e-3 it barely moves
            assert path.loss[-1] < path.loss[0], (s.name, name)


def test_momentum_beats_sgd_on_the_ill_conditioned_bowl():
    """The notebook's claim: with the same lr, momentum gets far closer to the minimum in 60 steps."""
    paths = optimizer_paths(
        "ill-conditioned bowl", {"SGD": {"lr": 0.1}, "Momentum": {"lr": 0.1, "momentum": 0.9}}, steps=60
    )
    assert paths["Momentum"].loss[-1] < 0.1 * paths["SGD"].loss[-1]


def test_adam_escapes_the_saddle_sooner_than_sgd():
    """Near the saddle the y-gradient is tiny; Adam rescales it, SGD does not."""
    paths = optimizer_paths("saddle", {"SGD": {"lr": 0.05}, "Adam": {"lr": 0.05}}, steps=80)

    def escape(path):
        return int(torch.nonzero(path.xy[:, 1].abs() > 0.5)[0])

    assert escape(paths["Adam"]) < escape(paths["SGD"])


def test_divergence_is_reported_and_path_is_nan_afterwards():
    paths = optimizer_paths("ill-conditioned bowl", {"SGD": {"lr": 1.2}, "Adam": {"lr": 0.1}}, steps=100)
    sgd = paths["SGD"]
    assert sgd.diverged_at is not None and 0 < sgd.diverged_at <= 100
    assert torch.isnan(sgd.xy[sgd.diverged_at :]).all() and torch.isfinite(sgd.xy[: sgd.diverged_at]).all()
    assert paths["Adam"].diverged_at is None and torch.isfinite(paths["Adam"].loss).all()
    assert math.isfinite(sgd.loss[sgd.diverged_at - 1].item())


# --- warmup and learning-rate scaling --------------------------------------------------------------


def test_warmup_factor_with_lambda_lr():
    from functools import partial

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(warmup_factor, warmup_steps=4))
    lrs = []
    for _ in range(6):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])
    assert warmup_factor(0, 0) == 1.0


def test_scaled_lr_rules():
    assert scaled_lr(0.01, 32, 128, "linear") == pytest.approx(0.04)
    assert scaled_lr(0.01, 32, 128, "sqrt") == pytest.approx(0.02)
    assert scaled_lr(0.01, 32, 128, "none") == 0.01
    assert scaled_lr(0.01, 32, 8, "linear") == pytest.approx(0.0025)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: warmup_factor(-1, 5), ["step", "-1"]),
        (lambda: warmup_factor(0, 2.5), ["warmup_steps", "2.5"]),
        (lambda: scaled_lr(0.1, 32, 64, "cubic"), ["linear", "'cubic'"]),
        (lambda: scaled_lr(0.1, 0, 64), ["base_batch_size", "0"]),
        (lambda: scaled_lr(-0.1, 32, 64), ["base_lr", "-0.1"]),
    ],
)
def test_schedule_bad_input(call, words):
    with pytest.raises(ValueError) as info:
        call()
    for word in words:
        assert word in str(info.value)
