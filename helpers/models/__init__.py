"""The forecasting models of the workbook; import every name from `helpers.models`.

- `models.lstm`: the LSTM cell written out gate by gate (`LSTMCellFromScratch`), `unroll`, the
  `LSTMForecaster`, and `gradient_norms_through_time` (notebook 06).
- `models.stgcn`: the STGCN in parts: `TemporalGatedConv`, `STConvBlock`, `OutputBlock`, `Align`,
  `STGCN` built from an `STGCNConfig`, plus `TemporalConv` (the convolution over time of
  channels-last tensors), `graph_operator` and `count_parameters` (notebook 08).
- `models.baselines`: forecasts without training: `nearest_neighbour_forecast` (notebook 03),
  `historical_average`, `subtract_profile` (the deviation from it), and `baseline_forecast`
  (persistence or historical average on a split).

Training these models (`train_forecaster`, `fit_lstm_forecaster`) lives in `helpers.train`.
"""

from helpers.models.baselines import (
    baseline_forecast,
    historical_average,
    nearest_neighbour_forecast,
    subtract_profile,
)
from helpers.models.lstm import LSTMCellFromScratch, LSTMForecaster, gradient_norms_through_time, unroll
from helpers.models.stgcn import (
    GATES,
    GRAPH_CONVS,
    NORMS,
    STGCN,
    Align,
    OutputBlock,
    STConvBlock,
    STGCNConfig,
    TemporalConv,
    TemporalGatedConv,
    count_parameters,
    graph_operator,
)

__all__ = [
    "subtract_profile",
    "LSTMCellFromScratch",
    "unroll",
    "LSTMForecaster",
    "gradient_norms_through_time",
    "STGCN",
    "STGCNConfig",
    "TemporalGatedConv",
    "STConvBlock",
    "OutputBlock",
    "Align",
    "TemporalConv",
    "graph_operator",
    "count_parameters",
    "GATES",
    "GRAPH_CONVS",
    "NORMS",
    "nearest_neighbour_forecast",
    "historical_average",
    "baseline_forecast",
]
