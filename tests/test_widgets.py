"""helpers.widgets: the drawing functions behind the widgets, and the widgets' wiring (no browser)."""

import pytest
import torch

from helpers.optim import OPTIMIZERS, SURFACES, optimizer_paths
from helpers.plots import figure_png
from helpers.widgets import (
    EXPLORER_LRS,
    OptimizerExplorer,
    TrainingPlayground,
    explorer_figure,
    explorer_readout,
    explorer_settings,
    training_figure,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_explorer_settings_maps_controls_to_each_optimizer():
    settings = explorer_settings(
        ["Adam", "SGD", "RMSProp", "Momentum"], lr=0.05, momentum=0.8, beta1=0.7, beta2=0.99, alpha=0.95
    )
    assert settings == {
        "SGD": {"lr": 0.05},
        "Momentum": {"lr": 0.05, "momentum": 0.8},
        "RMSProp": {"lr": 0.05, "alpha": 0.95},
        "Adam": {"lr": 0.05, "betas": (0.7, 0.99)},
    }
    assert explorer_settings([], lr=0.1) == {}
    with pytest.raises(ValueError, match=r"among .*'SGD'.*got \['LBFGS'\]"):
        explorer_settings(["LBFGS"], lr=0.1)


def test_explorer_settings_gives_each_optimizer_its_own_learning_rate():
    settings = explorer_settings(["SGD", "Adam"], lr={"SGD": 0.3, "Adam": 0.05, "RMSProp": 1.0})
    assert settings == {"SGD": {"lr": 0.3}, "Adam": {"lr": 0.05, "betas": (0.9, 0.999)}}
    with pytest.raises(ValueError, match=r"lr: expected a learning rate for each .*got none for \['Adam'\]"):
        explorer_settings(["SGD", "Adam"], lr={"SGD": 0.3})
    assert set(EXPLORER_LRS) == set(SURFACES)
    assert all(set(rates) == set(OPTIMIZERS) for rates in EXPLORER_LRS.values())


def test_explorer_figure_draws_one_path_and_one_loss_curve_per_optimizer():
    paths = optimizer_paths("saddle", explorer_settings(["SGD", "Adam"], lr=0.05), steps=20)
    fig = explorer_figure("saddle", paths)
    ax_map, ax_loss = fig.axes
    assert ax_map.get_title() == "saddle: paths from o to *"
    assert [line.get_label() for line in ax_loss.get_lines()] == ["SGD", "Adam"]
    assert [line.get_label() for line in ax_map.get_lines()][-2:] == ["SGD", "Adam"]
    assert ax_loss.get_yscale() == "log" and ax_map.get_xlim() == SURFACES["saddle"].xlim
    assert figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_explorer_figure_marks_divergence():
    paths = optimizer_paths("ill-conditioned bowl", {"SGD": {"lr": 1.2}}, steps=200)
    assert paths["SGD"].diverged_at is not None
    ax_loss = explorer_figure("ill-conditioned bowl", paths).axes[1]
    assert [line.get_marker() for line in ax_loss.get_lines()] == ["None", "x"]


def test_explorer_readout():
    paths = optimizer_paths("ill-conditioned bowl", {"SGD": {"lr": 1.2}, "Adam": {"lr": 0.1}}, steps=200)
    text = explorer_readout(paths)
    assert text.startswith(f"final loss: SGD diverged at step {paths['SGD'].diverged_at} | Adam ")
    assert text.endswith(f"{paths['Adam'].loss[-1].item():.4f}")
    assert explorer_readout({}) == "final loss: (no optimiser ticked)"


def test_explorer_widget_redraws_on_every_control():
    ex = OptimizerExplorer("ill-conditioned bowl", ["SGD", "Momentum"])
    bowl_lrs = EXPLORER_LRS["ill-conditioned bowl"]
    assert ex.ticked == ["SGD", "Momentum"]
    assert {name: w.value for name, w in ex.lrs.items()} == pytest.approx(bowl_lrs)
    assert [name for name, w in ex.lrs.items() if not w.disabled] == ["SGD", "Momentum"]
    assert ex.beta1.disabled and ex.alpha.disabled and not ex.momentum.disabled
    for control, value in [
        (ex.lrs["SGD"], 0.05),
        (ex.lrs["Momentum"], 0.02),
        (ex.momentum, 0.5),
        (ex.steps, 30),
        (ex.checks["Adam"], True),
        (ex.lrs["Adam"], 0.2),
        (ex.beta2, 0.99),
        (ex.beta1, 0.5),
        (ex.checks["RMSProp"], True),
        (ex.alpha, 0.9),
        (ex.noise, 0.5),
    ]:
        png, text = ex.plot.value, ex.readout.value
        assert not control.disabled, control.description
        control.value = value
        assert ex.plot.value != png, control.description
        assert ex.readout.value != text, control.description
    rates = {**bowl_lrs, "SGD": 0.05, "Momentum": 0.02, "Adam": 0.2}
    expected = optimizer_paths(
        "ill-conditioned bowl",
        explorer_settings(["SGD", "Momentum", "RMSProp", "Adam"], rates, 0.5, 0.5, 0.99, 0.9),
        steps=30,
        noise=0.5,
    )
    assert ex.readout.value == explorer_readout(expected)
    ex.checks["SGD"].value = False
    assert "SGD" not in ex.readout.value and ex.readout.value.startswith("final loss: Momentum")


def test_explorer_surface_change_loads_suggestions_and_redraws_once(monkeypatch):
    ex = OptimizerExplorer()
    calls = []
    monkeypatch.setattr(ex, "redraw", lambda: calls.append(1))
    ex.surface.value = "Rosenbrock"
    assert len(calls) == 1
    assert {name: w.value for name, w in ex.lrs.items()} == pytest.approx(EXPLORER_LRS["Rosenbrock"])
    assert ex.steps.value == SURFACES["Rosenbrock"].steps


def test_explorer_css_classes_for_the_browser_test():
    ex = OptimizerExplorer()
    assert "opt-explorer" in ex._dom_classes
    for w, css in [
        *[(w, "opt-lr") for w in ex.lrs.values()],
        *[(w, f"opt-lr-{name.lower()}") for name, w in ex.lrs.items()],
        (ex.noise, "opt-noise"),
        (ex.plot, "opt-plot"),
        (ex.readout, "opt-readout"),
        (ex.surface, "opt-surface"),
        (ex.steps, "opt-steps"),
    ]:
        assert css in w._dom_classes
    assert [c for box in ex.checks.values() for c in box._dom_classes] == [
        f"opt-check-{name.lower()}" for name in OPTIMIZERS
    ]


def test_explorer_rejects_unknown_names():
    with pytest.raises(ValueError, match="'Adamax'"):
        OptimizerExplorer(optimizers=["Adamax"])
    with pytest.raises(ValueError, match="'sphere'"):
        OptimizerExplorer(surface="sphere")


# --- training playground ---------------------------------------------------------------------------


def _playground(**kwargs):
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 4, generator=g)
    y = x[:, :1] - x[:, 1:2]
    return TrainingPlayground(
        lambda: nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)),
        TensorDataset(x[:90], y[:90]),
        TensorDataset(x[90:], y[90:]),
        F.mse_loss,
        epochs=3,
        **kwargs,
    )


