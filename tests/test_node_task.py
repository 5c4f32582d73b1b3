"""helpers.node_task: notebook 07's next-step task, its models and the depth sweep, on small inputs."""

import numpy as np
import pytest
import torch

from helpers.data import GraphTimeSeries, load_metro
from helpers.graph import normalized_adjacency
from helpers.models import historical_average
from helpers.node_task import depth_sweep, forecast_mae, next_step_task, node_model


@pytest.fixture(scope="module")
def metro():
    return load_metro()


def test_next_step_task_features_and_targets_by_hand(metro):
    task = next_step_task(metro)
    n = len(task.steps)
    assert task.features.shape == (n, 51, 2) and task.targets.shape == (n, 1, 51)
    parts = [task.parts[p] for p in ("train", "val", "test")]
    assert parts[0].start == 0 and parts[0].stop == parts[1].start and parts[1].stop == parts[2].start
    assert parts[2].stop == n
    train_stop = round(0.7 * metro.num_steps)
    usual = historical_average(metro, train_stop).clamp_min(1.0)
    k = 1234  # one sample, checked against the definitions
    t = int(task.steps[k])
    flow = metro.values[:, :, 0]
    mean_flow = torch.nanmean(flow[:train_stop])
    assert torch.allclose(task.features[k, :, 0], (flow[t] / usual[t] - 1).nan_to_num(0.0))
    assert torch.allclose(task.features[k, :, 1], usual[t + 1] / mean_flow)
    assert torch.allclose(task.targets[k, 0], flow[t + 1] / usual[t + 1] - 1, equal_nan=True)
    # no pair crosses the night, and none crosses a part boundary
    days = metro.timestamps.astype("datetime64[D]")
    steps = task.steps.numpy()
    assert (days[steps] == days[steps + 1]).all()
    assert steps[parts[0]].max() + 1 < train_stop <= steps[parts[1]].min()
    # the target 0 is the historical average: its MAE is the historical average's
    zero = torch.zeros_like(task.targets[parts[2]])
    truth, ha = flow[task.steps[parts[2]] + 1], usual[task.steps[parts[2]] + 1]
    observed = ~torch.isnan(truth)
    assert forecast_mae(zero, task) == pytest.approx((ha - truth)[observed].abs().mean().item(), rel=1e-5)


def test_next_step_task_refuses_bad_arguments(metro):
    with pytest.raises(ValueError, match=r"channel must be an int in \[0, 1\], got 5"):
        next_step_task(metro, channel=5)
    with pytest.raises(ValueError, match="three fractions"):
        next_step_task(metro, fractions=(0.5, 0.5))
    with pytest.raises(ValueError, match="part must be one of"):
        next_step_task(metro).dataset("holdout")
    no_clock = GraphTimeSeries(torch.ones(10, 2), torch.zeros(2, 2), 15, ["a", "b"])
    with pytest.raises(ValueError, match="timestamps"):
        next_step_task(no_clock)


def test_mlp_is_the_same_network_on_a_graph_without_edges(metro):
    torch.manual_seed(0)
    gcn = node_model(True, metro.adjacency)
    torch.manual_seed(0)
    mlp = node_model(False, metro.adjacency)
    assert torch.equal(mlp.operator, torch.eye(51))
    assert torch.equal(gcn.operator, normalized_adjacency(metro.adjacency))
    x = torch.randn(3, 51, 2)
    assert mlp(x).shape == (3, 1, 51)
    # each node of the MLP depends on its own features only
    y = x.clone()
    y[:, 7] += 1.0
    changed = (mlp(y) - mlp(x)).abs().squeeze(1).amax(0) > 0
    assert changed.nonzero().flatten().tolist() == [7]
    changed_gcn = (gcn(y) - gcn(x)).abs().squeeze(1).amax(0) > 0
    assert changed_gcn.sum() > 1  # the GCN passes the change on to the neighbours


def test_depth_sweep_records_and_refusals(metro):
    task = next_step_task(metro)
    small = type(task)(task.features[:300], task.targets[:300], task.usual_next[:300], task.steps[:300],
                       {"train": slice(0, 200), "val": slice(200, 250), "test": slice(250, 300)}, task.adjacency)
    results = depth_sweep(small, [1, 2], ["plain", "dense"], hidden=4, epochs=1)
    assert [(r.block, r.depth) for r in results] == [("plain", 1), ("plain", 2), ("dense", 1), ("dense", 2)]
    assert all(np.isfinite(r.mae) and -1 <= r.cosine <= 1 and r.seconds > 0 for r in results)
    with pytest.raises(ValueError, match=r"blocks\[0\] must be one of .*, got 'skip'"):
        depth_sweep(small, [1], ["skip"])
    with pytest.raises(ValueError, match=r"depths\[1\] must be an int >= 1, got 0"):
        depth_sweep(small, [1, 0])
    with pytest.raises(ValueError, match=r"depths must be a non-empty list of ints >= 1, got \[\]"):
        depth_sweep(small, [])
