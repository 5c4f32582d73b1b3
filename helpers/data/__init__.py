"""Data for the workbook: one container for every network time series, and the tools around it.

Import every name from `helpers.data`; the modules, each one concern:
- `series`      `GraphTimeSeries` (values, adjacency, timestamps, names, segments; validated when
                built), `check_adjacency`, `select_nodes` (a sub-network), `add_time_of_day` and
                `add_day_type` (clock channels), `channel_first` (the forecast channel to the front)
- `calendar`    `time_of_day_index`, `day_type` (working day, or weekend / holiday),
                `infer_interval_minutes`, `segment_bounds` (the regular stretches between gaps)
- `windows`     `sliding_windows` (zero-copy), `TimeSeriesWindows` (their `Dataset`; windows stay
                inside one segment: `window_starts`, `clip_segments`, `count_windows` ->
                `WindowCount`), `split_bounds`, `StandardScaler`, `make_splits` -> `Splits`
                (chronological, scaled with training statistics only), `shuffled_loader`
- `metro`       `make_metro`: the synthetic metro city that generates the shipped dataset
- `metro_file`  `save_metro`, `load_metro`: its byte-for-byte reproducible file in data/metro/
- `csv_folder`  `load_csv_folder`, `save_csv_folder`, `read_csv_numbers`, `read_holidays`: your own
                network as CSV (wide or long series.csv, gaps allowed, several channels, holidays)
- `los_loop`    `load_los_loop`: real traffic speeds of 207 loop detectors in Los Angeles
- `python -m helpers.data make-metro data/metro [--check]` (`__main__`): what `make data` runs

Conventions shared by every dataset: a missing reading is NaN in `values`; the adjacency holds
non-negative weights, larger = closer, with a zero diagonal (graph layers add self-loops
themselves; see `series`).
"""

from helpers.data.calendar import (
    day_type,
    infer_interval_minutes,
    segment_bounds,
    time_of_day_index,
)
from helpers.data.csv_folder import (
    load_csv_folder,
    read_csv_numbers,
    read_holidays,
    save_csv_folder,
)
from helpers.data.los_loop import LOS_LOOP_DIR, LOS_LOOP_SHA256, LOS_LOOP_URLS, load_los_loop
from helpers.data.metro import SPREAD, make_metro
from helpers.data.metro_file import METRO_DIR, METRO_FILE, load_metro, save_metro
from helpers.data.series import (
    DATA_DIR,
    GraphTimeSeries,
    add_day_type,
    add_time_of_day,
    channel_first,
    check_adjacency,
    select_nodes,
)
from helpers.data.windows import (
    Splits,
    StandardScaler,
    TimeSeriesWindows,
    WindowCount,
    clip_segments,
    count_windows,
    make_splits,
    shuffled_loader,
    sliding_windows,
    split_bounds,
    window_starts,
)

__all__ = [
    "DATA_DIR", "GraphTimeSeries", "check_adjacency", "select_nodes", "add_time_of_day",  # series
    "add_day_type", "channel_first",
    "time_of_day_index", "day_type", "infer_interval_minutes", "segment_bounds",  # calendar
    "sliding_windows", "TimeSeriesWindows", "split_bounds", "StandardScaler", "Splits",  # windows
    "make_splits", "shuffled_loader", "window_starts", "clip_segments", "count_windows",
    "WindowCount",
    "make_metro", "SPREAD",  # metro
    "save_metro", "load_metro", "METRO_DIR", "METRO_FILE",  # metro_file
    "read_csv_numbers", "load_csv_folder", "save_csv_folder", "read_holidays",  # csv_folder
    "load_los_loop", "LOS_LOOP_DIR", "LOS_LOOP_URLS", "LOS_LOOP_SHA256",  # los_loop
]  # fmt: skip
