"""Optimizers written out as plain update functions, 2-D loss surfaces, and optimizer paths on them
(notebook 05).

Each `*_step(param, grad, state, **hyper)` takes a parameter tensor, its gradient and a state dict
(the optimizer's memory: moving averages, step count; empty before the first step), updates `state`
in place and returns the new parameter. The formulas are torch.optim's, in the same order, so a
model trained with these functions follows `torch.optim.SGD / Adagrad / RMSprop / Adam` to
floating-point rounding (tests/test_optim.py checks it over hundreds of steps). The state keys are
torch.optim's too (`momentum_buffer`, `sum`, `square_avg`, `exp_avg`, `exp_avg_sq`, `step`).

Use on a model::

    states = {name: {} for name, _ in model.named_parameters()}
    loss.backward()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(adam_step(p, p.grad, states[name], lr=1e-3))

The surfaces take points `xy: (..., 2)` and return losses `(...)`; `optimizer_paths` runs several
optimizers from one start on a surface with one gradient evaluation per step for all of them.
Learning-rate schedules (`warmup_factor`, `scaled_lr`) live in `helpers.train`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from helpers.checks import check_int, check_number

__all__ = [
    "sgd_step",
    "momentum_step",
    "adagrad_step",
    "rmsprop_step",
    "adam_step",
    "OPTIMIZERS",
    "ill_conditioned_bowl",
    "rosenbrock",
    "saddle",
    "Surface",
    "SURFACES",
    "get_surface",
    "OptimizerPath",
    "optimizer_paths",
    "surface_grid",
]


# --- argument checks ------------------------------------------------------------------------------


def _check_tensors(param: Tensor, grad: Tensor, state: dict) -> None:
    if not isinstance(param, Tensor) or not isinstance(grad, Tensor):
        raise ValueError(f"param and grad must be tensors, got {type(param).__name__} and "
                         f"{type(grad).__name__}")
    if not param.is_floating_point():
        raise ValueError(f"param must be a floating-point tensor, got dtype {param.dtype}")
    if grad.shape != param.shape:
        raise ValueError(f"grad must have the shape of param {tuple(param.shape)}, "
                         f"got {tuple(grad.shape)}")
    if not isinstance(state, dict):
        raise ValueError(f"state must be a dict (empty before the first step), "
                         f"got {type(state).__name__}")


def _at_least_zero(**values: float) -> None:
    """Each value a finite number >= 0 (learning rates, eps, weight decay)."""
    for name, value in values.items():
        check_number(name, value, 0)


def _decay_rates(**values: float) -> None:
    """Each value a number in [0, 1) (momentum, the decay rates of moving averages)."""
    for name, value in values.items():
        check_number(name, value, 0, 1, high_open=True)


def _check_betas(betas: tuple[float, float]) -> tuple[float, float]:
    """Adam's (beta1, beta2), each a decay rate in [0, 1)."""
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    _decay_rates(beta1=betas[0], beta2=betas[1])
    return betas[0], betas[1]


def _with_weight_decay(param: Tensor, grad: Tensor, weight_decay: float) -> Tensor:
    """L2 regularisation as torch.optim adds it: g <- g + weight_decay * p."""
    return grad.add(param, alpha=weight_decay) if weight_decay != 0 else grad


# --- the five update rules ------------------------------------------------------------------------


def sgd_step(param: Tensor, grad: Tensor, state: dict, *, lr: float, weight_decay: float = 0.0
             ) -> Tensor:
    """Plain (stochastic) gradient descent: p <- p - lr * g.  Like `torch.optim.SGD(momentum=0)`.

    param, grad: tensors of one shape (any); state: unused (kept for a uniform signature).
    Returns the new parameter, same shape.
    """
    _check_tensors(param, grad, state)
    _at_least_zero(lr=lr, weight_decay=weight_decay)
    grad = _with_weight_decay(param, grad, weight_decay)
    return param.add(grad, alpha=-lr)


def momentum_step(param: Tensor, grad: Tensor, state: dict, *, lr: float, momentum: float = 0.9,
                  dampening: float = 0.0, nesterov: bool = False,
                  weight_decay: float = 0.0) -> Tensor:
    """SGD with momentum in PyTorch's convention.  Like `torch.optim.SGD(momentum=...)`.

        buf <- g                               on the first step
        buf <- momentum * buf + (1 - dampening) * g   afterwards
        p   <- p - lr * buf                    (Nesterov: p - lr * (g + momentum * buf))

    PyTorch folds the learning rate out of the buffer (some texts write v <- mu v + lr g instead);
    with a constant lr the two give the same path. param, grad: one shape; state gains
    `momentum_buffer` (param's shape). Returns the new parameter.
    """
    _check_tensors(param, grad, state)
    _at_least_zero(lr=lr, weight_decay=weight_decay)
    _decay_rates(momentum=momentum)
    check_number("dampening", dampening, 0, 1)
    if nesterov and (momentum == 0 or dampening != 0):
        raise ValueError(f"nesterov needs momentum > 0 and dampening = 0, got momentum={momentum}, "
                         f"dampening={dampening}")
    grad = _with_weight_decay(param, grad, weight_decay)
    if "momentum_buffer" not in state:
        buf = grad.clone()
    else:
        buf = state["momentum_buffer"].mul(momentum).add(grad, alpha=1 - dampening)
    state["momentum_buffer"] = buf
    direction = grad.add(buf, alpha=momentum) if nesterov else buf
    return param.add(direction, alpha=-lr)


