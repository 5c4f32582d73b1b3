"""The training widgets' shared parts and notebook 08's STGCN playground, without a browser."""

import pytest
import torch

from helpers.data import load_metro, make_splits
from helpers.metrics import masked_mae
from helpers.models import STGCN, baseline_forecast, count_parameters
from helpers.widgets import STGCNPlayground, validation_baselines


def ring_graph(n: int = 7) -> torch.Tensor:
    """A ring of n stations: symmetric, zero diagonal."""
    adj = torch.zeros(n, n)
    for i in range(n):
        adj[i, (i + 1) % n] = adj[(i + 1) % n, i] = 1.0
    return adj


@pytest.fixture(scope="module")
def metro():
    return load_metro()


def test_validation_baselines_agree_with_baseline_forecast(metro):
    splits = make_splits(metro, input_len=12, output_len=3)
    ours = validation_baselines(splits, metro)
    scale = splits.scaler.inverse_transform(torch.ones(1), channel=0) - splits.scaler.inverse_transform(
        torch.zeros(1), channel=0)
    for name, key in [("persistence", "persistence"), ("historical average", "ha")]:
        prediction, target = baseline_forecast(key, metro, splits, "val")
        assert ours[name]["mae"] == pytest.approx(masked_mae(prediction, target).item(), rel=1e-3)
        mse = ((prediction - target)[~torch.isnan(target)] / scale).pow(2).mean().item()
        assert ours[name]["loss"] == pytest.approx(mse, rel=1e-3)  # in the scaled units the model trains on
    assert list(validation_baselines(splits)) == ["persistence"]  # no dataset: no timestamps, no average


def test_stgcn_playground_reports_validation_error_and_disables_what_does_not_apply():
    g = torch.Generator().manual_seed(0)
    values = torch.randn(120, 7, 2, generator=g).cumsum(dim=0) * 0.1
    splits = make_splits(values, input_len=8, output_len=2)
    pg = STGCNPlayground(splits, ring_graph(), epochs=2, widths="8,4,8", Kt=2)
    expected = count_parameters(STGCN(pg.config(), ring_graph()))
    assert pg.info.value == (f"2 block(s) of 8,4,8 channels, Kt=2, Chebyshev, Ks=3: {expected:,} parameters, "
                             f"4 time step(s) reach the output block")
    assert not pg.ks.disabled
    pg.graph.value = "gcn"
    assert "first-order GCN" in pg.info.value and pg.config().graph_conv == "gcn" and pg.ks.disabled
    pg.kt.value, pg.blocks.value = 4, 3  # 3 blocks remove 18 steps from a window of 8
    assert pg.info.value.startswith("not possible: input_len=8 is too short") and pg.button.disabled
    pg.kt.value, pg.blocks.value = 2, 1
    before = pg.plot.value
    history = pg.run()
    assert len(history.train_loss) == 2 and pg.plot.value != before and not pg.button.disabled
    assert pg.ks.disabled  # still first-order after the run
    assert pg.status.value.startswith("validation MAE per step: ") and len(pg.val_mae) == 2
    assert "persistence" in pg.status.value and len(pg.runs) == 1
    with pytest.raises(ValueError, match="widths must be one of"):
        STGCNPlayground(splits, ring_graph(), widths="5,5,5")
