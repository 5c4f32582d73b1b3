"""The command line `python -m helpers.train`: train a forecaster on a network time series and
report its errors per horizon step (`python -m helpers.train --help`).

A run loads the data (`load_data`: the shipped metro data, Los-loop, or a folder of CSV files),
builds the model (`build_model`: STGCN or LSTM; or a baseline that needs no training), trains it
with `helpers.train.train_forecaster`, evaluates it on the test part, and writes checkpoint.pt,
metrics.json and predictions.png to --out (default `default_out`: runs/DATA-MODEL). Under torchrun
it is one process of a DistributedDataParallel job; only rank 0 prints and writes.

Nothing is lost and nothing is silently wrong: a folder that already holds a run is refused unless
--resume continues it (with the same settings; only --epochs, --patience and where it runs may
change) or --overwrite replaces it; a run whose loss stops being finite ends at once with exit
status 1, keeping the checkpoint of its last good epoch; metrics.json and the --json line are
strict JSON (null where a number is missing).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import DataLoader

from helpers.checks import check_int
from helpers.data import (
    GraphTimeSeries,
    Splits,
    channel_first,
    load_csv_folder,
    load_los_loop,
    load_metro,
    make_splits,
    read_holidays,
    split_bounds,
)
from helpers.distributed import Runtime, setup_runtime, shutdown
from helpers.files import load_checkpoint, write_atomic
from helpers.graph import OPERATOR_LAYOUTS
from helpers.models import STGCN, LSTMForecaster, STGCNConfig, baseline_forecast, count_parameters
from helpers.notebook import seed_everything
from helpers.plots import figure_png, plot_forecast
from helpers.speed import keep_freed_memory
from helpers.train import (
    CLOCKS,
    FORECASTS,
    LOSS_NAMES,
    ForecastData,
    History,
    StopOnNonFiniteLoss,
    forecast_in_units,
    forecast_inputs,
    forecast_metrics,
    predict,
    target_steps,
    train_forecaster,
)

__all__ = ["MODEL_NAMES", "build_parser", "load_data", "build_model", "default_out", "check_resume",
           "run", "main", "TrainingDiverged"]

#: The models of --model: two networks, and two baselines that need no training.
MODEL_NAMES = ("stgcn", "lstm", "ha", "persistence")
_BASELINES = ("ha", "persistence")


# --- the arguments -------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage block) and exits with status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see python -m helpers.train --help)\n")


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not 0 < value < math.inf:
            finite = " finite" if kind is float else ""
            raise argparse.ArgumentTypeError(f"expected a positive{finite} {kind.__name__}, "
                                             f"got {text!r}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints, got {text!r}")
    return values


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) <= 0 or abs(sum(values) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(f"expected three positive fractions summing to 1 "
                                         f"(train,val,test), got {text!r}")
    return values


_EXAMPLES = ("examples: python -m helpers.train --data metro --epochs 5 --out runs/metro | "
            "python -m helpers.train --data los-loop --data-root ~/data/los-loop --horizon 3 "
            "--out runs/los | python -m helpers.train --data my_network/ --interval-minutes 15 "
            "--model lstm --out runs/mine")


def build_parser() -> argparse.ArgumentParser:
    """The parser of `python -m helpers.train`."""
    p = _Parser(prog="python -m helpers.train", epilog=_EXAMPLES,
                description="Train a forecaster on a network time series and report its errors "
                            "per horizon step.")
    p.add_argument("--data", required=True,
                   help="'metro' (shipped), 'los-loop' (see --data-root), or a folder holding "
                        "series.csv (time x nodes, node names in the header) and adjacency.csv "
                        "(nodes x nodes)")
    p.add_argument("--data-root",
                   help="folder of los_speed.csv and los_adj.csv (downloaded there if missing)")
    p.add_argument("--interval-minutes", type=_positive(int),
                   help="minutes per step of your series.csv when it has no timestamp column")
    p.add_argument("--model", choices=MODEL_NAMES, default="stgcn")
    p.add_argument("--epochs", type=_positive(int), default=30)
    p.add_argument("--batch-size", type=_positive(int), default=32)
    p.add_argument("--input-len", type=_positive(int), default=12, help="steps the model sees")
    p.add_argument("--horizon", type=_positive(int), default=3, help="steps it predicts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder for checkpoint.pt, metrics.json and "
                                               "predictions.png (default: runs/DATA-MODEL)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto",
                   help="under torchrun: how processes exchange gradients (auto: nccl on GPUs, "
                        "gloo on CPUs)")
    p.add_argument("--json", action="store_true",
                   help="print the results as one JSON object on the last line")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt with "
                   "the same settings (only --epochs, --patience and where it runs may change)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (without it such a folder is refused)")
    p.add_argument("--split", type=_fractions, default=(0.7, 0.1, 0.2),
                   help="train,val,test fractions")
    p.add_argument("--per-node", action="store_true",
                   help="z-score each node with its own mean and std")
    p.add_argument("--lr", type=_positive(float), default=1e-3)
    p.add_argument("--patience", type=_positive(int), default=5,
                   help="epochs without improvement before stopping")
    p.add_argument("--loss", choices=LOSS_NAMES, default="mse")
    p.add_argument("--cross-gaps", action="store_true", help="let windows cross gaps in the "
                   "timestamps (e.g. the night); by default each lies inside regular steps")
    p.add_argument("--time-of-day", action="store_true", help="the same as --clock time")
    p.add_argument("--clock", choices=CLOCKS, default="auto", help="inputs from the calendar: "
                   "time of day (time), and day type (time+day); auto: time+day given timestamps")
    p.add_argument("--forecast", choices=FORECASTS, default="auto", help="the reading (level) or "
                   "its deviation from the historical average; auto: deviation given timestamps")
    p.add_argument("--target", help="channel to forecast (default: the first; all are inputs)")
    p.add_argument("--holidays", help="file of ISO dates, one a line: the non-working days")
    p.add_argument("--mape-min-target", type=_positive(float), help="leave targets below this out of MAPE "
                   "(default: 10 for metro counts, else 1e-6)")
    stgcn = p.add_argument_group("STGCN")
    stgcn.add_argument("--channels", type=_int_list, default=(64, 16, 64),
                       help="temporal,spatial,temporal channels of each ST-Conv block")
    stgcn.add_argument("--blocks", type=_positive(int), default=2)
    stgcn.add_argument("--kt", type=_positive(int), default=3, help="temporal kernel size")
    stgcn.add_argument("--ks", type=_positive(int), default=3, help="Chebyshev order")
    stgcn.add_argument("--graph-conv", choices=("cheb", "gcn"), default="cheb")
    stgcn.add_argument("--graph-operator", choices=OPERATOR_LAYOUTS, default="auto", help="layout of the "
                       "graph operator (auto: sparse for a large sparse graph, where it is faster)")
    stgcn.add_argument("--predict-change", action="store_true",
                       help="forecast the change from the last input step (persistence built in)")
    p.add_argument("--hidden", type=_positive(int), default=64, help="LSTM hidden size")
    p.add_argument("--threads", type=_positive(int),
                   help="torch CPU threads (default: torch's choice)")
    return p


# --- data and models -----------------------------------------------------------------------------
def load_data(data: str, data_root: str | None = None, interval_minutes: int | None = None,
              holidays: str | None = None) -> GraphTimeSeries:
    """The dataset named on the command line: "metro", "los-loop" or a folder of CSV files;
    `holidays` (a file of ISO dates) replaces the dataset's own non-working days."""
    if data in ("metro", "los-loop"):
        ds = load_metro() if data == "metro" else load_los_loop(data_root)
        if holidays is not None:
            ds.meta["holidays"] = read_holidays(holidays)
        return ds
    folder = Path(data)
    if not folder.is_dir():
        raise ValueError(f"--data: expected 'metro', 'los-loop' or a folder holding series.csv and "
                         f"adjacency.csv, got {data!r} (no such folder)")
    return load_csv_folder(folder, interval_minutes, holidays=holidays)


