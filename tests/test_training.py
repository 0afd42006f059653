"""A tiny training run whose loss falls, exact resume, optimizers and schedules, augmentation."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from emoscope.augment import AugmentConfig, augment_batch, mixup, random_affine
from emoscope.datasets.faceset import FaceSet
from emoscope.labels import get_scheme
from emoscope.models.checkpoint import read_checkpoint
from emoscope.training import (
    TrainConfig,
    TrainConfigError,
    blend_targets,
    class_weight_tensor,
    distillation_loss,
    make_optimizer,
    make_scheduler,
    teacher_paths,
    train,
)


def toy_faces(n_per_class=24, classes=7, seed=0) -> FaceSet:
    """Faces whose class is a bright bar at a class-specific row: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    imgs, labels = [], []
    for c in range(classes):
        for _ in range(n_per_class):
            img = rng.integers(0, 60, (48, 48)).astype(np.uint8)
            img[4 + 6 * c : 8 + 6 * c, 6:42] = 230
            imgs.append(img)
            labels.append(c)
    n = len(labels)
    return FaceSet(np.stack(imgs), np.array(labels), ["train"] * n, [f"toy{i}" for i in range(n)])


def tiny_cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(model="emovgg_s", model_kwargs={"width": 8}, epochs=3, batch_size=32, lr=0.05, schedule="cosine",
                augment=False, bf16=False, out_dir=str(tmp_path / "run"), threads=1, label_smoothing=0.0)
    base.update(kw)
    return TrainConfig.from_dict(base)


def test_loss_falls_and_run_folder_is_complete(tmp_path):
    faces = toy_faces()
    summary = train(tiny_cfg(tmp_path, epochs=4), faces, faces, progress=False)
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] * 0.8
    assert summary.best_acc > 0.5
    for name in ("config.json", "last.pt", "best.pt", "history.csv", "curves.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    ck = read_checkpoint(tmp_path / "run" / "best.pt")
    assert ck["model_name"] == "emovgg_s" and ck["classes"][0] == "angry"


def whole_and_resumed(tmp_path, faces, **cfg) -> tuple[dict, dict]:
    """The last.pt of one run trained at once (in ``a``) and of the same run stopped after an epoch and resumed
    (in ``b``)."""
    train(tiny_cfg(tmp_path / "a", **cfg), faces, faces, progress=False)
    parts = tiny_cfg(tmp_path / "b", **cfg)
    train(parts, faces, faces, progress=False, stop_after=1)
    train(parts, faces, faces, progress=False, resume=True)
    return read_checkpoint(tmp_path / "a" / "run" / "last.pt"), read_checkpoint(tmp_path / "b" / "run" / "last.pt")


def test_resume_gives_identical_results(tmp_path):
    a, b = whole_and_resumed(tmp_path, toy_faces(12), augment=True, mixup_alpha=0.2)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]


