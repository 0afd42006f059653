"""benchmarks/gpu_flagship.py (packing, shipping rule) and benchmarks/flagship.py --score-only; no GPU needed."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def load_benchmark(name: str):
    """Import ``benchmarks/<name>.py`` as the script itself sees its siblings (benchmarks/ on sys.path)."""
    if str(REPO / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gpu_flagship():
    return load_benchmark("gpu_flagship")


def fer_like_folder(root: Path, labels: tuple[str, ...] = ("happy", "sad")) -> None:
    """A FER-2013-style image folder: Training / PublicTest / PrivateTest prefixes, two classes by default."""
    rng = np.random.default_rng(0)
    for sub, prefix, n in (("train", "Training", 4), ("test", "PublicTest", 2), ("test", "PrivateTest", 2)):
        for label in labels:
            d = root / sub / label
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 256, (48, 48), dtype=np.uint8)
                cv2.imwrite(str(d / f"{prefix}_{label}{i}.jpg"), img)


def test_pack_and_unpack_give_back_the_same_pixels_without_privatetest(gpu_flagship, tmp_path, monkeypatch):
    from emoscope.datasets import load_dataset

    monkeypatch.setenv("EMOSCOPE_CACHE", str(tmp_path / "cache"))
    fer_like_folder(tmp_path / "fer")
    packed = tmp_path / "pack.npz"
    assert gpu_flagship.main(["pack", "--data", str(tmp_path / "fer"), "--out", str(packed)]) == 0
    digests = gpu_flagship.unpack(packed, tmp_path / "back")
    back = load_dataset(tmp_path / "back", progress=False)
    assert set(back.split_names) == {"Training", "PublicTest"}  # the test split never travels
    for split, digest in digests.items():
        assert gpu_flagship.images_digest(back.split(split).images) == digest
    original = load_dataset(tmp_path / "fer", progress=False).split("Training")
    assert np.array_equal(original.images, back.split("Training").images)


def test_shipping_rule(gpu_flagship):
    choose = gpu_flagship.choose

    def run(model, acc, done=10, epochs=10):
        return {"model": model, "best_publictest_acc": acc, "epochs_done": done, "epochs": epochs}

    # the best finished run wins
    assert choose({"a": run("emovgg_m", 0.70), "b": run("emovgg_m", 0.71)}) == "b"
    # a wider net must win by at least half a point over the best emovgg_m run
    assert choose({"m": run("emovgg_m", 0.700), "l": run("emovgg_l", 0.704)}) == "m"
    assert choose({"m": run("emovgg_m", 0.700), "l": run("emovgg_l", 0.706)}) == "l"
    # a narrower one needs no margin
    assert choose({"m": run("emovgg_m", 0.700), "s": run("emovgg_s", 0.701)}) == "s"
    # unfinished runs do not count
    assert choose({"m": run("emovgg_m", 0.72, done=9), "l": run("emovgg_l", 0.70)}) == "l"
    assert choose({"m": run("emovgg_m", None)}) is None


@pytest.fixture(scope="module")
def flagship():
    return load_benchmark("flagship")


def test_score_only_scores_a_candidate_and_installs_nothing(flagship, tmp_path, monkeypatch, capsys):
    from emoscope.cli import main as cli
    from emoscope.labels import EMOTIONS
    from emoscope.weights import WEIGHTS_DIR

    monkeypatch.setenv("EMOSCOPE_CACHE", str(tmp_path / "cache"))
    from test_datasets import write_ferplus_votes

    fer_like_folder(tmp_path / "fer", labels=tuple(EMOTIONS))
    write_ferplus_votes(tmp_path / "fer", {p.relative_to(tmp_path / "fer").as_posix(): [0, 5, 5, 0, 0, 0, 0, 0, 0, 0]
                                           for p in (tmp_path / "fer" / "train").rglob("*.jpg")})
    run = tmp_path / "run"
    assert cli(["train", "--data", str(tmp_path / "fer"), "--model", "emovgg_t", "--epochs", "1", "--budget", "1",
                "--batch-size", "4", "--val-split", "publictest", "--ema-decay", "0.9", "--set", "soft_targets=ferplus",
                "--out", str(run)]) == 0
    recorded = []
    monkeypatch.setattr(flagship, "record", lambda rows: recorded.extend(rows) or tmp_path / "results.json")
    shipped_before = {p.name: p.stat().st_mtime_ns for p in WEIGHTS_DIR.iterdir()}

    assert flagship.main(["--run", str(run), "--data", str(tmp_path / "fer"), "--score-only"]) == 0

    out = capsys.readouterr().out
    assert "rule: PublicTest" in out and "does not replace" in out  # a 1-epoch toy run cannot beat the shipped one
    scores = json.loads((run / "scores.json").read_text())
    assert set(scores) == {"PublicTest", "PrivateTest"} and set(scores["PrivateTest"]) == {"none", "flip", "crops"}
    (row,) = recorded
    assert row.experiment == "flagship candidates" and row.accuracy == scores["PrivateTest"]["none"]["accuracy"]
    assert row.command.endswith("--score-only") and "emoscope train" in row.command
    assert row.params["ema_decay"] == 0.9  # the table says the candidate shipped a weight average
    assert row.params["soft_targets"] == "ferplus" and row.params["soft_target_weight"] == 0.3  # and its targets
    assert row.params["budget_s"] == 60 and "device" not in row.params  # planned by --budget, not gpu_flagship
    assert {p.name: p.stat().st_mtime_ns for p in WEIGHTS_DIR.iterdir()} == shipped_before


def test_a_budget_run_is_recorded_with_its_last_plan_not_its_first(flagship):
    replanned = [{"epoch": 1, "planned_epochs": 140}, {"epoch": 2, "planned_epochs": 133}, {"epoch": 3}]
    assert flagship.planned_epochs(replanned, 140) == 133
    assert flagship.planned_epochs([{"epoch": 1}], 90) == 90  # no plan in its rows: the first plan, its config


def test_xz_pack_with_privatetest_round_trips(gpu_flagship, tmp_path, monkeypatch):
    from emoscope.datasets import load_dataset

    monkeypatch.setenv("EMOSCOPE_CACHE", str(tmp_path / "cache"))
    fer_like_folder(tmp_path / "fer")
    packed = tmp_path / "all.npz.xz"
    assert gpu_flagship.main(["pack", "--data", str(tmp_path / "fer"), "--out", str(packed),
                              "--splits", "training,publictest,privatetest"]) == 0
    digests = gpu_flagship.unpack(packed, tmp_path / "back")
    back = load_dataset(tmp_path / "back", progress=False)
    assert set(back.split_names) == {"Training", "PublicTest", "PrivateTest"}
    assert all(gpu_flagship.images_digest(back.split(s).images) == d for s, d in digests.items())


def test_gpu_reproduce_jobs_and_merge(tmp_path):
    import tarfile

    from emoscope.results import ResultRow, ResultsStore, record

    gr = load_benchmark("gpu_reproduce")
    jobs = gr.jobs()
    assert len(jobs) == 22 and jobs["fer6_keras_arch6"][:3] == ["reproduce.py", "--experiment", "fer6"]
    assert jobs["xfer_m2f_scratch"][jobs["xfer_m2f_scratch"].index("--weights") + 1] == gr.MUX_WEIGHTS
    assert all(argv[argv.index("--epochs") + 1] == "2" for argv in gr.jobs(2).values())

    runs = tmp_path / "runs"
    per_class = {"happy": 0.5, "sad": 0.5}
    for name, params in (("opt_adam", {"optimizer": "adam", "lr": 0.001}),
                         ("opt_rmsprop", {"optimizer": "rmsprop", "lr": 0.0001}),
                         ("abl_none", {"variant": "none", "epochs": 2}),
                         ("abl_dropout", {"variant": "dropout", "epochs": 2}),
                         ("fer7_keras_4conv", {"optimizer": "adam"})):
        r = ResultRow("study", "fer2013", "7-class", "pytorch_4conv", 0.6, 0.5, params=params, per_class_f1=per_class,
                      command=f"python x.py {name}")
        record([r], runs / "results" / f"{name}.json", None)
        hist = runs / name / "run" / "history.json"
        hist.parent.mkdir(parents=True)
        hist.write_text(json.dumps([{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "train_acc": 0.1 * e,
                                     "val_acc": 0.1 * e} for e in (1, 2)]))
    with tarfile.open(tmp_path / "runs.tar.gz", "w:gz") as tar:
        tar.add(runs, arcname="runs")
    store, figures = tmp_path / "results.json", tmp_path / "figures"
    stale = ResultRow("study", "fer2013", "7-class", "gudi_tflearn", 0.3, 0.2, command="python x.py abl_all")
    record([stale], tmp_path / "back" / "runs" / "results" / "abl_all.json", None)  # an earlier archive's
    assert gr.main(["merge", "--tar", str(tmp_path / "runs.tar.gz"), "--dest", str(tmp_path / "back"),
                    "--exclude", "fer7_", "--note", "on a GPU", "--results", str(store),
                    "--figures", str(figures)]) == 0
    rows = ResultsStore(store).rows
    assert sorted(r.command for r in rows) == ["python x.py abl_dropout", "python x.py abl_none",
                                               "python x.py opt_adam", "python x.py opt_rmsprop"]
    assert all(r.notes == "on a GPU" for r in rows)
    assert (figures / "optimizers.png").read_bytes()[:4] == b"\x89PNG"
    table = (figures / "optimizers.md").read_text()
    assert "| adam | 0.001 | 2 | 2 |" in table and "| rmsprop | 0.0001 | 2 | 2 |" in table
    assert (figures / "ablations.png").read_bytes()[:4] == b"\x89PNG"
    table = (figures / "ablations.md").read_text()
    assert "one run per variant; on a GPU" in table
    assert "| dropout | 2 | 2 | planned epochs | 2 | 0.2000 | 0.6000 | 0.5000 |" in table
    assert "| none | 2 | 2 |" in table


def test_gpu_reproduce_run_trains_tests_and_packs_the_chosen_runs(gpu_flagship, tmp_path, monkeypatch):
    import tarfile

    from emoscope.labels import EMOTIONS

    monkeypatch.setenv("EMOSCOPE_CACHE", str(tmp_path / "cache"))
    fer_like_folder(tmp_path / "fer", tuple(EMOTIONS))
    packed = tmp_path / "all.npz.xz"
    gpu_flagship.main(["pack", "--data", str(tmp_path / "fer"), "--out", str(packed),
                       "--splits", "training,publictest,privatetest"])
    gr = load_benchmark("gpu_reproduce")
    out = tmp_path / "out"
    assert gr.main(["run", "--data", str(packed), "--out", str(out), "--runs", str(tmp_path / "runs"),
                    "--device", "cpu", "--epochs", "1", "--only", "opt_adam", "--time-limit", "60",
                    "--budget-s", "300", "--extra", "--batch-size 8"]) == 0
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = tar.getnames()
    assert "runs/results/opt_adam.json" in names and "runs/summary.json" in names
    assert not any(n.endswith(".pt") for n in names)  # checkpoints stay on the device
    assert not any("fer7_" in n or "abl_" in n for n in names)  # --only
    assert "runs/opt_adam/figures/optimizers.png" in names  # not the committed benchmarks/figures
    assert "runs/results/opt_adam.md" in names and "runs/results/RESULTS.md" not in names  # a table per run


def test_wait_then_stop_terms_then_kills_what_outlives_the_deadline(gpu_flagship):
    import subprocess
    import time

    def start(code: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)

    procs = {"quick": start("pass"), "slow": start("import time; time.sleep(60)"),
             "stubborn": start("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)")}
    t0 = time.time()
    stopped = gpu_flagship.wait_then_stop(procs, deadline=time.time() + 3, term_wait_s=2)
    assert sorted(stopped) == ["slow", "stubborn"] and time.time() - t0 < 20
    assert procs["quick"].returncode == 0
    assert procs["slow"].returncode == -15 and procs["stubborn"].returncode == -9


def test_benchmark_time_limits_take_units_and_bare_seconds():
    common = load_benchmark("common")
    p = common.base_parser("x", epochs=1)
    assert p.parse_args(["--time-limit", "40m"]).time_limit == 2400
    assert p.parse_args(["--time-limit", "2400"]).time_limit == 2400
    assert p.parse_args([]).time_limit == 0


def test_benchmark_fp32_switch_turns_autocast_off_and_marks_the_row_params(tmp_path):
    common = load_benchmark("common")
    p = common.base_parser("x", epochs=1)
    recipe = {"model": "keras_arch3", "optimizer": "adam", "lr": 1e-3}
    bf16 = common.make_config(p.parse_args([]), recipe, tmp_path)
    fp32 = common.make_config(p.parse_args(["--fp32"]), recipe, tmp_path)
    assert bf16.bf16 and not fp32.bf16
    assert "bf16" not in common.recipe_params(bf16) and common.recipe_params(fp32)["bf16"] is False


def test_benchmark_weights_label_names_the_file_and_its_content(tmp_path):
    common = load_benchmark("common")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "m.pt").write_bytes(b"v2")
    (tmp_path / "m.pt").write_bytes(b"v3")
    old, new = common.weights_label(tmp_path / "a" / "m.pt"), common.weights_label(tmp_path / "m.pt")
    assert old.startswith("m.pt (sha256 ") and new.startswith("m.pt (sha256 ") and old != new
    assert new == f"m.pt (sha256 {hashlib.sha256(b'v3').hexdigest()[:12]})"


def test_a_benchmark_run_stopped_by_its_time_limit_resumes_and_its_row_says_so(tmp_path, monkeypatch):
    from emoscope.labels import EMOTIONS
    from emoscope.results import ResultsStore

    monkeypatch.setenv("EMOSCOPE_CACHE", str(tmp_path / "cache"))
    fer_like_folder(tmp_path / "fer", tuple(EMOTIONS))
    ablations = load_benchmark("ablations")
    store = tmp_path / "results.json"
    argv = ["ablations.py", "--fer", str(tmp_path / "fer"), "--variants", "none", "--epochs", "3", "--batch-size", "8",
            "--no-progress", "--results", str(store), "--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "f"),
            "--note", "on a test machine"]

    def notes() -> str:
        (row,) = json.loads(store.read_text())
        return row["notes"]

    monkeypatch.setattr(sys, "argv", [*argv, "--time-limit", "1e-6"])
    ablations.main()
    assert notes() == "stopped after 1 of 3 epochs (time limit); on a test machine"
    assert ResultsStore(store).rows[0].cut_short  # what merge --drop-cut-short reads
    monkeypatch.setattr(sys, "argv", [*argv, "--resume"])
    ablations.main()
    assert notes() == "resumed at epoch 2; on a test machine"
    assert not ResultsStore(store).rows[0].cut_short
    history_file = tmp_path / "runs" / "pytorch_4conv_none" / "history.json"
    assert [h["epoch"] for h in json.loads(history_file.read_text())] == [1, 2, 3]

    # --redraw: the figure and table again from the row and the history of the run it scored; nothing trains
    (tmp_path / "f" / "ablations.md").unlink()
    monkeypatch.setattr(sys, "argv", [*argv, "--redraw", "--histories", str(tmp_path / "none")])
    ablations.main()
    assert "| none | 3 | 3 | planned epochs |" in (tmp_path / "f" / "ablations.md").read_text()
    history_file.write_text(json.dumps(json.loads(history_file.read_text())[:2]))  # no longer the row's run
    with pytest.raises(SystemExit, match="no history.json of pytorch_4conv_none with 3 epochs"):
        ablations.main()


@pytest.mark.parametrize("run, notes, expected", [
    (30, "", "planned epochs"),
    (29, "stopped after 29 of 30 epochs (early stopping); resumed at epoch 24", "early stopping"),
    (29, "stopped after 29 of 30 epochs (time limit); trained on a GPU", "time limit"),
    (12, "trained elsewhere", "-"),
])
def test_the_ablation_table_says_why_each_run_ended(run, notes, expected):
    from emoscope.results import ResultRow

    row = ResultRow.from_metrics("regularisation ablation", "fer2013", "s", "m", {"accuracy": 0.5, "macro_f1": 0.5},
                                 params={"epochs": 30}, notes=notes)
    assert load_benchmark("ablations").ended_by(row, run) == expected


@pytest.mark.parametrize("device, expected", [("cpu", None), ("cuda", "Fake GPU 80GB")])
def test_a_row_trained_on_a_gpu_names_it_so_a_cpu_run_of_the_recipe_does_not_replace_it(monkeypatch, device, expected):
    import torch

    common = load_benchmark("common")
    monkeypatch.setattr(common, "resolve_device", lambda name: torch.device(device))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Fake GPU 80GB")
    args = common.base_parser("x", epochs=1).parse_args([])
    result = {"metrics": {"accuracy": 0.5, "macro_f1": 0.4}, "train_s": 1.0,
              "summary": {"best_epoch": 1, "epochs_run": 1}}
    r = common.row(args, "exp", "fer2013", "s", "m", result, params={"epochs": 1})
    assert r.params.get("device") == expected
    args.trained = True  # scoring a run folder trained elsewhere: this machine's device says nothing
    assert "device" not in common.row(args, "exp", "fer2013", "s", "m", result, params={"epochs": 1}).params


def test_redraw_draws_the_run_that_ended_as_planned_when_a_variant_has_two_rows(tmp_path):
    from emoscope.results import ResultRow, record

    ablations = load_benchmark("ablations")

    def run(folder: str, n: int, notes: str, date: str) -> ResultRow:
        hist = [{"epoch": e, "train_acc": 0.5, "val_acc": 0.5 + e / 100} for e in range(1, n + 1)]
        (tmp_path / folder / "pytorch_4conv_none").mkdir(parents=True)
        (tmp_path / folder / "pytorch_4conv_none" / "history.json").write_text(json.dumps(hist))
        return ResultRow("regularisation ablation", "fer2013", "s", "pytorch_4conv", 0.5, 0.5, notes=notes,
                         params={"variant": "none", "epochs": 30, **({"device": "GPU"} if folder == "gpu" else {})},
                         extra={"epochs_run": n, "best_epoch": n}, date=date)

    store = tmp_path / "results.json"
    gpu = run("gpu", 29, "stopped after 29 of 30 epochs (time limit)", "2026-11-20 10:00 UTC")
    cpu = run("cpu", 30, "", "2026-11-19 10:00 UTC")  # older, but it ran its planned epochs
    record([gpu, cpu], store, markdown=None)
    folders = [tmp_path / "gpu", tmp_path / "cpu"]
    histories, rows = ablations.redraw_sources(store, "pytorch_4conv", 30, ["none"], folders)
    assert rows[0].params.get("device") is None and len(histories["none"]) == 30


#: Benchmark modules that are not command-line scripts with --help: the shared helpers, and the pipeline that
#: speed.py runs inside the ``fer`` package's own environment (it takes a section name, not options).
NOT_SCRIPTS = {"common", "fer_pipeline", "machine"}


@pytest.mark.parametrize("script", sorted(p.stem for p in (REPO / "benchmarks").glob("*.py")
                                          if p.stem not in NOT_SCRIPTS))
def test_every_benchmark_script_starts(script):
    """Each script's parser builds (options shared through common.base_parser cannot clash with a script's own)."""
    import subprocess

    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / f"{script}.py"), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout


def test_transfer_the_other_way_round_fine_tunes_a_model_on_fer2013(tmp_path, monkeypatch):
    from emoscope.cli import main as cli
    from emoscope.labels import EMOTIONS
    from emoscope.results import ResultsStore

    monkeypatch.setenv("EMOSCOPE_CACHE", str(tmp_path / "cache"))
    fer_like_folder(tmp_path / "fer", tuple(EMOTIONS))
    source = tmp_path / "source"  # stands in for a muxspace-trained model: any 7-class checkpoint
    assert cli(["train", "--data", str(tmp_path / "fer"), "--model", "emovgg_t", "--epochs", "1",
                "--batch-size", "4", "--val-split", "publictest", "--out", str(source)]) == 0
    transfer = load_benchmark("transfer")
    store = tmp_path / "results.json"
    base = ["transfer.py", "--fer", str(tmp_path / "fer"), "--out", str(tmp_path / "runs"), "--results", str(store),
            "--figures", str(tmp_path / "fig"), "--epochs", "1", "--batch-size", "4", "--no-progress"]
    monkeypatch.setattr(sys, "argv", [*base, "--direction", "muxspace-to-fer"])
    with pytest.raises(SystemExit, match="needs --weights"):
        transfer.main()
    monkeypatch.setattr(sys, "argv", [*base, "--direction", "muxspace-to-fer", "--weights", str(source / "best.pt")])
    transfer.main()
    rows = ResultsStore(store).rows
    assert sorted(r.params["start"] for r in rows) == ["muxspace weights", "muxspace weights", "scratch"]
    assert all(r.dataset == "fer2013" and r.setting.endswith("PrivateTest") and len(r.per_class_f1) == 7 for r in rows)
    assert all("sha256" in r.notes for r in rows if r.params["start"] != "scratch")
    assert (tmp_path / "runs" / "emovgg_t_finetune" / "best.pt").exists()
    monkeypatch.setattr(sys, "argv", [*base, "--starts", "scratch,bogus"])
    with pytest.raises(SystemExit, match="unknown bogus"):
        transfer.main()


def test_fixed_epochs_and_seeds_make_one_run_per_config_and_seed(gpu_flagship, tmp_path, monkeypatch):
    from emoscope.labels import EMOTIONS

    monkeypatch.setenv("EMOSCOPE_CACHE", str(tmp_path / "cache"))
    fer_like_folder(tmp_path / "fer", tuple(EMOTIONS))
    cfg = tmp_path / "cpu_recipe.json"
    cfg.write_text(json.dumps({"model": "emovgg_t", "epochs": 140, "batch_size": 4, "threads": 1}))
    out, runs = tmp_path / "out", tmp_path / "runs"
    assert gpu_flagship.main(["run", "--data", str(tmp_path / "fer"), "--configs", str(cfg), "--seeds", "0,1",
                              "--fixed-epochs", "--max-epochs", "1", "--device", "cpu", "--budget-s", "120",
                              "--runs", str(runs), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["candidates"]) == ["cpu_recipe_seed0", "cpu_recipe_seed1"]
    plans = [gpu_flagship.read_plan(runs / f"cpu_recipe_seed{s}") for s in (0, 1)]
    assert [p["seed"] for p in plans] == [0, 1] and all(p["epochs"] == 1 and p["calibration_s"] == 0 for p in plans)
    assert plans[1]["command"].startswith(f"emoscope train --config {cfg} --epochs 1 --device cpu --seed 1 ")
    assert (out / "cpu_recipe_seed1" / "best.pt").exists()


def test_a_calibrated_run_plans_its_epochs_from_timed_ones(gpu_flagship, tmp_path, monkeypatch):
    from emoscope.labels import EMOTIONS

    monkeypatch.setenv("EMOSCOPE_CACHE", str(tmp_path / "cache"))
    fer_like_folder(tmp_path / "fer", tuple(EMOTIONS))
    cfg = tmp_path / "recipe.json"
    cfg.write_text(json.dumps({"model": "emovgg_t", "epochs": 140, "batch_size": 4, "threads": 1, "bf16": False}))
    out, runs = tmp_path / "out", tmp_path / "runs"
    assert gpu_flagship.main(["run", "--data", str(tmp_path / "fer"), "--configs", str(cfg), "--max-epochs", "2",
                              "--device", "cpu", "--budget-s", "120", "--runs", str(runs), "--out", str(out)]) == 0
    plan = gpu_flagship.read_plan(runs / "recipe")
    assert plan["epochs"] == 2 and plan["calibration_s"] > 0 and plan["estimated_epoch_s"] > 0
    assert plan["command"].startswith(f"emoscope train --config {cfg} --epochs 2 --device cpu ")


# ------------------------------------------------------------------- v4: weight averages, prior reading, card


def test_a_weight_average_is_the_weighted_mean_and_keeps_integer_buffers_whole():
    import torch

    soup = load_benchmark("soup")
    a = {"w": torch.tensor([0.0, 2.0]), "bn.num_batches_tracked": torch.tensor(5)}
    b = {"w": torch.tensor([4.0, 6.0]), "bn.num_batches_tracked": torch.tensor(9)}
    out = soup.average({"a": a, "b": b}, {"a": 0.75, "b": 0.25})
    assert torch.allclose(out["w"], torch.tensor([1.0, 3.0]))
    assert out["bn.num_batches_tracked"].dtype == torch.int64 and int(out["bn.num_batches_tracked"]) == 5


def test_the_greedy_soup_keeps_an_ingredient_only_when_publictest_does_not_fall():
    soup = load_benchmark("soup")
    singles = [soup.Candidate(n, {n: 1.0}, acc, 0.5) for n, acc in (("v3", 0.70), ("run4", 0.71), ("run3", 0.68))]
    scores = {("run4", "v3"): 0.714, ("run3", "run4", "v3"): 0.705}

    def evaluate(mix):
        return scores[tuple(sorted(mix))], 0.6

    g = soup.greedy(singles, evaluate)
    assert g.mix == {"run4": 0.5, "v3": 0.5} and g.accuracy == 0.714


def test_a_soup_checkpoint_installs_like_a_run(tmp_path, monkeypatch):
    """save_soup writes best.pt with its mix and stage commands, plus command.txt and the last stage's history."""
    import torch

    from emoscope.models.checkpoint import load_model, model_meta
    from emoscope.models.registry import create_model

    soup = load_benchmark("soup")
    paths, states = {}, {}
    for name in ("v3", "run4"):
        model = create_model("emovgg_t", num_classes=7)
        ck = {**model_meta("emovgg_t", [f"c{i}" for i in range(7)]), "model": model.state_dict(), "epoch": 0,
              "train_config": {"epochs": 1}}
        paths[name] = tmp_path / name / "best.pt"
        paths[name].parent.mkdir()
        torch.save(ck, paths[name])
        states[name] = model.state_dict()
    (paths["run4"].parent / "command.txt").write_text("emoscope train --out run4\n")
    (paths["run4"].parent / "history.json").write_text("[]")
    monkeypatch.setattr(soup, "RUNS", {"v3": None, "run4": None})
    monkeypatch.setattr(sys, "argv", ["soup.py", "--out", str(tmp_path / "soup")])
    args = soup.argparse.Namespace(out=tmp_path / "soup")
    soup.save_soup(args, paths, states, soup.Candidate("half", {"v3": 0.5, "run4": 0.5}, 0.7, 0.6))
    model, meta = load_model(tmp_path / "soup" / "best.pt")
    expected = soup.average(states, {"v3": 0.5, "run4": 0.5})
    assert all(torch.allclose(v.float(), expected[k].float(), atol=1e-3) for k, v in model.state_dict().items())
    assert list(meta["soup"].values()) == [0.5, 0.5]
    assert meta["recipe"][1] == "emoscope train --out run4"  # v3 has no command.txt: its record says so
    assert (tmp_path / "soup" / "command.txt").read_text().startswith("python benchmarks/soup.py --out")
    assert (tmp_path / "soup" / "history.json").is_file()


