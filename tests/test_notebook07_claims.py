"""The claims notebook 07 makes about the shipped metro data, with the notebook's own settings
(the defaults of helpers.node_task): the graph beats the MLP, plain stacks collapse with depth and
residual (res+) blocks keep deep GCNs trainable."""

import pytest
import torch

from helpers.data import load_metro
from helpers.graph import GCNStack, mean_pairwise_cosine, normalized_adjacency
from helpers.node_task import depth_sweep, forecast_mae, next_step_task, node_model, passenger_mae, train_node_model


@pytest.fixture(scope="module")
def task():
    return next_step_task(load_metro())


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_gcn_beats_the_mlp_and_both_beat_the_historical_average(task):
    mae = {}
    for graph in (False, True):
        torch.manual_seed(0)
        model = node_model(graph, task.adjacency)
        train_node_model(model, task)
        mae[graph] = passenger_mae(model, task)
    usual = forecast_mae(torch.zeros_like(task.targets[task.parts["test"]]), task)
    # measured: GCN 13.4, MLP 16.8, historical average 21.2 passengers per 15 minutes
    assert mae[True] < 0.9 * mae[False] < 0.9 * usual, (mae, usual)


def test_plain_stack_collapses_layer_by_layer_and_res_plus_does_not(task):
    x = task.features[task.parts["test"]][:256]
    op = normalized_adjacency(task.adjacency)
    last = {}
    for block in ("plain", "res+"):
        torch.manual_seed(0)
        stack = GCNStack(2, 16, 1, num_layers=32, block=block)
        with torch.no_grad():
            last[block] = mean_pairwise_cosine(stack.layer_outputs(x, op)[-1]).mean().item()
    # measured: plain 0.99996, res+ 0.988
    assert last["plain"] > 0.999 and last["res+"] < 0.995, last


def test_residual_blocks_keep_a_deep_gcn_trainable(task):
    results = {(r.block, r.depth): r for r in depth_sweep(task, [2, 16], ["plain", "res+"])}
    plain2, plain16, res16 = results["plain", 2], results["plain", 16], results["res+", 16]
    # measured: plain 13.5 at depth 2 but 18.1 at depth 16; res+ 13.4 at depth 16
    assert plain16.mae > plain2.mae + 2.0, results
    assert res16.mae < plain16.mae - 2.0 and res16.mae < plain2.mae + 1.0, results
    assert plain16.cosine > res16.cosine, results
