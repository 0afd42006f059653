"""Fitting a recipe to a wall-clock budget: the calibration's scaling, the plan's arithmetic, replanning a run
whose epochs slow down (and resuming it exactly), the CLI."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from emoscope import budget
from emoscope.budget import EpochPlan, Replanner, plan_epochs, time_epoch
from emoscope.cli import main
from emoscope.models.checkpoint import read_checkpoint
from emoscope.training import TrainConfigError, train
from test_training import record_input_sizes, tiny_cfg, toy_faces


def test_time_epoch_scales_the_third_epoch_of_a_slice_to_the_whole_split(tmp_path, monkeypatch):
    seen = {}

    def fake_train(cfg, train_set, val_set, progress):
        seen.update(epochs=cfg.epochs, crop=cfg.train_crop, n=len(train_set), n_val=len(val_set))
        rows = [{"elapsed_s": t} for t in (5.0, 6.0, 8.0)]  # a slow first epoch, then 2 s each
        return SimpleNamespace(history=rows)

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


def budget_run(fer_folder, out, *flags) -> int:
    return main(["train", "--data", str(fer_folder), "--model", "emovgg_t", "--batch-size", "8",
                 "--schedule", "constant", "--set", "bf16=false", "--set", "augment=false", "--out", str(out), *flags])


def test_train_budget_plans_caps_and_resumes_with_its_plan(fer_folder, tmp_path, capsys):
    out = tmp_path / "run"
    # (a 5-minute budget: on a busy 2-core machine the calibration alone once took 28 s of a 30-s one)
    assert budget_run(fer_folder, out, "--budget", "5", "--epochs", "2") == 0
    plan = json.loads((out / "plan.json").read_text())
    saved = json.loads((out / "config.json").read_text())
    assert plan["epochs"] == saved["epochs"] == 2  # --epochs caps the plan
    assert saved["time_limit_s"] == pytest.approx(300 - plan["calibration_s"], abs=0.01)
    assert len(json.loads((out / "history.json").read_text())) == plan["epochs"]
    assert "planned" in capsys.readouterr().out
    # resumed, the run keeps the plan it started with (no second calibration) and, being done, trains no more
    assert budget_run(fer_folder, out, "--budget", "5", "--epochs", "2", "--resume") == 0
    said = capsys.readouterr().out
    assert "as planned when it started" in said and "timing a few epochs" not in said
    assert len(json.loads((out / "history.json").read_text())) == plan["epochs"]


def test_train_budget_and_time_limit_together_is_an_error(fer_folder, tmp_path, capsys):
    assert budget_run(fer_folder, tmp_path / "r", "--budget", "2h", "--time-limit", "1h") == 2
    assert "give --budget or --time-limit, not both" in capsys.readouterr().err


def shorten_after(epochs_done: int, to: int):
    """A replan hook that cuts the run to ``to`` epochs once ``epochs_done`` epochs have run."""
    return lambda history, epochs: to if len(history) >= epochs_done else epochs


def test_a_replanned_run_follows_the_shorter_schedule_and_moves_its_whole_face_tail(tmp_path, monkeypatch):
    seen = record_input_sizes(monkeypatch)
    faces = toy_faces()  # 168 faces: three batches of 56 per epoch
    cfg = dict(schedule="onecycle", batch_size=56, train_crop=40, full_size_epochs=1)
    summary = train(tiny_cfg(tmp_path / "r", epochs=6, **cfg), faces, None, progress=False,
                    replan=shorten_after(2, 4))
    assert summary.epochs_run == summary.planned_epochs == 4 and summary.stopped is None
    assert seen == [40] * 9 + [48] * 3  # the whole-face epoch is the last of the four
    lr = {}
    for epochs in (4, 6):
        train(tiny_cfg(tmp_path / str(epochs), epochs=epochs, **cfg), faces, None, progress=False)
        lr[epochs] = [row["lr"] for row in json.loads((tmp_path / str(epochs) / "run" / "history.json").read_text())]
    hist = json.loads((tmp_path / "r" / "run" / "history.json").read_text())
    assert [row.get("planned_epochs") for row in hist] == [6, 4, 4, 4]  # the plan after each epoch
    # up to the replan the learning rate is the 6-epoch run's; after it, the 4-epoch run's, step for step
    assert [row["lr"] for row in hist] == pytest.approx(lr[6][:2] + lr[4][2:])
    assert lr[4][2] < lr[6][2]


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_a_replanned_run_resumes_exactly(tmp_path, schedule):
    faces = toy_faces(6)
    cfg = dict(epochs=6, schedule=schedule, augment=True)
    train(tiny_cfg(tmp_path / "a", **cfg), faces, faces, progress=False, replan=shorten_after(2, 4))
    train(tiny_cfg(tmp_path / "b", **cfg), faces, faces, progress=False, replan=shorten_after(2, 4), stop_after=3)
    rest = train(tiny_cfg(tmp_path / "b", **cfg), faces, faces, progress=False, resume=True,
                 replan=shorten_after(2, 4))
    assert rest.epochs_run == 4 and rest.resumed_at == 4
    a, b = (read_checkpoint(tmp_path / x / "run" / "last.pt") for x in ("a", "b"))
    assert a["planned_epochs"] == b["planned_epochs"] == 4
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def calibrated(epochs: int, whole: float, crop: float | None = None, tail: int = 0) -> EpochPlan:
    return EpochPlan(epochs=epochs, budget_s=0.0, calibration_s=0.0, epoch_s=whole, crop_epoch_s=crop,
                     full_size_epochs=tail, margin=1.0)


def ran(*seconds: float) -> list[dict]:
    """History rows of epochs that took these many seconds."""
    ends = np.cumsum(seconds)
    return [{"epoch": i + 1, "elapsed_s": float(t)} for i, t in enumerate(ends)]


def test_replanner_shortens_a_run_whose_epochs_slowed_and_keeps_one_on_time():
    on_time = Replanner(calibrated(10, whole=10.0), limit_s=100.0, margin=1.0)
    assert on_time(ran(10, 10, 10), 10) == 10
    slow = on_time(ran(12, 12, 12), 10)  # 1.2x: 36 s done, 64 s left for 12-s epochs
    assert slow == 3 + 5
    assert on_time(ran(30, 30, 30), 10) == 3  # nothing more fits: stop now
    assert on_time(ran(5, 5, 5), 10) == 10  # faster than planned: never lengthened
    crops = Replanner(calibrated(10, whole=10.0, crop=5.0, tail=2), limit_s=60.0, margin=1.0)
    # 1.2x on 5-s crop epochs: 18 s done; 42 s left buy two 12-s whole-face epochs and three 6-s crop epochs
    assert crops(ran(6, 6, 6), 10) == 3 + 3 + 2
    # a blip in one of the last three epochs does not count (the median of their slowdowns does)
    assert Replanner(calibrated(10, whole=10.0), limit_s=1000.0, margin=1.0)(ran(10, 10, 40), 10) == 10


def test_replanner_waits_for_three_epochs_before_it_judges():
    plan = Replanner(calibrated(10, whole=10.0), limit_s=110.0, margin=1.0)
    # one slow second epoch (other work on the machine) used to be half of a two-epoch median and cut the run
    assert plan(ran(10, 15), 10) == 10
    assert plan(ran(10, 15, 10), 10) == 10  # the median of three drops it: 35 s done, 70 s to go
    assert plan(ran(15, 15, 15), 10) < 10  # a machine that is slower throughout is still caught at epoch 3
