"""The notebooks' interactive widgets, one module per notebook, each a thin shell over plain,
tested functions that compute and draw without a browser.

- `widgets.base`  `TrainButtonWidget` (controls, a "train" button, a figure, a status line), the
                  loss-curve figure `training_figure`, `control_look`
- `widgets.nb03`  the window explorer's counts and figure (`window_counts`, `window_figure`)
- `widgets.nb05`  `OptimizerExplorer` and its functions (`explorer_settings`, `explorer_figure`,
                  `explorer_readout`), `TrainingPlayground`
- `widgets.nb06`  `LSTMPlayground`
- `widgets.nb07`  `DepthExplorer`, `depth_figure`
- `widgets.nb08`  `STGCNPlayground`
- `widgets.nb09`  `TrickExplorer`, `trick_costs`, `trick_figure`
Every widget carries CSS classes (`opt-...`, `train-...`) so a browser test can find its controls;
figures reach them as PNG bytes through `helpers.plots.figure_png` (re-exported here).
Import every name from `helpers.widgets`.
"""

from helpers.plots import figure_png
from helpers.widgets.base import TrainButtonWidget, control_look, training_figure
from helpers.widgets.nb03 import PART_COLORS, WINDOW_COLORS, window_counts, window_figure
from helpers.widgets.nb05 import (
    OPTIMIZER_COLORS,
    OptimizerExplorer,
    TrainingPlayground,
    explorer_figure,
    explorer_readout,
    explorer_settings,
)
from helpers.widgets.nb06 import LSTMPlayground
from helpers.widgets.nb07 import BLOCK_COLORS, DepthExplorer, depth_figure
from helpers.widgets.nb08 import STGCN_WIDTHS, STGCNPlayground
from helpers.widgets.nb09 import TrickExplorer, trick_costs, trick_figure

__all__ = [
    # shared
    "figure_png",
    "TrainButtonWidget",
    "control_look",
    "training_figure",
    # notebook 03
    "PART_COLORS",
    "WINDOW_COLORS",
    "window_counts",
    "window_figure",
    # notebook 05
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
    "DepthExplorer",
    # notebook 08
    "STGCN_WIDTHS",
    "STGCNPlayground",
    # notebook 09
    "trick_costs",
    "trick_figure",
    "TrickExplorer",
]
