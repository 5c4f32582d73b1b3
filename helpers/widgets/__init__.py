"""The notebooks' interactive widgets, one module per notebook, each a thin shell over plain,
tested functions that compute and draw without a browser.

- `widgets.base`  `TrainButtonWidget` (controls, a "train" button run in a background thread, a
                  progress bar, a figure, a status line), the loss-curve figure `training_figure`
                  (earlier runs and baselines on the same axes), `validation_baselines`,
                  `StaticFallback` (a picture and `STATIC_NOTE` where no kernel runs), `control_look`
- `widgets.nb03`  `WindowExplorer` (chronological vs shuffled split), `leakage_split`,
                  `leakage_errors`, `leakage_figure`, `leakage_readout`
- `widgets.nb05`  `OptimizerExplorer` and its functions (`explorer_settings`, `explorer_figure`,
                  `explorer_readout`), `TrainingPlayground`
- `widgets.nb06`  `LSTMPlayground`
- `widgets.nb07`  `DepthExplorer` (several seeds, validation MAE), `depth_figure`,
                  `depth_runs_figure`, `node_baselines`
- `widgets.nb08`  `STGCNPlayground`
- `widgets.nb09`  `TrickExplorer`, `trick_costs`, `trick_figure`, `trick_verdict`
Every widget carries CSS classes (`opt-...`, `train-...`) so a browser test can find its controls;
figures reach them as PNG bytes through `helpers.plots.figure_png` (re-exported here).
Import every name from `helpers.widgets`.
"""

from helpers.plots import figure_png
from helpers.widgets.base import (
    BASELINE_STYLES,
    MAX_EARLIER,
    STATIC_NOTE,
    StaticFallback,
    TrainButtonWidget,
    control_look,
    training_figure,
    validation_baselines,
)
from helpers.widgets.nb03 import (
    SPLIT_COLORS,
    SPLITS,
    Leakage,
    WindowExplorer,
    leakage_errors,
    leakage_figure,
    leakage_readout,
    leakage_split,
)
from helpers.widgets.nb05 import (
    EXPLORER_LRS,
    OPTIMIZER_COLORS,
    OptimizerExplorer,
    TrainingPlayground,
    explorer_figure,
    explorer_readout,
    explorer_settings,
)
from helpers.widgets.nb06 import LSTMPlayground
from helpers.widgets.nb07 import BLOCK_COLORS, DepthExplorer, depth_figure, depth_runs_figure, node_baselines
from helpers.widgets.nb08 import STGCN_WIDTHS, STGCNPlayground
from helpers.widgets.nb09 import TrickExplorer, trick_costs, trick_figure, trick_verdict

__all__ = [
    # shared
    "figure_png",
    "BASELINE_STYLES",
    "MAX_EARLIER",
    "STATIC_NOTE",
    "StaticFallback",
    "TrainButtonWidget",
    "control_look",
    "training_figure",
    "validation_baselines",
    # notebook 03
    "SPLIT_COLORS",
    "SPLITS",
    "Leakage",
    "leakage_split",
    "leakage_errors",
    "leakage_figure",
    "leakage_readout",
    "WindowExplorer",
    # notebook 05
    "EXPLORER_LRS",
    "OPTIMIZER_COLORS",
    "explorer_settings",
    "explorer_figure",
    "explorer_readout",
    "OptimizerExplorer",
    "TrainingPlayground",
    # notebook 06
    "LSTMPlayground",
    # notebook 07
    "BLOCK_COLORS",
    "depth_figure",
    "depth_runs_figure",
    "node_baselines",
    "DepthExplorer",
    # notebook 08
    "STGCN_WIDTHS",
    "STGCNPlayground",
    # notebook 09
    "trick_costs",
    "trick_figure",
    "trick_verdict",
    "TrickExplorer",
]