def test_training_playground_runs_redraws_every_epoch_and_is_reproducible():
    pg = _playground(lr=0.01)
    assert pg.status.value == "not trained yet" and pg.history is None
    images = []
    pg.plot.observe(lambda change: images.append(change["new"]), names="value")
    first = pg.run()
    assert len(images) == 3 and len(set(images)) == 3  # one new picture per epoch
    assert len(first.train_loss) == len(first.val_loss) == 3
    assert (
        pg.status.value == f"epoch 3/3: train loss {first.train_loss[-1]:.4f}, validation loss {first.val_loss[-1]:.4f}"
    )
    assert pg.run().train_loss == first.train_loss  # seeded: the same run again
    pg.optimizer.value, pg.batch_size.value = "SGD", 8
    assert pg.run().train_loss != first.train_loss
    assert [label for label, _ in pg.runs] == ["Adam, lr 0.0100, batch 32"] * 2 + ["SGD, lr 0.0100, batch 8"]
    pg.button.click()  # the button trains too, in a background thread
    pg.wait(60)
    assert "epoch 3/3" in pg.status.value and not pg.button.disabled and len(pg.runs) == 4
    assert pg.progress.value == pg.progress.max == 3


def test_training_playground_is_busy_once_and_disables_its_controls_while_training():
    pg = _playground(lr=0.01)
    seen = []

    def slow_train(original=pg._train):
        seen.append([c.disabled for c in (pg.lr, pg.batch_size, pg.optimizer, pg.button)])
        assert pg.run() is None  # a second run while one is going starts nothing
        pg.button.click()  # nor does a second click
        return original()

    pg._train = slow_train
    pg.button.click()
    pg.wait(60)
    assert seen == [[True, True, True, True]] and len(pg.runs) == 1 and pg.runs_started == 1
    assert not any(c.disabled for c in (pg.lr, pg.batch_size, pg.optimizer, pg.button))


