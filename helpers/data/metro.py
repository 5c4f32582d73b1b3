"""The synthetic metro city of Port Marren, which generates the shipped dataset: `make_metro`.

51 stations on 4 lines (a fixed map, tabled below), 8 weeks at 15-minute steps of service hours,
inflow and outflow per station: daily profiles by station kind and day type, day-to-day levels,
showers, surges that spread along the lines, two stadium events, a holiday and sensor outages.
See data/metro/README.md for the full description; `data.metro_file` writes and reads the file.
"""

from __future__ import annotations

import numpy as np
import torch

from helpers.checks import check_int, check_number
from helpers.data.series import GraphTimeSeries

# Stations of the fictional city of Port Marren: name, x and y in km from the centre, kind.
_STATION_TABLE = """
Westgate          -13.5    1.9   residential
Alder Park        -12.0    1.5   residential
Fernhill          -10.5    1.2   residential
Millbrook          -9.0    0.9   residential
Copper Lane        -7.5    0.5   mixed
Tanners Row        -6.0    0.2   residential
West Ring          -4.5    0.0   mixed
Foundry            -3.1    0.0   business
Granary            -1.6    0.0   business
Central             0.0    0.0   business
Exchange            1.5    0.0   business
Market Hall         3.0    0.0   mixed
East Ring           4.5    0.0   mixed
Brickworks          6.0   -0.2   mixed
Larkspur            7.5   -0.5   residential
Heron Quay          9.0   -0.9   residential
Saltmarsh          10.5   -1.3   residential
Eastfield          12.0   -1.7   residential
Northcote           1.6   12.0   residential
Hollow Oak          1.1   10.5   residential
Kingsmead           0.7    9.0   residential
Ashby Road          0.4    7.5   residential
University          0.1    6.0   mixed
North Ring          0.0    4.5   mixed
Museum              0.0    3.1   mixed
Cathedral           0.0    1.6   business
Guildhall           0.0   -1.5   business
Riverside           0.0   -3.0   mixed
South Ring          0.0   -4.5   mixed
Dockside           -0.3   -6.0   mixed
Bellfield          -0.7   -7.5   residential
Southmoor          -1.2   -9.0   residential
Pinewood           -1.8  -10.5   residential
Greyfriars         -8.1   -6.5   residential
Willowbank         -7.1   -5.4   residential
Stadium            -6.0   -4.4   mixed
Quarry Hill        -5.0   -3.3   residential
Southwest Ring     -3.9   -2.25  mixed
Lantern Street     -2.8   -1.1   mixed
Parkside            1.1    2.8   business
Northeast Ring      2.25   3.9   mixed
Elm Grove           3.3    5.0   residential
Brightwater         4.4    6.0   residential
Maple Heights       5.4    7.1   residential
Summit              6.5    8.1   residential
Canal Basin         3.9    2.25  business
Observatory Hill   -2.25   3.9   mixed
Linden Square      -3.9    2.25  mixed
Rope Walk          -2.25  -3.9   mixed
Gasworks            2.25  -3.9   business
Wharf Street        3.9   -2.25  mixed
"""
_STATIONS = tuple(
    (name, float(x), float(y), kind)
    for name, x, y, kind in (row.rsplit(maxsplit=3) for row in _STATION_TABLE.strip().splitlines())
)