def test_a_pair_soup_chooses_between_the_fine_tune_and_the_average_never_the_start(tmp_path, monkeypatch, fer_folder):
    """soup.py --pair START FINETUNE (run 10): three rows scored on PublicTest, the start only for reference."""
    import torch

    from emoscope.labels import EMOTIONS
    from emoscope.models.checkpoint import load_model, model_meta
    from emoscope.models.registry import create_model

    soup = load_benchmark("soup")
    paths = []
    for name, seed in (("start", 0), ("ft", 1)):
        torch.manual_seed(seed)
        model = create_model("emovgg_t", num_classes=7)
        ck = {**model_meta("emovgg_t", list(EMOTIONS)), "model": model.state_dict(), "epoch": 0,
              "train_config": {"epochs": 1}}
        paths.append(tmp_path / name / "best.pt")
        paths[-1].parent.mkdir()
        torch.save(ck, paths[-1])
    (tmp_path / "ft" / "extra_data.json").write_text('{"test_share": 0.4, "seed": 0}')  # the fine-tune's held-out
    report = tmp_path / "SOUP_PAIR.md"
    argv = ["soup.py", "--pair", str(paths[0]), str(paths[1]), "--data", str(fer_folder), "--out",
            str(tmp_path / "out"), "--report", str(report)]
    monkeypatch.setattr(sys, "argv", argv)
    soup.main()
    rows = [line for line in report.read_text().splitlines() if line.startswith("| ") and "%" in line]
    names = [r.split(" |")[0].removeprefix("| ").replace(" **(chosen)**", "") for r in rows]
    assert names == ["start", "fine-tune", "start + 0.5 x (fine-tune - start)"]
    assert sum("(chosen)" in r for r in rows) == 1 and "(chosen)" not in rows[0]
    _, meta = load_model(tmp_path / "out" / "best.pt")
    assert set(meta["soup"]) <= {"start", "finetune"} and "finetune" in meta["soup"]
    assert "--pair" in report.read_text()
    soup_weights = str(tmp_path / "out" / "best.pt")  # the fine-tune's record came along: the same people held out
    assert load_benchmark("generalisation").heldout_share([soup_weights], None) == 0.4


