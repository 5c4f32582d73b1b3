"""helpers.widgets: the drawing functions behind the widgets, and the widgets' wiring (no browser)."""

import pytest

from helpers.optim import OPTIMISERS, SURFACES, optimiser_paths
from helpers.widgets import OptimiserExplorer, explorer_figure, explorer_readout, explorer_settings, figure_png


def test_explorer_settings_maps_controls_to_each_optimiser():
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


def test_explorer_figure_draws_one_path_and_one_loss_curve_per_optimiser():
    paths = optimiser_paths("saddle", explorer_settings(["SGD", "Adam"], lr=0.05), steps=20)
    fig = explorer_figure("saddle", paths)
    ax_map, ax_loss = fig.axes
    assert ax_map.get_title() == "saddle: paths from o to *"
    assert [line.get_label() for line in ax_loss.get_lines()] == ["SGD", "Adam"]
    assert [line.get_label() for line in ax_map.get_lines()][-2:] == ["SGD", "Adam"]
    assert ax_loss.get_yscale() == "log" and ax_map.get_xlim() == SURFACES["saddle"].xlim
    assert figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_explorer_figure_marks_divergence():
    paths = optimiser_paths("ill-conditioned bowl", {"SGD": {"lr": 1.2}}, steps=200)
    assert paths["SGD"].diverged_at is not None
    ax_loss = explorer_figure("ill-conditioned bowl", paths).axes[1]
    assert [line.get_marker() for line in ax_loss.get_lines()] == ["None", "x"]


def test_explorer_readout():
    paths = optimiser_paths("ill-conditioned bowl", {"SGD": {"lr": 1.2}, "Adam": {"lr": 0.1}}, steps=200)
    text = explorer_readout(paths)
    assert text.startswith(f"final loss: SGD diverged at step {paths['SGD'].diverged_at} | Adam ")
    assert text.endswith(f"{paths['Adam'].loss[-1].item():.4f}")
    assert explorer_readout({}) == "final loss: (no optimiser ticked)"


def test_explorer_widget_redraws_on_every_control():
    ex = OptimiserExplorer("ill-conditioned bowl", ["SGD", "Momentum"])
    assert ex.ticked == ["SGD", "Momentum"] and ex.lr.value == pytest.approx(SURFACES["ill-conditioned bowl"].lr)
    for control, value in [
        (ex.lr, 0.05),
        (ex.momentum, 0.5),
        (ex.steps, 30),
        (ex.checks["Adam"], True),
        (ex.beta2, 0.99),
        (ex.beta1, 0.5),
        (ex.checks["RMSProp"], True),
        (ex.alpha, 0.9),
    ]:
        png, text = ex.plot.value, ex.readout.value
        control.value = value
        assert ex.plot.value != png, control.description
        assert ex.readout.value != text, control.description
    expected = optimiser_paths(
        "ill-conditioned bowl",
        explorer_settings(["SGD", "Momentum", "RMSProp", "Adam"], 0.05, 0.5, 0.5, 0.99, 0.9),
        steps=30,
    )
    assert ex.readout.value == explorer_readout(expected)
    ex.checks["SGD"].value = False
    assert "SGD" not in ex.readout.value and ex.readout.value.startswith("final loss: Momentum")


def test_explorer_surface_change_loads_suggestions_and_redraws_once(monkeypatch):
    ex = OptimiserExplorer()
    calls = []
    monkeypatch.setattr(ex, "redraw", lambda: calls.append(1))
    ex.surface.value = "Rosenbrock"
    assert len(calls) == 1
    assert ex.lr.value == pytest.approx(SURFACES["Rosenbrock"].lr) and ex.steps.value == SURFACES["Rosenbrock"].steps


def test_explorer_css_classes_for_the_browser_test():
    ex = OptimiserExplorer()
    assert "opt-explorer" in ex._dom_classes
    for w, css in [
        (ex.lr, "opt-lr"),
        (ex.plot, "opt-plot"),
        (ex.readout, "opt-readout"),
        (ex.surface, "opt-surface"),
        (ex.steps, "opt-steps"),
    ]:
        assert css in w._dom_classes
    assert [c for box in ex.checks.values() for c in box._dom_classes] == [
        f"opt-check-{name.lower()}" for name in OPTIMISERS
    ]


def test_explorer_rejects_unknown_names():
    with pytest.raises(ValueError, match="'Adamax'"):
        OptimiserExplorer(optimisers=["Adamax"])
    with pytest.raises(ValueError, match="'sphere'"):
        OptimiserExplorer(surface="sphere")
