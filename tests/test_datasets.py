"""Every reader on small generated datasets, every bad input, and the real FER-2013 counts."""

import csv
import gzip

import cv2
import numpy as np
import pytest

from conftest import dataset_or_skip
from emoscope.datasets import DatasetError, FaceSet, load_dataset
from emoscope.datasets.fer_csv import read_fer_csv
from emoscope.datasets.ferplus import VOTE_COLUMNS, majority_label, vote_distributions
from emoscope.datasets.folder import read_image_folder
from emoscope.datasets.legend import read_legend
from emoscope.datasets.splits import cap_classes, check_classes_present, stratified_split
from emoscope.labels import LabelError, get_scheme

RNG = np.random.default_rng(0)


def _pixels(seed: int) -> str:
    return " ".join(str(v) for v in np.random.default_rng(seed).integers(0, 256, 48 * 48))


def write_fer_csv(path, rows, header=("emotion", "pixels", "Usage")):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def fer_rows():
    usages = ["Training"] * 14 + ["PublicTest"] * 7 + ["PrivateTest"] * 7
    return [(i % 7, _pixels(i), u) for i, u in enumerate(usages)]


@pytest.mark.parametrize("name", ["fer.csv", "fer.csv.gz"])
def test_fer_csv_reads_splits_and_pixels(tmp_path, fer_rows, name):
    fs = read_fer_csv(write_fer_csv(tmp_path / name, fer_rows), use_cache=False, progress=False)
    assert len(fs) == 28 and fs.images.shape == (28, 48, 48) and fs.images.dtype == np.uint8
    assert fs.counts_by_split()["Training"] == dict.fromkeys(fs.classes, 2)
    first = np.array(fer_rows[0][1].split(), dtype=np.uint8).reshape(48, 48)
    assert np.array_equal(fs.images[0], first)
    assert fs.split("privatetest").labels.tolist() == list(range(7))


def test_fer_csv_cache_gives_identical_set(tmp_path, fer_rows, monkeypatch):
    monkeypatch.setenv("EMOSCOPE_CACHE", str(tmp_path / "cache"))
    path = write_fer_csv(tmp_path / "fer.csv", fer_rows)
    a = read_fer_csv(path, progress=False)
    assert list((tmp_path / "cache").glob("*.npz"))
    b = read_fer_csv(path, progress=False)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert list(a.splits) == list(b.splits)


def test_fer6_drops_disgust_rows_and_counts_them(tmp_path, fer_rows):
    fs = read_fer_csv(write_fer_csv(tmp_path / "fer.csv", fer_rows), scheme="fer6", use_cache=False, progress=False)
    # fer6 merges disgust into angry (the 6-class setting of the Keras report)
    assert fs.scheme.num_classes == 6 and len(fs) == 28


@pytest.mark.parametrize(
    "rows,header,message",
    [
        ([(0, _pixels(0))], ("emotion", "pix"), "missing column"),
        ([(0, "1 2 3", "Training")], ("emotion", "pixels", "Usage"), "line 2: 3 pixel values, expected 2304"),
        ([(9, _pixels(0), "Training")], ("emotion", "pixels", "Usage"), "line 2: emotion 9 is outside 0-6"),
        ([("x", _pixels(0), "Training")], ("emotion", "pixels", "Usage"), "not an integer"),
        ([(0, "a " * 2304, "Training")], ("emotion", "pixels", "Usage"), "space-separated integers"),
        ([(0, " ".join(["300"] * 2304), "Training")], ("emotion", "pixels", "Usage"), "0-255"),
    ],
)
def test_fer_csv_bad_input_names_the_row(tmp_path, rows, header, message):
    path = write_fer_csv(tmp_path / "bad.csv", rows, header)
    with pytest.raises(DatasetError, match=message):
        read_fer_csv(path, use_cache=False, progress=False)


def test_fer_csv_missing_and_truncated_gz(tmp_path, fer_rows):
    with pytest.raises(DatasetError, match="file not found"):
        read_fer_csv(tmp_path / "nope.csv")
    full = write_fer_csv(tmp_path / "fer.csv.gz", fer_rows).read_bytes()
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(DatasetError, match="cannot read"):
        read_fer_csv(cut, use_cache=False, progress=False)