# Lines as station sequences; the Orange circle line lists its first station again at the end.
_LINES = {
    "Red": (
        "Westgate", "Alder Park", "Fernhill", "Millbrook", "Copper Lane", "Tanners Row",
        "West Ring", "Foundry", "Granary", "Central", "Exchange", "Market Hall", "East Ring",
        "Brickworks", "Larkspur", "Heron Quay", "Saltmarsh", "Eastfield",
    ),
    "Blue": (
        "Northcote", "Hollow Oak", "Kingsmead", "Ashby Road", "University", "North Ring", "Museum",
        "Cathedral", "Central", "Guildhall", "Riverside", "South Ring", "Dockside", "Bellfield",
        "Southmoor", "Pinewood",
    ),
    "Green": (
        "Greyfriars", "Willowbank", "Stadium", "Quarry Hill", "Southwest Ring", "Lantern Street",
        "Granary", "Cathedral", "Parkside", "Northeast Ring", "Elm Grove", "Brightwater",
        "Maple Heights", "Summit",
    ),
    "Orange": (
        "East Ring", "Canal Basin", "Northeast Ring", "North Ring", "Observatory Hill",
        "Linden Square", "West Ring", "Southwest Ring", "Rope Walk", "South Ring", "Gasworks",
        "Wharf Street", "East Ring",
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


def make_metro(seed: int = 0, *, spread: float = SPREAD) -> GraphTimeSeries:
    """Generate the synthetic metro dataset: 51 stations on 4 lines, 8 weeks at 15-minute steps.

    Returns a `GraphTimeSeries` with values (4032, 51, 2): channel 0 = inflow (entries), 1 =
    outflow (exits), passengers per 15 minutes over service hours 05:30-23:30 (72 steps a day), NaN
    where a gate sensor was down. `spread` is the fraction of a local surge that moves on to the
    neighbouring stations each step (0 keeps surges local: graph models then lose their edge). The
    map is fixed; `seed` draws the flows. See data/metro/README.md for the full description.
    """
    check_int("seed", seed, minimum=0)
    check_number("spread", spread, 0.0, 1.0)
    rng = np.random.default_rng(seed)
    net = _metro_network()
    days, slots, n = _NUM_DAYS, _SLOTS, len(net["names"])
    hours = (_SERVICE_START_MIN + _INTERVAL * (np.arange(slots) + 0.5)) / 60.0  # mid-step hours
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

    # Exits: each entry leaves at the destination it picked, a trip time later.
    expected_out = _expected_exits(net, size, trip, hours, weekend, travelling, fans)
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


def _expected_exits(net: dict, size: np.ndarray, trip: np.ndarray, hours: np.ndarray,
                    weekend: np.ndarray, travelling: np.ndarray, fans: np.ndarray) -> np.ndarray:
    """Expected exits (days, slots, stations) of the entries `travelling` and `fans`.

    Each entry picks a destination by a gravity model (attraction by kind and time of day, falling
    off with trip time; fans go to the stadium) and leaves the network round(trip / 15 min) steps
    later.
    """
    days, slots, n = travelling.shape
    delay = np.rint(trip / _INTERVAL).astype(int)
    gravity = np.exp(-trip / _TRIP_DECAY_MIN)
    np.fill_diagonal(gravity, 0.0)
    expected_out = np.zeros((days, slots, n))
    for is_weekend in (False, True):
        pull = _by_station(_ATTRACTION_PROFILES, net["kinds"], is_weekend, hours) * size
        choice = gravity[None] * pull[:, None, :]  # (slots, origin, destination)
        choice /= choice.sum(axis=2, keepdims=True)
        _route(travelling, choice, delay, weekend == is_weekend, expected_out)
    to_stadium = np.zeros((n, n))
    to_stadium[:, net["names"].index("Stadium")] = 1.0
    _route(fans, to_stadium[None], delay, np.ones(days, dtype=bool), expected_out)
    return expected_out


def _bump(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((hours - centre) / width) ** 2)


def _profile(spec: tuple[float, list], hours: np.ndarray) -> np.ndarray:
    level, bumps = spec
    heights = (height * _bump(hours, centre, width) for height, centre, width in bumps)
    return level + sum(heights, np.zeros_like(hours))


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


def _expected_entries(rng, kinds: list[str], size: np.ndarray, weekend: np.ndarray,
                      hours: np.ndarray) -> np.ndarray:
    """Expected entries (days, slots, stations): daily profiles times day-to-day levels.

    The levels only recent observations reveal: a city-wide daily level (weather, school terms), a
    per-station daily level, and showers that lift entries for a few hours on some days.
    """
    days, slots = len(weekend), len(hours)
    opening = 1.0 - 0.7 * np.exp(-(hours - 5.5) / 0.4)  # the first trains run nearly empty
    base = np.empty((days, slots, len(kinds)))
    for is_weekend in (False, True):
        profile = _by_station(_ENTRY_PROFILES, kinds, is_weekend, hours)
        base[weekend == is_weekend] = profile * opening[:, None] * size
    base[list(_HOLIDAY_DAYS)] *= 0.85
    city = np.zeros(days)
    for d in range(1, days):
        city[d] = 0.5 * city[d - 1] + rng.normal(0.0, 0.12)
    level = np.exp(city[:, None, None] + rng.normal(0.0, 0.05, (days, 1, len(kinds))))
    rainy = rng.random(days) < 0.25
    rain_start = rng.uniform(10.0, 19.0, days)
    rain_hours = rng.uniform(1.5, 4.0, days)
    rain_stop = rain_start + rain_hours
    in_rain = (hours[None, :] >= rain_start[:, None]) & (hours[None, :] < rain_stop[:, None])
    return base * level * (1.0 + 0.25 * (rainy[:, None] & in_rain))[:, :, None]


def _surges(rng, adjacency: np.ndarray, days: int, slots: int, spread: float) -> np.ndarray:
    """Relative surge levels z (days, slots, stations) that travel along the network:
    z_t = keep * ((1 - spread) * z_{t-1} + spread * P z_{t-1}) + new_t,
    P = the row-normalised adjacency."""
    n = len(adjacency)
    p_neighbours = adjacency / adjacency.sum(axis=1, keepdims=True)  # row i: i's neighbours' mean
    started = rng.random((days, slots, n)) < _SURGE_PROB
    new = started * rng.exponential(_SURGE_MEAN, (days, slots, n))
    surge = np.zeros((days, slots, n))
    previous = np.zeros((days, n))
    for k in range(slots):  # a recursion in time; vectorised over days and stations
        moved = (1.0 - spread) * previous + spread * previous @ p_neighbours.T
        previous = _SURGE_KEEP * moved + new[:, k]
        surge[:, k] = previous
    return surge


def _event_crowds(rng, net: dict, size: np.ndarray, trip: np.ndarray, hours: np.ndarray):
    """Entries of fans (days, slots, stations) going to each event and leaving it, and the events.

    Fans come from all over the city before the event; after it they leave in a crowd, 35% of
    which walks to the neighbouring stations and enters there one step later.
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
        events.append(
            {"date": _day_str(day), "station": s, "what": what, "start": "19:30", "end": "21:45"}
        )
    return fans, leaving, events


def _route(entries: np.ndarray, choice: np.ndarray, delay: np.ndarray, days: np.ndarray,
           out: np.ndarray) -> None:
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
            start_time = f"{_day_str(day)}T{_clock(start)}"
            outages.append({"station": station, "start": start_time, "steps": length})
    return missing, outages


def _day_str(day: int) -> str:
    return str(np.datetime64(_START_DAY) + np.timedelta64(day, "D"))


def _clock(slot: int) -> str:
    minutes = _SERVICE_START_MIN + _INTERVAL * slot
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _metro_timestamps() -> np.ndarray:
    first = np.datetime64(_START_DAY, "m")
    days = first + np.arange(_NUM_DAYS)[:, None] * np.timedelta64(1440, "m")
    minutes = _SERVICE_START_MIN + _INTERVAL * np.arange(_SLOTS)
    return (days + minutes[None, :] * np.timedelta64(1, "m")).reshape(-1)