def adagrad_step(param: Tensor, grad: Tensor, state: dict, *, lr: float = 1e-2, eps: float = 1e-10,
                 lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0) -> Tensor:
    """AdaGrad: divide by the root of the running SUM of squared gradients.
    Like `torch.optim.Adagrad`.

        sum <- sum + g * g
        p   <- p - clr * g / (sqrt(sum) + eps),   clr = lr / (1 + (step - 1) * lr_decay)

    eps is added AFTER the square root (outside it), as in torch.optim. param, grad: one shape;
    state gains `sum` (param's shape) and `step` (int). Returns the new parameter.
    """
    _check_tensors(param, grad, state)
    _at_least_zero(lr=lr, eps=eps, lr_decay=lr_decay, weight_decay=weight_decay,
                   initial_accumulator_value=initial_accumulator_value)
    if "sum" not in state:
        state["sum"], state["step"] = torch.full_like(param, initial_accumulator_value), 0
    state["step"] += 1
    grad = _with_weight_decay(param, grad, weight_decay)
    clr = lr / (1 + (state["step"] - 1) * lr_decay)
    state["sum"] = state["sum"].addcmul(grad, grad)
    std = state["sum"].sqrt().add(eps)
    return param.addcdiv(grad, std, value=-clr)


def rmsprop_step(param: Tensor, grad: Tensor, state: dict, *, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, momentum: float = 0.0, centered: bool = False,
                 weight_decay: float = 0.0) -> Tensor:
    """RMSProp: divide by the root of a moving AVERAGE of squared gradients.
    Like `torch.optim.RMSprop`.

        v   <- alpha * v + (1 - alpha) * g * g   (centred: subtract the squared mean gradient)
        p   <- p - lr * g / (sqrt(v) + eps)      (with momentum: buf <- momentum buf + g / (...),
                                                  p <- p - lr * buf)

    Unlike AdaGrad the average forgets old gradients, so steps do not shrink for ever. eps is
    added after the square root. state gains `square_avg` (and `momentum_buffer`, `grad_avg`
    when used) and `step`. Returns the new parameter.
    """
    _check_tensors(param, grad, state)
    _at_least_zero(lr=lr, eps=eps, weight_decay=weight_decay)
    _decay_rates(alpha=alpha, momentum=momentum)
    if "square_avg" not in state:
        state["square_avg"], state["step"] = torch.zeros_like(param), 0
        state["momentum_buffer"] = torch.zeros_like(param)
        state["grad_avg"] = torch.zeros_like(param)
    state["step"] += 1
    grad = _with_weight_decay(param, grad, weight_decay)
    state["square_avg"] = state["square_avg"].mul(alpha).addcmul(grad, grad, value=1 - alpha)
    if centered:
        state["grad_avg"] = state["grad_avg"].lerp(grad, 1 - alpha)
        avg = state["square_avg"].addcmul(state["grad_avg"], state["grad_avg"], value=-1).sqrt()
    else:
        avg = state["square_avg"].sqrt()
    avg = avg.add(eps)
    if momentum > 0:
        state["momentum_buffer"] = state["momentum_buffer"].mul(momentum).addcdiv(grad, avg)
        return param.add(state["momentum_buffer"], alpha=-lr)
    return param.addcdiv(grad, avg, value=-lr)