def build_model(args: argparse.Namespace, ds: GraphTimeSeries) -> nn.Module:
    """An STGCN or an LSTM forecaster sized for the dataset `ds` and the arguments."""
    if args.model == "lstm":
        return LSTMForecaster(in_features=ds.num_channels, hidden_size=args.hidden,
                              horizon=args.horizon)
    if len(args.channels) != 3:
        raise ValueError(f"--channels: expected three widths (temporal,spatial,temporal), "
                         f"got {args.channels}")
    config = STGCNConfig(num_nodes=ds.num_nodes, input_len=args.input_len, horizon=args.horizon,
                         in_channels=ds.num_channels, blocks=(args.channels,) * args.blocks,
                         Kt=args.kt, Ks=args.ks, graph_conv=args.graph_conv,
                         predict_change=args.predict_change, graph_operator=args.graph_operator)
    return STGCN(config, ds.adjacency)


def default_out(data: str, model: str) -> Path:
    """The folder when --out is not given: runs/<data name>-<model>, e.g. runs/metro-stgcn."""
    return Path("runs") / f"{Path(data).name or 'data'}-{model}"


# --- one run -------------------------------------------------------------------------------------
def run(args: argparse.Namespace, runtime: Runtime) -> dict:
    """Load, train (or fit a baseline), evaluate on the test part, write --out; returns the results
    dict."""
    out = _out_folder(args)
    if args.resume:
        check_resume(args, out / "checkpoint.pt")
    ds = channel_first(load_data(args.data, args.data_root, args.interval_minutes, args.holidays),
                       args.target)
    data = ForecastData(ds, None)  # baselines read the series as it is
    if args.model not in _BASELINES:
        data = forecast_inputs(ds, split_bounds(ds.num_steps, args.split)[0][1],
                               "time" if args.time_of_day else args.clock, args.forecast)
    splits = make_splits(data.ds, args.input_len, args.horizon, fractions=args.split,
                         per_node=args.per_node, cross_gaps=args.cross_gaps)
    if args.model == "ha" and ds.timestamps is None:
        raise ValueError("--model ha needs timestamps: give series.csv a first column named "
                         "'timestamp'")
    if args.model not in _BASELINES:
        _check_sizes(args, data.ds, len(splits.train), runtime)  # before allocating anything
    if args.overwrite and runtime.is_main:  # the arguments and the data are good: replace the run
        for name in _RUN_FILES:
            (out / name).unlink(missing_ok=True)
    seed_everything(args.seed)
    result = {"data": args.data, "model": args.model, "nodes": ds.num_nodes,
              "input_len": args.input_len, "horizon": args.horizon,
              "interval_minutes": ds.interval_minutes, "target": ds.channel_names[0],
              "inputs": data.ds.channel_names,
              "unit": ds.meta.get("unit", ds.channel_names[0]), "test_windows": len(splits.test),
              "windows_across_gaps_removed": splits.removed}
    if args.model in _BASELINES:
        pred, target = baseline_forecast(args.model, ds, splits)
        result |= {"parameters": 0, "epochs_run": 0}
        out.mkdir(parents=True, exist_ok=True)
    else:
        pred, target, trained = _train_and_predict(args, ds, data, splits, out, runtime)
        result |= trained
    min_target = args.mape_min_target
    if min_target is None:
        min_target = 10.0 if args.data == "metro" else 1e-6
    result["metrics"] = forecast_metrics(pred, target, min_target=min_target)
    result["out"] = str(out)
    if runtime.is_main:
        write_atomic(out / "metrics.json", (_json_text(result, indent=2) + "\n").encode())
        png = _forecast_png(ds, splits, pred, target, f"{args.model} on {args.data}")
        write_atomic(out / "predictions.png", png)
    return result