def test_generalisation_variants_read_through_the_products_options():
    """balance=T (and its old name prior=T) and tta= build the product's Recognizer(balance=, tta=), same file."""
    generalisation = load_benchmark("generalisation")
    assert generalisation.parse_variant("prior=1,margin=0.2") == {"balance": "1", "margin": "0.2"}
    assert generalisation.parse_variant("tta=crops") == {"tta": "crops"}
    with pytest.raises(SystemExit, match="bad variant part"):
        generalisation.parse_variant("tempo=2")
    rec = generalisation.Recognizer(weights="fast", detector="none", backend="onnx")
    assert generalisation.variant_recognizer(rec, {}) is rec
    balanced = generalisation.variant_recognizer(rec, {"balance": "1", "tta": "flip"})
    assert (balanced.balance, balanced.tta, balanced.backend.path) == (1.0, "flip", rec.backend.path)
    crops = np.random.default_rng(0).integers(0, 256, (8, 48, 48), dtype=np.uint8)
    has_face = np.array([True] * 7 + [False])
    pred = generalisation.emoscope_predictions(balanced, crops, has_face)
    assert pred[-1] == -1 and pred[:-1].tolist() == balanced.classify(crops[:-1]).argmax(1).tolist()



def test_generalisation_counts_where_each_posed_emotion_went():
    """score() keeps a 7 x 8 confusion (last column: no face found) and the report prints it row-normalised."""
    generalisation = load_benchmark("generalisation")
    y, pred = np.array([2, 2, 2, 5, 1]), np.array([5, 2, -1, 5, 1])
    r = generalisation.score(y, pred, np.arange(5))
    cm = np.array(r["confusion"])
    assert cm.shape == (7, 8) and cm.sum() == 5
    assert (cm[2, 5], cm[2, 2], cm[2, 7], cm[5, 5], cm[1, 1]) == (1, 1, 1, 1, 1)
    table = generalisation.confusion_table({"system": "m", "variant": "default", "taiwanese_all": r})
    fear = next(line for line in table if line.startswith("| fear |"))
    assert fear.split(" | ")[1:] == ["0", "0", "**33**", "0", "0", "33", "0", "33 |"]


