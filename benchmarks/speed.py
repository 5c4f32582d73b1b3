"""Notebook 09's measurements at full size: every training trick on the paper-sized STGCN and the metro data.

Run: OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/speed.py [--threads 2] [--quick]
Writes benchmarks/results/speed.json (atomically) and prints the tables. Every time is the median of
repeated calls with its interquartile range (`helpers.speed.time_spread`); a trick whose range overlaps
the baseline's is "no difference" (`time_verdict`). The baseline is measured twice, first and last (the
second row shows how far an unchanged step drifts). What it measures:
- the memory of one training step by kind (parameters, gradients, Adam state, saved activations) and the
  measured peak of the step;
- time per step and peak memory of every trick in `helpers.speed.TRICKS`, and of evaluation with and
  without `no_grad`, relative to the plain step; on a GPU also fp16 with a scaler;
- `torch.compile`'s first call with an empty compile cache (a fresh TORCHINDUCTOR_CACHE_DIR) and again
  with the cache on disk warm; bf16 against float32 with one thread;
- the widget's table: every combination of the memory tricks at three batch sizes;
- Conv-BN-ReLU inference before and after `fuse_conv_bn`;
- one epoch of batches from `DataLoader` settings against plain tensor indexing.
Timings depend on the machine and its load (the load average is recorded); they are reported, never asserted.
--quick: small repeats and sizes, to check that the script runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: no OpenMP spin-waiting on a busy machine
# before torch: an empty compile cache of our own, so the first torch.compile call is a cold one
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="speed-inductor-"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers.data import load_metro, make_splits  # noqa: E402
from helpers.files import write_atomic  # noqa: E402
from helpers.models import STGCN, STGCNConfig, count_parameters  # noqa: E402
from helpers.speed import (  # noqa: E402
    fuse_conv_bn,
    make_train_step,
    measure_step,
    memory_breakdown,
    noise_band,
    peak_memory,
    time_spread,
    time_verdict,
)

RESULTS = Path(__file__).resolve().parent / "results" / "speed.json"
MEMORY_TRICKS = ("inplace", "free", "accumulate", "checkpoint")
BF16_CAP_SECONDS = 30.0  # a bf16 step predicted to take longer than this is not run at full size


def bf16_flags() -> list[str] | None:
    """The CPU's bfloat16 instruction flags (avx512_bf16, amx_bf16) from /proc/cpuinfo; None off Linux."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return None
    return sorted(set(cpuinfo.read_text().split()) & {"avx512_bf16", "amx_bf16"})


def metro_batch(batch_size: int):
    """The model, one training batch (x, y) and the splits, at the workbook's default STGCN size."""
    ds = load_metro()
    splits = make_splits(ds, input_len=12, output_len=3)
    torch.manual_seed(0)
    model = STGCN(STGCNConfig(num_nodes=ds.num_nodes, in_channels=ds.num_channels), ds.adjacency)
    x = torch.nan_to_num(splits.train.inputs[:batch_size], nan=0.0)
    y = torch.nan_to_num(splits.train.targets[:batch_size], nan=0.0)
    return model, x, y, splits


def trick_rows(model, x, y, repeats: int, device: torch.device) -> dict:
    """{label: {"seconds", "seconds_q1", "seconds_q3", "peak_bytes", "verdict"}} for the baseline, each
    trick alone, evaluation, and the baseline again."""
    model, x, y = model.to(device), x.to(device), y.to(device)
    rows = {"baseline": measure_step(model, x, y, (), repeats)}
    for trick in MEMORY_TRICKS:
        rows[trick] = measure_step(model, x, y, (trick,), repeats)
    precision = "fp16" if device.type == "cuda" else "bf16"
    rows[precision] = mixed_precision_row(model, x, y, precision, repeats, rows["baseline"]["seconds"])
    rows["compile"] = compile_row(model, x, y, repeats)
    rows["eval, grad on"] = measure_step(model, x, y, (), repeats, mode="eval")
    rows["eval, no_grad"] = measure_step(model, x, y, ("no_grad",), repeats, mode="eval")
    rows["baseline, again"] = measure_step(model, x, y, (), repeats)
    band = noise_band(rows["baseline"], rows["baseline, again"])
    for name, row in rows.items():
        if row["seconds"] is not None and not name.startswith("baseline"):
            row["verdict"] = time_verdict(row, rows["baseline"], band)
    rows["eval, no_grad"]["verdict"] = time_verdict(rows["eval, no_grad"], rows["eval, grad on"], band)
    rows["noise_band"] = band
    return rows


