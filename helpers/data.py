"""Data for the workbook: one container for every network time series, and the tools around it.

- `GraphTimeSeries`: values (time, nodes, channels), an adjacency (nodes, nodes), the step length,
  node names and optional coordinates, timestamps and extras; validated when it is built.
- Datasets: `load_metro` (the synthetic metro network shipped in `data/metro/`, made by
  `make_metro`, written by `save_metro`), `load_los_loop` (real traffic speeds of 207 loop detectors
  in Los Angeles) and `load_csv_folder` (your own network: `series.csv` and `adjacency.csv`, as
  `save_csv_folder` writes them).
- Supervision: `sliding_windows` (zero-copy input/target windows), `TimeSeriesWindows` (the
  `Dataset` around them), `split_bounds` / `make_splits` (chronological train/val/test parts with
  no window crossing a boundary) and `StandardScaler` (z-score fitted on the training part only).
- Calendar helpers for baselines: `time_of_day_index`, `day_type`, `historical_average`.
- Reshaping a dataset: `select_nodes` (a sub-network, e.g. one station) and `add_time_of_day` (clock channels).
- Command line: `python -m helpers.data make-metro data/metro [--check]` (what `make data` runs).

Conventions shared by every dataset here:
- A missing reading is NaN in `values` (metrics in `helpers.metrics` ignore it).
- The adjacency holds non-negative weights, larger = closer, and a ZERO diagonal: no self-loops.
  Graph layers add self-loops themselves (the GCN rule uses A + I); a file that stores them (Los-loop
  does) has its diagonal set to zero when it is loaded, so no dataset counts a self-loop twice.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

#: The repository's data folder (works from a notebook in notebooks/ and from an editable install).
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
METRO_DIR = DATA_DIR / "metro"
METRO_FILE = "metro.npz"


# ----------------------------------------------------------------------------------------------
# The container
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class GraphTimeSeries:
    """A time series on the nodes of a graph, validated at construction.

    values: (time, nodes, channels) float32; NaN marks a missing reading. A (time, nodes) array is
        accepted and given one channel.
    adjacency: (nodes, nodes) float32, non-negative and finite, larger = closer, zero diagonal
        (no self-loops; see the module docstring). It may be asymmetric (a directed graph).
    interval_minutes: minutes between consecutive steps.
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
    interval_minutes: int
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

        if not isinstance(self.interval_minutes, int) or isinstance(self.interval_minutes, bool):
            raise ValueError(f"interval_minutes: expected a positive int, got {self.interval_minutes!r}")
        if self.interval_minutes < 1:
            raise ValueError(f"interval_minutes: expected a positive int, got {self.interval_minutes}")

        names = list(self.node_names)
        if len(names) != num_nodes or not all(isinstance(n, str) for n in names):
            raise ValueError(f"node_names: expected {num_nodes} strings (one per node), got {len(names)} items")
        if len(set(names)) != len(names):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"node_names: expected unique names, got duplicates {duplicates[:5]}")

        coords = self.coords
        if coords is not None:
            coords = _as_float32_tensor(coords, "coords")
            if tuple(coords.shape) != (num_nodes, 2) or not torch.isfinite(coords).all():
                raise ValueError(
                    f"coords: expected finite (nodes, 2) = ({num_nodes}, 2) positions, got shape {tuple(coords.shape)}"
                )

        timestamps = self.timestamps
        if timestamps is not None:
            timestamps = np.asarray(timestamps)
            if timestamps.dtype.kind != "M" or timestamps.shape != (num_steps,):
                raise ValueError(
                    f"timestamps: expected a datetime64 array of shape ({num_steps},), "
                    f"got dtype {timestamps.dtype} and shape {timestamps.shape}"
                )
            timestamps = timestamps.astype("datetime64[m]")
            if num_steps > 1 and not (np.diff(timestamps) > np.timedelta64(0, "m")).all():
                raise ValueError("timestamps: expected strictly increasing times, got a repeat or a step back")

        channels = self.channel_names
        if channels is None:
            channels = ["value"] if num_channels == 1 else [f"channel_{k}" for k in range(num_channels)]
        channels = list(channels)
        if len(channels) != num_channels or not all(isinstance(c, str) for c in channels):
            raise ValueError(f"channel_names: expected {num_channels} strings, got {channels!r}")
        if not isinstance(self.meta, dict):
            raise ValueError(f"meta: expected a dict, got {type(self.meta).__name__}")

        for name, value in [
            ("values", values),
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

    def __repr__(self) -> str:
        missing = torch.isnan(self.values).float().mean().item()
        span = ""
        if self.timestamps is not None:
            span = f", {self.timestamps[0]} .. {self.timestamps[-1]}"
        return (
            f"GraphTimeSeries(steps={self.num_steps}, nodes={self.num_nodes}, channels={self.channel_names}, "
            f"interval={self.interval_minutes} min, edges={int((self.adjacency > 0).sum())}, "
            f"missing={100 * missing:.2f}%{span})"
        )


def _as_float32_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor or numpy array, got {type(x).__name__}")
    if not (x.is_floating_point() or x.dtype in (torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)):
        raise ValueError(f"{name}: expected real numbers, got dtype {x.dtype}")
    return x.to(torch.float32)


def check_adjacency(adjacency, num_nodes: int | None = None, *, allow_self_loops: bool = False) -> torch.Tensor:
    """Validate a weighted adjacency and return it as a float32 tensor.

    adjacency: (nodes, nodes), finite, non-negative (larger = closer).
    num_nodes: the node count of the series it belongs to, if known.
    allow_self_loops: when False the diagonal must be zero (the convention of this module).
    """
    a = _as_float32_tensor(adjacency, "adjacency")
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency: expected a square (nodes, nodes) matrix, got shape {tuple(a.shape)}")
    if num_nodes is not None and a.shape[0] != num_nodes:
        raise ValueError(
            f"adjacency: expected {num_nodes} x {num_nodes} to match the series' {num_nodes} nodes, "
            f"got {a.shape[0]} x {a.shape[1]}"
        )
    if not torch.isfinite(a).all():
        bad = torch.nonzero(~torch.isfinite(a))[0].tolist()
        raise ValueError(f"adjacency: expected finite weights, got {a[bad[0], bad[1]].item()} at {tuple(bad)}")
    if (a < 0).any():
        bad = torch.nonzero(a < 0)[0].tolist()
        raise ValueError(f"adjacency: expected non-negative weights, got {a[bad[0], bad[1]].item()} at {tuple(bad)}")
    if not allow_self_loops and (torch.diagonal(a) != 0).any():
        nodes = torch.nonzero(torch.diagonal(a))[:, 0].tolist()
        raise ValueError(
            f"adjacency: expected a zero diagonal (no self-loops; graph layers add them), "
            f"got non-zero self-weights at nodes {nodes[:5]}{'...' if len(nodes) > 5 else ''}"
        )
    return a


# ----------------------------------------------------------------------------------------------
# The synthetic metro network
# ----------------------------------------------------------------------------------------------

# Stations of the fictional city of Port Marren: name, x and y in km from the centre, kind.
_STATIONS = (
    ("Westgate", -13.5, 1.9, "residential"),
    ("Alder Park", -12.0, 1.5, "residential"),
    ("Fernhill", -10.5, 1.2, "residential"),
    ("Millbrook", -9.0, 0.9, "residential"),
    ("Copper Lane", -7.5, 0.5, "mixed"),
    ("Tanners Row", -6.0, 0.2, "residential"),
    ("West Ring", -4.5, 0.0, "mixed"),
    ("Foundry", -3.1, 0.0, "business"),
    ("Granary", -1.6, 0.0, "business"),
    ("Central", 0.0, 0.0, "business"),
    ("Exchange", 1.5, 0.0, "business"),
    ("Market Hall", 3.0, 0.0, "mixed"),
    ("East Ring", 4.5, 0.0, "mixed"),
    ("Brickworks", 6.0, -0.2, "mixed"),
    ("Larkspur", 7.5, -0.5, "residential"),
    ("Heron Quay", 9.0, -0.9, "residential"),
    ("Saltmarsh", 10.5, -1.3, "residential"),
    ("Eastfield", 12.0, -1.7, "residential"),
    ("Northcote", 1.6, 12.0, "residential"),
    ("Hollow Oak", 1.1, 10.5, "residential"),
    ("Kingsmead", 0.7, 9.0, "residential"),
    ("Ashby Road", 0.4, 7.5, "residential"),
    ("University", 0.1, 6.0, "mixed"),
    ("North Ring", 0.0, 4.5, "mixed"),
    ("Museum", 0.0, 3.1, "mixed"),
    ("Cathedral", 0.0, 1.6, "business"),
    ("Guildhall", 0.0, -1.5, "business"),
    ("Riverside", 0.0, -3.0, "mixed"),
    ("South Ring", 0.0, -4.5, "mixed"),
    ("Dockside", -0.3, -6.0, "mixed"),
    ("Bellfield", -0.7, -7.5, "residential"),
    ("Southmoor", -1.2, -9.0, "residential"),
    ("Pinewood", -1.8, -10.5, "residential"),
    ("Greyfriars", -8.1, -6.5, "residential"),
    ("Willowbank", -7.1, -5.4, "residential"),
    ("Stadium", -6.0, -4.4, "mixed"),
    ("Quarry Hill", -5.0, -3.3, "residential"),
    ("Southwest Ring", -3.9, -2.25, "mixed"),
    ("Lantern Street", -2.8, -1.1, "mixed"),
    ("Parkside", 1.1, 2.8, "business"),
    ("Northeast Ring", 2.25, 3.9, "mixed"),
    ("Elm Grove", 3.3, 5.0, "residential"),
    ("Brightwater", 4.4, 6.0, "residential"),
    ("Maple Heights", 5.4, 7.1, "residential"),
    ("Summit", 6.5, 8.1, "residential"),
    ("Canal Basin", 3.9, 2.25, "business"),
    ("Observatory Hill", -2.25, 3.9, "mixed"),
    ("Linden Square", -3.9, 2.25, "mixed"),
    ("Rope Walk", -2.25, -3.9, "mixed"),
    ("Gasworks", 2.25, -3.9, "business"),
    ("Wharf Street", 3.9, -2.25, "mixed"),
)

# Lines as station sequences; the Orange circle line lists its first station again at the end.
_LINES = {
    "Red": (
        "Westgate", "Alder Park", "Fernhill", "Millbrook", "Copper Lane", "Tanners Row", "West Ring", "Foundry",
        "Granary", "Central", "Exchange", "Market Hall", "East Ring", "Brickworks", "Larkspur", "Heron Quay",
        "Saltmarsh", "Eastfield",
    ),
    "Blue": (
        "Northcote", "Hollow Oak", "Kingsmead", "Ashby Road", "University", "North Ring", "Museum", "Cathedral",
        "Central", "Guildhall", "Riverside", "South Ring", "Dockside", "Bellfield", "Southmoor", "Pinewood",
    ),
    "Green": (
        "Greyfriars", "Willowbank", "Stadium", "Quarry Hill", "Southwest Ring", "Lantern Street", "Granary",
        "Cathedral", "Parkside", "Northeast Ring", "Elm Grove", "Brightwater", "Maple Heights", "Summit",
    ),
    "Orange": (
        "East Ring", "Canal Basin", "Northeast Ring", "North Ring", "Observatory Hill", "Linden Square", "West Ring",
        "Southwest Ring", "Rope Walk", "South Ring", "Gasworks", "Wharf Street", "East Ring",
    ),
}  # fmt: skip
_LINE_COLORS = {"Red": "#d62728", "Blue": "#1f77b4", "Green": "#2ca02c", "Orange": "#ff7f0e"}

_START_DAY = "2025-03-03"  # a Monday
_NUM_DAYS = 56  # eight weeks
_SERVICE_START_MIN = 5 * 60 + 30  # 05:30
_SERVICE_END_MIN = 23 * 60 + 30  # 23:30 (the last step starts at 23:15)
_INTERVAL = 15
_SLOTS = (_SERVICE_END_MIN - _SERVICE_START_MIN) // _INTERVAL  # 72 steps a day
_HOLIDAY_DAYS = (25,)  # Friday 2025-03-28, "Founders' Day" (fictional): a weekend-like day
_EVENTS = ((19, "Stadium", "football match"), (51, "Stadium", "concert"))  # day, station, what
_EVENT_START, _EVENT_END = 19.5, 21.75  # hours

_TRAIN_SPEED_KMH = 36.0  # average speed between stations, dwell time excluded
_DWELL_MIN = 1.0  # minutes stopped per station
_WALK_MIN = 3.0  # minutes from the gate to the platform and back, per trip
_KERNEL_MIN = 5.0  # adjacency weight = exp(-(travel minutes / 5)^2)
_TRIP_DECAY_MIN = 25.0  # gravity model: destination choice falls off as exp(-trip minutes / 25)

# The spatial part of the flow: local surges (a crowd leaving an office block, a delayed feeder bus,
# a sudden shower) raise a station's entries; each step a surge decays and part of it moves to the
# neighbouring stations (riders walking to the next station, the crowd spreading along a corridor).
_SURGE_PROB = 0.02  # chance per station and step that a new surge starts
_SURGE_MEAN = 1.5  # mean size of a new surge, as a fraction of the expected entries
_SURGE_KEEP = 0.92  # fraction of a surge still there one step later
SPREAD = 0.9  # fraction of that which comes from the neighbours (the rest stays local)


# Daily profiles as a level plus bumps (height, centre hour, width in hours), by (kind, weekend).
# Entries: expected passengers entering a station of size 1 per 15 minutes.
_ENTRY_PROFILES = {
    ("residential", False): (20, [(170, 8.0, 0.8), (35, 12.5, 2.5), (45, 17.5, 1.3), (25, 20.5, 1.5)]),
    ("business", False): (15, [(35, 8.3, 0.8), (45, 12.6, 1.0), (180, 17.6, 0.9), (30, 20.0, 1.2)]),
    ("mixed", False): (20, [(90, 8.1, 0.9), (50, 13.0, 2.0), (95, 17.8, 1.1), (40, 20.5, 1.3)]),
    ("residential", True): (12, [(70, 11.0, 2.5), (45, 16.5, 2.5)]),
    ("business", True): (10, [(35, 13.5, 3.0)]),
    ("mixed", True): (15, [(80, 14.0, 3.0), (55, 20.0, 1.5)]),
}
# Attraction: how strongly a station of size 1 draws the trips that start at each hour.
_ATTRACTION_PROFILES = {
    ("residential", False): (0.4, [(0.3, 12.5, 2.0), (3.0, 18.0, 1.6), (1.5, 21.5, 1.2)]),
    ("business", False): (0.3, [(3.5, 8.2, 1.0), (0.9, 13.0, 1.0)]),
    ("mixed", False): (1.0, [(1.0, 12.5, 2.5), (1.2, 19.5, 1.5)]),
    ("residential", True): (0.8, [(1.2, 18.5, 3.0)]),
    ("business", True): (0.5, []),
    ("mixed", True): (1.5, [(1.0, 14.0, 3.0)]),
}


def _bump(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((hours - centre) / width) ** 2)


def _profile(spec: tuple[float, list], hours: np.ndarray) -> np.ndarray:
    level, bumps = spec
    return level + sum((height * _bump(hours, centre, width) for height, centre, width in bumps), np.zeros_like(hours))


def _by_station(profiles: dict, kinds: list[str], weekend: bool, hours: np.ndarray) -> np.ndarray:
    """The profile of each station's kind: (slots, nodes)."""
    return np.stack([_profile(profiles[(kind, weekend)], hours) for kind in kinds], axis=1)


def _metro_network() -> dict:
    """The fixed map: names, kinds, coordinates, lines, edge travel times and the adjacency."""
    names = [s[0] for s in _STATIONS]
    index = {name: i for i, name in enumerate(names)}
    coords = np.array([(s[1], s[2]) for s in _STATIONS])
    n = len(names)
    travel = np.zeros((n, n))
    for stops in _LINES.values():
        for a, b in zip(stops[:-1], stops[1:], strict=True):
            i, j = index[a], index[b]
            km = float(np.hypot(*(coords[i] - coords[j])))
            travel[i, j] = travel[j, i] = round(_DWELL_MIN + 60.0 * km / _TRAIN_SPEED_KMH, 1)
    adjacency = np.where(travel > 0, np.exp(-((travel / _KERNEL_MIN) ** 2)), 0.0)
    lines = {line: [index[s] for s in stops] for line, stops in _LINES.items()}
    membership = np.zeros(n, dtype=int)
    for stops in _LINES.values():
        membership[sorted({index[s] for s in stops})] += 1
    return {
        "names": names,
        "kinds": [s[3] for s in _STATIONS],
        "coords": coords,
        "lines": lines,
        "travel": travel,
        "adjacency": adjacency,
        "transfers": [int(i) for i in np.flatnonzero(membership > 1)],
    }


def _shortest_minutes(travel: np.ndarray) -> np.ndarray:
    """All-pairs shortest travel time (Floyd-Warshall) over the edge travel times, in minutes."""
    dist = np.where(travel > 0, travel, np.inf)
    np.fill_diagonal(dist, 0.0)
    for k in range(len(dist)):
        dist = np.minimum(dist, dist[:, k : k + 1] + dist[k : k + 1, :])
    return dist


def make_metro(seed: int = 0, *, spread: float = SPREAD) -> GraphTimeSeries:
    """Generate the synthetic metro dataset: 51 stations on 4 lines, 8 weeks at 15-minute steps.

    Returns a `GraphTimeSeries` with values (4032, 51, 2): channel 0 = inflow (entries), 1 = outflow
    (exits), passengers per 15 minutes over service hours 05:30-23:30 (72 steps a day), NaN where a
    gate sensor was down. `spread` is the fraction of a local surge that moves on to the neighbouring
    stations each step (0 keeps surges local: graph models then lose their edge). The map is fixed;
    `seed` draws the flows. See data/metro/README.md for the full description.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
    if not 0.0 <= spread <= 1.0:
        raise ValueError(f"spread: expected a fraction in [0, 1], got {spread}")
    rng = np.random.default_rng(seed)
    net = _metro_network()
    days, slots, n = _NUM_DAYS, _SLOTS, len(net["names"])
    hours = (_SERVICE_START_MIN + _INTERVAL * (np.arange(slots) + 0.5)) / 60.0  # middle of each step
    weekend = np.arange(days) % 7 >= 5  # day 0 is a Monday
    weekend[list(_HOLIDAY_DAYS)] = True
    trip = _shortest_minutes(net["travel"]) + _WALK_MIN  # minutes from gate to gate

    # Station sizes: by kind, busier at transfers, busiest at Central, times a random factor.
    size = np.array([{"residential": 0.9, "business": 1.5, "mixed": 1.0}[k] for k in net["kinds"]])
    size[net["transfers"]] *= 1.5
    size[net["names"].index("Central")] *= 1.6
    size *= rng.lognormal(0.0, 0.25, n)

    expected = _expected_entries(rng, net["kinds"], size, weekend, hours)  # (days, slots, stations)
    expected *= 1.0 + _surges(rng, net["adjacency"], days, slots, spread)
    regular = rng.poisson(expected).astype(float)
    fans, leaving, events = _event_crowds(rng, net, size, trip, hours)
    inflow = regular + fans + leaving
    travelling = regular + leaving  # fans leaving an event go wherever people go at that hour

    # Exits: each entry picks a destination by a gravity model (attraction by kind and time of day,
    # falling off with trip time) and leaves the network round(trip / 15 min) steps later.
    delay = np.rint(trip / _INTERVAL).astype(int)
    gravity = np.exp(-trip / _TRIP_DECAY_MIN)
    np.fill_diagonal(gravity, 0.0)
    expected_out = np.zeros((days, slots, n))
    for is_weekend in (False, True):
        pull = _by_station(_ATTRACTION_PROFILES, net["kinds"], is_weekend, hours) * size  # (slots, stations)
        choice = gravity[None] * pull[:, None, :]  # (slots, origin, destination)
        _route(travelling, choice / choice.sum(axis=2, keepdims=True), delay, weekend == is_weekend, expected_out)
    to_stadium = np.zeros((n, n))
    to_stadium[:, net["names"].index("Stadium")] = 1.0
    _route(fans, to_stadium[None], delay, np.ones(days, dtype=bool), expected_out)
    outflow = rng.poisson(expected_out).astype(float)

    missing, outages = _outages(rng, days, slots, n)
    values = np.stack([inflow, outflow], axis=-1).reshape(days * slots, n, 2)
    values[missing.reshape(days * slots, n)] = np.nan
    return GraphTimeSeries(
        values=torch.from_numpy(values.astype(np.float32)),
        adjacency=torch.from_numpy(net["adjacency"].astype(np.float32)),
        interval_minutes=_INTERVAL,
        node_names=net["names"],
        coords=torch.from_numpy(net["coords"].astype(np.float32)),
        timestamps=_metro_timestamps(),
        channel_names=["inflow", "outflow"],
        meta={
            "name": "Port Marren metro (synthetic)",
            "synthetic": True,
            "seed": seed,
            "spread": spread,
            "unit": "passengers per 15 minutes",
            "service_hours": [_clock(0), _clock(slots)],
            "steps_per_day": slots,
            "lines": net["lines"],
            "line_colors": dict(_LINE_COLORS),
            "station_types": net["kinds"],
            "transfer_stations": net["transfers"],
            "travel_minutes": torch.from_numpy(net["travel"].astype(np.float32)),
            "holidays": [_day_str(d) for d in _HOLIDAY_DAYS],
            "events": events,
            "outages": outages,
        },
    )


def _expected_entries(rng, kinds: list[str], size: np.ndarray, weekend: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """Expected entries (days, slots, stations): daily profiles times day-to-day levels.

    The levels only recent observations reveal: a city-wide daily level (weather, school terms), a
    per-station daily level, and showers that lift entries for a few hours on some days.
    """
    days, slots = len(weekend), len(hours)
    opening = 1.0 - 0.7 * np.exp(-(hours - 5.5) / 0.4)  # the first trains run nearly empty
    base = np.empty((days, slots, len(kinds)))
    for is_weekend in (False, True):
        base[weekend == is_weekend] = _by_station(_ENTRY_PROFILES, kinds, is_weekend, hours) * opening[:, None] * size
    base[list(_HOLIDAY_DAYS)] *= 0.85
    city = np.zeros(days)
    for d in range(1, days):
        city[d] = 0.5 * city[d - 1] + rng.normal(0.0, 0.12)
    level = np.exp(city[:, None, None] + rng.normal(0.0, 0.05, (days, 1, len(kinds))))
    rainy = rng.random(days) < 0.25
    rain_start = rng.uniform(10.0, 19.0, days)
    rain_hours = rng.uniform(1.5, 4.0, days)
    in_rain = (hours[None, :] >= rain_start[:, None]) & (hours[None, :] < (rain_start + rain_hours)[:, None])
    return base * level * (1.0 + 0.25 * (rainy[:, None] & in_rain))[:, :, None]


def _surges(rng, adjacency: np.ndarray, days: int, slots: int, spread: float) -> np.ndarray:
    """Relative surge levels z (days, slots, stations) that travel along the network:
    z_t = keep * ((1 - spread) * z_{t-1} + spread * P z_{t-1}) + new_t, P = row-normalised adjacency."""
    n = len(adjacency)
    p_neighbours = adjacency / adjacency.sum(axis=1, keepdims=True)  # row i: the mean over i's neighbours
    new = (rng.random((days, slots, n)) < _SURGE_PROB) * rng.exponential(_SURGE_MEAN, (days, slots, n))
    surge = np.zeros((days, slots, n))
    previous = np.zeros((days, n))
    for k in range(slots):  # a recursion in time; vectorised over days and stations
        previous = _SURGE_KEEP * ((1.0 - spread) * previous + spread * previous @ p_neighbours.T) + new[:, k]
        surge[:, k] = previous
    return surge


def _event_crowds(rng, net: dict, size: np.ndarray, trip: np.ndarray, hours: np.ndarray):
    """Entries of fans (days, slots, stations) going to each event and leaving it, and the event list.

    Fans come from all over the city before the event; after it they leave in a crowd, 35% of which
    walks to the neighbouring stations and enters there one step later.
    """
    days, slots, n = _NUM_DAYS, len(hours), len(net["names"])
    fans, leaving, events = np.zeros((days, slots, n)), np.zeros((days, slots, n)), []
    for day, station, what in _EVENTS:
        s = net["names"].index(station)
        origin = size * np.exp(-trip[:, s] / 40.0)
        origin[s] = 0.0
        arrival = _bump(hours, _EVENT_START - 1.0, 0.6)
        fans[day] = rng.poisson(4000 * np.outer(arrival / arrival.sum(), origin / origin.sum()))
        crowd = _bump(hours, _EVENT_END + 0.3, 0.3)
        expected = np.zeros((slots, n))
        expected[:, s] = 0.65 * 3600 * crowd / crowd.sum()
        neighbours = np.flatnonzero(net["adjacency"][s])
        expected[1:, neighbours] += 0.35 * 3600 * crowd[:-1, None] / crowd.sum() / len(neighbours)
        leaving[day] = rng.poisson(expected)
        events.append({"date": _day_str(day), "station": s, "what": what, "start": "19:30", "end": "21:45"})
    return fans, leaving, events


def _route(entries: np.ndarray, choice: np.ndarray, delay: np.ndarray, days: np.ndarray, out: np.ndarray) -> None:
    """Add the exits of `entries` (days, slots, origins) to `out` (days, slots, destinations).

    Only the days where the boolean mask `days` is True are routed. choice: (slots or 1, origins,
    destinations), each row a distribution over destinations; delay: (origins, destinations), steps
    from entry to exit. Exits that would come after closing time count in the last step.
    """
    slots = out.shape[1]
    for steps in np.unique(delay):
        chosen = np.broadcast_to(choice * (delay == steps), (slots, *delay.shape))
        routed = np.einsum("dko,kox->dkx", entries[days], chosen)
        shift = min(int(steps), slots - 1)
        shifted = np.zeros_like(routed)
        shifted[:, shift:] = routed[:, : slots - shift]
        shifted[:, -1] += routed[:, slots - shift :].sum(axis=1)  # empty when shift == 0
        out[days] += shifted


def _outages(rng, days: int, slots: int, n: int) -> tuple[np.ndarray, list[dict]]:
    """Gate sensors down for 2 to 6 hours: a mask (days, slots, stations) and their list.

    16 in the first 70% of the days, 3 in the next 10% and 5 in the last 20%, so that every part of
    the default chronological split has gaps.
    """
    missing, outages = np.zeros((days, slots, n), dtype=bool), []
    for first, last, count in ((0, 38, 16), (40, 43, 3), (45, 55, 5)):
        for _ in range(count):
            day, station = int(rng.integers(first, last + 1)), int(rng.integers(n))
            length = int(rng.integers(8, 25))
            start = int(rng.integers(0, slots - length + 1))
            missing[day, start : start + length, station] = True
            outages.append({"station": station, "start": f"{_day_str(day)}T{_clock(start)}", "steps": length})
    return missing, outages


def _day_str(day: int) -> str:
    return str(np.datetime64(_START_DAY) + np.timedelta64(day, "D"))


def _clock(slot: int) -> str:
    minutes = _SERVICE_START_MIN + _INTERVAL * slot
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _metro_timestamps() -> np.ndarray:
    days = np.datetime64(_START_DAY, "m") + np.arange(_NUM_DAYS)[:, None] * np.timedelta64(1440, "m")
    times = days + (_SERVICE_START_MIN + _INTERVAL * np.arange(_SLOTS))[None, :] * np.timedelta64(1, "m")
    return times.reshape(-1)


# ----------------------------------------------------------------------------------------------
# Saving and loading the metro file (byte-for-byte reproducible)
# ----------------------------------------------------------------------------------------------

_META_TENSORS = ("travel_minutes",)  # meta entries stored as arrays, not JSON


def save_metro(ds: GraphTimeSeries, folder: str | os.PathLike) -> Path:
    """Write `ds` to `folder/metro.npz` atomically and reproducibly; return the file's path.

    The file is a zip of .npy arrays plus `meta.json`: counts as uint16 (time, nodes, channels) with
    a boolean `missing` mask, the adjacency, coordinates, timestamps (minutes since 1970) and the
    meta entries. Every zip entry gets a fixed date, so the same dataset gives the same bytes.
    values must be whole numbers in [0, 65535] where not missing.
    """
    missing = torch.isnan(ds.values)
    observed = ds.values[~missing]
    if observed.numel() and (
        (observed != observed.round()).any() or observed.min() < 0 or observed.max() > np.iinfo(np.uint16).max
    ):
        raise ValueError(
            f"save_metro: expected whole counts in [0, 65535], got values from {observed.min().item()} to "
            f"{observed.max().item()}{' with fractions' if (observed != observed.round()).any() else ''}"
        )
    if ds.timestamps is None or ds.coords is None:
        raise ValueError("save_metro: expected a dataset with timestamps and coords, got None")
    meta = {k: v for k, v in ds.meta.items() if k not in _META_TENSORS}
    header = {
        "format": "metro-npz-1",
        "interval_minutes": ds.interval_minutes,
        "node_names": ds.node_names,
        "channel_names": ds.channel_names,
        "meta": meta,
    }
    arrays = {
        "counts": ds.values.nan_to_num(0.0).numpy().astype(np.uint16),
        "missing": missing.numpy(),
        "adjacency": ds.adjacency.numpy(),
        "coords": ds.coords.numpy(),
        "timestamps": ds.timestamps.astype("datetime64[m]").astype(np.int64),
    }
    for key in _META_TENSORS:
        if key in ds.meta:
            arrays[key] = np.asarray(ds.meta[key], dtype=np.float32)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in arrays.items():
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.ascontiguousarray(array), version=(1, 0), allow_pickle=False)
            _write_zip_entry(archive, f"{name}.npy", npy.getvalue())
        _write_zip_entry(archive, "meta.json", json.dumps(header, indent=1).encode() + b"\n")
    path = folder / METRO_FILE
    write_atomic(path, buffer.getvalue())
    return path


def _write_zip_entry(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, whatever the platform, so the bytes do not depend on it
    info.external_attr = 0o644 << 16
    archive.writestr(info, data, compresslevel=9)


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to a temporary file beside `path`, then rename it over `path`."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temp, 0o644)  # mkstemp makes it private; a data file is readable by all
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def load_metro(path: str | os.PathLike | None = None) -> GraphTimeSeries:
    """Load the shipped synthetic metro dataset (or a file written by `save_metro`).

    path: the file or its folder; default `data/metro/` of this repository.
    Returns values (4032, 51, 2) = (time, stations, [inflow, outflow]), NaN where missing; see
    `make_metro` and data/metro/README.md.
    """
    path = Path(path) if path is not None else METRO_DIR
    if path.is_dir():
        path = path / METRO_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"load_metro: expected the metro file at {path}; regenerate it with "
            f"`python -m helpers.data make-metro {path.parent}` or pass path="
        )
    with zipfile.ZipFile(path) as archive:
        header = json.loads(archive.read("meta.json"))
        arrays = {
            name[: -len(".npy")]: np.lib.format.read_array(io.BytesIO(archive.read(name)), allow_pickle=False)
            for name in archive.namelist()
            if name.endswith(".npy")
        }
    if header.get("format") != "metro-npz-1":
        raise ValueError(f"load_metro: expected format 'metro-npz-1' in {path}, got {header.get('format')!r}")
    values = arrays["counts"].astype(np.float32)
    values[arrays["missing"]] = np.nan
    meta = header["meta"]
    for key in _META_TENSORS:
        if key in arrays:
            meta[key] = torch.from_numpy(arrays[key])
    return GraphTimeSeries(
        values=torch.from_numpy(values),
        adjacency=torch.from_numpy(arrays["adjacency"]),
        interval_minutes=header["interval_minutes"],
        node_names=header["node_names"],
        coords=torch.from_numpy(arrays["coords"]),
        timestamps=arrays["timestamps"].astype("datetime64[m]"),
        channel_names=header["channel_names"],
        meta=meta,
    )


# ----------------------------------------------------------------------------------------------
# CSV files: your own network, and the Los-loop files
# ----------------------------------------------------------------------------------------------

_MISSING_TEXT = {"", "nan", "na", "null"}


def read_csv_numbers(path: str | os.PathLike, *, header: bool) -> tuple[list[str] | None, np.ndarray]:
    """Read a CSV table of numbers; return (header cells or None, float64 array (rows, columns)).

    An empty cell or nan/NA/null (any case) is a missing value (NaN). A row with a different number
    of cells than the first row, or a cell that is not a number, raises ValueError naming the row
    (counted from 1 at the top of the file, as a spreadsheet shows it), the column and what was found.
    """
    names, rows = _csv_rows(Path(path), header)
    return names, _csv_numbers(rows, Path(path).name, first_row=2 if header else 1)


def _csv_rows(path: Path, header: bool) -> tuple[list[str] | None, list[list[str]]]:
    """The rows of a CSV file (blank lines skipped), all as wide as the first; the header split off."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [row for row in csv.reader(f) if row]
    if header and not rows:
        raise ValueError(f"{path.name}: expected a header row, got an empty file")
    if len(rows) <= header:
        raise ValueError(f"{path.name}: expected at least one row of numbers, got none")
    for r, row in enumerate(rows):
        if len(row) != len(rows[0]):
            raise ValueError(f"{path.name}: expected {len(rows[0])} cells in every row, got {len(row)} in row {r + 1}")
    return ([cell.strip() for cell in rows[0]] if header else None), rows[header:]


def _csv_numbers(rows: list[list[str]], source: str, first_row: int, first_column: int = 1) -> np.ndarray:
    """Convert CSV cells to float64 (rows, columns); name the first cell that is not a number."""
    text = np.char.strip(np.array(rows, dtype=str))
    text[text == ""] = "nan"
    try:
        return text.astype(np.float64)  # the fast path: numbers, empty cells and nan
    except ValueError:
        text[np.isin(np.char.lower(text), list(_MISSING_TEXT))] = "nan"
    try:
        return text.astype(np.float64)
    except ValueError:
        for r, row in enumerate(text):
            for c, cell in enumerate(row):
                try:
                    float(cell)
                except ValueError:
                    raise ValueError(
                        f"{source}: expected a number in row {r + first_row}, column {c + first_column}, "
                        f"got {str(cell)!r}"
                    ) from None
        raise


def _adjacency_from_file(matrix: np.ndarray, source: str) -> torch.Tensor:
    """Validate a stored adjacency (self-loops allowed) and return it with a zero diagonal."""
    try:
        a = check_adjacency(matrix, allow_self_loops=True).clone()
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    a.fill_diagonal_(0.0)
    return a


def load_csv_folder(
    folder: str | os.PathLike, interval_minutes: int | None = None, channel_name: str = "value"
) -> GraphTimeSeries:
    """Load your own network from a folder with two CSV files.

    series.csv: one header row with the node names, then one row per time step (time x nodes);
        empty or "nan" cells are missing readings. An optional first column named "timestamp"
        holds ISO times (e.g. 2024-05-01T08:15); the step length is then read from it.
    adjacency.csv: nodes x nodes weights, no header, in the order of the series' columns;
        non-negative, larger = closer. Its diagonal is set to zero (self-loops are the graph
        layers' business).
    interval_minutes: minutes per step; needed when series.csv has no timestamp column.
    Returns a `GraphTimeSeries` with values (time, nodes, 1).
    """
    folder = Path(folder)
    series_path, adjacency_path = folder / "series.csv", folder / "adjacency.csv"
    for p in (series_path, adjacency_path):
        if not p.is_file():
            raise FileNotFoundError(f"load_csv_folder: expected {p.name} in {folder}, found no such file")
    names, rows = _csv_rows(series_path, header=True)
    timestamps, first_column = None, 1
    if names[0].lower() == "timestamp":
        try:
            timestamps = np.array([row[0].strip() for row in rows], dtype="datetime64[m]")
        except ValueError as exc:
            raise ValueError(f"series.csv: expected ISO times in the timestamp column, got {exc}") from None
        steps = np.unique(np.diff(timestamps).astype(np.int64))
        if len(steps) > 1 or (len(steps) == 1 and steps[0] <= 0):
            raise ValueError(
                f"series.csv: expected evenly spaced increasing timestamps, got steps of {steps[:5].tolist()} minutes"
            )
        if len(steps) and interval_minutes not in (None, int(steps[0])):
            raise ValueError(
                f"interval_minutes: expected {int(steps[0])} (the timestamps' step), got {interval_minutes}"
            )
        interval_minutes = int(steps[0]) if len(steps) else interval_minutes
        names, rows, first_column = names[1:], [row[1:] for row in rows], 2
    table = _csv_numbers(rows, "series.csv", first_row=2, first_column=first_column)
    if interval_minutes is None:
        raise ValueError(
            "interval_minutes: expected a number of minutes per step (series.csv has no timestamp column), got None"
        )
    _, adjacency = read_csv_numbers(adjacency_path, header=False)
    if adjacency.shape[0] != adjacency.shape[1]:
        raise ValueError(f"adjacency.csv: expected a square nodes x nodes table, got {adjacency.shape}")
    if adjacency.shape[0] != len(names):
        raise ValueError(
            f"adjacency.csv: expected {len(names)} x {len(names)} to match the {len(names)} columns of "
            f"series.csv, got {adjacency.shape[0]} x {adjacency.shape[1]}"
        )
    return GraphTimeSeries(
        values=torch.from_numpy(table.astype(np.float32)),
        adjacency=_adjacency_from_file(adjacency, "adjacency.csv"),
        interval_minutes=interval_minutes,
        node_names=names,
        timestamps=timestamps,
        channel_names=[channel_name],
    )


def save_csv_folder(ds: GraphTimeSeries, folder: str | os.PathLike, channel: int = 0) -> Path:
    """Write one channel of `ds` as series.csv (+ timestamp column if known) and adjacency.csv.

    The inverse of `load_csv_folder`; missing readings become empty cells. Returns the folder.
    """
    if not 0 <= channel < ds.num_channels:
        raise ValueError(f"channel: expected an index in [0, {ds.num_channels}), got {channel}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series = io.StringIO()
    writer = csv.writer(series, lineterminator="\n")
    times = [str(t) for t in ds.timestamps] if ds.timestamps is not None else None
    writer.writerow((["timestamp"] if times else []) + ds.node_names)
    for t, row in enumerate(ds.values[..., channel].tolist()):
        cells = ["" if math.isnan(v) else format(v, ".7g") for v in row]
        writer.writerow(([times[t]] if times else []) + cells)
    write_atomic(folder / "series.csv", series.getvalue().encode())
    adjacency = "\n".join(",".join(format(v, ".7g") for v in row) for row in ds.adjacency.tolist()) + "\n"
    write_atomic(folder / "adjacency.csv", adjacency.encode())
    return folder


#: Where load_los_loop downloads from: the T-GCN authors' public repository, then its older layout.
LOS_LOOP_URLS = (
    "https://raw.githubusercontent.com/lehaifeng/T-GCN/master/T-GCN/T-GCN-PyTorch/data/{name}",
    "https://raw.githubusercontent.com/lehaifeng/T-GCN/master/data/{name}",
)
LOS_LOOP_SHA256 = {
    "los_speed.csv": "7b732d86ae32b2930595becba28aff39dacbfb2197e250fc0332e1744ce2cbf4",
    "los_adj.csv": "7a6eb41e10677992b5af50f5ab187c6c05c5c3a92cb973950cfddbf857361e76",
}
LOS_LOOP_DIR = DATA_DIR / "los-loop"
_LOS_LOOP_START = "2012-03-01T00:00"  # "Mar. 1 to Mar. 7, 2012" (T-GCN paper, Zhao et al. 2020)


def load_los_loop(
    root: str | os.PathLike | None = None,
    download: bool = True,
    timeout: float = 30,
    urls: Sequence[str] = LOS_LOOP_URLS,
) -> GraphTimeSeries:
    """Load Los-loop: real traffic speeds (mph) of 207 loop detectors on Los Angeles highways.

    2,016 five-minute steps (one week, March 2012) and a 207 x 207 adjacency whose weights lie in
    (0, 1] (the file stores ones on the diagonal; they are set to zero here, as for every dataset).
    root: the folder holding los_speed.csv and los_adj.csv (default data/los-loop/). Missing files
    are downloaded (unless download=False) from `urls` with a `timeout` in seconds, checked against
    their SHA-256 and written atomically; every file, found or downloaded, must match its checksum.
    Returns values (2016, 207, 1), channel "speed"; the speeds have no gaps.
    """
    root = Path(root) if root is not None else LOS_LOOP_DIR
    for name, sha256 in LOS_LOOP_SHA256.items():
        path = root / name
        if not path.is_file():
            if not download:
                raise FileNotFoundError(_los_loop_help(root, f"{name} is missing and download=False"))
            _download(name, path, sha256, urls, timeout)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != sha256:
            raise ValueError(_los_loop_help(root, f"{name}: expected SHA-256 {sha256}, got {digest}"))
    names, speed = read_csv_numbers(root / "los_speed.csv", header=True)
    _, adjacency = read_csv_numbers(root / "los_adj.csv", header=False)
    steps = speed.shape[0]
    return GraphTimeSeries(
        values=torch.from_numpy(speed.astype(np.float32)),
        adjacency=_adjacency_from_file(adjacency, "los_adj.csv"),
        interval_minutes=5,
        node_names=names,
        timestamps=np.datetime64(_LOS_LOOP_START) + np.arange(steps) * np.timedelta64(5, "m"),
        channel_names=["speed"],
        meta={
            "name": "Los-loop (real)",
            "synthetic": False,
            "unit": "mph",
            "source": "T-GCN (Zhao et al., IEEE T-ITS 2020), github.com/lehaifeng/T-GCN",
            "self_loops_removed": True,
        },
    )


def _los_loop_help(root: Path, problem: str) -> str:
    return (
        f"{problem}. Put los_speed.csv and los_adj.csv by hand in {root} (from the data/ folder of the "
        f"T-GCN repository, https://github.com/lehaifeng/T-GCN) or pass root= to the folder holding them."
    )


def _download(name: str, path: Path, sha256: str, urls: Sequence[str], timeout: float) -> None:
    """Fetch `name` from the first of `urls` that serves the right bytes; os.replace it into `path`.

    Each attempt writes to a temporary file beside `path`, deleted whatever happens, so a failed or
    interrupted download never leaves a partial file. A wrong checksum raises ValueError, an
    unreachable source ConnectionError, once every URL has been tried.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mismatches, errors = [], []
    for template in urls:
        url = template.format(name=name)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}.", suffix=".tmp")
        try:
            digest = hashlib.sha256()
            with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                while chunk := response.read(1 << 16):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() == sha256:
                os.chmod(temp, 0o644)
                os.replace(temp, path)
                return
            mismatches.append(f"{url}: expected SHA-256 {sha256}, got {digest.hexdigest()}")
        except OSError as exc:  # URLError, HTTPError and timeouts are all OSErrors
            errors.append(f"{url}: {exc}")
        finally:
            Path(temp).unlink(missing_ok=True)  # gone already after a successful os.replace
    if mismatches:
        raise ValueError(_los_loop_help(path.parent, "; ".join(mismatches)))
    raise ConnectionError(_los_loop_help(path.parent, f"could not download {name} ({'; '.join(errors)})"))


# ----------------------------------------------------------------------------------------------
# Windows, splits and scaling
# ----------------------------------------------------------------------------------------------


def _check_window_args(num_steps: int, input_len, output_len, stride) -> None:
    for name, value in (("input_len", input_len), ("output_len", output_len), ("stride", stride)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    if input_len + output_len > num_steps:
        raise ValueError(
            f"window: expected input_len + output_len <= series length, got "
            f"{input_len} + {output_len} = {input_len + output_len} > {num_steps} steps"
        )


def sliding_windows(
    x: torch.Tensor, input_len: int, output_len: int, stride: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a series into (input, target) windows without copying anything.

    x: (time,), (time, nodes) or (time, nodes, channels) - any (time, *rest).
    Returns inputs (samples, input_len, *rest) and targets (samples, output_len, *rest), both views
    of x's memory, with samples = (time - input_len - output_len) // stride + 1. Window s covers
    steps [s * stride, s * stride + input_len) as input and the next output_len steps as target.
    Views share memory: write to x and the windows change; `.clone()` one to keep it.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 1:
        raise ValueError(f"x: expected a tensor with a time axis first, got {type(x).__name__}")
    _check_window_args(x.shape[0], input_len, output_len, stride)
    windows = x.unfold(0, input_len + output_len, stride)  # (samples, *rest, window)
    windows = windows.movedim(-1, 1)  # (samples, window, *rest)
    return windows[:, :input_len], windows[:, input_len:]


class TimeSeriesWindows(Dataset):
    """Map-style Dataset of sliding windows over a series (zero-copy: items are views).

    values: (time, nodes, channels), (time, nodes) or (time,).
    Item i is (x, y):
      3-d values: x (input_len, nodes, channels), y (output_len, nodes) = channel `target_channel`
                  (target_channel=None keeps every channel: y (output_len, nodes, channels));
      2-d values: x (input_len, nodes), y (output_len, nodes);
      1-d values: x (input_len,), y (output_len,).
    fill_value: if not None, NaN (missing) in x is replaced by it (y keeps NaN for masked metrics).
    `inputs` and `targets` hold every window at once: (samples, input_len, ...), (samples, output_len, ...).
    """

    def __init__(
        self,
        values: torch.Tensor,
        input_len: int,
        output_len: int,
        stride: int = 1,
        target_channel: int | None = 0,
        fill_value: float | None = None,
    ):
        self.inputs, targets = sliding_windows(values, input_len, output_len, stride)
        if values.ndim == 3 and target_channel is not None:
            if not isinstance(target_channel, int) or not 0 <= target_channel < values.shape[2]:
                raise ValueError(
                    f"target_channel: expected an index in [0, {values.shape[2]}) or None, got {target_channel!r}"
                )
            targets = targets[..., target_channel]
        self.targets = targets
        self.fill_value = fill_value

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.inputs[index]
        if self.fill_value is not None:
            x = torch.nan_to_num(x, nan=self.fill_value)
        return x, self.targets[index]


def split_bounds(num_steps: int, fractions: Sequence[float] = (0.7, 0.1, 0.2)) -> list[tuple[int, int]]:
    """Chronological parts of a series: [(start, stop), ...] with stop - start ~ fraction * num_steps.

    fractions: positive and summing to 1, e.g. (train, val, test) = (0.7, 0.1, 0.2).
    """
    fractions = [float(f) for f in fractions]
    if not fractions or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions: expected positive fractions summing to 1, got {fractions}")
    edges = [0] + [round(num_steps * f) for f in np.cumsum(fractions)[:-1].tolist()] + [num_steps]
    parts = list(zip(edges[:-1], edges[1:], strict=True))
    if any(stop <= start for start, stop in parts):
        raise ValueError(f"fractions: expected every part to get steps from {num_steps}, got bounds {parts}")
    return parts


def chronological_split(values: torch.Tensor, fractions: Sequence[float] = (0.7, 0.1, 0.2)) -> list[torch.Tensor]:
    """Split values (time, ...) into consecutive parts (views), in time order, by `split_bounds`."""
    return [values[start:stop] for start, stop in split_bounds(values.shape[0], fractions)]


class StandardScaler:
    """z-score scaling, NaN-aware, fitted on training data only.

    per_node=False (default): one mean and std per channel over all times and nodes, so that the
    scaled series keeps busy stations bigger than quiet ones and a loss on scaled values is
    proportional to the loss in passengers. per_node=True: one mean and std per node and channel.
    Fitted on values (time, nodes, channels): mean/std have shape (channels,) or (nodes, channels);
    on values (time, nodes): shape () or (nodes,). transform / inverse_transform take (..., nodes,
    channels) or (..., nodes) matching the fit; inverse_transform(x, channel=k) takes (..., nodes)
    holding channel k only (e.g. model outputs).
    """

    def __init__(self, per_node: bool = False, eps: float = 1e-8):
        self.per_node, self.eps = per_node, eps
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def fit(self, values: torch.Tensor) -> StandardScaler:
        if not isinstance(values, torch.Tensor) or values.ndim not in (2, 3):
            raise ValueError(
                f"values: expected a (time, nodes, channels) or (time, nodes) tensor, got "
                f"{tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__}"
            )
        x = values.double()
        dims = (0,) if self.per_node else (0, 1)  # reduce over time (and nodes)
        observed = (~torch.isnan(x)).sum(dim=dims)
        if (observed == 0).any():
            raise ValueError("values: expected at least one observed (non-NaN) value per statistic, got none")
        mean = torch.nanmean(x, dim=dims)
        std = torch.nanmean((x - mean) ** 2, dim=dims).sqrt()
        self.mean = mean.float()
        self.std = torch.where(std > self.eps, std, torch.ones_like(std)).float()
        self._channels = x.ndim == 3
        return self

    def _stats(self, x: torch.Tensor, channel: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mean is None:
            raise ValueError("StandardScaler: expected fit() to be called first, got an unfitted scaler")
        mean, std = self.mean, self.std
        if channel is not None:
            if not self._channels or not 0 <= channel < mean.shape[-1]:
                raise ValueError(f"channel: expected an index of the {tuple(mean.shape)} statistics, got {channel}")
            mean, std = mean[..., channel], std[..., channel]
        expected = tuple(mean.shape)
        if mean.ndim and tuple(x.shape[-mean.ndim :]) != expected:
            raise ValueError(
                f"x: expected trailing dims {expected} to match the fitted statistics, got {tuple(x.shape)}"
            )
        return mean.to(x.device), std.to(x.device)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x, None)
        return (x - mean) / std

    def inverse_transform(self, x: torch.Tensor, channel: int | None = None) -> torch.Tensor:
        mean, std = self._stats(x, channel)
        return x * std + mean

    def __repr__(self) -> str:
        if self.mean is None:
            return f"StandardScaler(per_node={self.per_node}, unfitted)"
        return f"StandardScaler(per_node={self.per_node}, mean shape {tuple(self.mean.shape)})"


@dataclass
class Splits:
    """What `make_splits` returns: three window datasets, the scaler and the (start, stop) bounds."""

    train: TimeSeriesWindows
    val: TimeSeriesWindows
    test: TimeSeriesWindows
    scaler: StandardScaler
    bounds: list[tuple[int, int]]


def make_splits(
    ds: GraphTimeSeries | torch.Tensor,
    input_len: int,
    output_len: int,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    stride: int = 1,
    target_channel: int | None = 0,
    per_node: bool = False,
    fill_value: float | None = 0.0,
) -> Splits:
    """Chronological train/val/test window datasets, scaled with statistics of the training part.

    ds: a GraphTimeSeries or a values tensor (time, nodes, channels).
    Each part is windowed on its own, so no window crosses a boundary (each part loses
    input_len + output_len - 1 start positions at its end). Inputs and targets are both scaled;
    missing inputs become `fill_value` (0.0 = the training mean), missing targets stay NaN.
    Get passengers back with `splits.scaler.inverse_transform(y, channel=target_channel)`.
    """
    values = ds.values if isinstance(ds, GraphTimeSeries) else ds
    _check_window_args(values.shape[0], input_len, output_len, stride)
    bounds = split_bounds(values.shape[0], fractions)
    if len(bounds) != 3:
        raise ValueError(f"fractions: expected three fractions (train, val, test), got {len(bounds)}")
    for (start, stop), name in zip(bounds, ("train", "val", "test"), strict=True):
        if stop - start < input_len + output_len:
            raise ValueError(
                f"{name} part: expected at least input_len + output_len = {input_len + output_len} steps, "
                f"got {stop - start}"
            )
    scaler = StandardScaler(per_node=per_node).fit(values[bounds[0][0] : bounds[0][1]])
    scaled = scaler.transform(values)
    parts = [
        TimeSeriesWindows(scaled[start:stop], input_len, output_len, stride, target_channel, fill_value)
        for start, stop in bounds
    ]
    return Splits(*parts, scaler=scaler, bounds=bounds)


# ----------------------------------------------------------------------------------------------
# Calendar and the historical-average baseline
# ----------------------------------------------------------------------------------------------


def time_of_day_index(timestamps: np.ndarray, interval_minutes: int) -> torch.Tensor:
    """Index of each step within its day: minutes since midnight // interval_minutes, shape (time,)."""
    ts = np.asarray(timestamps).astype("datetime64[m]")
    minutes = (ts - ts.astype("datetime64[D]")).astype(np.int64)
    return torch.from_numpy(minutes // interval_minutes)


def day_type(timestamps: np.ndarray, holidays: Sequence[str] = ()) -> torch.Tensor:
    """1 for Saturday, Sunday or a holiday (ISO date strings), else 0; shape (time,) int64."""
    days = np.asarray(timestamps).astype("datetime64[D]")
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    off = (weekday >= 5) | np.isin(days, np.array(list(holidays), dtype="datetime64[D]"))
    return torch.from_numpy(off.astype(np.int64))


def historical_average(ds: GraphTimeSeries, fit_stop: int, channel: int = 0) -> torch.Tensor:
    """The historical-average forecast of every step: (time, nodes).

    Step t gets the mean of channel `channel` over the steps before `fit_stop` (the training part)
    with the same time of day and day type (working day, or weekend/holiday from ds.meta["holidays"]),
    per node, ignoring missing readings. A slot never seen before fit_stop falls back to the node's
    mean over the fitting part.
    """
    if ds.timestamps is None:
        raise ValueError("historical_average: expected a dataset with timestamps, got timestamps=None")
    if not 0 < fit_stop <= ds.num_steps:
        raise ValueError(f"fit_stop: expected a step in (0, {ds.num_steps}], got {fit_stop}")
    slots_per_day = math.ceil(1440 / ds.interval_minutes)
    key = day_type(ds.timestamps, ds.meta.get("holidays", ())) * slots_per_day + time_of_day_index(
        ds.timestamps, ds.interval_minutes
    )
    y = ds.values[:fit_stop, :, channel].double()
    seen = ~torch.isnan(y)
    sums = torch.zeros(2 * slots_per_day, ds.num_nodes, dtype=torch.float64).index_add_(
        0, key[:fit_stop], y.nan_to_num(0)
    )
    counts = torch.zeros_like(sums).index_add_(0, key[:fit_stop], seen.double())
    node_mean = torch.nanmean(y, dim=0).expand_as(sums)
    average = torch.where(counts > 0, sums / counts.clamp(min=1), node_mean)
    return average[key].float()


def select_nodes(ds: GraphTimeSeries, nodes: Sequence[int | str]) -> GraphTimeSeries:
    """The sub-network of the given nodes (indices or names, in that order): values, adjacency block,
    names, coordinates, timestamps and channels. Of `meta` only "holidays" is kept (node indices in the
    other entries would no longer be valid) and "name" says which nodes were taken.
    """
    nodes = list(nodes)
    if not nodes:
        raise ValueError("nodes: expected at least one node index or name, got none")
    index = []
    for node in nodes:
        if isinstance(node, str):
            if node not in ds.node_names:
                raise ValueError(f"nodes: expected names of this dataset's nodes, got unknown name {node!r}")
            index.append(ds.node_names.index(node))
        elif isinstance(node, int) and not isinstance(node, bool) and 0 <= node < ds.num_nodes:
            index.append(node)
        else:
            raise ValueError(f"nodes: expected indices in [0, {ds.num_nodes}) or names, got {node!r}")
    if len(set(index)) != len(index):
        raise ValueError(f"nodes: expected each node once, got {nodes}")
    idx = torch.tensor(index)
    names = [ds.node_names[i] for i in index]
    meta = {"name": f"{ds.meta.get('name', 'network')}: {', '.join(names[:3])}{'...' if len(names) > 3 else ''}"}
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


def add_time_of_day(ds: GraphTimeSeries) -> GraphTimeSeries:
    """The dataset with two more channels, "time_sin" and "time_cos": sin and cos of 2 pi (minutes since
    midnight) / 1440, the same at every node. A model reading them knows the time of day (23:45 is close to
    00:00 on that circle). Needs timestamps.
    """
    if ds.timestamps is None:
        raise ValueError("add_time_of_day: expected a dataset with timestamps, got timestamps=None")
    minutes = time_of_day_index(ds.timestamps, 1).double()
    angle = 2 * math.pi * minutes / 1440
    clock = torch.stack([angle.sin(), angle.cos()], dim=-1).float()  # (time, 2)
    values = torch.cat([ds.values, clock[:, None, :].expand(-1, ds.num_nodes, -1)], dim=-1)
    return GraphTimeSeries(values, ds.adjacency, ds.interval_minutes, ds.node_names, ds.coords, ds.timestamps,
                           [*ds.channel_names, "time_sin", "time_cos"], dict(ds.meta))


# ----------------------------------------------------------------------------------------------
# Command line: python -m helpers.data make-metro data/metro
# ----------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make-metro", help="generate the synthetic metro dataset into a folder")
    make.add_argument("folder", nargs="?", default=str(METRO_DIR))
    make.add_argument("--seed", type=int, default=0)
    make.add_argument(
        "--check", action="store_true", help="do not write; exit 1 unless the existing file has the same bytes"
    )
    args = parser.parse_args(argv)
    ds = make_metro(args.seed)
    folder = Path(args.folder)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = save_metro(ds, tmp).read_bytes()
        existing = folder / METRO_FILE
        same = existing.is_file() and existing.read_bytes() == fresh
        digest = hashlib.sha256(fresh).hexdigest()
        print(f"{existing}: {'identical to' if same else 'DIFFERS from'} a fresh make_metro(seed={args.seed}) "
              f"(sha256 {digest})")  # fmt: skip
        return 0 if same else 1
    path = save_metro(ds, folder)
    data = path.read_bytes()
    print(f"wrote {path}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}; {ds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
