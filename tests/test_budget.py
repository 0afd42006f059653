"""Fitting a recipe to a wall-clock budget: the calibration's scaling, the plan's arithmetic, the CLI."""

import json
from pathlib import Path

import pytest

from emoscope import budget
from emoscope.budget import plan_epochs, time_epoch
from emoscope.cli import main
from emoscope.training import TrainConfigError
from test_cli_core import fer_folder  # noqa: F401  (a fixture)
from test_training import tiny_cfg, toy_faces


def test_time_epoch_scales_the_third_epoch_of_a_slice_to_the_whole_split(tmp_path, monkeypatch):
    seen = {}

    def fake_train(cfg, train_set, val_set, progress):
        seen.update(epochs=cfg.epochs, crop=cfg.train_crop, n=len(train_set), n_val=len(val_set))
        rows = [{"elapsed_s": t} for t in (5.0, 6.0, 8.0)]  # a slow first epoch, then 2 s each
        Path(cfg.out_dir, "history.json").write_text(json.dumps(rows))

    monkeypatch.setattr(budget, "train", fake_train)
    faces = toy_faces(8)  # 56 faces
    s = time_epoch(tiny_cfg(tmp_path, train_crop=40, full_size_epochs=2), faces, faces, 40, None, faces=14)
    assert s == pytest.approx(2.0 * 56 / 14)  # the quarter it trained on took 2 s
    assert seen == {"epochs": 3, "crop": 40, "n": 14, "n_val": 14}  # the same share of the validation faces


def fixed_times(monkeypatch, whole: float, crop: float) -> None:
    """Calibrations that take no time and report these epoch times."""
    monkeypatch.setattr(budget, "time_epoch", lambda cfg, t, v, c, r, faces: crop if (c or r) else whole)


def test_plan_fills_the_budget_with_crop_epochs_around_the_whole_face_ones(tmp_path, monkeypatch):
    fixed_times(monkeypatch, whole=3.0, crop=2.0)
    faces = toy_faces(2)
    cfg = tiny_cfg(tmp_path, train_crop=40, full_size_epochs=4)
    plan = plan_epochs(cfg, faces, faces, budget_s=101, margin=1.0)  # 101 s: 4 x 3 s, then 44 x 2 s and 1 s over
    assert plan.epochs == 4 + 44 and plan.full_size_epochs == 4
    assert plan.crop_epoch_s == 2.0 and plan.epoch_s == 3.0
    assert plan.estimated_s <= 101 < plan.estimated_s + 2.0  # one more crop epoch would not fit
    assert plan_epochs(cfg, faces, faces, budget_s=101, margin=1.25).epochs == 4 + 34  # (80.8 - 12) / 2
    assert plan_epochs(cfg, faces, faces, budget_s=101, max_epochs=10, margin=1.0).epochs == 10
    whole = plan_epochs(tiny_cfg(tmp_path), faces, faces, budget_s=101, margin=1.0)
    assert (whole.epochs, whole.crop_epoch_s, whole.full_size_epochs) == (33, None, 0)


@pytest.mark.parametrize("budget_s,kw,message", [
    (13, {"train_crop": 40, "full_size_epochs": 4}, "its 4 whole-face epochs take about 12 s"),
    (2, {}, "does not fit one epoch here: one takes about 3 s"),
    (0, {}, "the budget must be positive"),
])
def test_a_budget_too_small_for_the_recipe_says_what_would_fit(tmp_path, monkeypatch, budget_s, kw, message):
    fixed_times(monkeypatch, whole=3.0, crop=2.0)
    faces = toy_faces(2)
    with pytest.raises(TrainConfigError, match=message):
        plan_epochs(tiny_cfg(tmp_path, **kw), faces, faces, budget_s=budget_s, margin=1.0)


def test_a_real_calibration_plans_epochs_that_fit(tmp_path):
    faces = toy_faces(6)
    plan = plan_epochs(tiny_cfg(tmp_path), faces, faces, budget_s=20.0, faces=21)
    assert plan.epochs >= 1 and plan.calibration_s < 20
    assert plan.calibration_s + plan.margin * plan.epochs * plan.epoch_s <= 20.0
    assert plan.calibration_s + plan.margin * (plan.epochs + 1) * plan.epoch_s > 20.0


def budget_run(fer_folder, out, *flags) -> int:  # noqa: F811
    return main(["train", "--data", str(fer_folder), "--model", "emovgg_t", "--batch-size", "8",
                 "--schedule", "constant", "--set", "bf16=false", "--set", "augment=false", "--out", str(out), *flags])


def test_train_budget_plans_caps_and_resumes_with_its_plan(fer_folder, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    assert budget_run(fer_folder, out, "--budget", "0.5", "--epochs", "2") == 0
    plan = json.loads((out / "plan.json").read_text())
    saved = json.loads((out / "config.json").read_text())
    assert plan["epochs"] == saved["epochs"] <= 2  # --epochs caps the plan
    assert saved["time_limit_s"] == pytest.approx(30 - plan["calibration_s"], abs=0.01)
    assert len(json.loads((out / "history.json").read_text())) == plan["epochs"]
    assert "planned" in capsys.readouterr().out
    plan["epochs"] = 3  # a resumed run trains to the plan it started with, without calibrating again
    (out / "plan.json").write_text(json.dumps(plan))
    assert budget_run(fer_folder, out, "--budget", "0.5", "--epochs", "3", "--resume") == 0
    assert "as planned when it started" in capsys.readouterr().out
    assert len(json.loads((out / "history.json").read_text())) == 3


def test_train_budget_and_time_limit_together_is_an_error(fer_folder, tmp_path, capsys):  # noqa: F811
    assert budget_run(fer_folder, tmp_path / "r", "--budget", "2h", "--time-limit", "1h") == 2
    assert "give --budget or --time-limit, not both" in capsys.readouterr().err
