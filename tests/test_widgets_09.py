"""helpers.widgets, notebook 09 section: cached trick costs are looked up exactly, the verdict respects the noise
band, the figure shows the chosen
combination against the plain step, the explorer redraws from the cache, and the committed benchmark holds
every combination the explorer offers."""

import itertools
import json
from pathlib import Path

import pytest

from helpers.widgets import TrickExplorer, trick_costs, trick_figure, trick_verdict

TRICKS = ("inplace", "free", "accumulate", "checkpoint")
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "speed.json"


def fake_rows():
    """Every combination at batch 8 and 32: time grows with the number of tricks, memory falls with it."""
    rows = []
    for batch_size in (8, 32):
        for flags in itertools.product((False, True), repeat=len(TRICKS)):
            chosen = [t for t, on in zip(TRICKS, flags, strict=True) if on]
            rows.append({"batch_size": batch_size, "tricks": chosen, "seconds": batch_size * (1 + len(chosen)),
                         "peak_bytes": batch_size * 1e6 / (1 + len(chosen))})
    return rows


def test_trick_costs_ignores_the_order_of_tricks_and_names_what_is_missing():
    rows = fake_rows()
    assert trick_costs(rows, ("free", "inplace"), 8) == trick_costs(rows, ["inplace", "free"], 8) == {
        "seconds": 24, "peak_bytes": 8e6 / 3}
    with pytest.raises(ValueError, match=r"batch size 16; measured batch sizes: \[8, 32\]"):
        trick_costs(rows, (), 16)
    with pytest.raises(ValueError, match="turbo"):
        trick_costs(rows, ("turbo",), 8)


def test_trick_figure_compares_with_the_plain_step():
    fig = trick_figure(fake_rows(), ("accumulate",), 8)
    time_ax, memory_ax = fig.axes
    assert [t.get_text() for t in time_ax.get_yticklabels()] == ["plain, batch 32", "plain, batch 8",
                                                                 "accumulate, batch 8"]
    assert [round(p.get_width(), 4) for p in memory_ax.patches] == [1.0, 0.25, 0.125]
    assert fig._suptitle.get_text() == "accumulate, batch 8: 16000 ms, 4.0 MB peak"
    assert len(trick_figure(fake_rows(), (), 32).axes[0].patches) == 1  # the same step is drawn once


def test_trick_explorer_redraws_from_the_cache():
    explorer = TrickExplorer(fake_rows())
    first = explorer.plot.value
    assert explorer.tricks == [] and explorer.batch.value == 32 and first
    explorer.checks["checkpoint"].value = True
    explorer.batch.value = 8
    assert explorer.tricks == ["checkpoint"] and explorer.plot.value != first


def test_the_committed_benchmark_holds_every_combination():
    rows = json.loads(RESULTS.read_text())["widget"]
    for batch_size in (8, 16, 32):
        for flags in itertools.product((False, True), repeat=len(TRICKS)):
            chosen = [t for t, on in zip(TRICKS, flags, strict=True) if on]
            cost = trick_costs(rows, chosen, batch_size)
            assert cost["seconds"] > 0 and cost["peak_bytes"] > 0


def test_the_verdict_uses_the_noise_band_and_the_explorer_shows_it():
    rows = fake_rows()  # at batch 8: plain 8 s, one trick 16 s (x2)
    assert trick_verdict(rows, ("free",), 8, band=0.5) == "slower"
    assert trick_verdict(rows, ("free",), 8, band=1.5) == "no difference"
    fig = trick_figure(rows, ("free",), 8, band=1.5)
    assert fig.axes[0].get_legend_handles_labels()[1] == ["no difference (noise)"]
    explorer = TrickExplorer(rows, band=1.5)
    seen = {explorer.readout.value}
    for name in TRICKS:  # every control changes the readout
        explorer.checks[name].value = True
        seen.add(explorer.readout.value)
    explorer.batch.value = 8
    seen.add(explorer.readout.value)
    assert len(seen) == len(TRICKS) + 2 and "slower" in explorer.readout.value  # x5: beyond x2.5


def test_the_committed_benchmark_records_its_spread_and_noise():
    result = json.loads(RESULTS.read_text())
    assert result["cpu"]["noise_band"] > 0 and "load_average" in result["machine"]
    for name, row in result["cpu"].items():
        if isinstance(row, dict) and row["seconds"] is not None:
            assert row["seconds_q1"] <= row["seconds"] <= row["seconds_q3"], name
