"""Your own metro network through the command line (issue 16): a synthetic export with service hours
05:30-23:30 (the nights are gaps), inflow and outflow in the long CSV layout, and a holidays file trains
end to end with --model stgcn, ha and persistence; the STGCN, which sees the clock by default, beats both
baselines, trained on all days and on one week only. Bad folders get one line and nothing is written."""

import json

import numpy as np
import pytest
from cli_helpers import run_cli, write_metro_like_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# --predict-change: the network forecasts the change from the last reading (persistence built in)
NETWORK = ["--channels", "16,8,16", "--epochs", "20", "--lr", "3e-3", "--predict-change", "--threads", "1", "--json"]
ONE_WEEK = ["--split", "0.5,0.15,0.35"]  # 14 days: the first 7 train


@pytest.fixture(scope="module")
def metro_folder(tmp_path_factory):
    return write_metro_like_folder(tmp_path_factory.mktemp("export") / "my-metro")


def overall_mae(argv, capsys, out):
    status, stdout, err = run_cli([*argv, "--out", out], capsys)
    assert status == 0, err
    result = json.loads(stdout.splitlines()[-1])
    return result, result["metrics"]["overall"]["mae"]


@pytest.mark.parametrize("split", [[], ONE_WEEK], ids=["all-days", "one-week"])
def test_the_stgcn_beats_both_baselines_on_a_metro_like_export(metro_folder, tmp_path, capsys, split):
    data = ["--data", metro_folder, *split]
    ha, ha_mae = overall_mae([*data, "--model", "ha", "--json"], capsys, tmp_path / "ha")
    _, persistence_mae = overall_mae([*data, "--model", "persistence", "--json"], capsys, tmp_path / "p")
    stgcn, stgcn_mae = overall_mae([*data, "--model", "stgcn", *NETWORK], capsys, tmp_path / "stgcn")
    # by default the network sees the clock and forecasts the deviation from the historical average
    assert stgcn["inputs"] == ["inflow_deviation", "outflow", "time_sin", "time_cos", "day_off"]
    assert stgcn["target"] == "inflow" and stgcn["unit"] == "inflow"
    assert stgcn["windows_across_gaps_removed"] > 0 and stgcn["test_windows"] == ha["test_windows"]
    print(f"{split}: stgcn {stgcn_mae:.2f}, ha {ha_mae:.2f}, persistence {persistence_mae:.2f}")
    assert stgcn_mae < 0.95 * min(ha_mae, persistence_mae)


def test_target_names_the_channel_and_the_errors_are_in_its_units(metro_folder, tmp_path, capsys):
    inflow, _ = overall_mae(["--data", metro_folder, "--model", "persistence", "--json"], capsys, tmp_path / "a")
    outflow, _ = overall_mae(["--data", metro_folder, "--model", "persistence", "--target", "outflow", "--json"],
                             capsys, tmp_path / "b")
    assert outflow["target"] == "outflow" and outflow["metrics"] != inflow["metrics"]
    status, _, err = run_cli(["--data", metro_folder, "--model", "ha", "--target", "exits", "--out",
                              tmp_path / "c"], capsys)
    assert status == 2 and err.count("\n") == 1
    assert "target: expected one of the channels ['inflow', 'outflow'], got 'exits'" in err
    assert not (tmp_path / "c").exists()


def test_holidays_option_replaces_the_folders_file(metro_folder, tmp_path, capsys):
    days = tmp_path / "days.csv"
    days.write_text("date\n2025-03-04\n2025-03-05\n")
    status, stdout, err = run_cli(["--data", metro_folder, "--model", "ha", "--holidays", days, "--json",
                                   "--out", tmp_path / "h"], capsys)
    assert status == 0, err
    plain, _ = overall_mae(["--data", metro_folder, "--model", "ha", "--json"], capsys, tmp_path / "g")
    assert json.loads(stdout.splitlines()[-1])["metrics"] != plain["metrics"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: (f / "adjacency.csv").write_text("S0,S1,X\n0,1,0\n1,0,1\n0,1,0\n"),
         "adjacency.csv: expected nodes of series.csv, got ['X'] that series.csv does not have"),
        (lambda f: ((f / "series.csv").write_text("timestamp,node,inflow\n2025-03-03T05:30,S0,1\n"
                                                  "2025-03-03T05:45,S0,2\n2025-03-03T05:55,S0,3\n"),
                    (f / "adjacency.csv").write_text("S0\n0\n")),
         "series.csv: timestamps: expected increasing times 10 minutes apart or a whole multiple of that (a gap), "
         "got a step of 15 minutes at step 1 (2025-03-03T05:30 -> 2025-03-03T05:45)"),
        (lambda f: (f / "holidays.csv").write_text("date\nsoon\n"),
         "holidays.csv: expected an ISO date (e.g. 2025-03-28) in row 2, got 'soon'"),
    ],
)
def test_bad_folders_get_one_line_and_nothing_is_written(metro_folder, tmp_path, capsys, change, message):
    folder = tmp_path / "bad"
    folder.mkdir()
    for name in ("series.csv", "adjacency.csv", "holidays.csv"):
        (folder / name).write_bytes((metro_folder / name).read_bytes())
    change(folder)
    status, _, err = run_cli(["--data", folder, "--model", "stgcn", "--out", tmp_path / "run"], capsys)
    assert status == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()


def test_resume_compares_the_new_options(metro_folder, tmp_path, capsys):
    out = tmp_path / "run"
    tiny = ["--channels", "4,2,4", "--blocks", "1", "--threads", "1"]
    status, _, err = run_cli(["--data", metro_folder, "--epochs", "1", "--out", out, *tiny], capsys)
    assert status == 0, err
    for flag, was in [(["--forecast", "level"], "--forecast auto"), (["--clock", "off"], "--clock auto"),
                      (["--target", "outflow"], "--target None"), (["--cross-gaps"], "no --cross-gaps")]:
        status, _, err = run_cli(["--data", metro_folder, "--epochs", "2", "--out", out, "--resume", *tiny, *flag],
                                 capsys)
        assert status == 2 and was in err, err


def test_the_test_windows_never_cross_the_night(metro_folder):
    from helpers.data import load_csv_folder, make_splits

    ds = load_csv_folder(metro_folder)
    splits = make_splits(ds, 12, 3)
    minutes = ds.timestamps.astype(np.int64)
    first = splits.bounds[2][0] + splits.test.starts.numpy()
    assert (minutes[first + 14] - minutes[first] == 14 * 15).all()