def test_generalisation_holds_out_the_people_train_extra_data_leaves_out(tmp_path):
    """The muxspace 'heldout' subset is the test half of `emoscope train --extra-data`'s person split, and the
    report gives it its own section."""
    from emoscope.datasets.splits import hashed_split, person_of

    generalisation = load_benchmark("generalisation")
    root = tmp_path / "mux"
    (root / "images").mkdir(parents=True)
    (root / "data").mkdir()
    names = [f"P{p}_{k:04d}.jpg" for p in range(30) for k in range(2)]
    (root / "data" / "legend.csv").write_text("user.id,image,emotion\n" + "".join(
        f"{i},{n},{'happiness' if i % 2 else 'anger'}\n" for i, n in enumerate(names)))
    for n in names:
        (root / "images" / n).write_bytes(b"x")
    photos = generalisation.muxspace(root, heldout_share=0.5)
    held = photos.subsets["heldout"]
    order = [p.name for p in photos.paths]
    assert sorted(order) == sorted(names)
    expected = hashed_split([person_of(n) for n in order], (0.5, 0.5), ("train", "test")) == "test"
    assert held.tolist() == expected.tolist() and 0 < held.sum() < len(names)
    assert "heldout" not in generalisation.muxspace(root, heldout_share=None).subsets
    block = generalisation.score(photos.labels[held], photos.labels[held], photos.groups[held])
    row = {"system": "m", "variant": "default", "taiwanese_all": block, "taiwanese_agreed": block,
           "muxspace_all": block, "muxspace_heldout": block}
    generalisation.write_markdown(tmp_path / "r.md", [row], "cmd", "cpu", 60)
    text = (tmp_path / "r.md").read_text()
    assert f"## muxspace, held-out people only ({held.sum()} photos)" in text
    assert f"| m | default | 100.0 % [100.0 %-100.0 %] | {block['macro_f1']:.3f} | 0 |" in text

