"""Shared code of the Metro STGCN Workbook: the map.

The notebooks build each idea by hand first, then import it from here and show its source with
`show_source`, so the text and the library cannot drift apart. The package is built in layers; a
module imports only from its own layer or the layers above it in this list (a test checks it), so you
can read it from the top down without meeting a name that is defined later.

1. Foundations
   - `checks`    one-line argument checks (`check_int`, `check_number`, `check_choice`)
   - `files`     atomic writes, checkpoints on disk
   - `notebook`  seeds, notebook set-up, `show_source`
2. Data (`helpers.data`, a package; import every name from `helpers.data`)
   - `data.series`      `GraphTimeSeries` (values, adjacency, timestamps), node selection, time-of-day channel
   - `data.calendar`    time-of-day index, day type (weekday, weekend, holiday)
   - `data.windows`     sliding windows, chronological splits, the scaler, `make_splits`, seeded loaders
   - `data.metro`       the synthetic metro city that generates the shipped dataset
   - `data.metro_file`  the dataset's file format (`save_metro`, `load_metro`)
   - `data.csv_folder`  your own data as CSV files; `data.los_loop`  the Los-loop benchmark data
   - `python -m helpers.data make-metro DIR` (data/__main__.py) regenerates the shipped file
3. Metrics, graphs and figures
   - `metrics`   masked MAE, RMSE, MAPE per horizon step
   - `graph` (a package; import every name from `helpers.graph`)
     - `graph.operators`  adjacency normalisation, Laplacians, Chebyshev bases, dense or sparse layout, `propagate`
     - `graph.layers`     graph convolution layers (`GraphConv`, `ChebGraphConv`), deep GCN blocks and stacks
     - `graph.smoothing`  two measures of over-smoothing
   - `plots`     the figures the notebooks and the command line share (network map, forecasts, cost bars)
4. Models (`helpers.models`, a package)
   - `models.lstm`       the LSTM cell by hand, `unroll`, `LSTMForecaster`, gradients through time
   - `models.stgcn`      the STGCN: temporal gated convolution, ST-Conv block, output block, `STGCN`
   - `models.baselines`  persistence, historical average, nearest neighbours (forecasts without training)
5. Running models on several processes
   - `distributed`  torchrun's ranks, process groups, `Runtime` (device and rank of a run), DDP wrappers
6. Training (`helpers.train`, a package; import every name from `helpers.train`)
   - `train.loop`       losses, optimizers by name, one epoch, `History`
   - `train.callbacks`  `Callback`, `TrainState`, `StopOnNonFiniteLoss`
   - `train.schedules`  warmup, warmup + cosine, batch-size scaling of the learning rate
   - `train.fit`        `fit`: epochs, validation, early stopping, checkpoints, exact resume
   - `train.evaluate`   `predict`, `evaluate`, `forecast_metrics`
   - `train.recipes`    standard recipes: `train_forecaster` (STGCN), `fit_lstm_forecaster`
   - `optim`      optimizer update rules by hand, test surfaces, optimizer paths (notebook 05)
   - `node_task`  notebook 07's next-step node task and depth sweep
   - `speed`      memory of a step, timing, the training tricks of notebook 09; `hooks` activation statistics
7. Front ends
   - `cli`        the command line `python -m helpers.train` (train/__main__.py calls it)
   - `ddp_demo`   `torchrun -m helpers.ddp_demo`: a tiny DDP run for notebook 10 and the tests
   - `widgets`    one module per notebook (`widgets.nb05`, ...) over `widgets.base`
   - `exercises`  the exercise checks, one module per notebook; `exercises.editions` the student edition
"""

from helpers.notebook import seed_everything, setup_notebook, show_source

__all__ = ["seed_everything", "setup_notebook", "show_source"]
__version__ = "0.1.0"
