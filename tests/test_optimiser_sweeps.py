"""benchmarks/optimiser_sweeps.py: its rare-class metrics against brute-force definitions written another way."""

import importlib.util
from pathlib import Path

import pytest
import torch

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "optimiser_sweeps.py"
_SPEC = importlib.util.spec_from_file_location("optimiser_sweeps", _PATH)
sweeps = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(sweeps)


@pytest.fixture
def scored():
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(400, generator=g) < 0.05
    logits = torch.randn(400, generator=g, dtype=torch.float64) + 2.0 * truth
    return logits, truth


def test_average_precision_is_the_mean_precision_at_each_positive(scored):
    logits, truth = scored
    at_least = logits[:, None] <= logits[None, :]  # [i, j]: sample j ranks at or above sample i
    precision_at = (at_least & truth[None, :]).sum(1) / at_least.sum(1)  # (n,) precision when flagging down to i
    brute = precision_at[truth].mean().item()
    assert sweeps.average_precision(logits, truth) == pytest.approx(brute, abs=1e-6)  # float32 sums


def test_best_f1_threshold_beats_every_candidate(scored):
    logits, truth = scored
    best = sweeps.best_f1_threshold(logits, truth)
    f1 = [sweeps.scores_at(logits, truth, t)["f1"] for t in logits.tolist()]
    assert sweeps.scores_at(logits, truth, best)["f1"] == pytest.approx(max(f1), abs=1e-12)


def test_scores_at_counts_like_the_confusion_matrix(scored):
    logits, truth = scored
    s = sweeps.scores_at(logits, truth, 0.5)
    flagged = logits >= 0.5
    tp, fp, fn = (flagged & truth).sum().item(), (flagged & ~truth).sum().item(), (~flagged & truth).sum().item()
    assert s["recall"] == pytest.approx(tp / (tp + fn))
    assert s["precision"] == pytest.approx(tp / (tp + fp))
    assert s["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert s["accuracy"] == pytest.approx(1 - (fp + fn) / len(truth))