def _check_sizes(args: argparse.Namespace, ds: GraphTimeSeries, windows: int, runtime: Runtime):
    """Refuse, before allocating, a batch larger than the training set or a model too big to train."""
    if args.batch_size > windows:
        raise ValueError(f"--batch-size: expected at most the {windows} training windows, got {args.batch_size}")
    dense = argparse.Namespace(**{**vars(args), "graph_operator": "dense"})  # meta: no sparse mm
    sizes = ("hidden",) if args.model == "lstm" else ("channels", "blocks", "input_len")
    runtime.check_memory(lambda: build_model(dense, ds), (args.batch_size, args.input_len, ds.num_nodes,
                         ds.num_channels), " ".join(_option(k, _plain(vars(args)[k])) for k in (*sizes, "batch_size")))


def _out_folder(args: argparse.Namespace) -> Path:
    """--out (or `default_out`), checked before anything is loaded or written."""
    out = Path(args.out) if args.out else default_out(args.data, args.model)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: expected a folder (or a new name), got the file {out}")
    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite: expected one of them (continue the run in "
                         "--out, or replace it), got both")
    if args.resume and not (out / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"--resume: expected {out / 'checkpoint.pt'} from an earlier run, "
                                f"found none")
    found = [name for name in _RUN_FILES if (out / name).exists()]
    if found and not (args.resume or args.overwrite):
        raise ValueError(f"--out: {out} already holds a run ({', '.join(found)}); pass --resume to "
                         f"continue it, --overwrite to replace it, or choose another --out")
    nearest = next(p for p in (out.absolute(), *out.absolute().parents) if p.exists())
    try:  # found now, not after an epoch of training
        tempfile.TemporaryFile(dir=nearest).close()
    except OSError as exc:
        raise OSError(f"--out: expected a folder it can write in, got {out} ({exc.strerror})") from None
    return out


