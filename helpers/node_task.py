"""Notebook 07's node-level task: next-step inflow at every station from the current flows.

At step t each station gets two features:
  - how unusual it is now:       inflow_t / usual_t - 1
                                 (0 = as usual; a missing reading counts as usual)
  - how busy it usually is next: usual_{t+1} / mean inflow
where `usual` is the historical average for that time of day and type of day, fitted on the
training part only (`helpers.models.historical_average`). The target is
inflow_{t+1} / usual_{t+1} - 1 (NaN where the reading is missing): a forecast of it, p, is the
forecast (1 + p) * usual_{t+1} in passengers, and p = 0 is the historical average itself. Pairs
across the night (last step of a day, first of the next) are left out.

Why a graph should help: the metro's surges move to neighbouring stations from one quarter-hour to
the next. A model that sees each station alone (an MLP) knows a surge is here now; a GCN also sees
the surges next door, which arrive next. Both models here are the same `GCNStack`: the MLP is that
network on a graph with no edges, whose GCN operator is the identity, so the only difference is the
graph.

Holds the task (`NextStepTask`, `next_step_task`), its models (`NodeRegressor`, `node_model`),
training (`train_node_model`), errors in passengers (`forecast_mae`, `passenger_mae`) and the depth
experiment (`DepthResult`, `depth_sweep`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from helpers.checks import check_choice, check_int
from helpers.data import GraphTimeSeries, shuffled_loader, split_bounds
from helpers.graph import BLOCKS, GCNStack, mean_pairwise_cosine, normalized_adjacency
from helpers.metrics import masked_mae
from helpers.models import historical_average
from helpers.train import History, fit, masked_loss

__all__ = ["NextStepTask", "next_step_task", "NodeRegressor", "node_model", "train_node_model",
           "forecast_mae", "passenger_mae", "DepthResult", "depth_sweep"]

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class NextStepTask:
    """Every (t, t + 1) sample of the task, in time order, with the index range of each part.

    features: (samples, nodes, 2); targets: (samples, 1, nodes), i.e. (batch, horizon=1, nodes) as
    `helpers.metrics` expects; usual_next: (samples, nodes) passengers; steps: (samples,) the index
    t in the dataset; parts: {"train" | "val" | "test": slice of samples}; adjacency (nodes, nodes).
    """

    features: Tensor
    targets: Tensor
    usual_next: Tensor
    steps: Tensor
    parts: dict[str, slice]
    adjacency: Tensor

    def dataset(self, part: str) -> TensorDataset:
        """(features, targets) of one part as a TensorDataset."""
        part_slice = self._slice(part)
        return TensorDataset(self.features[part_slice], self.targets[part_slice])

    def _slice(self, part: str) -> slice:
        return self.parts[check_choice("part", part, self.parts)]


def next_step_task(ds: GraphTimeSeries, fractions: Sequence[float] = (0.7, 0.1, 0.2),
                   channel: int = 0) -> NextStepTask:
    """Build the task from a dataset with timestamps; the usual flow is fitted on the first
    (training) part."""
    check_int("channel", channel, minimum=0, maximum=ds.num_channels - 1)
    bounds = split_bounds(ds.num_steps, fractions)
    if len(bounds) != 3:
        raise ValueError(f"fractions: expected three fractions (train, val, test), "
                         f"got {list(fractions)}")
    flow = ds.values[:, :, channel]  # (time, nodes)
    usual = historical_average(ds, bounds[0][1], channel).clamp_min(1.0)  # (time, nodes)
    mean_flow = torch.nanmean(flow[: bounds[0][1]])
    day = torch.from_numpy(ds.timestamps.astype("datetime64[D]").astype("int64"))
    t = torch.arange(ds.num_steps - 1)
    t = t[day[t] == day[t + 1]]  # both steps on the same day
    # both steps inside one part
    selected = [t[(t >= start) & (t + 1 < stop)] for start, stop in bounds]
    parts, offset = {}, 0
    for name, part in zip(PARTS, selected, strict=True):
        parts[name] = slice(offset, offset + len(part))
        offset += len(part)
    t = torch.cat(selected)
    unusual_now = (flow[t] / usual[t] - 1).nan_to_num(0.0)
    features = torch.stack([unusual_now, usual[t + 1] / mean_flow], dim=-1)
    targets = (flow[t + 1] / usual[t + 1] - 1).unsqueeze(1)
    return NextStepTask(features, targets, usual[t + 1], t, parts, ds.adjacency)


class NodeRegressor(nn.Module):
    """A `GCNStack` with its graph fixed, predicting one number per node.

    forward(x): x (batch, nodes, features) -> (batch, 1, nodes). `operator` is a buffer (it follows
    `.to(device)` and is not trained). `embed(x)` returns the stack's node embeddings
    (batch, nodes, hidden).
    """

    def __init__(self, stack: GCNStack, operator: Tensor):
        super().__init__()
        self.stack = stack
        self.register_buffer("operator", operator)

    def embed(self, x: Tensor) -> Tensor:
        return self.stack.embed(x, self.operator)

    def forward(self, x: Tensor) -> Tensor:
        return self.stack(x, self.operator).squeeze(-1).unsqueeze(1)


def node_model(graph: bool, adjacency: Tensor, in_channels: int = 2, hidden: int = 32,
               num_layers: int = 2, block: str = "plain", dropout: float = 0.0,
               ckpt_grad: bool = False) -> NodeRegressor:
    """A GCN (graph=True: operator D^-1/2 (A+I) D^-1/2) or the same network as an MLP (graph=False).

    The MLP's operator is that of a graph with no edges, the identity: every node sees only itself.
    """
    adjacency = adjacency if graph else torch.zeros_like(adjacency)
    stack = GCNStack(in_channels, hidden, 1, num_layers, block=block, dropout=dropout,
                     ckpt_grad=ckpt_grad)
    return NodeRegressor(stack, normalized_adjacency(adjacency))


def train_node_model(model: nn.Module, task: NextStepTask, epochs: int = 2, lr: float = 5e-3,
                     batch_size: int = 64, seed: int = 0, loss: str = "mse",
                     on_epoch_end=None) -> History:
    """Adam on the masked `loss` ("mse", "mae" or "huber") of the target, over the training part.

    The batches are shuffled by a generator seeded with `seed`; the initial weights are whatever the
    model was built with (seed torch before building it). on_epoch_end(epoch, history) is passed to
    `fit`.
    """
    loader = shuffled_loader(task.dataset("train"), batch_size, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    return fit(model, loader, masked_loss(loss), optimizer, epochs, on_epoch_end=on_epoch_end,
               restore_best=False)


def forecast_mae(prediction: Tensor, task: NextStepTask, part: str = "test") -> float:
    """Mean absolute error in passengers per 15 minutes of a forecast of the target, over the
    observed targets of `part`. prediction: (samples of the part, 1, nodes), in the target's units
    (0 = as usual)."""
    s = task._slice(part)
    usual = task.usual_next[s].unsqueeze(1)  # (samples, 1, nodes)
    return masked_mae((1 + prediction) * usual, (1 + task.targets[s]) * usual).item()


@torch.no_grad()
def passenger_mae(model: nn.Module, task: NextStepTask, part: str = "test") -> float:
    """`forecast_mae` of a model's forecasts (evaluation mode, no gradients)."""
    model.eval()
    return forecast_mae(model(task.features[task._slice(part)]), task, part)


