"""The results table: upsert by key, atomic JSON store, markdown rendering, command capture."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from emoscope.evaluation import classification_metrics
from emoscope.labels import EMOTIONS
from emoscope.results import ResultRow, ResultsStore, current_command, record, render_markdown


def row(model: str = "pytorch_4conv", acc: float = 0.6, **kw) -> ResultRow:
    base = {"experiment": "reproduce", "dataset": "fer2013", "setting": "7-class Training/PrivateTest",
            "model": model, "accuracy": acc, "macro_f1": acc - 0.1, "params": {"epochs": 30, "lr": 0.001},
            "train_time_s": 1500.0, "per_class_f1": {c: 0.5 for c in EMOTIONS}, "command": "python x.py --a"}
    base.update(kw)
    return ResultRow(**base)


def test_upsert_replaces_same_key(tmp_path):
    st = ResultsStore(tmp_path / "r.json")
    assert st.upsert(row()) is False
    assert st.upsert(row(acc=0.7)) is True
    assert st.upsert(row(params={"epochs": 60, "lr": 0.001})) is False  # other params: new row
    assert st.upsert(row(model="keras_arch1")) is False
    assert [r.accuracy for r in st.rows] == [0.7, 0.6, 0.6]
    assert all(r.date.endswith("UTC") for r in st.rows)


def test_upsert_keeps_hand_added_notes_unless_the_new_row_has_its_own(tmp_path):
    st = ResultsStore(tmp_path / "r.json")
    st.upsert(row(notes="trained on a shared GPU"))
    st.upsert(row(acc=0.7))  # a re-recorded row with no notes
    assert st.rows[0].notes == "trained on a shared GPU" and st.rows[0].accuracy == 0.7
    st.upsert(row(acc=0.8, notes="re-run"))
    assert st.rows[0].notes == "re-run"


def test_save_and_reload_round_trip(tmp_path):
    path = tmp_path / "sub" / "r.json"
    st = ResultsStore(path)
    st.upsert(row(extra={"flip_tta_accuracy": 0.65}, notes="smoke"))
    st.save()
    assert not path.with_suffix(".json.tmp").exists()
    again = ResultsStore(path)
    assert len(again.rows) == 1
    r = again.rows[0]
    assert r.extra == {"flip_tta_accuracy": 0.65} and r.per_class_f1["fear"] == 0.5 and r.train_time_s == 1500.0
    assert json.loads(path.read_text())[0]["model"] == "pytorch_4conv"


def test_bad_store_is_refused(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"not": "a list"}')
    with pytest.raises(ValueError, match="JSON list"):
        ResultsStore(p)


def test_from_metrics():
    m = classification_metrics([0, 1, 2, 2], [0, 1, 2, 0], EMOTIONS[:3])
    r = ResultRow.from_metrics("exp", "ds", "s", "m", m, params={"a": 1}, command="c")
    assert r.accuracy == 0.75 and set(r.per_class_f1) == {"angry", "disgust", "fear"} and r.params == {"a": 1}


def test_markdown_sections_columns_and_commands():
    rows = [row(), row(model="keras_arch1", command="python x.py --b"),
            row(model="m|pipe", experiment="optimizers", per_class_f1={"happy": 0.9, "contempt": 0.1},
                train_time_s=None, params={})]
    md = render_markdown(rows, "Results")
    assert md.startswith("# Results")
    assert "## reproduce" in md and "## optimizers" in md
    assert md.index("F1 happy") < md.index("F1 contempt")  # canonical order first, extra classes after
    assert "| epochs=30, lr=0.001 |" in md and "25.0 min" in md
    assert "1. `python x.py --a`" in md and "2. `python x.py --b`" in md
    assert "m\\|pipe" in md  # pipes escaped
    table = [ln for ln in md.splitlines() if "| fer2013 |" in ln]
    assert len(table) == 3 and all(ln.count("|") == table[0].count("|") for ln in table[:2])
    assert table[0].count("|") == 10  # per-class F1 sits in its own table, not 7 more columns here
    assert "| 1 | m\\|pipe | 0.900 | 0.100 |" in md  # '#' links it to the row of the results table


def test_record_writes_store_and_markdown(tmp_path):
    store, md = tmp_path / "results.json", tmp_path / "RESULTS.md"
    record(row(), store, md)
    record([row(acc=0.8), row(model="gudi_tflearn")], store, md)
    st = ResultsStore(store)
    assert len(st.rows) == 2 and st.rows[0].accuracy == 0.8
    text = md.read_text()
    assert "| [reproduce](results/reproduce.md) | 2 | pytorch_4conv (fer2013) |" in text and "0.8000" in text
    details = (tmp_path / "results" / "reproduce.md").read_text()
    assert "gudi_tflearn" in details and "0.8000" in details
    record(row(model="x"), store, None)  # markdown skipped
    assert "| x |" not in (tmp_path / "results" / "reproduce.md").read_text()


def test_summary_links_one_details_file_per_experiment_and_drops_stale_ones(tmp_path):
    from emoscope.results import details_dir, experiment_slug

    md = tmp_path / "RESULTS.md"
    st = ResultsStore(tmp_path / "results.json")
    st.upsert(row(experiment="classic baselines", model="hog + svc", acc=0.58))
    st.upsert(row(experiment="classic baselines", model="raw + rf", acc=0.48))
    st.upsert(row(experiment="reproduce: fer6"))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "gone.md").write_text("an experiment no longer in the store")
    st.write_markdown(md)
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["classic_baselines.md", "reproduce_fer6.md"]
    summary = md.read_text()
    assert "| [classic baselines](results/classic_baselines.md) | 2 | hog + svc (fer2013) |" in summary
    assert "| [reproduce: fer6](results/reproduce_fer6.md) | 1 |" in summary
    assert "raw + rf" not in summary and "raw + rf" in (tmp_path / "results" / "classic_baselines.md").read_text()
    assert experiment_slug("previous default model (v2, replaced)") == "previous_default_model_v2_replaced"
    # side-by-side stores in one folder (benchmarks/gpu_reproduce.py) each get their own details folder
    assert details_dir(tmp_path / "opt_adam.md") == tmp_path / "opt_adam"


def test_a_whole_recipe_run_drops_the_time_limited_runs_of_that_recipe_only_when_asked(tmp_path, capsys):
    store = tmp_path / "results.json"
    cut = "stopped after 15 of 30 epochs (time limit); trained on one H200"
    partial_gpu = row(acc=0.61, params={"epochs": 30, "lr": 0.001, "device": "NVIDIA H200"}, notes=cut)
    early_stop = row(acc=0.60, params={"epochs": 30, "lr": 0.01, "device": "NVIDIA H200"},
                     notes="stopped after 10 of 30 epochs (early stopping)")
    partial_cpu = row(acc=0.55, notes="stopped after 3 of 30 epochs (time limit)")
    other_recipe = row(acc=0.50, params={"epochs": 60, "lr": 0.001, "device": "NVIDIA H200"}, notes=cut)
    record([partial_gpu, early_stop, partial_cpu, other_recipe], store, None)
    whole = row(acc=0.66, params={"epochs": 30, "lr": 0.001, "device": "NVIDIA H100 80GB HBM3"}, notes="on an H100")

    record(row(acc=0.62, params=whole.params, notes="stopped after 20 of 30 epochs (time limit)"), store, None,
           drop_cut_short=True)  # itself cut short: supersedes nothing
    assert len(ResultsStore(store).rows) == 5
    record(whole, store, None)  # not asked: the partial rows stay beside it
    assert len(ResultsStore(store).rows) == 5
    assert capsys.readouterr().err == ""

    record(whole, store, None, drop_cut_short=True)
    kept = ResultsStore(store).rows
    assert sorted(r.accuracy for r in kept) == [0.50, 0.60, 0.66]  # other recipe, early stopping, the whole run
    err = capsys.readouterr().err
    assert err.count("dropped") == 2 and "superseded by a run of the whole recipe" in err


def _record_many(store: str, prefix: str, n: int) -> None:
    for i in range(n):
        record(row(model=f"{prefix}{i}"), store, None)


@pytest.mark.skipif(sys.platform == "win32", reason="the store lock is POSIX-only")
def test_record_from_processes_side_by_side_keeps_every_row(tmp_path):
    import multiprocessing as mp

    store = str(tmp_path / "results.json")
    # Fresh interpreters, as benchmark scripts side by side are: a forked child inherits this pytest process's
    # threads and their locks (Ray Data's prefetcher, Ray's core threads, tqdm's monitor, by the time this test
    # runs in the full suite), and one CI run hung in such children until join() gave up.
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_record_many, args=(store, f"p{k}_", 25)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert len(ResultsStore(store).rows) == 100


def test_current_command(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["benchmarks/reproduce.py", "--epochs", "3", "--name", "a b"])
    assert current_command() == "python benchmarks/reproduce.py --epochs 3 --name 'a b'"
    monkeypatch.setattr(sys, "argv", [str(Path.cwd() / "benchmarks" / "x.py"), "--smoke"])
    assert current_command() == "python benchmarks/x.py --smoke"
    monkeypatch.setattr(sys, "argv", ["/usr/bin/emoscope", "baselines", "--grid"])
    assert current_command() == "emoscope baselines --grid"
    monkeypatch.setattr(sys, "argv", ["/x/emoscope/__main__.py", "explain", "f.jpg"])
    assert current_command() == "python -m emoscope explain f.jpg"