#: The files a run writes to --out.
_RUN_FILES = ("checkpoint.pt", "metrics.json", "predictions.png")
#: What a resumed run may change: how long it trains, where it runs, what it prints.
_RESUME_FREE = frozenset({"epochs", "patience", "resume", "overwrite", "out", "json", "device",
                          "backend", "threads", "data_root", "mape_min_target",
                          "graph_operator"})
#: Options that only one of the networks reads (the other's may differ on resume).
_ONLY_FOR = {"stgcn": {"hidden"}, "lstm": {"channels", "blocks", "kt", "ks", "graph_conv",
                                           "predict_change"}}


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _option(name: str, value) -> str:
    if isinstance(value, bool):
        return f"{'' if value else 'no '}--{name.replace('_', '-')}"
    if isinstance(value, list):
        value = ",".join(map(str, value))
    return f"--{name.replace('_', '-')} {value}"


def check_resume(args: argparse.Namespace, path: Path) -> None:
    """Refuse, in one line, a --resume that cannot continue the run saved in `path`: other settings
    than the stored arguments (except those in `_RESUME_FREE`), or fewer --epochs than already
    run."""
    ckpt = load_checkpoint(path)
    stored = ckpt.get("extra", {}).get("args") if isinstance(ckpt.get("extra"), dict) else None
    if not isinstance(stored, dict) or not isinstance(ckpt.get("epoch"), int):
        raise ValueError(f"--resume: expected a checkpoint written by python -m helpers.train in "
                         f"{path}, got one without its arguments or epoch")
    defaults = build_parser()
    skip = _RESUME_FREE | _ONLY_FOR.get(args.model, set())
    differ = [k for k, v in vars(args).items() if k not in skip
              and _plain(v) != stored.get(k, _plain(defaults.get_default(k)))]
    if differ:
        was = " ".join(_option(k, stored.get(k, _plain(defaults.get_default(k)))) for k in differ)
        now = " ".join(_option(k, _plain(getattr(args, k))) for k in differ)
        raise ValueError(f"--resume: the run in {path.parent} was trained with {was}, this run "
                         f"asks for {now}; only --epochs, --patience and where it runs may change "
                         f"(train other settings into another --out, or pass --overwrite instead)")
    if args.epochs < ckpt["epoch"]:
        raise ValueError(f"--epochs: the run in {path.parent} has trained {ckpt['epoch']} epochs; "
                         f"expected --epochs >= {ckpt['epoch']}, got {args.epochs}")