@dataclass(frozen=True)
class DepthResult:
    """One trained network of the depth experiment: test MAE (passengers), mean pairwise cosine
    similarity of its test node embeddings (1 = collapsed), final training loss, seconds to
    train, whether it had the graph (False: the no-graph control) and its seed."""

    block: str
    depth: int
    mae: float
    cosine: float
    train_loss: float
    seconds: float
    graph: bool = True  # False: the no-graph control (identity operator, the same network)
    seed: int = 0


def depth_sweep(task: NextStepTask, depths: Sequence[int],
                blocks: Sequence[str] = ("plain", "res+"), hidden: int = 16, epochs: int = 2,
                lr: float = 5e-3, batch_size: int = 64, seed: int = 0, embedding_samples: int = 256,
                loss: str = "mse", graph: bool = True) -> list[DepthResult]:
    """Train a GCN of every depth with every skip `block`; measure accuracy and over-smoothing.

    Each network starts from `torch.manual_seed(seed)` and sees the batches in the same order. The
    cosine statistic is averaged over the first `embedding_samples` test samples. graph=False
    trains the same networks on the identity operator (no edges): the control that tells a graph
    effect (over-smoothing) from a depth effect (a deep stack that is hard to train).
    """
    for i, block in enumerate(blocks):
        check_choice(f"blocks[{i}]", block, BLOCKS)
    if not depths:
        raise ValueError(f"depths must be a non-empty list of ints >= 1, got {list(depths)}")
    for i, depth in enumerate(depths):
        check_int(f"depths[{i}]", depth)
    test = task.features[task._slice("test")][:embedding_samples]
    results = []
    for block in blocks:
        for depth in depths:
            torch.manual_seed(seed)
            model = node_model(graph, task.adjacency, hidden=hidden, num_layers=depth, block=block)
            start = time.perf_counter()
            history = train_node_model(model, task, epochs=epochs, lr=lr, batch_size=batch_size,
                                       seed=seed, loss=loss)
            seconds = time.perf_counter() - start
            with torch.no_grad():
                model.eval()
                cosine = mean_pairwise_cosine(model.embed(test)).mean().item()
            results.append(DepthResult(block, depth, passenger_mae(model, task), cosine,
                                       history.train_loss[-1], seconds, graph, seed))
    return results