def make_folder(root, per_class=2, size=48, prefix=True, color=False):
    names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    for split, usage in (("train", "Training"), ("test", "PublicTest"), ("test", "PrivateTest")):
        for name in names:
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                shape = (size, size + 10, 3) if color else (size, size)
                img = RNG.integers(0, 256, shape, dtype=np.uint8)
                fname = f"{usage}_{k}{name}.png" if prefix else f"img{k}_{usage}.png"
                cv2.imwrite(str(d / fname), img)
    return root


def test_folder_recovers_fer_splits_from_file_names(tmp_path):
    fs = read_image_folder(make_folder(tmp_path / "fer"), use_cache=False, progress=False)
    assert sorted(fs.split_names) == ["PrivateTest", "PublicTest", "Training"]
    assert fs.split("publictest").class_counts() == dict.fromkeys(fs.classes, 2)


def test_folder_of_any_size_and_colour_without_prefix_uses_folder_split(tmp_path):
    fs = read_image_folder(make_folder(tmp_path / "f", size=120, prefix=False, color=True), use_cache=False,
                           progress=False)
    assert fs.images.shape[1:] == (48, 48)
    assert sorted(fs.split_names) == ["test", "train"]


def test_folder_reports_corrupt_images_and_carries_on(tmp_path):
    root = make_folder(tmp_path / "f")
    (root / "train" / "happy" / "Training_bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "train" / "sad" / "Training_empty.png").write_bytes(b"")
    fs = read_image_folder(root, use_cache=False, progress=False)
    assert len(fs) == 42 and len(fs.failures) == 2
    summary = fs.failure_summary()
    assert "2 input(s) could not be read" in summary and "Training_bad.jpg" in summary and "empty file" in summary


def test_failure_summary_shows_every_kind_of_failure_with_examples():
    """A rare kind of failure keeps its own examples beside thousands of a common one."""
    fs = FaceSet(np.zeros((1, 48, 48), np.uint8), np.zeros(1, np.int64), np.array(["train"]), np.array(["ok.jpg"]))
    fs.failures = [(f"m{i}.jpg", "the image file is missing") for i in range(1000)]
    fs.failures += [("f1.jpg", "no face found"), ("f2.jpg", "no face found"), ("f3.jpg", "no face found")]
    fs.failures += [(f"odd{i}.jpg", f"cannot decode: error {i}") for i in range(5)]
    summary = fs.failure_summary(kinds=3)
    assert summary.startswith("1008 input(s) could not be read and were left out: the image file is missing x1000 "
                              "(e.g. m0.jpg, m1.jpg, +998 more); no face found x3 (e.g. f1.jpg, f2.jpg, +1 more)")
    assert "m2.jpg" not in summary and "cannot decode: error 0 x1 (e.g. odd0.jpg)" in summary
    assert summary.endswith("; 4 other reason(s) x4 (e.g. odd1.jpg: cannot decode: error 1)")


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        read_image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        read_image_folder(tmp_path / "empty")
    bad = tmp_path / "bad" / "train" / "bored"
    bad.mkdir(parents=True)
    cv2.imwrite(str(bad / "a.png"), np.zeros((48, 48), np.uint8))
    with pytest.raises(LabelError, match="'bored' x1"):
        read_image_folder(tmp_path / "bad", use_cache=False)


def make_legend(root, rows, sizes=(350, 350)):
    (root / "images").mkdir(parents=True)
    (root / "data").mkdir()
    with open(root / "data" / "legend.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user.id", "image", "emotion"])
        for i, (image, label) in enumerate(rows):
            w.writerow([i, image, label])
            if not image.startswith("missing"):
                cv2.imwrite(str(root / "images" / image), RNG.integers(0, 256, (*sizes, 3), dtype=np.uint8))
    return root


def test_legend_cleans_labels_caps_and_splits(tmp_path):
    labels = ["HAPPINESS", "happiness", "neutral", "NEUTRAL", "anger", "SADNESS", "surprise", "fear", "contempt",
              "DISGUST"]
    rows = [(f"img{i}.jpg", labels[i % len(labels)]) for i in range(100)]
    rows += [("missing.jpg", "fear"), ("img0.jpg", "happiness")]  # a missing file, a duplicate row
    fs = read_legend(make_legend(tmp_path / "mux", rows), cap_per_class={"happy": 10}, use_cache=False,
                     progress=False)
    counts = fs.class_counts()
    assert counts["happy"] == 10 and counts["disgust"] == 20  # contempt merged into disgust
    assert sorted(fs.split_names) == ["test", "train", "val"]
    assert fs.split("train").class_counts()["neutral"] == 12  # 60% of 20
    assert fs.images.shape[1:] == (48, 48)
    assert any("missing" in why for _, why in fs.failures)
    # seeded: the same split twice
    again = read_legend(tmp_path / "mux", cap_per_class={"happy": 10}, use_cache=False, progress=False)
    assert list(again.splits) == list(fs.splits) and list(again.sources) == list(fs.sources)


