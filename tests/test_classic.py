"""Classic baselines: every feature transformer and classifier on small synthetic faces, grid search, settings."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from emoscope.classic import (
    CLASSIFIERS,
    FEATURES,
    HOGFeatures,
    LBPFeatures,
    PCAFeatures,
    RawPixels,
    baselines_markdown,
    evaluate_baseline,
    full_setting,
    grid_search,
    lbp_image,
    make_baseline,
    run_baselines,
    sample_per_class,
    small_setting,
)
from emoscope.datasets import FaceSet
from emoscope.datasets.faceset import DatasetError


@pytest.fixture(autouse=True)
def one_thread():
    """BLAS/OpenMP with several threads crawls on a busy machine; one thread keeps the tests fast."""
    with threadpool_limits(1):
        yield


def synthetic_faces(per_class: int, num_classes: int = 7, seed: int = 0, split: str = "Training") -> FaceSet:
    """Gray 48x48 'faces': an oval head, two eyes and a mouth whose shape and height depend on the class."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:48, :48]
    images, labels = [], []
    for c in range(num_classes):
        for _ in range(per_class):
            img = np.full((48, 48), 40.0)
            img[((xx - 24) / 17) ** 2 + ((yy - 24) / 22) ** 2 < 1] = 150
            for ex in (17, 31):
                img[(xx - ex) ** 2 + (yy - 18) ** 2 < 6] = 30
            mouth_y = 30 + c  # class moves the mouth down and changes its curvature
            curve = (c - num_classes / 2) * 0.08 * (xx - 24) ** 2 / 10
            img[(np.abs(yy - mouth_y - curve) < 1.5) & (np.abs(xx - 24) < 4 + c)] = 60
            img += rng.normal(0, 12, img.shape)
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(c)
    n = len(images)
    sources = np.array([f"{split}_{i}" for i in range(n)], dtype=object)
    return FaceSet(np.stack(images), np.array(labels), np.full(n, split, object), sources)


@pytest.fixture(scope="module")
def faces() -> FaceSet:
    return synthetic_faces(12, num_classes=7)


# ------------------------------------------------------------------------------------------------ features


@pytest.mark.parametrize("name", list(FEATURES))
def test_feature_shapes_and_dtype(name, faces):
    tr = FEATURES[name]()
    z = tr.fit(faces.images, faces.labels).transform(faces.images[:5])
    assert z.shape[0] == 5 and z.ndim == 2 and z.dtype == np.float32
    assert np.isfinite(z).all()
    # flattened rows work too (square images inferred)
    z2 = tr.transform(faces.images[:5].reshape(5, -1))
    np.testing.assert_allclose(z, z2, rtol=1e-5, atol=1e-6)


def test_feature_sizes():
    imgs = synthetic_faces(2, 2).images
    assert RawPixels().transform(imgs).shape == (4, 48 * 48)
    assert RawPixels(size=24).transform(imgs).shape == (4, 24 * 24)
    assert LBPFeatures(points=8, grid=6).transform(imgs).shape == (4, 6 * 6 * 10)
    assert HOGFeatures().transform(imgs).shape == (4, 5 * 5 * 2 * 2 * 9)  # 6x6 cells -> 5x5 blocks of 2x2


def test_lbp_cell_histograms_sum_to_one():
    imgs = synthetic_faces(1, 3).images
    z = LBPFeatures(grid=4).transform(imgs).reshape(len(imgs), 16, 10)
    np.testing.assert_allclose(z.sum(-1), 1.0, atol=1e-5)
    codes = lbp_image(imgs[0])
    assert codes.shape == (48, 48) and codes.min() >= 0 and codes.max() <= 9


def test_pca_keeps_mean_face_and_clips_components(faces):
    pca = PCAFeatures(n_components=300).fit(faces.images)
    assert pca.n_components_ == len(faces) - 1  # clipped: 84 faces allow 83 components
    assert pca.mean_face_.shape == (48, 48) and pca.eigenfaces_.shape == (pca.n_components_, 48, 48)
    np.testing.assert_allclose(pca.mean_face_, faces.images.mean(0) / 255.0, atol=1e-4)
    rec = pca.reconstruct(faces.images[:3])
    assert rec.shape == (3, 48, 48)
    assert np.abs(rec - faces.images[:3] / 255.0).mean() < 0.02  # almost every direction kept


# ---------------------------------------------------------------------------------------------- classifiers


@pytest.mark.parametrize("clf", CLASSIFIERS)
def test_classifier_fit_predict_proba(clf, faces):
    pipe = make_baseline("lbp", clf, classifier_params={"max_iter": 20} if clf == "gb" else None)
    if clf == "rf":
        pipe.set_params(clf__n_estimators=30)
    pipe.fit(faces.images, faces.labels)
    pred = pipe.predict(faces.images[:10])
    proba = pipe.predict_proba(faces.images[:10])
    assert pred.shape == (10,) and set(pred) <= set(range(7))
    assert proba.shape == (10, 7)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)