def test_generalisation_takes_the_held_out_share_the_training_run_recorded(tmp_path):
    """The share of muxspace's people scored as held out comes from the run's extra_data.json; a different one given
    by hand, or two runs with different shares, stop the benchmark instead of scoring people a model trained on."""
    generalisation = load_benchmark("generalisation")
    for name, share in (("a", 0.3), ("b", 0.3), ("c", 0.5)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "best.pt").write_bytes(b"")
        (tmp_path / name / "extra_data.json").write_text(json.dumps({"test_share": share, "seed": 0}))
    a, b, c = (str(tmp_path / n / "best.pt") for n in "abc")
    assert generalisation.heldout_share(["default", a, b], None) == 0.3
    assert generalisation.heldout_share(["default", a], 0.3) == 0.3
    assert generalisation.heldout_share(["default", "fast"], None) is None  # nothing recorded: no held-out rows
    assert generalisation.heldout_share([str(tmp_path / "elsewhere.pt")], 0.25) == 0.25
    with pytest.raises(SystemExit, match=r"--heldout-share 0.5 does not match .*a/best.pt: 0.3"):
        generalisation.heldout_share([a], 0.5)
    with pytest.raises(SystemExit, match="score runs with different shares separately"):
        generalisation.heldout_share([a, c], None)