def mixed_precision_row(model, x, y, precision: str, repeats: int, baseline_seconds: float) -> dict:
    """bf16 (CPU) or fp16 (CUDA) autocast; first timed on an eighth of the batch, and not run at full size
    when that predicts more than BF16_CAP_SECONDS per step (emulated bfloat16 can be that slow)."""
    part = max(4, len(x) // 8)
    small = measure_step(model, x[:part], y[:part], (precision,), repeats=1)
    small_fp32 = measure_step(model, x[:part], y[:part], (), repeats=1)
    predicted = small["seconds"] / small_fp32["seconds"] * baseline_seconds
    if predicted < BF16_CAP_SECONDS:
        return measure_step(model, x, y, (precision,), repeats)
    return {"seconds": None, "peak_bytes": None, "note": f"skipped: predicted {predicted:.0f} s per step"}


def compile_row(model, x, y, repeats: int) -> dict:
    """torch.compile: the first call with the empty cache of this process (cold), then again after
    `torch._dynamo.reset()` with the compiled code in the on-disk cache (warm), then the step's time."""
    try:
        start = time.perf_counter()
        make_train_step(model, x, y, ("compile",))()
        cold = time.perf_counter() - start
        torch._dynamo.reset()
        start = time.perf_counter()
        make_train_step(model, x, y, ("compile",))()
        warm = time.perf_counter() - start
        row = measure_step(model, x, y, ("compile",), repeats)
        return {**row, "first_call_seconds_cold_cache": cold, "first_call_seconds_warm_cache": warm}
    except Exception as exc:  # a missing compiler or an unsupported op: report, do not fail the benchmark
        return {"seconds": None, "peak_bytes": None, "note": f"failed: {type(exc).__name__}: {exc}"[:300]}


def one_thread_rows(model, x, y, repeats: int) -> dict:
    """float32 and bf16 steps with one thread (bf16's speed depends on the threads); threads restored."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = {"baseline": measure_step(model, x, y, (), repeats)}
        rows["bf16"] = mixed_precision_row(model, x, y, "bf16", repeats, rows["baseline"]["seconds"])
        rows["baseline, again"] = measure_step(model, x, y, (), repeats)
        rows["noise_band"] = noise_band(rows["baseline"], rows["baseline, again"])
        for row in (rows["bf16"],):
            if row["seconds"] is not None:
                row["verdict"] = time_verdict(row, rows["baseline"], rows["noise_band"])
    finally:
        torch.set_num_threads(threads)
    return rows


def widget_rows(model, x, y, batch_sizes, repeats: int) -> list[dict]:
    """Every combination of MEMORY_TRICKS at each batch size: the widget's cached table."""
    rows = []
    for batch_size in batch_sizes:
        for flags in itertools.product((False, True), repeat=len(MEMORY_TRICKS)):
            tricks = tuple(t for t, on in zip(MEMORY_TRICKS, flags, strict=True) if on)
            cost = measure_step(model, x[:batch_size], y[:batch_size], tricks, repeats)
            rows.append({"batch_size": batch_size, "tricks": list(tricks), **cost})
    return rows


def fusion_rows(batch_size: int, repeats: int) -> dict:
    """Inference of three Conv2d-BatchNorm-ReLU layers over metro-shaped input, before and after fusion."""
    torch.manual_seed(0)
    layers = []
    channels = 2
    for width in (64, 64, 64):
        conv, bn = nn.Conv2d(channels, width, (3, 1), padding=(1, 0)), nn.BatchNorm2d(width)
        with torch.no_grad():
            bn.running_mean.normal_(0, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.5)
        layers.append((conv, bn))
        channels = width
    plain = nn.Sequential(*[m for conv, bn in layers for m in (conv, bn, nn.ReLU())]).eval()
    fused = nn.Sequential(*[m for conv, bn in layers for m in (fuse_conv_bn(conv, bn), nn.ReLU())]).eval()
    x = torch.randn(batch_size, 2, 12, 51)
    with torch.no_grad():
        difference = (plain(x) - fused(x)).abs().max().item()
        t_plain = time_spread(lambda: plain(x), repeats)
        t_fused = time_spread(lambda: fused(x), repeats)
        peak_plain, peak_fused = peak_memory(lambda: plain(x)), peak_memory(lambda: fused(x))
    return {"input": list(x.shape), "max_abs_difference": difference, "plain": t_plain, "fused": t_fused,
            "speedup": t_plain["seconds"] / t_fused["seconds"], "verdict": time_verdict(t_fused, t_plain),
            "plain_peak_bytes": peak_plain, "fused_peak_bytes": peak_fused}


def loading_rows(splits, batch_sizes, repeats: int) -> list[dict]:
    """Seconds for one shuffled epoch of (x, y) batches of the training windows, several ways."""
    data = splits.train
    inputs, targets = torch.nan_to_num(data.inputs, nan=0.0).contiguous(), data.targets.contiguous()

    def epoch_of(loader):
        def run():
            for xb, _ in loader:
                xb.sum()  # touch the batch

        return run

    def indexing(batch_size):
        def run():
            order = torch.randperm(len(inputs))
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                inputs[idx].sum()
                targets[idx]

        return run

    rows = []
    for batch_size in batch_sizes:
        settings = {
            "tensor indexing (x[idx])": indexing(batch_size),
            "DataLoader, num_workers=0": epoch_of(DataLoader(data, batch_size, shuffle=True)),
            # without CUDA pin_memory is off (torch refuses it): the same loader again, an A/A comparison
            "DataLoader, num_workers=0, pin_memory if CUDA": epoch_of(DataLoader(
                data, batch_size, shuffle=True, pin_memory=torch.cuda.is_available())),
            "DataLoader, num_workers=2": epoch_of(DataLoader(data, batch_size, shuffle=True, num_workers=2)),
            "DataLoader, num_workers=2, persistent": epoch_of(DataLoader(data, batch_size, shuffle=True,
                                                                         num_workers=2, persistent_workers=True)),
        }
        for name, run in settings.items():
            rows.append({"batch_size": batch_size, "setting": name, **time_spread(run, repeats)})
    return rows


def format_table(rows: dict, baseline: str = "baseline") -> str:
    base = rows[baseline]
    lines = [f"{'trick':<16} {'ms/step':>9} {'IQR ms':>15} {'x time':>7} {'peak MB':>9} {'x memory':>9}  verdict"]
    for name, r in rows.items():
        if name == "noise_band":
            lines.append(f"no-difference band: ratios within x{1 / (1 + r):.2f} .. x{1 + r:.2f}")
            continue
        if r["seconds"] is None:
            lines.append(f"{name:<16} {r['note']}")
            continue
        iqr = f"{1000 * r['seconds_q1']:.1f}-{1000 * r['seconds_q3']:.1f}"
        lines.append(f"{name:<16} {1000 * r['seconds']:>9.1f} {iqr:>15} {r['seconds'] / base['seconds']:>7.2f} "
                     f"{r['peak_bytes'] / 1e6:>9.2f} {r['peak_bytes'] / base['peak_bytes']:>9.2f}  "
                     f"{r.get('verdict', '')}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=11, help="timed calls per trick (the widget: a third)")
    parser.add_argument("--quick", action="store_true", help="few repeats, small sizes: only checks that it runs")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else args.repeats
    batch_size = 8 if args.quick else args.batch_size
    started = time.perf_counter()
    load = {"before": os.getloadavg()}
    model, x, y, splits = metro_batch(batch_size)
    memory = memory_breakdown(model, F.mse_loss, x, y, torch.optim.Adam(model.parameters()))
    result = {
        "command": "OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/speed.py" + " ".join([""] + (argv or
                                                                                                   sys.argv[1:])),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "bf16_instructions": bf16_flags(),
                    "load_average": load},
        "repeats": {"tricks": repeats, "widget": max(3, repeats // 3), "loading": max(3, repeats // 3)},
        "model": {"config": model.config.to_dict(), "parameters": count_parameters(model), "batch_size": batch_size},
        "memory": {**memory.as_dict(), "measured_peak_bytes": measure_step(model, x, y, (), 1)["peak_bytes"]},
        "cpu": trick_rows(model, x, y, repeats, torch.device("cpu")),
    }
    load["after cpu table"] = os.getloadavg()
    result["cpu_one_thread"] = one_thread_rows(model, x, y, repeats)
    if torch.cuda.is_available():
        result["cuda"] = trick_rows(model, x, y, repeats, torch.device("cuda"))
    result["widget"] = widget_rows(model, x, y, (8, 16, 32) if not args.quick else (4, 8),
                                   result["repeats"]["widget"])
    load["after widget table"] = os.getloadavg()
    result["fusion"] = fusion_rows(batch_size, repeats * 2)
    result["loading"] = loading_rows(splits, (32, 256) if not args.quick else (256,), result["repeats"]["loading"])
    load["after"] = os.getloadavg()
    result["seconds"] = time.perf_counter() - started
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, (json.dumps(result, indent=1) + "\n").encode())
    print(f"STGCN {count_parameters(model):,} parameters, batch {batch_size}, {args.threads} threads")
    print("memory of one step (MB):", {k: round(v / 1e6, 2) for k, v in result["memory"].items()})
    print(format_table(result["cpu"]))
    print("one thread:\n" + format_table(result["cpu_one_thread"]))
    compiled = result["cpu"]["compile"]
    if compiled["seconds"] is not None:
        print(f"compile, first call: {compiled['first_call_seconds_cold_cache']:.1f} s with an empty cache, "
              f"{compiled['first_call_seconds_warm_cache']:.1f} s with a warm one")
    print("load average:", {k: round(v[0], 2) for k, v in load.items()})
    if "cuda" in result:
        print(format_table(result["cuda"]))
    f = result["fusion"]
    print(f"fusion: max |difference| {f['max_abs_difference']:.2e}, speed-up {f['speedup']:.2f}x ({f['verdict']})")
    for row in result["loading"]:
        print(f"batch {row['batch_size']:>4}  {row['setting']:<46} {1000 * row['seconds']:>8.1f} ms/epoch "
              f"(IQR {1000 * row['seconds_q1']:.1f}-{1000 * row['seconds_q3']:.1f})")
    print(f"wrote {out} in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
