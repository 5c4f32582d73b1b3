"""Plant known bugs one at a time and see whether the fast tests catch them (mutation testing by hand).

    .venv/bin/python tools/mutants.py            # every mutant
    .venv/bin/python tools/mutants.py --list     # names, files and the tests each one runs
    .venv/bin/python tools/mutants.py predict_no_eval cli_ignores_patience   # only these
    .venv/bin/python tools/mutants.py --suite tests/test_train.py tests/test_stgcn.py   # these tests for all
    .venv/bin/python tools/mutants.py --tests-from HEAD~5 --suite tests/test_train.py  # an older suite's strength

Each mutant is a text replacement in one file of `helpers/`. It is applied to a COPY of the repository in a
temporary folder (never to this tree), and the tests named for it run there with `python -m pytest -x -q`;
the copy's `helpers` is imported first (it is the working directory, and PYTHONPATH points at it). A mutant
is "caught" when those tests fail, "survived" when they pass. A replacement whose text is no longer found
(the code changed) is reported as "stale" so the list can be brought up to date rather than silently pass.
First the unmutated copy runs every named test once: if that fails, nothing is measured.

Prints a table mutant -> caught/survived and the share caught; exits 1 if any mutant survived or is stale.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Not copied: the environment, history, outputs and caches.
IGNORED = (".venv", ".git", "runs", "student", "build", "__pycache__", ".ruff_cache", ".pytest_cache",
           "*.egg-info", ".ipynb_checkpoints")


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # file, relative to the repository
    edits: tuple[tuple[str, str], ...]  # (old text, new text); each old text must occur exactly once
    tests: tuple[str, ...]  # pytest node ids (files or files::tests)
    why: str


T = "tests/test_train.py::"
MUTANTS = [
    Mutant("cli_metrics_in_mixed_units", "helpers/cli.py",
           (("    target = splits.scaler.inverse_transform(target, channel=0)\n", ""),),
           (T + "test_cli_trains_and_writes_checkpoint_metrics_and_plot",),
           "the CLI compares forecasts in passengers with targets in z-scores"),
    Mutant("cli_ignores_patience", "helpers/cli.py",
           (("patience=args.patience,", "patience=None,"),),
           (T + "test_cli_stops_early_with_patience",),
           "--patience never reaches training"),
    Mutant("make_optimizer_adamw_is_adam", "helpers/train/loop.py",
           (('"AdamW": torch.optim.AdamW,', '"AdamW": torch.optim.Adam,'),),
           (T + "test_make_optimizer_names_and_momentum",
            "tests/test_notebook05_claims.py::test_adam_weight_decay_is_not_adamw"),
           "make_optimizer('AdamW') returns Adam (L2 decay instead of decoupled decay)"),
    Mutant("predict_no_eval", "helpers/train/evaluate.py",
           (("    model.eval()\n    preds, targets = [], []", "    preds, targets = [], []"),),
           (T + "test_predict_switches_to_eval_mode",),
           "predict() runs a model left in training mode (dropout on, BatchNorm batch statistics)"),
    Mutant("evaluate_loss_builds_graphs", "helpers/train/loop.py",
           (("    with torch.no_grad():  # no graph", "    with torch.enable_grad():  # no graph"),),
           (T + "test_evaluate_is_the_full_batch_loss_in_eval_mode_without_graph",),
           "evaluate_loss records autograd graphs"),
    Mutant("train_loss_mean_of_batch_means", "helpers/train/loop.py",
           (("        total += loss.item() * len(x)", "        total += loss.item()"),
            ("        count += len(x)\n        if i % accumulation_steps",
             "        count += 1\n        if i % accumulation_steps")),
           (T + "test_fit_equals_a_hand_written_loop",),
           "the epoch's training loss is a mean of batch means (wrong with an unequal last batch)"),
    Mutant("cosine_length_in_epochs", "helpers/train/recipes.py",
           (("    steps = epochs * len(train_loader)\n", "    steps = epochs\n"),),
           (T + "test_train_forecaster_decays_the_learning_rate_over_all_batches",),
           "train_forecaster's cosine spans `epochs` optimizer steps instead of every batch"),
    Mutant("momentum_lr_in_buffer", "helpers/optim.py",
           (("        buf = grad.clone()\n", "        buf = grad.mul(lr)\n"),
            (".add(grad, alpha=1 - dampening)", ".add(grad, alpha=lr * (1 - dampening))"),
            ("    direction = grad.add(buf, alpha=momentum) if nesterov else buf\n"
             "    return param.add(direction, alpha=-lr)",
             "    direction = grad.mul(lr).add(buf, alpha=momentum) if nesterov else buf\n"
             "    return param.add(direction, alpha=-1)")),
           ("tests/test_optim.py",),
           "momentum folds the learning rate into the buffer (same path only at a constant lr)"),
    Mutant("propagate_transposed", "helpers/graph/operators.py",
           (("    out = operator @ moved.reshape(", "    out = operator.t() @ moved.reshape("),),
           ("tests/test_graph.py",),
           "propagate multiplies by the transposed operator (the same on undirected graphs only)"),
    Mutant("layernorm_over_channels_only", "helpers/models/stgcn.py",
           (("return nn.LayerNorm([self.config.num_nodes, channels])", "return nn.LayerNorm(channels)"),),
           ("tests/test_stgcn.py",),
           "the STGCN's LayerNorm normalises each node alone instead of nodes and channels together"),
    Mutant("output_head_node_horizon_order", "helpers/models/stgcn.py",
           (("return h.reshape(b, n, self.horizon, self.out_channels).transpose(1, 2)",
             "return h.reshape(b, self.horizon, n, self.out_channels)"),),
           ("tests/test_stgcn.py",),
           "the output head's values are read as (horizon, node) instead of (node, horizon)"),
    Mutant("output_head_channel_horizon_order", "helpers/models/stgcn.py",
           (("return h.reshape(b, n, self.horizon, self.out_channels).transpose(1, 2)",
             "return h.reshape(b, n, self.out_channels, self.horizon).permute(0, 3, 1, 2)"),),
           ("tests/test_stgcn.py",),
           "with several output channels, the head's values are read as (channel, horizon)"),
]


def copy_repository(dest: Path) -> Path:
    """This repository without its environment and outputs, at dest/main, with dest/shared beside it (a link to
    the real shared folder, which some tests read)."""
    main = dest / "main"
    shutil.copytree(REPO, main, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True)
    shared = REPO.parent / "shared"
    if shared.is_dir():
        (dest / "shared").symlink_to(shared, target_is_directory=True)
    return main


def apply(mutant: Mutant, root: Path) -> str | None:
    """Plant the mutant in the copy at root; returns why it could not be planted, or None."""
    path = root / mutant.path
    text = path.read_text()
    for old, new in mutant.edits:
        found = text.count(old)
        if found != 1:
            return f"{mutant.path}: expected the text once, found it {found} times: {old.strip()[:60]!r}"
        text = text.replace(old, new)
    path.write_text(text)
    return None


def run_tests(root: Path, tests: tuple[str, ...]) -> tuple[bool, str]:
    """Run the tests in the copy at root; returns (passed, the last lines of the output)."""
    env = os.environ | {"PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode == 0, "\n".join(lines[-3:])


def tests_from_commit(commit: str, root: Path) -> None:
    """Replace the copy's tests/*.py by those of `commit` (files added since then are removed)."""
    listing = subprocess.run(["git", "ls-tree", "--name-only", commit, "tests/"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    for path in (root / "tests").glob("*.py"):
        path.unlink()
    for name in (n for n in listing if n.endswith(".py")):
        text = subprocess.run(["git", "show", f"{commit}:{name}"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout
        (root / name).write_text(text)


def check_imports_the_copy(root: Path) -> None:
    env = os.environ | {"PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", "import helpers; print(helpers.__file__)"], cwd=root, env=env,
                          capture_output=True, text=True, check=True)
    if not Path(done.stdout.strip()).resolve().is_relative_to(root.resolve()):
        raise SystemExit(f"the copy would import helpers from {done.stdout.strip()}, not from {root}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="only these mutants (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--suite", nargs="+", metavar="TEST",
                        help="run these tests (files or node ids) for every mutant instead of its own")
    parser.add_argument("--tests-from", metavar="COMMIT",
                        help="use the test files (tests/*.py) of this git commit, e.g. to measure an older suite "
                             "(read with `git show`; nothing in this tree changes)")
    args = parser.parse_args(argv)
    known = {m.name: m for m in MUTANTS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown mutant(s) {', '.join(unknown)}; expected some of {', '.join(known)}")
    chosen = [known[n] for n in args.names] if args.names else MUTANTS
    if args.list:
        for m in chosen:
            print(f"{m.name:36} {m.path:28} {m.why}\n{'':36} tests: {' '.join(m.tests)}")
        return 0

    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        pristine = copy_repository(Path(tmp) / "pristine")
        check_imports_the_copy(pristine)
        if args.tests_from:
            tests_from_commit(args.tests_from, pristine)
        if args.suite:
            chosen = [Mutant(m.name, m.path, m.edits, tuple(args.suite), m.why) for m in chosen]
        all_tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        passed, tail = run_tests(pristine, all_tests)
        if not passed:
            print(f"the unmutated copy fails its tests, so nothing can be measured:\n{tail}")
            return 2
        rows = []
        for m in chosen:
            start = time.perf_counter()
            root = Path(tmp) / m.name / "main"
            shutil.copytree(pristine, root, symlinks=True)
            if (Path(tmp) / "pristine" / "shared").exists():
                (root.parent / "shared").symlink_to((Path(tmp) / "pristine" / "shared").resolve())
            problem = apply(m, root)
            if problem:
                rows.append((m.name, "stale", problem))
            else:
                passed, tail = run_tests(root, m.tests)
                rows.append((m.name, "survived" if passed else "caught", f"{time.perf_counter() - start:.0f} s"))
            shutil.rmtree(root.parent)
            print(f"{rows[-1][0]:36} {rows[-1][1]:9} {rows[-1][2]}", flush=True)

    caught = sum(r[1] == "caught" for r in rows)
    print("\n| mutant | result |\n|---|---|")
    for name, result, _ in rows:
        print(f"| {name} | {result} |")
    print(f"\ncaught {caught} of {len(rows)} ({100 * caught / len(rows):.0f}%)")
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