def test_the_model_card_lists_cross_dataset_rows_and_recalls(tmp_path):
    flagship = load_benchmark("flagship")
    recall = {c: 0.5 for c in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")}
    block = {"accuracy": 0.487, "ci": [0.443, 0.532], "macro_f1": 0.442, "recall": recall}
    rows = [{"system": "v4", "taiwanese_all": block, "taiwanese_agreed": {**block, "accuracy": 0.579},
             "muxspace_all": {**block, "accuracy": 0.511}, "private": {**block, "accuracy": 0.726}},
            {"system": "fer", "taiwanese_all": block, "taiwanese_agreed": block, "muxspace_all": block}]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    text = flagship.cross_dataset_section(tmp_path / "rows.json")
    assert "| v4 | 48.7% [44.3%-53.2%] | 57.9% | 0.442 | 51.1% | 0.442 | 72.6% | 0.442 |" in text
    assert "| fer | 48.7% [44.3%-53.2%] | 48.7% | 0.442 | 48.7% | 0.442 | - | - |" in text
    assert "| v4 | " + " | ".join(["50%"] * 7) + " |" in text  # recall per class
    assert flagship.cross_dataset_section(None) == ""


def test_speed_times_an_untrained_architecture_from_its_name(tmp_path):
    """`speed.py --candidate emovgg_m:width=20` builds that architecture with its initial weights."""
    from emoscope.models.checkpoint import load_model

    speed = load_benchmark("speed")
    pt = speed.untrained_checkpoint("emovgg_m:width=20", tmp_path)
    model, meta = load_model(pt)
    assert meta["model_name"] == "emovgg_m" and meta["model_kwargs"] == {"width": 20}
    assert model.head.in_features == 160  # 20 doubled three times
    with pytest.raises(SystemExit, match="name:key=value"):
        speed.untrained_checkpoint("emovgg_m:width", tmp_path)
    _, meta = load_model(speed.untrained_checkpoint("emovgg_m:width=16,stem=s2d", tmp_path))  # a bare word, as --set
    assert meta["model_kwargs"] == {"width": 16, "stem": "s2d"}


def test_slim_script_writes_a_checkpoint_train_can_start_from(tmp_path, monkeypatch):
    import torch

    from emoscope.labels import EMOTIONS
    from emoscope.models import create_model
    from emoscope.models.checkpoint import atomic_save, load_model, model_meta
    from emoscope.training import load_initial_weights

    slim = load_benchmark("slim")
    torch.manual_seed(0)
    big = tmp_path / "big.pt"
    atomic_save({**model_meta("emovgg_m", EMOTIONS, width=8), "model": create_model("emovgg_m", width=8).state_dict()},
                big)
    monkeypatch.setattr(sys, "argv", ["slim.py", str(big), "--width", "4", "--out", str(tmp_path / "s.pt"),
                                      "--data", str(tmp_path / "no")])
    slim.main()
    model, meta = load_model(tmp_path / "s.pt")
    assert meta["model_kwargs"]["width"] == 4 and model.head.in_features == 32
    fresh = create_model("emovgg_m", width=4)
    load_initial_weights(fresh, str(tmp_path / "s.pt"))
    assert torch.equal(fresh.head.weight, model.head.weight)