def adam_step(param: Tensor, grad: Tensor, state: dict, *, lr: float = 1e-3,
              betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
              weight_decay: float = 0.0, decoupled_weight_decay: bool = False) -> Tensor:
    """Adam with bias correction.  Like `torch.optim.Adam` (and `AdamW` with
    decoupled_weight_decay).

        m <- beta1 * m + (1 - beta1) * g                 (first moment: momentum)
        v <- beta2 * v + (1 - beta2) * g * g             (second moment: RMSProp's average)
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Both averages start at zero, so early on they are biased towards zero; dividing by
    1 - beta^t removes that bias. The default beta2 is 0.999 (PyTorch and the paper).
    Decoupled weight decay (AdamW) shrinks p by lr * weight_decay instead of adding to g.
    state gains `exp_avg`, `exp_avg_sq` (param's shape) and `step`. Returns the new parameter.
    """
    _check_tensors(param, grad, state)
    beta1, beta2 = _check_betas(betas)
    _at_least_zero(lr=lr, eps=eps, weight_decay=weight_decay)
    if "exp_avg" not in state:
        state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(param), torch.zeros_like(param)
        state["step"] = 0
    state["step"] += 1
    t = state["step"]
    if decoupled_weight_decay:
        param = param.mul(1 - lr * weight_decay)
    else:
        grad = _with_weight_decay(param, grad, weight_decay)
    state["exp_avg"] = state["exp_avg"].lerp(grad, 1 - beta1)
    state["exp_avg_sq"] = state["exp_avg_sq"].mul(beta2).addcmul(grad, grad, value=1 - beta2)
    bias_correction1, bias_correction2 = 1 - beta1**t, 1 - beta2**t
    denom = (state["exp_avg_sq"].sqrt() / bias_correction2**0.5).add(eps)
    return param.addcdiv(state["exp_avg"], denom, value=-lr / bias_correction1)


#: The update rules by display name, in the order the notebook introduces them.
OPTIMIZERS: dict[str, Callable[..., Tensor]] = {
    "SGD": sgd_step,
    "Momentum": momentum_step,
    "AdaGrad": adagrad_step,
    "RMSProp": rmsprop_step,
    "Adam": adam_step,
}


# --- 2-D loss surfaces ----------------------------------------------------------------------------


def _xy(points: Tensor) -> tuple[Tensor, Tensor]:
    if not isinstance(points, Tensor) or points.ndim < 1 or points.shape[-1] != 2:
        shape = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
        raise ValueError(f"points must be a tensor of shape (..., 2), got {shape}")
    return points[..., 0], points[..., 1]


def ill_conditioned_bowl(points: Tensor) -> Tensor:
    """f(x, y) = 0.1 x^2 + 2 y^2: a quadratic bowl 20 times steeper across y than along x.

    points: (..., 2) -> loss (...). Minimum 0 at (0, 0); condition number 20.
    """
    x, y = _xy(points)
    return 0.1 * x**2 + 2.0 * y**2