def test_training_playground_draws_earlier_runs_and_baselines_on_the_same_axes():
    pg = _playground(lr=0.01, baselines={"persistence": 0.9, "historical average": 0.5})
    pg.run()
    pg.lr.value = 0.1
    pg.run()
    fig = training_figure(pg.history, 3, "t", pg.runs[:1], pg.baselines)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["earlier: Adam, lr 0.0100, batch 32", "train (this run)", "validation (this run)",
                      "persistence (validation)", "historical average (validation)"]


def test_training_widget_says_where_it_is_not_live():
    pg = _playground()
    bundle = pg._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "live in JupyterLab" in bundle["text/plain"] and "data:image/png;base64," in bundle["text/html"]


def test_training_figure_axes():
    from helpers.train import History

    fig = training_figure(History([1.0, 0.5], [1.2, 0.7]), epochs=5, title="t")
    ax = fig.axes[0]
    assert ax.get_xlim() == (0.5, 5.5) and ax.get_yscale() == "log" and ax.get_title() == "t"
    assert [line.get_label() for line in ax.get_lines()] == ["train (this run)", "validation (this run)"]
    with pytest.raises(ValueError, match="epochs"):
        training_figure(History(), epochs=0)


def test_training_playground_rejects_unknown_optimizer():
    with pytest.raises(ValueError, match="'Lion'"):
        _playground(optimizer="Lion")


def test_figure_png_reduces_colors():
    import io

    import PIL.Image

    paths = optimizer_paths("saddle", explorer_settings(list(OPTIMIZERS), lr=0.05), steps=40)
    fig = explorer_figure("saddle", paths)
    full, small = figure_png(fig, colors=None), figure_png(fig)
    assert PIL.Image.open(io.BytesIO(full)).mode == "RGBA"
    palette = PIL.Image.open(io.BytesIO(small))
    assert palette.mode == "P" and palette.size == PIL.Image.open(io.BytesIO(full)).size
    assert len(small) < len(full) / 2
    with pytest.raises(ValueError, match="colors"):
        figure_png(fig, colors=1)


def test_explorer_figure_title_is_a_headline():
    paths = optimizer_paths("saddle", {"SGD": {"lr": 0.05}}, steps=5)
    fig = explorer_figure("saddle", paths, title="what to notice")
    assert fig.get_suptitle() == "what to notice"
    assert fig.axes[1].get_title() == "loss gap per step (x: diverged)"