def test_pipelines_learn_the_synthetic_classes():
    train, test = synthetic_faces(15, 4, seed=1), synthetic_faces(8, 4, seed=2)
    for feat in ("pca", "hog"):
        res = evaluate_baseline(make_baseline(feat, "svc", probability=False), train, test)
        assert res["accuracy"] > 0.6, (feat, res["accuracy"])  # chance is 0.25
        assert set(res["per_class_f1"]) == set(train.classes)


def test_svm_without_probability_has_no_predict_proba(faces):
    pipe = make_baseline("hog", "svc", probability=False).fit(faces.images, faces.labels)
    assert pipe.predict(faces.images[:3]).shape == (3,)
    with pytest.raises(AttributeError):
        pipe.predict_proba(faces.images[:3])


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown features"):
        make_baseline("sift", "svc")
    with pytest.raises(ValueError, match="unknown classifier"):
        make_baseline("lbp", "knn")


def test_grid_search_stratified(faces):
    search = grid_search(make_baseline("pca", "linsvc", probability=False), faces.images, faces.labels,
                         {"features__n_components": [10, 20], "clf__C": [0.1, 1.0]}, cv=3)
    assert set(search.best_params_) == {"features__n_components", "clf__C"}
    assert len(search.cv_results_["params"]) == 4
    assert search.predict(faces.images[:4]).shape == (4,)


def test_grid_search_default_grid_runs():
    small = synthetic_faces(4, 3)
    search = grid_search(make_baseline("hog", "linsvc", probability=False), small.images, small.labels, cv=2)
    assert "clf__C" in search.best_params_ and "features__pixels_per_cell" in search.best_params_


# ------------------------------------------------------------------------------------------------ settings


def test_small_setting_balanced_disjoint_seeded():
    fs = synthetic_faces(20, 3)
    tr, va = small_setting(fs, n_train=10, n_val=5, seed=3)
    assert np.bincount(tr.labels).tolist() == [10, 10, 10]
    assert np.bincount(va.labels).tolist() == [5, 5, 5]
    assert not set(tr.sources) & set(va.sources)
    assert (np.diff(tr.labels) != 0).sum() > 2  # classes are shuffled, not in blocks
    tr2, _ = small_setting(fs, n_train=10, n_val=5, seed=3)
    assert list(tr.sources) == list(tr2.sources)
    tr3, _ = small_setting(fs, n_train=10, n_val=5, seed=4)
    assert list(tr.sources) != list(tr3.sources)


def test_small_setting_rare_class_split_in_proportion():
    fs = synthetic_faces(20, 2)
    rare = fs.subset(np.r_[np.arange(20), 20 + np.arange(6)])  # class 1 has only 6 faces
    tr, va = small_setting(rare, n_train=10, n_val=5)
    assert np.bincount(tr.labels).tolist() == [10, 4] and np.bincount(va.labels).tolist() == [5, 2]


def test_small_setting_from_split_and_empty():
    fs = FaceSet.concat([synthetic_faces(6, 2, split="Training"), synthetic_faces(6, 2, split="PublicTest")])
    tr, va = small_setting(fs, 3, 2, split="training")
    assert set(tr.splits) == {"Training"} and len(tr) == 6 and len(va) == 4
    with pytest.raises(DatasetError):
        small_setting(synthetic_faces(1, 2), 1, 1)


def test_full_setting_and_sample_per_class():
    fs = FaceSet.concat([synthetic_faces(8, 3, split="Training"), synthetic_faces(4, 3, split="PublicTest")])
    tr, te = full_setting(fs)
    assert len(tr) == 24 and len(te) == 12
    tr, te = full_setting(fs, limit_per_class=2)
    assert np.bincount(tr.labels).tolist() == [2, 2, 2] and np.bincount(te.labels).tolist() == [2, 2, 2]
    idx = sample_per_class(fs, 3, seed=1)
    assert len(idx) == 9 and len(set(idx.tolist())) == 9


def test_run_baselines_table():
    fs = synthetic_faces(6, 3)
    rows = run_baselines(fs, fs, ["lbp", "hog"], ["linsvc"], progress=False)
    assert [(r["features"], r["classifier"]) for r in rows] == [("lbp", "linsvc"), ("hog", "linsvc")]
    for r in rows:
        assert 0 <= r["accuracy"] <= 1 and r["fit_s"] >= 0 and "model" not in r
    md = baselines_markdown(rows)
    assert md.count("\n") == 4 and "| lbp | linsvc |" in md