def test_a_constant_rate_run_may_be_extended_on_resume_and_equals_the_longer_run(tmp_path):
    faces = toy_faces(6)
    cfg = dict(schedule="constant", augment=True)
    train(tiny_cfg(tmp_path / "short", epochs=2, **cfg), faces, faces, progress=False)
    longer = train(tiny_cfg(tmp_path / "short", epochs=3, **cfg), faces, faces, progress=False, resume=True)
    assert longer.epochs_run == 3 and longer.resumed_at == 3
    train(tiny_cfg(tmp_path / "long", epochs=3, **cfg), faces, faces, progress=False)
    a = read_checkpoint(tmp_path / "short" / "run" / "last.pt")["model"]
    b = read_checkpoint(tmp_path / "long" / "run" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # (cosine and one-cycle depend on the total: refused below)


def test_resume_refuses_a_changed_schedule(tmp_path):
    faces = toy_faces(4)
    train(tiny_cfg(tmp_path), faces, None, progress=False, stop_after=1)
    with pytest.raises(ValueError, match="epochs differ"):
        train(tiny_cfg(tmp_path, epochs=5), faces, None, progress=False, resume=True)


def test_early_stopping_and_init_weights(tmp_path):
    faces = toy_faces(6)
    summary = train(tiny_cfg(tmp_path, epochs=10, early_stopping=1, lr=0.0, schedule="constant"), faces, faces,
                    progress=False)
    assert summary.epochs_run == 2
    best = tmp_path / "run" / "best.pt"
    cfg = tiny_cfg(tmp_path / "ft", epochs=1, lr=0.0, schedule="constant", init_weights=str(best))
    train(cfg, faces, faces, progress=False)
    a, b = read_checkpoint(best)["model"], read_checkpoint(tmp_path / "ft" / "run" / "last.pt")["model"]
    assert torch.equal(a["body.0.0.weight"], b["body.0.0.weight"])


def test_time_limit_stops_before_an_epoch_that_would_pass_it(tmp_path):
    faces = toy_faces(6)
    summary = train(tiny_cfg(tmp_path, epochs=50, time_limit_s=1e-6), faces, faces, progress=False)
    assert summary.epochs_run == 1 and summary.stopped == "time limit"
    summary = train(tiny_cfg(tmp_path / "free", epochs=2, time_limit_s=3600), faces, faces, progress=False)
    assert summary.epochs_run == 2 and summary.stopped is None


def test_a_run_stopped_by_its_time_limit_resumes_to_its_full_length(tmp_path):
    faces = toy_faces(6)
    first = train(tiny_cfg(tmp_path, epochs=3, time_limit_s=1e-6), faces, faces, progress=False)
    assert first.epochs_run == 1 and first.resumed_at is None
    rest = train(tiny_cfg(tmp_path, epochs=3), faces, faces, progress=False, resume=True)
    assert rest.epochs_run == 3 and rest.resumed_at == 2 and rest.stopped is None
    assert rest.elapsed_s >= first.elapsed_s  # the whole run's training time, both calls
    done = train(tiny_cfg(tmp_path, epochs=3), faces, faces, progress=False, resume=True)
    assert done.epochs_run == 3 and done.resumed_at is None  # nothing was left to train


def test_resuming_a_run_that_stopped_early_trains_no_more(tmp_path):
    faces = toy_faces(6)
    cfg = tiny_cfg(tmp_path, epochs=10, early_stopping=1, lr=0.0, schedule="constant")
    assert train(cfg, faces, faces, progress=False).epochs_run == 2
    before = (tmp_path / "run" / "last.pt").read_bytes()
    again = train(cfg, faces, faces, progress=False, resume=True)
    assert again.epochs_run == 2 and again.stopped == "early stopping"
    assert (tmp_path / "run" / "last.pt").read_bytes() == before


def test_distillation_loss_is_zero_only_when_student_matches_teacher():
    t = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    assert float(distillation_loss(t.clone(), t, 3.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(distillation_loss(t.flip(1), t, 3.0)) > 0.1


def test_distilled_student_learns_from_its_teacher(tmp_path):
    faces = toy_faces(12)
    train(tiny_cfg(tmp_path / "teacher", epochs=6), faces, faces, progress=False)
    teacher = tmp_path / "teacher" / "run" / "best.pt"
    # soft labels only (alpha 1): all the student knows comes from the teacher
    cfg = tiny_cfg(tmp_path / "student", model="emovgg_t", model_kwargs={"width": 8}, epochs=10, lr=0.1,
                   batch_size=16, teacher=str(teacher), distill_alpha=1.0, distill_temperature=1.0)
    summary = train(cfg, faces, faces, progress=False)
    assert summary.best_acc > 0.8  # chance is 1/7
    seven = toy_faces(2)
    six = FaceSet(seven.images[:12], seven.labels[:12], ["train"] * 12, seven.sources[:12], get_scheme("fer6"))
    with pytest.raises(ValueError, match="teacher .* predicts"):
        train(tiny_cfg(tmp_path / "bad", teacher=str(teacher)), six, None, progress=False)


def test_an_ensemble_teacher_averages_its_members_logits(tmp_path):
    """teacher: [a, b] distils from the mean of two teachers' logits; each member is checked like one teacher."""
    from emoscope.models.checkpoint import load_model
    from emoscope.training import TeacherEnsemble, load_teacher

    faces = toy_faces(6)
    for name, seed in (("a", 0), ("b", 1)):
        train(tiny_cfg(tmp_path / name, epochs=2, seed=seed), faces, faces, progress=False)
    paths = [str(tmp_path / n / "run" / "best.pt") for n in ("a", "b")]
    cfg = tiny_cfg(tmp_path / "student", teacher=paths, channels_last=False)
    ensemble = load_teacher(cfg, list(faces.classes), 48, 1)
    assert isinstance(ensemble, TeacherEnsemble) and not any(p.requires_grad for p in ensemble.parameters())
    x = torch.rand(4, 1, 48, 48)
    members = [load_model(p)[0] for p in paths]
    with torch.no_grad():
        expected = (members[0](x) + members[1](x)) / 2
        assert torch.allclose(ensemble(x), expected, atol=1e-5)
        assert not torch.allclose(members[0](x), members[1](x), atol=1e-3)  # two different teachers
    train(tiny_cfg(tmp_path / "student", teacher=paths, epochs=1), faces, faces, progress=False)
    assert read_checkpoint(tmp_path / "student" / "run" / "best.pt")["train_config"]["teacher"] == paths
    with pytest.raises(ValueError, match="non-empty list"):
        load_teacher(tiny_cfg(tmp_path / "none", teacher=[]), list(faces.classes), 48, 1)


def test_blend_targets_mixes_votes_into_labels_and_keeps_faces_without_votes():
    labels = np.array([0, 2])
    votes = np.array([[0, 1, 0], [0, 0, 0]], dtype=np.float32)  # the second face has no votes
    cfg = TrainConfig(soft_targets="ferplus", soft_target_weight=0.3)
    t = blend_targets(cfg, labels, 3, votes)
    assert t.tolist() == [pytest.approx([0.7, 0.3, 0.0]), [0.0, 0.0, 1.0]]
    assert blend_targets(TrainConfig(), labels, 3, None) is None


@pytest.mark.parametrize("cfg,votes,message", [
    ({}, np.eye(3, dtype=np.float32)[:2], "soft_targets is not set"),
    ({"soft_targets": "teacher"}, None, "unknown soft_targets 'teacher'"),
    ({"soft_targets": "ferplus"}, None, "needs the FER\\+ vote shares"),
    ({"soft_targets": "ferplus", "soft_target_weight": 1.5}, None, "must be in \\[0, 1\\]"),
    ({"soft_targets": "ferplus"}, np.eye(3, dtype=np.float32), "shape \\(3, 3\\), expected \\(2, 3\\)"),
    ({"soft_targets": "ferplus"}, np.full((2, 3), 0.5, np.float32), "must be a distribution"),
])
def test_blend_targets_refuses_bad_input(cfg, votes, message):
    with pytest.raises(TrainConfigError, match=message):
        blend_targets(TrainConfig(**cfg), np.array([0, 1]), 3, votes)


def test_a_run_learns_its_soft_targets(tmp_path):
    """With all the weight on the soft targets, a net learns them, not the labels: here every face's target is the
    next class's, so it is scored against shifted labels."""
    faces = toy_faces(12)
    shifted = (faces.labels + 1) % 7
    cfg = tiny_cfg(tmp_path, epochs=6, soft_targets="ferplus", soft_target_weight=1.0)
    scored = FaceSet(faces.images, shifted, faces.splits, faces.sources)
    summary = train(cfg, faces, scored, progress=False, targets=np.eye(7, dtype=np.float32)[shifted])
    assert summary.best_acc > 0.8  # chance is 1/7
    with pytest.raises(TrainConfigError, match="soft_target_weight differ"):
        train(tiny_cfg(tmp_path, epochs=6, soft_targets="ferplus", soft_target_weight=0.5), faces, scored,
              progress=False, resume=True, targets=np.eye(7, dtype=np.float32)[shifted])


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "plateau", "constant"])
def test_optimizers_and_schedules(name, schedule):
    p = [torch.nn.Parameter(torch.ones(3))]
    cfg = TrainConfig(optimizer=name, schedule=schedule, lr=0.1, epochs=2)
    opt = make_optimizer(cfg, p)
    sched, per_batch = make_scheduler(cfg, opt, 5)
    assert per_batch == (schedule != "plateau")
    with pytest.raises(ValueError):
        make_optimizer(TrainConfig(optimizer="lbfgs"), p)


def test_class_weights_are_inverse_frequency():
    w = class_weight_tensor(np.array([0, 0, 0, 1]), 3)
    assert w[1] > w[0] and w[2] == 0


def test_unknown_config_field_is_refused():
    with pytest.raises(ValueError, match="unknown training option"):
        TrainConfig.from_dict({"epochz": 3})


def test_augmentation_is_seeded_and_keeps_range():
    x = torch.rand(16, 1, 48, 48)
    cfg = AugmentConfig()
    a = augment_batch(x, cfg, torch.Generator().manual_seed(1))
    b = augment_batch(x, cfg, torch.Generator().manual_seed(1))
    c = augment_batch(x, cfg, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert augment_batch(x, cfg, torch.Generator().manual_seed(1), out_size=40).shape == (16, 1, 40, 40)


def test_identity_affine_and_flip():
    x = torch.rand(4, 1, 48, 48)
    still = AugmentConfig(rotation=0, scale=0, shift=0, shear=0, hflip=0)
    assert torch.allclose(random_affine(x, still, torch.Generator()), x, atol=1e-5)
    flip = AugmentConfig(rotation=0, scale=0, shift=0, shear=0, hflip=1.0)
    assert torch.allclose(random_affine(x, flip, torch.Generator()), x.flip(-1), atol=1e-5)


def test_mixup_mixes_pairs():
    x, y = torch.rand(8, 1, 4, 4), torch.arange(8)
    xm, ya, yb, lam = mixup(x, y, 0.4, torch.Generator().manual_seed(0))
    assert 0 <= lam <= 1 and torch.equal(ya, y) and sorted(yb.tolist()) == list(range(8))


def test_random_erasing_replaces_one_rectangle_per_chosen_image():
    from emoscope.augment import random_erasing

    x = torch.zeros(32, 1, 48, 48)
    cfg = AugmentConfig(erasing=1.0, erasing_area=(0.05, 0.2))
    out = random_erasing(x, cfg, torch.Generator().manual_seed(0))
    for img in out[:, 0]:
        rows, cols = torch.nonzero(img, as_tuple=True)
        h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert len(rows) == h * w  # one filled rectangle (noise is never exactly 0 here)
        assert 0.02 * 48 * 48 <= h * w <= 0.3 * 48 * 48
    assert torch.equal(random_erasing(x, AugmentConfig(erasing=0.0), torch.Generator()), x)


def test_device_option_is_checked():
    from emoscope.training import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("meta")


@pytest.mark.parametrize("epochs,steps", [(1, 1), (1, 3), (1, 4), (2, 3)])
def test_onecycle_survives_runs_of_a_few_steps(epochs, steps):
    from emoscope.training import make_scheduler

    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    sched, per_batch = make_scheduler(TrainConfig(epochs=epochs, schedule="onecycle"), opt, steps)
    assert per_batch
    for _ in range(epochs * steps):  # OneCycleLR used to divide by zero here for 4 steps or fewer
        opt.step()
        sched.step()


def test_every_committed_config_is_a_valid_recipe():
    import json
    from pathlib import Path

    from emoscope.models import list_models

    repo = Path(__file__).resolve().parents[1]
    configs = sorted((repo / "configs").rglob("*.json"))
    assert configs
    for path in configs:
        cfg = TrainConfig.from_dict(json.loads(path.read_text()))
        assert cfg.model in list_models(), path
        assert cfg.device in ("auto", "cpu"), f"{path}: a committed recipe must also run without a GPU"
        for ref in (*teacher_paths(cfg.teacher), cfg.init_weights):
            assert ref is None or (repo / ref).is_file(), f"{path}: {ref} is missing"


def test_best_epoch_is_the_row_train_keeps():
    from emoscope.training import best_epoch

    history = [{"epoch": 1, "train_acc": 0.5, "val_acc": 0.4}, {"epoch": 2, "train_acc": 0.6, "val_acc": 0.45},
               {"epoch": 3, "train_acc": 0.7, "val_acc": 0.45}]
    assert best_epoch(history)["epoch"] == 2  # the earliest of equal scores, as best.pt
    assert best_epoch([{"epoch": 1, "train_acc": 0.3}, {"epoch": 2, "train_acc": 0.2}])["epoch"] == 1


def test_half_precision_keeps_integer_buffers():
    from emoscope.models.checkpoint import half_precision

    state = {"w": torch.ones(2), "n": torch.tensor(3)}
    half = half_precision(state)
    assert half["w"].dtype == torch.float16 and half["n"].dtype == torch.int64


def record_input_sizes(monkeypatch) -> list[int]:
    """Spy on the flagship's forward: the list fills with the side of every batch it is given."""
    from emoscope.models.flagship import EmoVGG

    seen: list[int] = []
    real_forward = EmoVGG.forward

    def spy(self, x):
        seen.append(x.shape[-1])
        return real_forward(self, x)

    monkeypatch.setattr(EmoVGG, "forward", spy)
    return seen


@pytest.mark.parametrize("augment", [True, False])
def test_train_crop_then_whole_faces_for_the_last_epochs(tmp_path, monkeypatch, augment):
    seen = record_input_sizes(monkeypatch)
    faces = toy_faces()
    train(tiny_cfg(tmp_path, epochs=3, batch_size=len(faces), train_crop=40, full_size_epochs=1, augment=augment),
          faces, None, progress=False)
    assert seen == [40, 40, 48]  # one batch per epoch: two cropped epochs, then a whole-face one


@pytest.mark.parametrize("crop", [None, 40])
def test_train_resize_shrinks_faces_until_the_whole_face_epochs(tmp_path, monkeypatch, crop):
    """Progressive resizing: (cropped) faces shrunk to train_resize, then whole 48-px faces for the last epoch."""
    seen = record_input_sizes(monkeypatch)
    faces = toy_faces()
    train(tiny_cfg(tmp_path, epochs=3, batch_size=len(faces), train_crop=crop, train_resize=32, full_size_epochs=1),
          faces, None, progress=False)
    assert seen == [32, 32, 48]


@pytest.mark.parametrize("opts, message", [({"train_crop": 64}, "train_crop 64"),
                                           ({"train_crop": 40, "train_resize": 44}, "train_resize 44")])
def test_crop_and_resize_sizes_are_checked(tmp_path, opts, message):
    with pytest.raises(TrainConfigError, match=message):
        train(tiny_cfg(tmp_path, epochs=1, **opts), toy_faces(), None, progress=False)


def test_resize_batch_antialias_keeps_a_fine_pattern_grey():
    """Shrinking a 1-px checkerboard: antialiased it averages to grey; plain bilinear keeps the aliased pattern."""
    from emoscope.preprocess import resize_batch

    board = (torch.arange(48)[:, None] + torch.arange(48)[None, :]) % 2
    x = board.float()[None, None]
    smooth = resize_batch(x, 32, antialias=True)
    assert smooth.std() < 0.1 and abs(smooth.mean() - 0.5) < 0.05
    assert resize_batch(x, 32).std() > smooth.std()


def test_update_ema_averages_float_state_and_copies_counters():
    from emoscope.training import update_ema

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    ema = __import__("copy").deepcopy(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()(torch.randn(4, 1, 6, 6))  # moves the running statistics and the batch counter
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    update_ema(ema, model, 0.9)
    for k, v in ema.state_dict().items():
        m = model.state_dict()[k]
        if v.is_floating_point():
            assert torch.allclose(v, 0.9 * before[k] + 0.1 * m), k
        else:
            assert torch.equal(v, m), k


def test_ema_decay_warms_up_then_holds():
    from emoscope.training import ema_decay_at

    assert ema_decay_at(0.999, 0) == pytest.approx(0.1)
    assert ema_decay_at(0.999, 90) == pytest.approx(91 / 100)
    assert ema_decay_at(0.999, 100_000) == 0.999


def test_an_ema_run_validates_and_ships_the_average_and_resumes_exactly(tmp_path):
    faces = toy_faces(12)
    a, b = whole_and_resumed(tmp_path, faces, ema_decay=0.9)
    for k in a["ema"]:
        assert torch.equal(a["ema"][k], b["ema"][k]), k
    # The shipped best.pt holds the average, not the raw weights of its epoch (one epoch: best is last).
    train(tiny_cfg(tmp_path / "d", ema_decay=0.9, epochs=1), faces, faces, progress=False)
    best = read_checkpoint(tmp_path / "d" / "run" / "best.pt")
    last = read_checkpoint(tmp_path / "d" / "run" / "last.pt")
    key = "body.0.0.weight"
    assert torch.equal(best["model"][key], last["ema"][key])
    assert not torch.equal(best["model"][key], last["model"][key])
    with pytest.raises(TrainConfigError, match="ema_decay"):
        train(tiny_cfg(tmp_path / "c", ema_decay=1.0), faces, faces, progress=False)
    with pytest.raises(TrainConfigError, match="ema_decay differ"):
        train(tiny_cfg(tmp_path / "b", ema_decay=0.5), faces, faces, progress=False, resume=True)


class Killed(Exception):
    """Stands in for a kill -9 in the middle of a run."""


def test_best_pt_is_saved_before_last_pt_and_resume_repairs_a_kill_between_them(tmp_path, monkeypatch, capsys):
    """A kill after the first checkpoint file of an improving epoch: last.pt must never name a best epoch that
    best.pt does not hold yet (with last.pt written first it did), --resume puts best.pt back in step with last.pt,
    removes the half-written *.tmp, and the finished run equals one never killed."""
    from emoscope import training

    faces = toy_faces(6)
    whole = train(tiny_cfg(tmp_path / "whole"), faces, None, progress=False)
    assert [row["epoch"] for row in whole.history] == [1, 2, 3] and whole.best_epoch == 3  # each epoch improves
    real_save, writes = training.atomic_save, []

    def killed_on_the_fourth_write(obj, path):  # epoch 1 writes two files, epoch 2 one before the kill
        writes.append(Path(path).name)
        if len(writes) == 4:
            Path(str(path) + ".tmp").write_bytes(b"half a checkpoint")
            raise Killed
        real_save(obj, path)

    monkeypatch.setattr(training, "atomic_save", killed_on_the_fourth_write)
    cfg = tiny_cfg(tmp_path)
    with pytest.raises(Killed):
        train(cfg, faces, None, progress=False)
    run = tmp_path / "run"
    best, last = read_checkpoint(run / "best.pt"), read_checkpoint(run / "last.pt")
    assert best["epoch"] + 1 >= last["best_epoch"]  # last.pt names no epoch best.pt lacks
    monkeypatch.setattr(training, "atomic_save", real_save)
    capsys.readouterr()
    train(cfg, faces, None, progress=False, resume=True, stop_after=0)  # only the repair
    assert "repaired" in capsys.readouterr().out
    assert not list(run.glob("*.tmp"))
    best, last = read_checkpoint(run / "best.pt"), read_checkpoint(run / "last.pt")
    assert best["epoch"] + 1 == last["best_epoch"] == last["epoch"] + 1 == 1
    assert all(torch.equal(best["model"][k], v) for k, v in last["model"].items())
    train(cfg, faces, None, progress=False, resume=True)
    for name in ("best.pt", "last.pt"):
        a, b = read_checkpoint(tmp_path / "whole" / "run" / name), read_checkpoint(run / name)
        assert a["epoch"] == b["epoch"] and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), name


def old_format_crash(tmp_path, epochs_after: int, **cfg) -> tuple[TrainConfig, Path]:
    """A run of 1 + ``epochs_after`` epochs (of 4) as the old save order could leave it: best.pt from epoch 1,
    last.pt in the old format (no copy of the best weights, no process count)."""
    run_cfg, run = tiny_cfg(tmp_path, epochs=4, **cfg), tmp_path / "run"
    train(run_cfg, toy_faces(6), None, progress=False, stop_after=1)
    first = (run / "best.pt").read_bytes()
    train(run_cfg, toy_faces(6), None, progress=False, resume=True, stop_after=epochs_after)
    ck = torch.load(run / "last.pt", weights_only=True)
    del ck["best_model"], ck["world_size"]
    torch.save(ck, run / "last.pt")
    (run / "best.pt").write_bytes(first)
    return run_cfg, run


def test_resume_repairs_best_pt_of_an_old_run_whose_best_epoch_is_its_last(tmp_path, capsys):
    cfg, run = old_format_crash(tmp_path, 1)
    last = read_checkpoint(run / "last.pt")
    assert last["best_epoch"] == 2 and read_checkpoint(run / "best.pt")["epoch"] == 0
    capsys.readouterr()
    train(cfg, toy_faces(6), None, progress=False, resume=True, stop_after=0)
    assert "repaired" in capsys.readouterr().out
    best = read_checkpoint(run / "best.pt")
    assert best["epoch"] == 1 and all(torch.equal(best["model"][k], v) for k, v in last["model"].items())


@pytest.mark.parametrize("lost, said", [(False, "goes on with epoch 1 as its best"),
                                         (True, "goes on and the next epoch becomes its best")])
def test_resume_without_a_copy_of_the_best_weights_goes_on_with_what_best_pt_holds(tmp_path, capsys, lost, said):
    cfg, run = old_format_crash(tmp_path, 2, lr=0.0, schedule="constant")  # lr 0: epoch 2 is the best, 3 not
    assert read_checkpoint(run / "last.pt")["best_epoch"] == 2
    if lost:
        (run / "best.pt").unlink()
    capsys.readouterr()
    result = train(cfg, toy_faces(6), None, progress=False, resume=True)
    assert f"no copy of that one; the run {said}" in capsys.readouterr().out
    best, last = read_checkpoint(run / "best.pt"), read_checkpoint(run / "last.pt")
    assert best["epoch"] + 1 == last["best_epoch"] == result.best_epoch == 4  # epoch 4 beat epoch 1


def test_train_result_is_typed_and_names_the_best_epoch(tmp_path):
    faces = toy_faces(6)
    result = train(tiny_cfg(tmp_path, epochs=2), faces, faces, progress=False)
    row = result.history[result.best_epoch - 1]
    assert result.best_acc == row["val_acc"] and result.best_macro_f1 == row["val_macro_f1"]
    assert result.weights == str(tmp_path / "run" / "best.pt") and result.processes == 1
    summary = result.to_dict()
    assert "history" not in summary and json.loads(json.dumps(summary))["best_epoch"] == result.best_epoch


def test_train_cli_ends_with_a_table_or_with_json(fer_folder, tmp_path, capsys):
    from emoscope.cli import main

    flags = ["train", "--data", str(fer_folder), "--model", "emovgg_t", "--epochs", "1", "--batch-size", "8",
             "--set", "bf16=false", "--no-progress"]
    assert main([*flags, "--out", str(tmp_path / "a")]) == 0
    table = dict(line.split("  ", 1) for line in capsys.readouterr().out.strip().splitlines()[-7:])
    assert table["best epoch"].strip() == "1" and table["weights"].strip() == str(tmp_path / "a" / "best.pt")
    assert {"val accuracy", "val macro-F1", "training time", "epochs"} <= set(table)
    assert main([*flags, "--json", "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{"):])
    assert summary["best_epoch"] == 1 and summary["weights"] == str(tmp_path / "b" / "best.pt")
