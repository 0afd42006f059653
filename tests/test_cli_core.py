"""`emoscope data stats`, `emoscope train` and `emoscope eval` on generated data."""

import json

import cv2
import numpy as np
import pytest
import torch

from emoscope.cli import main
from emoscope.labels import EMOTIONS
from emoscope.models import create_model
from emoscope.models.checkpoint import atomic_save, model_meta, read_checkpoint


def test_data_stats_json(fer_folder, capsys):
    assert main(["data", "stats", str(fer_folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"]["Training"]["happy"] == 3 and out["counts"]["PublicTest"]["happy"] == 4
    assert out["duplicates"]["groups_across_splits"] == 1
    assert out["image_sizes"]["width"]["max"] == 48


def test_data_stats_table(fer_folder, capsys):
    assert main(["data", "stats", str(fer_folder)]) == 0
    text = capsys.readouterr().out
    assert "PrivateTest" in text and "duplicates: 1 groups" in text


def test_eval_json_has_the_documented_fields(fer_folder, tmp_path, capsys):
    torch.manual_seed(0)
    weights = tmp_path / "w.pt"
    model = create_model("emovgg_s", width=8)
    atomic_save({**model_meta("emovgg_s", EMOTIONS, width=8), "model": model.state_dict()}, weights)
    code = main(["eval", "--weights", str(weights), "--data", str(fer_folder), "--split", "privatetest",
                 "--tta", "flip", "--json", "--out", str(tmp_path / "rep")])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 21 and 0 <= out["accuracy"] <= 1 and 0 <= out["macro_f1"] <= 1
    assert set(out["per_class"]) == set(EMOTIONS)
    assert {"precision", "recall", "f1"} <= set(out["per_class"]["happy"])
    assert set(out["tta"]) == {"none", "flip"}
    assert (tmp_path / "rep" / "report.md").exists() and (tmp_path / "rep" / "confusion.png").exists()


def test_train_cli_with_config_and_overrides(fer_folder, tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"model": "emovgg_s", "model_kwargs": {"width": 8}, "epochs": 5, "bf16": False}))
    out = tmp_path / "run"
    code = main(["train", "--config", str(cfg), "--data", str(fer_folder), "--epochs", "1", "--batch-size", "8",
                 "--set", "augment=false", "--ema-decay", "0.99", "--out", str(out)])
    assert code == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["epochs"] == 1 and saved["batch_size"] == 8 and saved["augment"] is False
    assert saved["ema_decay"] == 0.99 and "ema" in read_checkpoint(out / "last.pt")
    assert saved["time_limit_s"] == 0  # no --time-limit: none
    assert saved["model_kwargs"] == {"width": 8}
    command = (out / "command.txt").read_text()  # the model card quotes it
    assert "train --config" in command and "--epochs 1" in command


def test_train_with_ferplus_soft_targets(fer_folder, tmp_path, capsys):
    from test_datasets import write_ferplus_votes

    train_images = sorted(p.relative_to(fer_folder).as_posix() for p in (fer_folder / "train").rglob("*.png"))
    flags = ["train", "--data", str(fer_folder), "--model", "emovgg_s", "--set", "model_kwargs={\"width\": 8}",
             "--epochs", "1", "--batch-size", "8", "--set", "soft_targets=ferplus", "--out", str(tmp_path / "r")]
    assert main(flags) == 2  # no FER+ files yet
    assert "fer2013new.csv" in capsys.readouterr().err
    write_ferplus_votes(fer_folder, {src: [0, 8, 2, 0, 0, 0, 0, 0, 0, 0] for src in train_images[:-1]})
    assert main(flags) == 0
    n = len(train_images)
    assert f"FER+ vote shares for {n - 1} of {n} training faces" in capsys.readouterr().out
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["soft_targets"] == "ferplus" and saved["soft_target_weight"] == 0.3


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["data", "stats", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "no such file" in err and "Traceback" not in err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    (tmp_path / "d").mkdir()
    cv2.imwrite(str(tmp_path / "d" / "x.png"), np.zeros((48, 48), np.uint8))
    assert main(["eval", "--weights", str(bad), "--data", str(tmp_path / "d")]) == 2
    assert "not a readable PyTorch checkpoint" in capsys.readouterr().err


def test_train_refuses_an_empty_class(fer_folder, tmp_path, capsys):
    import shutil

    shutil.rmtree(fer_folder / "train" / "disgust")
    assert main(["train", "--data", str(fer_folder), "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    assert "disgust" in capsys.readouterr().err


@pytest.mark.parametrize("flags,message", [
    (["--model", "nope"], "unknown model 'nope'"),
    (["--set", "epochz=3"], "unknown training option(s): epochz"),
    (["--set", "augment"], "--set augment: give KEY=VALUE"),
    (["--set", "soft_targets=teacher"], "unknown soft_targets 'teacher'"),
    (["--ema-decay", "1"], "ema_decay 1.0 must be in [0, 1)"),
    (["--optimizer", "sgd", "--set", "schedule=\"sometimes\""], "unknown schedule"),
])
def test_train_config_mistakes_are_one_line_errors(fer_folder, tmp_path, capsys, flags, message):
    assert main(["train", "--data", str(fer_folder), "--epochs", "1", "--out", str(tmp_path / "r"), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_train_on_a_missing_gpu_says_so(fer_folder, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    assert main(["train", "--data", str(fer_folder), "--epochs", "1", "--device", "cuda",
                 "--out", str(tmp_path / "r")]) == 2
    assert "sees no CUDA GPU; use --device cpu" in capsys.readouterr().err


@pytest.mark.parametrize("text,bare,seconds", [
    ("90s", "s", 90), ("45m", "s", 2700), ("2h", "m", 7200), ("1h30m", "s", 5400), ("1.5m", "s", 90),
    ("600", "s", 600), ("90", "m", 5400), (" 2H ", "s", 7200), ("1h 30m 15s", "m", 5415),
])
def test_durations_read_units_and_bare_numbers(text, bare, seconds):
    from emoscope.durations import parse_duration

    assert parse_duration(text, bare) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5x", "m5", "-3m", "1h-30m", "2hh"])
def test_durations_refuse_what_they_cannot_read(text):
    from emoscope.durations import parse_duration

    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("flag,seconds", [("1.5", 90), ("90s", 90), ("0.025h", 90)])
def test_train_time_limit_takes_units_and_bare_minutes(fer_folder, tmp_path, flag, seconds):
    out = tmp_path / "run"
    assert main(["train", "--data", str(fer_folder), "--model", "emovgg_t", "--epochs", "1", "--batch-size", "8",
                 "--set", "bf16=false", "--time-limit", flag, "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["time_limit_s"] == pytest.approx(seconds)


def test_train_time_limit_mistake_is_an_argparse_error(fer_folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(fer_folder), "--time-limit", "soon", "--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "'soon' is not a duration" in err and "bare number of minutes" in err


def _tiny_weights(path):
    torch.manual_seed(0)
    model = create_model("emovgg_s", width=8)
    atomic_save({**model_meta("emovgg_s", EMOTIONS, width=8), "model": model.state_dict()}, path)
    return path


def test_eval_shows_a_progress_bar_per_tta_mode(fer_folder, tmp_path, capsys):
    weights = _tiny_weights(tmp_path / "w.pt")
    assert main(["eval", "--weights", str(weights), "--data", str(fer_folder), "--out", str(tmp_path / "r")]) == 0
    captured = capsys.readouterr()
    assert "privatetest TTA=none" not in captured.err  # the split's own name is shown
    assert "PrivateTest TTA=none" in captured.err and "PrivateTest TTA=crops" in captured.err  # crops: the default
    assert captured.err.count("21/21") >= 2  # each bar reaches every face
    assert "PrivateTest TTA=crops: accuracy" in captured.out


def test_eval_progress_does_not_change_the_scores(fer_folder, tmp_path):
    from emoscope.cli.evaluate import evaluate_with_progress
    from emoscope.datasets import load_dataset
    from emoscope.evaluation import evaluate_model
    from emoscope.models.checkpoint import load_model

    model, meta = load_model(_tiny_weights(tmp_path / "w.pt"))
    faces = load_dataset(fer_folder).split("PrivateTest")
    plain = evaluate_model(model, faces, meta, tta=["none", "crops"])
    shown = evaluate_with_progress(model, faces, meta, ["none", "crops"], "PrivateTest", show=False)
    for mode in ("none", "crops"):
        np.testing.assert_array_equal(shown["probs"][mode], plain["probs"][mode])
        assert shown["modes"][mode] == plain["modes"][mode]


def test_eval_unknown_split_is_a_one_line_error(fer_folder, tmp_path, capsys):
    weights = _tiny_weights(tmp_path / "w.pt")
    assert main(["eval", "--weights", str(weights), "--data", str(fer_folder), "--split", "validation"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no split named 'validation'" in err and "PrivateTest" in err and "\n" not in err


def test_eval_help_says_crop_tta_is_on_by_default(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Crop TTA is ON by default" in text and "macro-F1 (the mean of the per-class F1 scores" in text


@pytest.mark.parametrize("command", [["eval"], ["data"], ["data", "stats"]])
def test_every_flag_has_help_and_the_command_a_description(command):
    import argparse

    from emoscope.cli import build_parser

    parser = build_parser()
    for name in command:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    assert parser.description
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            assert action.help, f"emoscope {' '.join(command)}: {action.option_strings or action.dest} has no help"


def test_data_stats_shows_progress_on_stderr_only(fer_folder, capsys):
    assert main(["data", "stats", str(fer_folder)]) == 0
    captured = capsys.readouterr()
    assert "image sizes" in captured.err and "it/s" not in captured.out


def test_train_with_extra_data_adds_the_training_people_cut_by_the_detector(fer_folder, tmp_path, capsys):
    import csv

    from emoscope.samples import astronaut_bgr

    face = astronaut_bgr()
    root = tmp_path / "mux"
    (root / "images").mkdir(parents=True)
    (root / "data").mkdir()
    names = [f"Person{p}_{k:04d}.jpg" for p in range(12) for k in range(2)] + ["Nobody_0001.jpg"]
    with open(root / "data" / "legend.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user.id", "image", "emotion"])
        for i, name in enumerate(names):
            w.writerow([i, name, ["HAPPINESS", "neutral", "anger"][i % 3]])
            img = np.full((200, 200, 3), 128, np.uint8) if name.startswith("Nobody") else face[::2, ::2]
            cv2.imwrite(str(root / "images" / name), img)
    out = tmp_path / "r"
    flags = ["train", "--data", str(fer_folder), "--model", "emovgg_s", "--set", "model_kwargs={\"width\": 8}",
             "--epochs", "1", "--batch-size", "8", "--set", "bf16=false", "--out", str(out),
             "--extra-data", str(root)]
    assert main(flags) == 0
    captured = capsys.readouterr()
    added = int(captured.out.split("extra data ")[1].split(": ")[1].split(" faces of")[0])
    assert 0 < added < 24  # some of the 12 people, none held out twice, the faceless photo not among them
    assert "no face found" in captured.err  # the photo without a face is reported, not lost silently
    assert "no person appears in two photos" not in captured.err
    assert (out / "best.pt").exists() and "--extra-data" in (out / "command.txt").read_text()
    record = json.loads((out / "extra_data.json").read_text())  # which people were held out, for the scoring side
    (part,) = record["datasets"]
    assert record["test_share"] == 0.5 and part["faces_added"] == added and part["photos_left_out"] == 1
    added_people, held_people = set(part["people_added"]), set(part["people_held_out"])
    assert added_people and held_people and not added_people & held_people
    assert added_people | held_people == {f"Person{p}" for p in range(12)}
    assert part["faces_added"] == 2 * len(added_people)


def test_train_extra_data_warns_when_no_person_has_two_photos(fer_folder, tmp_path, capsys):
    """File names that do not name people (one 'person' per photo) make the held-out part a photo split: say so."""
    import csv

    from emoscope.samples import astronaut_bgr

    root = tmp_path / "mux"
    (root / "images").mkdir(parents=True)
    (root / "data").mkdir()
    with open(root / "data" / "legend.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user.id", "image", "emotion"])
        for i in range(12):
            w.writerow([i, f"img{i:03d}a.jpg", ["happiness", "neutral", "anger"][i % 3]])
            cv2.imwrite(str(root / "images" / f"img{i:03d}a.jpg"), astronaut_bgr()[::2, ::2])
    flags = ["train", "--data", str(fer_folder), "--model", "emovgg_s", "--set", "model_kwargs={\"width\": 8}",
             "--epochs", "1", "--batch-size", "8", "--set", "bf16=false", "--out", str(tmp_path / "r"),
             "--extra-data", str(root), "--no-progress"]
    assert main(flags) == 0
    assert "no person appears in two photos" in capsys.readouterr().err


def test_train_extra_data_mistakes_are_one_line_errors(fer_folder, tmp_path, capsys):
    base = ["train", "--data", str(fer_folder), "--epochs", "1", "--out", str(tmp_path / "r")]
    assert main([*base, "--extra-data", str(fer_folder)]) == 2
    err = capsys.readouterr().err
    assert "--extra-data" in err and "legend.csv" in err and "Traceback" not in err
    assert main([*base, "--extra-data", str(fer_folder), "--extra-test-share", "1"]) == 2
    assert "--extra-test-share" in capsys.readouterr().err
