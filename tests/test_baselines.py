"""helpers.models.baselines: the nearest-neighbour forecaster, and the claim notebook 03 makes with it."""

import pytest
import torch

from helpers.data import load_metro, sliding_windows
from helpers.models import nearest_neighbour_forecast


def brute_force(train_x, train_y, query_x, k):
    """One query at a time, distances by the definition, neighbours by sorting."""
    out = []
    for q in query_x:
        d = [((q - x) ** 2).sum().sqrt().item() for x in train_x]
        nearest = sorted(range(len(d)), key=d.__getitem__)[:k]
        out.append(torch.stack([train_y[i] for i in nearest]).mean(dim=0))
    return torch.stack(out)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_matches_a_brute_force_search(k):
    g = torch.Generator().manual_seed(k)
    train_x, train_y = torch.randn(40, 6, generator=g), torch.randn(40, 2, generator=g)
    query_x = torch.randn(9, 6, generator=g)
    torch.testing.assert_close(nearest_neighbour_forecast(train_x, train_y, query_x, k),
                               brute_force(train_x, train_y, query_x, k))


def test_windows_of_any_shape_are_flattened_and_targets_keep_their_shape():
    g = torch.Generator().manual_seed(0)
    train_x, train_y = torch.randn(30, 4, 5, generator=g), torch.randn(30, 2, 5, generator=g)
    query_x = torch.randn(3, 4, 5, generator=g)
    result = nearest_neighbour_forecast(train_x, train_y, query_x, k=2)
    assert result.shape == (3, 2, 5)
    expected = nearest_neighbour_forecast(train_x.flatten(1), train_y.flatten(1), query_x.flatten(1), k=2)
    torch.testing.assert_close(result, expected.reshape(3, 2, 5))


def test_a_training_window_is_its_own_nearest_neighbour_and_all_neighbours_give_the_mean():
    g = torch.Generator().manual_seed(1)
    train_x, train_y = torch.randn(20, 3, generator=g), torch.randn(20, 1, generator=g)
    torch.testing.assert_close(nearest_neighbour_forecast(train_x, train_y, train_x, k=1), train_y)
    torch.testing.assert_close(nearest_neighbour_forecast(train_x, train_y, train_x[:4], k=20),
                               train_y.mean(dim=0).expand(4, 1))


X5, Y5, Q2 = torch.zeros(5, 3), torch.zeros(5, 1), torch.zeros(2, 3)


@pytest.mark.parametrize(
    "args, message",
    [
        ((X5, torch.zeros(4, 1), Q2, 1), r"train_y: expected one target per training input \(5\), got 4"),
        ((X5, Y5, torch.zeros(2, 4), 1), r"query_x: expected inputs shaped like train_x, \(m, 3\), got \(2, 4\)"),
        ((X5, Y5, Q2, 6), r"k must be an int in \[1, 5\], got 6"),
        ((X5, Y5, Q2, 0), r"k must be an int in \[1, 5\]"),
        ((X5.long(), Y5, Q2, 1), r"train_x: expected a floating-point tensor"),
        ((X5, Y5, torch.full((2, 3), float("nan")), 1), r"expected no NaN"),
    ],
)
def test_bad_input_is_a_value_error(args, message):
    with pytest.raises(ValueError, match=message):
        nearest_neighbour_forecast(*args)


@pytest.fixture(scope="module")
def metro_windows():
    """Notebook 03, section 4: whole-network inflow windows, 24 steps in, 4 out, gaps filled with 0."""
    flow = load_metro().values[..., 0].nan_to_num(0.0)
    return sliding_windows(flow, 24, 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_shuffled_split_inflates_the_score_of_a_forecaster_that_remembers(metro_windows, seed):
    """The claim of notebook 03: same forecaster, same number of training windows; the shuffled split's
    test error is lower than the chronological split's, also on the test windows of the final period only."""
    x, y = metro_windows
    n = len(x)
    cut = int(0.8 * n)
    n_train = cut - (24 + 4 - 1)  # chronological: training targets end before the first test input
    chronological = (nearest_neighbour_forecast(x[:n_train], y[:n_train], x[cut:], k=5) - y[cut:]).abs().mean()
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    train, test = order[:n_train], order[n_train:]
    errors = (nearest_neighbour_forecast(x[train], y[train], x[test], k=5) - y[test]).abs().mean(dim=(1, 2))
    late = test >= cut
    assert late.sum() > 100
    assert errors.mean() < 0.95 * chronological
    assert errors[late].mean() < 0.9 * chronological


def test_a_zero_deviation_forecast_is_the_historical_average():
    """forecast_inputs(forecast="deviation") + forecast_in_units: a network that predicts no deviation from the
    profile forecasts exactly what the historical-average baseline forecasts, on the same windows."""
    from helpers.data import make_splits, split_bounds
    from helpers.models import baseline_forecast, historical_average
    from helpers.train import forecast_in_units, forecast_inputs, target_steps

    ds = load_metro()
    fit_stop = split_bounds(ds.num_steps)[0][1]
    data = forecast_inputs(ds, fit_stop, clock="time+day", forecast="deviation")
    assert data.ds.channel_names == ["inflow_deviation", "outflow", "time_sin", "time_cos", "day_off"]
    splits = make_splits(data.ds, 12, 3)
    zero = splits.scaler.transform(torch.zeros(1, ds.num_nodes, data.ds.num_channels))[..., 0]  # scaled 0
    pred = forecast_in_units(zero.expand(len(splits.test), 3, -1), splits, data)
    ha, target = baseline_forecast("ha", ds, splits)
    torch.testing.assert_close(pred.float(), ha, atol=1e-3, rtol=0)
    steps = target_steps(splits)
    torch.testing.assert_close(target, ds.values[steps, :, 0], equal_nan=True)
    torch.testing.assert_close(data.profile, historical_average(ds, fit_stop))


def test_clock_inputs_results_back_the_command_lines_defaults():
    """benchmarks/results/clock_inputs.json (3 seeds): with the clock and the deviation from the profile (the
    command line's default given timestamps) every STGCN run beats the historical average and persistence,
    trained on the first week and on all weeks, and beats forecasting the level with the clock."""
    import json
    from pathlib import Path

    record = json.loads((Path(__file__).parents[1] / "benchmarks/results/clock_inputs.json").read_text())
    assert {"machine", "torch", "load_average_before", "seeds", "epochs"} <= set(record["conditions"])
    assert len(record["conditions"]["seeds"]) >= 3
    for regime in ("first week", "all weeks"):
        table = record["results"][regime]
        best = table["stgcn clock+deviation"]["mae"]
        assert best["max"] < min(table["ha"]["mae"], table["persistence"]["mae"]), regime
        assert best["max"] < table["stgcn clock"]["mae"]["min"], regime