def _train_and_predict(args: argparse.Namespace, ds: GraphTimeSeries, data: ForecastData,
                       splits: Splits, out: Path, runtime: Runtime
                       ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Train the network of --model on `data` (checkpoint in `out`) and forecast the test part in
    the units of `ds`; returns (predictions, targets, the run's entries of the results)."""
    model = build_model(args, data.ds).to(runtime.device)
    out.mkdir(parents=True, exist_ok=True)
    plain_args = {k: _plain(v) for k, v in vars(args).items()}
    checkpoint = out / "checkpoint.pt"
    # several processes could stop at different steps and wait for each other: they check per epoch
    callbacks = [StopOnNonFiniteLoss(verbose=False)] if runtime.world_size == 1 else []
    history = train_forecaster(model, splits, epochs=args.epochs, batch_size=args.batch_size,
                               lr=args.lr, loss=args.loss, seed=args.seed, patience=args.patience,
                               progress=runtime.is_main and not args.json, checkpoint=checkpoint,
                               resume_from=checkpoint if args.resume else None,
                               callbacks=callbacks, extra={"model": args.model, "args": plain_args},
                               runtime=runtime)
    _check_finite(history, checkpoint)
    pred, _ = predict(model, DataLoader(splits.test, batch_size=256), device=runtime.device)
    pred = forecast_in_units(pred, splits, data)
    target = baseline_forecast("persistence", ds, splits)[1]  # the data's own units, never unscaled
    return pred, target, {"parameters": count_parameters(model),
                          "epochs_run": len(history.train_loss), "best_epoch": history.best_epoch,
                          "stop_reason": history.stop_reason,
                          "train_seconds": round(sum(history.seconds), 3)}


class TrainingDiverged(RuntimeError):
    """A run whose loss stopped being finite (exit status 1)."""


def _check_finite(history: History, checkpoint: Path) -> None:
    """Raise `TrainingDiverged` when an epoch's loss is not finite, naming the checkpoint kept."""
    epochs = list(zip(history.train_loss, history.val_loss or history.train_loss, strict=True))
    bad = [i for i, losses in enumerate(epochs) if not all(map(math.isfinite, losses))]
    if not bad:
        return
    (train, val), stop = epochs[bad[0]], history.stop_reason or ""
    reason = (stop.removeprefix("stopped: ") if stop.startswith("stopped: the loss") else
              f"the loss is {train} (validation {val}) at epoch {bad[0] + 1}; lower the learning "
              f"rate, add warmup, or clip the gradients")
    kept = (f"{checkpoint} keeps epoch {bad[0]}, the last good one" if bad[0] > 0 else
            "no epoch ended with finite losses, so no checkpoint was written")
    raise TrainingDiverged(f"training diverged: {reason}; {kept}")


def _json_text(result: dict, indent: int | None = None) -> str:
    """`result` as strict JSON: NaN and infinities (a missing number) become null."""

    def finite(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return value

    return json.dumps(finite(result), indent=indent, allow_nan=False)


# --- what a run shows ----------------------------------------------------------------------------
def _report_table(metrics: dict, interval_minutes: int, unit: str) -> str:
    lines = [f"{'step':>4} {'minutes':>8} {'MAE':>10} {'RMSE':>10} {'MAPE %':>8}   ({unit})"]
    for k, step in enumerate(metrics["step"]):
        lines.append(f"{step:>4} {step * interval_minutes:>8} {metrics['mae'][k]:>10.4f} "
                     f"{metrics['rmse'][k]:>10.4f} {100 * metrics['mape'][k]:>8.2f}")
    o = metrics["overall"]
    lines.append(f"{'all':>4} {'':>8} {o['mae']:>10.4f} {o['rmse']:>10.4f} {100 * o['mape']:>8.2f}")
    return "\n".join(lines)


def _forecast_png(ds: GraphTimeSeries, splits: Splits, pred: torch.Tensor, target: torch.Tensor,
                  title: str) -> bytes:
    """Truth and forecast (first and last horizon step) at the busiest node over the first days of
    the test part."""
    node = int(torch.nan_to_num(target[:, 0]).mean(dim=0).argmax())
    first = target_steps(splits)[:, 0].contiguous()  # the first step each test window forecasts
    samples = min(len(target), 3 * 1440 // ds.interval_minutes)
    stamps = ds.timestamps
    times = stamps[first[:samples].numpy()] if stamps is not None else None
    horizon = target.shape[1]
    forecasts = {f"{ds.interval_minutes} min ahead": pred[:samples, 0, node]}
    if horizon > 1:  # the forecast made horizon steps earlier for the same time (none after a gap)
        last = first + horizon - 1
        earlier = torch.searchsorted(last, first[:samples]).clamp(max=len(last) - 1)
        late = torch.where(last[earlier] == first[:samples], pred[earlier, -1, node], float("nan"))
        forecasts[f"{horizon * ds.interval_minutes} min ahead"] = late
    fig = Figure(figsize=(8.0, 3.0), dpi=90, layout="constrained")
    plot_forecast(target[:samples, 0, node], forecasts, times, ax=fig.subplots(),
                  title=f"{title}: node {ds.node_names[node]}",
                  ylabel=ds.meta.get("unit", ds.channel_names[0]))
    return figure_png(fig, dpi=90, colors=None)


def _print_report(result: dict, as_json: bool) -> None:
    print(f"{result['model']} on {result['data']}: {result['test_windows']} test windows, "
          f"{result['nodes']} nodes, {result['parameters']:,} parameters")
    print(_report_table(result["metrics"], result["interval_minutes"], result["unit"]))
    written = sorted(p.name for p in Path(result["out"]).iterdir() if not p.name.startswith("."))
    print(f"wrote {', '.join(written)} to {result['out']}")
    if as_json:
        print(_json_text(result))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m helpers.train ...`: returns the exit status (0 ok, 1 training diverged, 2 bad
    arguments or files)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # a bad argument exits here with status 2 and one line
    try:
        if args.threads:  # more threads than CPUs can crash torch
            torch.set_num_threads(check_int("--threads", args.threads, 1, os.cpu_count()))
        keep_freed_memory()  # reuse freed activations instead of fresh zero-filled pages
        runtime = setup_runtime(args.device, args.backend)
        result = run(args, runtime)
    except (ValueError, OSError) as exc:  # OSError: missing or unreadable files, failed downloads
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: checkpoints are written atomically, the last one is whole
        print("interrupted; resume with --resume", file=sys.stderr)
        return 130
    if runtime.is_main:
        _print_report(result, args.json)
    if runtime.world_size > 1:
        shutdown()
    return 0