def test_legend_bad_inputs(tmp_path):
    root = make_legend(tmp_path / "a", [("a.jpg", "happy"), ("b.jpg", "bored"), ("c.jpg", "bored")])
    with pytest.raises(LabelError, match="'bored' x2"):
        read_legend(root, use_cache=False)
    root = make_legend(tmp_path / "b", [("a.jpg", "happy"), ("a.jpg", "sad"), ("b.jpg", "sad")], sizes=(60, 80))
    fs = read_legend(root, split=None, use_cache=False, progress=False)
    assert len(fs) == 1 and "conflicting labels" in fs.failures[0][1]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "legend.csv").write_text("id,file,label\n1,a.jpg,happy\n")
    with pytest.raises(DatasetError, match="missing column"):
        read_legend(tmp_path / "c")
    with pytest.raises(DatasetError, match="no legend.csv"):
        read_legend(tmp_path)


def test_load_dataset_dispatch(tmp_path, fer_rows):
    assert len(load_dataset(write_fer_csv(tmp_path / "f.csv", fer_rows), use_cache=False, progress=False)) == 28
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "nothing")


def test_splits_and_balancing():
    from emoscope.datasets.faceset import FaceSet

    labels = np.repeat(np.arange(7), [50, 5, 20, 100, 30, 30, 40])
    fs = FaceSet(np.zeros((len(labels), 48, 48), np.uint8), labels, ["all"] * len(labels),
                 [str(i) for i in range(len(labels))])
    capped = cap_classes(fs, 25, seed=1)
    assert capped.class_counts()["happy"] == 25 and capped.class_counts()["disgust"] == 5
    split = stratified_split(fs, (0.8, 0.1, 0.1), seed=3)
    assert split.split("train").class_counts()["happy"] == 80
    assert len(split.split("val")) + len(split.split("test")) + len(split.split("train")) == len(fs)
    with pytest.raises(DatasetError, match="sum to 1"):
        stratified_split(fs, (0.5, 0.2, 0.2))
    with pytest.raises(DatasetError, match="disgust"):
        check_classes_present(fs.subset(fs.labels != 1), "train split")


def test_ferplus_majority_vote():
    # columns: neutral happiness surprise sadness anger disgust fear contempt unknown NF
    assert majority_label(np.array([6, 0, 1, 1, 0, 0, 0, 0, 2, 0])) == 0
    assert majority_label(np.array([4, 0, 0, 1, 3, 2, 0, 0, 0, 0])) is None  # no majority
    assert majority_label(np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 10])) is None  # not a face
    assert majority_label(np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1])) is None  # only stray votes


def write_ferplus_votes(root, votes_by_source: dict[str, list[int]]):
    """FER+'s two files for a FER-2013 folder: ``ferplus/fer2013new.csv`` (one row of votes per image) and
    ``fer2013_row_index.csv`` (each image's path -> its row)."""
    (root / "ferplus").mkdir(parents=True, exist_ok=True)
    with open(root / "ferplus" / "fer2013new.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Usage", "Image name", *VOTE_COLUMNS])
        w.writerows(["Training", f"fer{i:07d}.png", *v] for i, v in enumerate(votes_by_source.values()))
    with open(root / "fer2013_row_index.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kaggle_path", "fer2013_row"])
        w.writerows([src, i] for i, src in enumerate(votes_by_source))
    return root


