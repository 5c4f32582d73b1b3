"""The container of every dataset: `GraphTimeSeries`, and what reshapes one.

- `GraphTimeSeries`: values (time, nodes, channels), an adjacency (nodes, nodes), the step length,
  node names and optional coordinates, timestamps and extras; validated when it is built. Its
  timestamps may have gaps (a metro closes at night): `segments` are the regular stretches.
- `check_adjacency`: the adjacency rules, for a matrix on its own.
- `select_nodes` (a sub-network, e.g. one station), `add_time_of_day` and `add_day_type` (clock
  and calendar channels), `channel_first` (the channel to forecast moved to the front).
- `DATA_DIR`: the repository's data folder, where the shipped and downloaded datasets live.

Conventions shared by every dataset:
- A missing reading is NaN in `values` (metrics in `helpers.metrics` ignore it).
- A gap in time (the night, a missing day) is kept as data, never filled: the timestamps jump, and
  every step is a whole number of intervals. `segments` lists the stretches without a jump; windows
  (`helpers.data.windows`) stay inside one segment unless asked to cross.
- The adjacency holds non-negative weights, larger = closer, and a ZERO diagonal: no self-loops.
  Graph layers add self-loops themselves (the GCN rule uses A + I); a file that stores them
  (Los-loop does) has its diagonal set to zero when it is loaded, so no dataset counts a self-loop
  twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from helpers.checks import check_int
from helpers.data.calendar import (
    day_type,
    infer_interval_minutes,
    segment_bounds,
    time_of_day_index,
)

#: The repository's data folder (works from a notebook in notebooks/ and from an editable install).
DATA_DIR = Path(__file__).resolve().parents[2] / "data"


@dataclass(frozen=True, eq=False, repr=False)
class GraphTimeSeries:
    """A time series on the nodes of a graph, validated at construction.

    values: (time, nodes, channels) float32; NaN marks a missing reading. A (time, nodes) array is
        accepted and given one channel.
    adjacency: (nodes, nodes) float32, non-negative and finite, larger = closer, zero diagonal
        (no self-loops; see the module docstring). It may be asymmetric (a directed graph).
    interval_minutes: minutes between consecutive steps within a segment; None infers it from the
        timestamps (their smallest step). Every step between timestamps must be a whole multiple
        of it: a longer step is a gap (e.g. the night), which splits the series into `segments`.
    node_names: one unique string per node.
    coords: (nodes, 2) positions for drawing (x, y), or None.
    timestamps: numpy datetime64[m] array (time,) with the start of each step, or None.
    channel_names: one name per channel (default "value" or "channel_k").
    meta: dataset-specific extras, e.g. the metro lines; the key "holidays" (ISO dates) is read by
        `day_type`.
    Numpy arrays are accepted and converted to float32 tensors.
    """

    values: torch.Tensor
    adjacency: torch.Tensor
    interval_minutes: int | None
    node_names: list[str]
    coords: torch.Tensor | None = None
    timestamps: np.ndarray | None = None
    channel_names: list[str] | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        values = _as_float32_tensor(self.values, "values")
        if values.ndim == 2:
            values = values.unsqueeze(-1)
        if values.ndim != 3 or min(values.shape) < 1:
            raise ValueError(
                f"values: expected a non-empty (time, nodes, channels) or (time, nodes) array, "
                f"got shape {tuple(values.shape)}"
            )
        if torch.isinf(values).any():
            raise ValueError("values: expected finite numbers or NaN (missing), got +/-inf")
        num_steps, num_nodes, num_channels = values.shape
        adjacency = check_adjacency(self.adjacency, num_nodes)
        interval = self.interval_minutes
        if interval is None:
            if self.timestamps is None:
                raise ValueError("interval_minutes: expected minutes per step (or timestamps to "
                                 "infer it from), got None and no timestamps")
            interval = infer_interval_minutes(self.timestamps)
        check_int("interval_minutes", interval)

        names = list(self.node_names)
        if len(names) != num_nodes or not all(isinstance(n, str) for n in names):
            raise ValueError(
                f"node_names: expected {num_nodes} strings (one per node), got {len(names)} items"
            )
        if len(set(names)) != len(names):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"node_names: expected unique names, got duplicates {duplicates[:5]}")

        coords = self.coords
        if coords is not None:
            coords = _as_float32_tensor(coords, "coords")
            if tuple(coords.shape) != (num_nodes, 2) or not torch.isfinite(coords).all():
                raise ValueError(
                    f"coords: expected finite (nodes, 2) = ({num_nodes}, 2) positions, "
                    f"got shape {tuple(coords.shape)}"
                )

        timestamps = self.timestamps
        if timestamps is not None:
            timestamps = _checked_times(timestamps, num_steps, interval)
        channels = self.channel_names
        if channels is None:
            several = [f"channel_{k}" for k in range(num_channels)]
            channels = ["value"] if num_channels == 1 else several
        channels = list(channels)
        if len(channels) != num_channels or not all(isinstance(c, str) for c in channels):
            raise ValueError(f"channel_names: expected {num_channels} strings, got {channels!r}")
        if not isinstance(self.meta, dict):
            raise ValueError(f"meta: expected a dict, got {type(self.meta).__name__}")

        for name, value in [
            ("values", values),
            ("interval_minutes", interval),
            ("adjacency", adjacency),
            ("node_names", names),
            ("coords", coords),
            ("timestamps", timestamps),
            ("channel_names", channels),
        ]:
            object.__setattr__(self, name, value)

    @property
    def num_steps(self) -> int:
        return self.values.shape[0]

    @property
    def num_nodes(self) -> int:
        return self.values.shape[1]

    @property
    def num_channels(self) -> int:
        return self.values.shape[2]

    @cached_property
    def segments(self) -> list[tuple[int, int]]:
        """The regular stretches of the series: [(start, stop), ...] step indices, in order, with
        consecutive steps exactly `interval_minutes` apart inside each and a gap between two.
        Without timestamps the whole series is one segment."""
        if self.timestamps is None:
            return [(0, self.num_steps)]
        return segment_bounds(self.timestamps, self.interval_minutes)

    def __repr__(self) -> str:
        missing = torch.isnan(self.values).float().mean().item()
        span = ""
        if self.timestamps is not None:
            span = f", {self.timestamps[0]} .. {self.timestamps[-1]}"
            if len(self.segments) > 1:
                span += f" in {len(self.segments)} segments"
        return (
            f"GraphTimeSeries(steps={self.num_steps}, nodes={self.num_nodes}, "
            f"channels={self.channel_names}, interval={self.interval_minutes} min, "
            f"edges={int((self.adjacency > 0).sum())}, missing={100 * missing:.2f}%{span})"
        )


def _as_float32_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor or numpy array, got {type(x).__name__}")
    integers = (torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)
    if not (x.is_floating_point() or x.dtype in integers):
        raise ValueError(f"{name}: expected real numbers, got dtype {x.dtype}")
    return x.to(torch.float32)


def _checked_times(timestamps, num_steps: int, interval_minutes: int) -> np.ndarray:
    """`timestamps` as datetime64[m], checked: one per step, strictly increasing, every step a
    whole multiple of `interval_minutes` (a longer step is a gap)."""
    timestamps = np.asarray(timestamps)
    if timestamps.dtype.kind != "M" or timestamps.shape != (num_steps,):
        raise ValueError(
            f"timestamps: expected a datetime64 array of shape ({num_steps},), "
            f"got dtype {timestamps.dtype} and shape {timestamps.shape}"
        )
    timestamps = timestamps.astype("datetime64[m]")
    steps = np.diff(timestamps).astype(np.int64)  # minutes
    bad = np.flatnonzero((steps <= 0) | (steps % interval_minutes != 0))
    if bad.size:
        i = int(bad[0])
        step = int(steps[i])
        what = (f"a step of {step} minutes" if step > 0 else
                "a repeated time" if step == 0 else "a step back")
        raise ValueError(
            f"timestamps: expected increasing times {interval_minutes} minutes apart or a whole "
            f"multiple of that (a gap), got {what} at step {i + 1} "
            f"({timestamps[i]} -> {timestamps[i + 1]})"
        )
    return timestamps


def check_adjacency(adjacency, num_nodes: int | None = None, *,
                    allow_self_loops: bool = False) -> torch.Tensor:
    """Validate a weighted adjacency and return it as a float32 tensor.

    adjacency: (nodes, nodes), finite, non-negative (larger = closer).
    num_nodes: the node count of the series it belongs to, if known.
    allow_self_loops: when False the diagonal must be zero (the convention of this module).
    """
    a = _as_float32_tensor(adjacency, "adjacency")
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(
            f"adjacency: expected a square (nodes, nodes) matrix, got shape {tuple(a.shape)}"
        )
    if num_nodes is not None and a.shape[0] != num_nodes:
        raise ValueError(
            f"adjacency: expected {num_nodes} x {num_nodes} to match the series' {num_nodes} "
            f"nodes, got {a.shape[0]} x {a.shape[1]}"
        )
    for bad, wanted in ((~torch.isfinite(a), "finite"), (a < 0, "non-negative")):
        if bad.any():
            i, j = torch.nonzero(bad)[0].tolist()
            raise ValueError(
                f"adjacency: expected {wanted} weights, got {a[i, j].item()} at {(i, j)}"
            )
    if not allow_self_loops and (torch.diagonal(a) != 0).any():
        nodes = torch.nonzero(torch.diagonal(a))[:, 0].tolist()
        raise ValueError(
            f"adjacency: expected a zero diagonal (no self-loops; graph layers add them), "
            f"got non-zero self-weights at nodes {nodes[:5]}{'...' if len(nodes) > 5 else ''}"
        )
    return a


def select_nodes(ds: GraphTimeSeries, nodes: Sequence[int | str]) -> GraphTimeSeries:
    """The sub-network of the given nodes (indices or names, in that order): values, adjacency
    block, names, coordinates, timestamps and channels. Of `meta` only "holidays" is kept (node
    indices in the other entries would no longer be valid) and "name" says which nodes were taken.
    """
    nodes = list(nodes)
    if not nodes:
        raise ValueError("nodes: expected at least one node index or name, got none")
    index = [_node_index(ds, node) for node in nodes]
    if len(set(index)) != len(index):
        raise ValueError(f"nodes: expected each node once, got {nodes}")
    idx = torch.tensor(index)
    names = [ds.node_names[i] for i in index]
    taken = f"{', '.join(names[:3])}{'...' if len(names) > 3 else ''}"
    meta = {"name": f"{ds.meta.get('name', 'network')}: {taken}"}
    if "holidays" in ds.meta:
        meta["holidays"] = list(ds.meta["holidays"])
    return GraphTimeSeries(
        values=ds.values[:, idx],
        adjacency=ds.adjacency[idx][:, idx],
        interval_minutes=ds.interval_minutes,
        node_names=names,
        coords=None if ds.coords is None else ds.coords[idx],
        timestamps=ds.timestamps,
        channel_names=ds.channel_names,
        meta=meta,
    )


def _node_index(ds: GraphTimeSeries, node: int | str) -> int:
    """The index of a node given by index or by name."""
    if isinstance(node, str):
        if node not in ds.node_names:
            raise ValueError(
                f"nodes: expected names of this dataset's nodes, got unknown name {node!r}"
            )
        return ds.node_names.index(node)
    if isinstance(node, int) and not isinstance(node, bool) and 0 <= node < ds.num_nodes:
        return node
    raise ValueError(f"nodes: expected indices in [0, {ds.num_nodes}) or names, got {node!r}")


def add_time_of_day(ds: GraphTimeSeries) -> GraphTimeSeries:
    """The dataset with two more channels, "time_sin" and "time_cos": sin and cos of 2 pi (minutes
    since midnight) / 1440, the same at every node. A model reading them knows the time of day
    (23:45 is close to 00:00 on that circle). Needs timestamps.
    """
    if ds.timestamps is None:
        raise ValueError("add_time_of_day: expected a dataset with timestamps, got timestamps=None")
    minutes = time_of_day_index(ds.timestamps, 1).double()
    angle = 2 * math.pi * minutes / 1440
    clock = torch.stack([angle.sin(), angle.cos()], dim=-1).float()  # (time, 2)
    values = torch.cat([ds.values, clock[:, None, :].expand(-1, ds.num_nodes, -1)], dim=-1)
    channels = [*ds.channel_names, "time_sin", "time_cos"]
    return GraphTimeSeries(values, ds.adjacency, ds.interval_minutes, ds.node_names, ds.coords,
                           ds.timestamps, channels, dict(ds.meta))


def add_day_type(ds: GraphTimeSeries) -> GraphTimeSeries:
    """The dataset with one more channel, "day_off": 1 on Saturdays, Sundays and the holidays in
    ds.meta["holidays"], else 0, the same at every node (`helpers.data.day_type`). Needs
    timestamps."""
    if ds.timestamps is None:
        raise ValueError("add_day_type: expected a dataset with timestamps, got timestamps=None")
    off = day_type(ds.timestamps, ds.meta.get("holidays", ())).float()  # (time,)
    values = torch.cat([ds.values, off[:, None, None].expand(-1, ds.num_nodes, 1)], dim=-1)
    return GraphTimeSeries(values, ds.adjacency, ds.interval_minutes, ds.node_names, ds.coords,
                           ds.timestamps, [*ds.channel_names, "day_off"], dict(ds.meta))


def channel_first(ds: GraphTimeSeries, channel: str | None) -> GraphTimeSeries:
    """The dataset with channel `channel` (a name; None = keep the order) moved to position 0, the
    others after it in their order: the workbook's models and baselines forecast channel 0."""
    if channel is None or channel == ds.channel_names[0]:
        return ds
    if channel not in ds.channel_names:
        raise ValueError(f"target: expected one of the channels {ds.channel_names}, "
                         f"got {channel!r}")
    k = ds.channel_names.index(channel)
    order = [k, *(i for i in range(ds.num_channels) if i != k)]
    return GraphTimeSeries(ds.values[..., order], ds.adjacency, ds.interval_minutes, ds.node_names,
                           ds.coords, ds.timestamps, [ds.channel_names[i] for i in order],
                           dict(ds.meta))