def rosenbrock(points: Tensor) -> Tensor:
    """f(x, y) = (1 - x)^2 + 100 (y - x^2)^2: a curved, flat-bottomed valley.

    points: (..., 2) -> loss (...). Minimum 0 at (1, 1).
    """
    x, y = _xy(points)
    return (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2


def saddle(points: Tensor) -> Tensor:
    """f(x, y) = x^2 - y^2 + y^4 / 4: a saddle point at (0, 0) between two valleys.

    points: (..., 2) -> loss (...). Minima -1 at (0, +-sqrt(2)); the origin is a minimum along x
    and a maximum along y, so a path started near y = 0 must escape sideways.
    """
    x, y = _xy(points)
    return x**2 - y**2 + 0.25 * y**4


@dataclass(frozen=True)
class Surface:
    """A 2-D loss surface with a start point, a view window and suggested explorer settings."""

    name: str
    fn: Callable[[Tensor], Tensor]
    start: tuple[float, float]
    minimum: tuple[float, float]
    min_loss: float
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    lr: float
    steps: int

    def __call__(self, points: Tensor) -> Tensor:
        return self.fn(points)


#: The explorer's surfaces by display name.
SURFACES: dict[str, Surface] = {
    s.name: s
    for s in [
        Surface(
            "ill-conditioned bowl",
            ill_conditioned_bowl,
            (-4.5, 1.5),
            (0.0, 0.0),
            0.0,
            (-5.0, 2.0),
            (-2.0, 2.0),
            lr=0.1,
            steps=60,
        ),
        Surface("Rosenbrock", rosenbrock, (-1.2, 1.0), (1.0, 1.0), 0.0, (-2.0, 2.0), (-1.0, 3.0),
                lr=1e-3, steps=300),
        Surface("saddle", saddle, (-2.5, 0.01), (0.0, math.sqrt(2.0)), -1.0, (-3.0, 3.0),
                (-2.5, 2.5), lr=0.05, steps=80),
    ]
}


def get_surface(surface: str | Surface) -> Surface:
    """The `Surface` named `surface` (a key of SURFACES), or `surface` itself."""
    if isinstance(surface, Surface):
        return surface
    if surface not in SURFACES:
        raise ValueError(f"surface must be one of {sorted(SURFACES)}, got {surface!r}")
    return SURFACES[surface]


def surface_grid(surface: str | Surface, resolution: int = 120) -> tuple[Tensor, Tensor, Tensor]:
    """Loss on a resolution x resolution grid over the surface's view window, for a contour plot.

    Returns X, Y, Z, each (resolution, resolution), float64; one vectorised call of the surface.
    """
    s = get_surface(surface)
    check_int("resolution", resolution, 2)
    xs = torch.linspace(*s.xlim, resolution, dtype=torch.float64)
    ys = torch.linspace(*s.ylim, resolution, dtype=torch.float64)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    return X, Y, s(torch.stack([X, Y], dim=-1))


# --- optimizer paths -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OptimizerPath:
    """One optimizer's trajectory: xy (steps + 1, 2) and loss (steps + 1,), NaN after a divergence.

    diverged_at is the first step whose point left the finite range (|x| or |y| > 1e6, or a
    non-finite loss), else None.
    """

    optimizer: str
    xy: Tensor
    loss: Tensor
    diverged_at: int | None


_ESCAPE = 1e6  # a coordinate beyond this counts as diverged


def optimizer_paths(
    surface: str | Surface,
    hyper: Mapping[str, Mapping[str, object]],
    steps: int,
    start: tuple[float, float] | None = None,
    noise: float = 0.0,
    seed: int = 0,
) -> dict[str, OptimizerPath]:
    """Run several optimizers from one start on a 2-D surface, in float64.

    surface: a key of SURFACES or a Surface. hyper: {optimizer name (a key of OPTIMIZERS):
    keyword arguments of its step function}, e.g. {"SGD": {"lr": 0.1}, "Adam": {"lr": 0.1}}.
    steps: number of updates (>= 1). start: (x, y), default the surface's start.
    noise: standard deviation of Gaussian noise added to each gradient coordinate (0: the exact
    gradient), as a mini-batch gradient is the full one plus noise; every optimizer gets the same
    noise draws, from torch.Generator().manual_seed(seed).
    All optimizers' points are stacked as rows of one (k, 2) tensor, so each step needs one
    gradient evaluation for all of them. Returns {name: OptimizerPath} in the order of `hyper`.
    """
    s = get_surface(surface)
    start = _check_paths(hyper, steps, s.start if start is None else start)
    check_number("noise", noise, 0)
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0))
    draws = noise * torch.randn(steps + 1, 1, 2, generator=generator, dtype=torch.float64)
    names = list(hyper)
    rules = [(OPTIMIZERS[name], dict(hyper[name]), {}) for name in names]  # step, settings, state
    xy = torch.tensor([start] * len(names), dtype=torch.float64)  # (k, 2)
    points = torch.empty((steps + 1, len(names), 2), dtype=torch.float64)
    losses = torch.empty((steps + 1, len(names)), dtype=torch.float64)
    for t in range(steps + 1):  # a diverging path keeps going (to inf or NaN); it is cut below
        xy = xy.detach().requires_grad_(True)
        loss = s(xy)  # (k,)
        (grad,) = torch.autograd.grad(loss.sum(), xy)  # rows are independent: row i gets df/dxy_i
        grad = grad + draws[t]
        points[t], losses[t] = xy.detach(), loss.detach()
        if t < steps:
            xy = torch.stack([step(xy[i].detach(), grad[i], state, **settings)
                              for i, (step, settings, state) in enumerate(rules)])
    return _cut_at_divergence(names, points, losses)


def _check_paths(hyper: Mapping, steps: int, start: tuple[float, float]) -> tuple[float, float]:
    if not isinstance(hyper, Mapping) or not hyper:
        raise ValueError(f"hyper must be a non-empty dict {{optimizer name: settings}}, "
                         f"got {hyper!r}")
    unknown = [name for name in hyper if name not in OPTIMIZERS]
    if unknown:
        raise ValueError(f"optimizers must be among {list(OPTIMIZERS)}, got {unknown}")
    check_int("steps", steps)
    if len(start) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in start):
        raise ValueError(f"start must be two finite numbers (x, y), got {start!r}")
    return start


def _cut_at_divergence(names: list[str], points: Tensor, losses: Tensor
                       ) -> dict[str, OptimizerPath]:
    """The paths, each cut (NaN) from its first point with a non-finite loss or a coordinate
    beyond _ESCAPE. points: (steps + 1, k, 2); losses: (steps + 1, k)."""
    steps = len(points) - 1
    bad = ~torch.isfinite(losses) | ~(points.abs() <= _ESCAPE).all(dim=-1)  # (steps + 1, k)
    first_bad = torch.where(bad.any(dim=0), bad.int().argmax(dim=0), steps + 1)  # (k,)
    after = torch.arange(steps + 1)[:, None] >= first_bad[None, :]  # (steps + 1, k)
    points[after], losses[after] = math.nan, math.nan
    diverged_at = [None if int(i) > steps else int(i) for i in first_bad]
    return {name: OptimizerPath(name, points[:, i], losses[:, i], diverged_at[i])
            for i, name in enumerate(names)}