def test_ferplus_vote_shares_follow_the_scheme(tmp_path):
    # columns: neutral happiness surprise sadness anger disgust fear contempt unknown NF
    root = write_ferplus_votes(tmp_path, {
        "a.png": [6, 0, 1, 1, 0, 0, 0, 0, 2, 0],  # stray votes and "unknown" do not count: all neutral
        "b.png": [0, 0, 0, 0, 4, 2, 0, 4, 0, 0],  # contempt joins disgust in fer7, stays itself in ferplus8
        "c.png": [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face: no emotion votes
    })
    sources = ["b.png", "a.png", "c.png", "not-in-the-index.png"]
    q = vote_distributions(root, sources, "fer7")
    assert q.shape == (4, 7) and q.dtype == np.float32
    assert q[0].tolist() == pytest.approx([0.4, 0.6, 0, 0, 0, 0, 0])
    assert q[1].tolist() == [0, 0, 0, 0, 0, 0, 1]
    assert not q[2].any() and not q[3].any()
    q8 = vote_distributions(root, sources[:1], "ferplus8")
    assert q8[0, get_scheme("ferplus8").index("contempt")] == pytest.approx(0.4)
    with pytest.raises(DatasetError, match="fer2013new.csv"):
        vote_distributions(tmp_path / "elsewhere", sources)


def test_real_ferplus_vote_shares():
    root = dataset_or_skip("fer2013")
    with open(root / "fer2013_row_index.csv", newline="") as f:
        sources = [r["kaggle_path"] for r in csv.DictReader(f) if r["usage"] == "Training"]
    q = vote_distributions(root, sources)
    has = q.sum(1) > 0
    assert len(sources) == 28709 and has.mean() > 0.99
    assert np.allclose(q[has].sum(1), 1.0, atol=1e-5)


def test_real_fer2013_counts_per_split_and_class():
    root = dataset_or_skip("fer2013")
    fs = load_dataset(root, progress=False)
    assert len(fs) == 35887 and not fs.failures
    c = fs.counts_by_split()
    assert c["Training"] == {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "sad": 4830,
                             "surprise": 3171, "neutral": 4965}
    assert sum(c["PublicTest"].values()) == 3589 and sum(c["PrivateTest"].values()) == 3589
    assert c["PrivateTest"]["disgust"] == 55 and c["PublicTest"]["happy"] == 895


def test_real_ferplus_join():
    root = dataset_or_skip("fer2013")
    from emoscope.datasets.ferplus import read_ferplus

    fs = read_ferplus(root, progress=False)
    assert 30000 < len(fs) < 35710
    assert fs.scheme.name == "ferplus8" and fs.class_counts()["contempt"] > 0
    assert len(fs.failures) == 177  # the images the row index could not resolve


def test_person_of_reads_lfw_style_names():
    from emoscope.datasets.splits import person_of

    assert person_of("George_W_Bush_0001.jpg") == "George_W_Bush"
    assert person_of("Avinash_30.jpg") == "Avinash"
    assert person_of("facial-expressions_2868582k.jpg") == "facial-expressions_2868582k"
    assert person_of("img7.png") == "img7"


def test_hashed_split_keeps_each_key_in_one_split_whatever_else_is_there():
    from emoscope.datasets.splits import hashed_split

    keys = [f"person{i % 300}" for i in range(1200)]
    out = hashed_split(keys, (0.5, 0.5), ("train", "test"), seed=0)
    by_key = {}
    for k, s in zip(keys, out, strict=True):
        assert by_key.setdefault(k, s) == s  # one split per person
    share = np.mean([s == "test" for s in by_key.values()])
    assert 0.4 < share < 0.6
    # a key's split does not depend on the others present, and the seed changes it
    assert list(hashed_split(keys[:7], (0.5, 0.5), ("train", "test"))) == list(out[:7])
    other = hashed_split(keys[:300], (0.5, 0.5), ("train", "test"), seed=1)
    assert list(other) != list(out[:300])
    assert set(hashed_split(keys, (1.0, 0.0), ("train", "test"))) == {"train"}
    with pytest.raises(DatasetError, match="sum to 1"):
        hashed_split(keys, (0.5, 0.6), ("train", "test"))


def test_legend_split_by_person_holds_whole_people_out(tmp_path):
    from emoscope.datasets.splits import person_of

    labels = ["happiness", "neutral", "anger", "sadness", "surprise", "fear", "disgust"]
    rows = [(f"P{p}_{k:04d}.jpg", labels[(p + k) % 7]) for p in range(40) for k in range(3)]
    root = make_legend(tmp_path / "mux", rows, sizes=(64, 64))
    fs = read_legend(root, split=(0.5, 0.0, 0.5), split_by="person", use_cache=False, progress=False)
    assert set(fs.split_names) == {"train", "test"}
    train_people = {person_of(s) for s in fs.split("train").sources}
    test_people = {person_of(s) for s in fs.split("test").sources}
    assert train_people and test_people and not train_people & test_people
    with pytest.raises(DatasetError, match="split_by must be"):
        read_legend(root, split_by="face", use_cache=False, progress=False)
