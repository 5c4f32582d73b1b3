"""The widgets of notebooks 06 (LSTM playground) and 06 (depth explorer): their logic without a browser."""

import pytest
import torch

from helpers.data import add_time_of_day, load_metro, select_nodes
from helpers.node_task import DepthResult, next_step_task
from helpers.widgets import DepthExplorer, LSTMPlayground, depth_figure, node_baselines


@pytest.fixture(scope="module")
def metro():
    return load_metro()


def test_lstm_playground_trains_with_the_slider_values(metro):
    station = add_time_of_day(select_nodes(metro, ["Fernhill"]))
    playground = LSTMPlayground(station, epochs=2)
    playground.hidden.value, playground.input_len.value, playground.lr.value = 8, 6, 0.01
    run = playground.run()
    assert run.model.hidden_size == 8 and run.splits.train.inputs.shape[1] == 6
    assert len(run.history.train_loss) == 2 and len(playground.val_mae) == 4
    assert playground.status.value.startswith("validation MAE per step (passengers per 15 min): ")
    assert "persistence" in playground.status.value and "historical average" in playground.status.value
    assert playground.plot.value[:4] == b"\x89PNG" and not playground.button.disabled
    assert [label for label, _ in playground.runs] == ["hidden 8, sequence 6, lr 0.0100"]
    with pytest.raises(ValueError, match="epochs must be an int >= 1, got 0"):
        LSTMPlayground(station, epochs=0)


def test_depth_explorer_sweeps_the_chosen_block_up_to_the_chosen_depth(metro):
    task = next_step_task(metro)
    small = type(task)(task.features[:400], task.targets[:400], task.usual_next[:400], task.steps[:400],
                       {"train": slice(0, 300), "val": slice(300, 350), "test": slice(350, 400)}, task.adjacency)
    reference = [DepthResult("plain", 1, 20.0, 0.99, 0.1, 0.1)]
    explorer = DepthExplorer(small, max_depth=2, block="dense", hidden=8, reference=reference, reference_mae=21.0)
    results = explorer.run()
    assert [(r.block, r.depth) for r in results] == [("dense", 1), ("dense", 2)]
    assert len(explorer.per_seed) == 3  # three seeds, their mean reported
    maes = [[r.mae for r in rows] for rows in explorer.per_seed]
    assert [r.mae for r in results] == pytest.approx([sum(col) / 3 for col in zip(*maes, strict=True)])
    assert len({row[0] for row in maes}) == 3  # the seeds differ
    assert explorer.status.value.startswith("validation MAE, mean of 3 seeds: best ")
    assert explorer.plot.value[:4] == b"\x89PNG" and explorer.progress.value == explorer.progress.max == 9
    with pytest.raises(ValueError, match="max_depth must be one of 1, 2, 4, 8, 16, 32, got 3"):
        DepthExplorer(small, max_depth=3)


def test_depth_figure_draws_one_line_per_block_in_depth_order():
    results = [DepthResult("res+", 4, 13.0, 0.95, 0.1, 1.0), DepthResult("plain", 2, 14.0, 0.96, 0.1, 1.0),
               DepthResult("plain", 1, 15.0, 0.97, 0.1, 1.0), DepthResult("res+", 1, 16.0, 0.98, 0.1, 1.0)]
    fig = depth_figure(results, reference_mae=21.0, title="t")
    ax_mae, ax_cos = fig.axes
    lines = {line.get_label(): line for line in ax_mae.get_lines()}
    assert list(lines) == ["res+", "plain", "historical average"]
    assert list(lines["plain"].get_xdata()) == [1, 2] and list(lines["plain"].get_ydata()) == [15.0, 14.0]
    cos = {line.get_label(): line for line in ax_cos.get_lines()}
    assert list(cos["res+"].get_ydata()) == pytest.approx([0.02, 0.05])
    with pytest.raises(ValueError, match="at least one DepthResult"):
        depth_figure([])


def test_node_baselines_match_the_historical_average_and_persistence_computed_from_the_data(metro):
    task = next_step_task(metro)
    baselines = node_baselines(task, "val")
    rows = task.parts["val"]
    steps, usual = task.steps[rows], task.usual_next[rows]
    flow = metro.values[:, :, 0]
    keep = torch.cat([torch.tensor([False]), steps[1:] == steps[:-1] + 1])
    t = steps[keep]
    truth = flow[t + 1]
    observed = ~torch.isnan(truth)
    ha = (usual[keep] - truth).abs()[observed].mean().item()
    assert baselines["historical average"] == pytest.approx(ha, rel=1e-4)
    now = torch.where(torch.isnan(flow[t]), usual[torch.nonzero(keep)[:, 0] - 1], flow[t])  # missing: as usual
    assert baselines["persistence"] == pytest.approx((now - truth).abs()[observed].mean().item(), rel=1e-4)
