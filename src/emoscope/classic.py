"""Classic (pre-deep-learning) baselines: hand-made features + scikit-learn classifiers.

Features (transformers, fitted like any scikit-learn step) take uint8 faces ``N x H x W`` and return
``N x D`` float32: raw pixels, PCA eigenfaces, uniform-LBP histograms over a grid of cells, HOG.
Classifiers: random forest, histogram gradient boosting, SVC with an RBF or a linear kernel.
:func:`make_baseline` glues one of each into a :class:`~sklearn.pipeline.Pipeline`;
:func:`grid_search` tunes it with stratified k-fold cross-validation; :func:`small_setting` and
:func:`full_setting` give the two data settings the classic experiments use.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from skimage.feature import hog, local_binary_pattern
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from .datasets.faceset import DatasetError, FaceSet
from .evaluation import classification_metrics


def _as_images(X: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Accept N x H x W images or N x (H*W) rows (square, or ``shape``); return N x H x W."""
    X = np.asarray(X)
    if X.ndim == 3:
        return X
    if X.ndim == 2:
        if shape is None:
            side = int(round(np.sqrt(X.shape[1])))
            if side * side != X.shape[1]:
                raise ValueError(f"cannot reshape rows of {X.shape[1]} pixels into a square image; pass shape=")
            shape = (side, side)
        return X.reshape(len(X), *shape)
    raise ValueError(f"expected N x H x W images or N x D rows, got shape {X.shape}")


# ------------------------------------------------------------------------------------------------ features


class RawPixels(TransformerMixin, BaseEstimator):
    """Flattened pixels scaled to [0, 1]; ``size`` downsamples first (e.g. 24) to keep SVC/RF fast."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> RawPixels:
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        imgs = _as_images(X).astype(np.float32) / 255.0
        if self.size and self.size != imgs.shape[-1]:
            from skimage.transform import resize

            imgs = np.stack([resize(im, (self.size, self.size), anti_aliasing=True) for im in imgs])
        return imgs.reshape(len(imgs), -1).astype(np.float32)


class PCAFeatures(TransformerMixin, BaseEstimator):
    """Eigenfaces (Turk & Pentland 1991): project centred faces on the top principal components.

    After ``fit``: ``mean_face_`` (H x W, in [0, 1]), ``eigenfaces_`` (K x H x W), ``explained_variance_ratio_``.
    ``n_components`` is clipped to what the data allows, so small samples and grid search never fail.
    """

    def __init__(self, n_components: int = 300, whiten: bool = False, random_state: int = 0) -> None:
        self.n_components = n_components
        self.whiten = whiten
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> PCAFeatures:
        imgs = _as_images(X)
        flat = imgs.reshape(len(imgs), -1).astype(np.float32) / 255.0
        k = max(1, min(self.n_components, flat.shape[0] - 1, flat.shape[1]))
        solver = "randomized" if k < 0.8 * min(flat.shape) else "full"
        self.pca_ = PCA(k, whiten=self.whiten, svd_solver=solver, random_state=self.random_state).fit(flat)
        self.image_shape_ = imgs.shape[1:]
        self.n_components_ = k
        self.mean_face_ = self.pca_.mean_.reshape(self.image_shape_)
        self.eigenfaces_ = self.pca_.components_.reshape(k, *self.image_shape_)
        self.explained_variance_ratio_ = self.pca_.explained_variance_ratio_
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        imgs = _as_images(X, getattr(self, "image_shape_", None))
        return self.pca_.transform(imgs.reshape(len(imgs), -1).astype(np.float32) / 255.0).astype(np.float32)

    def reconstruct(self, X: np.ndarray) -> np.ndarray:
        """Faces rebuilt from their PCA codes (N x H x W in [0, 1]): what the eigenfaces keep."""
        codes = self.transform(X)
        return self.pca_.inverse_transform(codes).reshape(len(codes), *self.image_shape_)


def lbp_image(img: np.ndarray, points: int = 8, radius: float = 1.0, method: str = "uniform") -> np.ndarray:
    """The LBP code of every pixel (float H x W); with ``uniform`` codes are 0..points+1."""
    return local_binary_pattern(np.asarray(img, dtype=np.uint8), points, radius, method=method)


class LBPFeatures(TransformerMixin, BaseEstimator):
    """Local binary patterns (Ojala et al. 2002; Shan et al. 2009 for faces): per-cell histograms, concatenated.

    Uniform patterns with ``points`` neighbours give ``points + 2`` bins; the face is cut into
    ``grid`` x ``grid`` cells so the histogram keeps where each texture occurs. Each cell's histogram
    sums to 1. Stateless: ``fit`` learns nothing.
    """

    def __init__(self, points: int = 8, radius: float = 1.0, grid: int = 6, method: str = "uniform") -> None:
        self.points = points
        self.radius = radius
        self.grid = grid
        self.method = method

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> LBPFeatures:
        return self

    def _bins(self) -> int:
        if self.method == "uniform":
            return self.points + 2
        if self.method == "default":
            return 2**self.points
        raise ValueError(f"LBP method must be 'uniform' or 'default', got {self.method!r}")

    def transform(self, X: np.ndarray) -> np.ndarray:
        imgs = _as_images(X)
        n, h, w = imgs.shape
        bins, g = self._bins(), self.grid
        # cell id of every pixel, then one bincount per image over (cell, code) pairs
        cell = (np.arange(h)[:, None] * g // h) * g + (np.arange(w)[None, :] * g // w)
        cell_sizes = np.bincount(cell.ravel(), minlength=g * g).astype(np.float32)
        out = np.empty((n, g * g * bins), np.float32)
        for i, img in enumerate(imgs):
            codes = lbp_image(img, self.points, self.radius, self.method).astype(np.int64)
            hist = np.bincount((cell * bins + codes).ravel(), minlength=g * g * bins).astype(np.float32)
            out[i] = (hist.reshape(g * g, bins) / cell_sizes[:, None]).ravel()
        return out


class HOGFeatures(TransformerMixin, BaseEstimator):
    """Histograms of oriented gradients (Dalal & Triggs 2005) via :func:`skimage.feature.hog`."""

    def __init__(self, orientations: int = 9, pixels_per_cell: int = 8, cells_per_block: int = 2,
                 block_norm: str = "L2-Hys") -> None:
        self.orientations = orientations
        self.pixels_per_cell = pixels_per_cell
        self.cells_per_block = cells_per_block
        self.block_norm = block_norm

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> HOGFeatures:
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        imgs = _as_images(X)
        ppc, cpb = (self.pixels_per_cell,) * 2, (self.cells_per_block,) * 2
        return np.stack([
            hog(im, self.orientations, ppc, cpb, block_norm=self.block_norm, feature_vector=True) for im in imgs
        ]).astype(np.float32)


FEATURES: dict[str, type] = {"raw": RawPixels, "pca": PCAFeatures, "lbp": LBPFeatures, "hog": HOGFeatures}


# ---------------------------------------------------------------------------------------------- classifiers


class SVMClassifier(ClassifierMixin, BaseEstimator):
    """Support vector machine with an RBF (libsvm ``SVC``) or linear (liblinear ``LinearSVC``) kernel.

    ``probability=True`` adds sigmoid-calibrated probabilities from ``calibration_cv``-fold cross-validation
    (``CalibratedClassifierCV(ensemble=False)``, the replacement of ``SVC(probability=True)``). The linear
    kernel uses liblinear because libsvm scales quadratically with the sample count; so the linear baseline
    also runs on the full FER-2013 training set.
    """

    def __init__(self, kernel: str = "rbf", C: float = 10.0, gamma: float | str = "scale", probability: bool = True,
                 calibration_cv: int = 3, max_iter: int = 5000, random_state: int = 0) -> None:
        self.kernel = kernel
        self.C = C
        self.gamma = gamma
        self.probability = probability
        self.calibration_cv = calibration_cv
        self.max_iter = max_iter
        self.random_state = random_state

    def _svm(self):
        if self.kernel == "rbf":
            return SVC(kernel="rbf", C=self.C, gamma=self.gamma, random_state=self.random_state)
        if self.kernel == "linear":
            return LinearSVC(C=self.C, max_iter=self.max_iter, random_state=self.random_state)
        raise ValueError(f"kernel must be 'rbf' or 'linear', got {self.kernel!r}")

    def fit(self, X: np.ndarray, y: np.ndarray) -> SVMClassifier:
        counts = np.bincount(np.asarray(y))
        cv = min(self.calibration_cv, int(counts[counts > 0].min()))
        if self.probability and cv >= 2:
            self.model_ = CalibratedClassifierCV(self._svm(), cv=cv, method="sigmoid", ensemble=False).fit(X, y)
        else:
            self.model_ = self._svm().fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(X)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.model_.decision_function(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self.model_, "predict_proba"):
            raise AttributeError("SVMClassifier was fitted with probability=False (or a class had < 2 faces)")
        return self.model_.predict_proba(X)


def make_classifier(name: str, seed: int = 0, probability: bool = True, n_jobs: int = 1, **params: Any):
    """A classifier by short name: ``rf``, ``gb`` (HistGradientBoosting), ``svc`` (RBF), ``linsvc``.

    ``probability=False`` skips the SVMs' probability calibration (~4x faster fit; no ``predict_proba``).
    """
    if name == "rf":
        kw = {"n_estimators": 300, "min_samples_leaf": 1, "n_jobs": n_jobs, "random_state": seed}
        return RandomForestClassifier(**{**kw, **params})
    if name == "gb":
        kw = {"max_iter": 200, "learning_rate": 0.1, "early_stopping": False, "random_state": seed}
        return HistGradientBoostingClassifier(**{**kw, **params})
    if name == "svc":
        return SVMClassifier(**{"kernel": "rbf", "C": 10.0, "probability": probability, "random_state": seed, **params})
    if name == "linsvc":
        return SVMClassifier(**{"kernel": "linear", "C": 0.1, "probability": probability, "random_state": seed,
                                **params})
    raise ValueError(f"unknown classifier {name!r}; choose one of {', '.join(CLASSIFIERS)}")


CLASSIFIERS = ("rf", "gb", "svc", "linsvc")

#: Default grids for :func:`grid_search`, keyed by pipeline step (``features__...``, ``clf__...``).
FEATURE_GRIDS: dict[str, dict[str, list]] = {
    "raw": {},
    "pca": {"features__n_components": [100, 300]},
    "lbp": {"features__grid": [4, 6, 8]},
    "hog": {"features__pixels_per_cell": [6, 8]},
}
CLASSIFIER_GRIDS: dict[str, dict[str, list]] = {
    "rf": {"clf__n_estimators": [100, 300], "clf__max_features": ["sqrt", 0.1]},
    "gb": {"clf__learning_rate": [0.05, 0.1], "clf__max_leaf_nodes": [15, 31]},
    "svc": {"clf__C": [1.0, 10.0, 100.0], "clf__gamma": ["scale", 1e-3]},
    "linsvc": {"clf__C": [0.01, 0.1, 1.0]},
}


def make_baseline(features: str, classifier: str, seed: int = 0, probability: bool = True, n_jobs: int = 1,
                  feature_params: Mapping[str, Any] | None = None,
                  classifier_params: Mapping[str, Any] | None = None) -> Pipeline:
    """``make_baseline("lbp", "svc")``: features -> (standardise, for SVMs) -> classifier, as one Pipeline."""
    if features not in FEATURES:
        raise ValueError(f"unknown features {features!r}; choose one of {', '.join(FEATURES)}")
    fparams = dict(feature_params or {})
    if features == "pca":
        fparams.setdefault("random_state", seed)
    steps: list[tuple[str, Any]] = [("features", FEATURES[features](**fparams))]
    if classifier in ("svc", "linsvc"):
        steps.append(("scale", StandardScaler()))
    steps.append(("clf", make_classifier(classifier, seed, probability, n_jobs, **(classifier_params or {}))))
    return Pipeline(steps)


def default_grid(features: str, classifier: str) -> dict[str, list]:
    """The parameter grid :func:`grid_search` uses when given none."""
    return {**FEATURE_GRIDS.get(features, {}), **CLASSIFIER_GRIDS.get(classifier, {})}


def grid_search(pipeline: Pipeline, X: np.ndarray, y: np.ndarray, param_grid: Mapping[str, Sequence] | None = None,
                cv: int = 3, seed: int = 0, n_jobs: int = 1, scoring: str = "accuracy") -> GridSearchCV:
    """Tune ``pipeline`` with stratified, shuffled, seeded k-fold CV; returns the fitted GridSearchCV.

    Without ``param_grid`` the defaults of the pipeline's feature and classifier names are used.
    """
    if param_grid is None:
        fname = next(k for k, v in FEATURES.items() if isinstance(pipeline.named_steps["features"], v))
        clf = pipeline.named_steps["clf"]
        cname = {RandomForestClassifier: "rf", HistGradientBoostingClassifier: "gb"}.get(type(clf), "")
        if isinstance(clf, SVMClassifier):
            cname = "svc" if clf.kernel == "rbf" else "linsvc"
        param_grid = default_grid(fname, cname)
    counts = np.bincount(np.asarray(y))
    folds = max(2, min(cv, int(counts[counts > 0].min())))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    search = GridSearchCV(pipeline, dict(param_grid), cv=splitter, scoring=scoring, n_jobs=n_jobs, refit=True)
    return search.fit(X, y)


# ------------------------------------------------------------------------------------------------ settings


def sample_per_class(fs: FaceSet, n: int, seed: int = 0) -> np.ndarray:
    """Indices of at most ``n`` faces of each class, chosen at random (seeded), in shuffled order."""
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(fs.labels == c))[:n] for c in range(fs.scheme.num_classes)]
    return rng.permutation(np.concatenate(picks))


def small_setting(fs: FaceSet, n_train: int = 100, n_val: int = 50, seed: int = 0,
                  split: str | None = None) -> tuple[FaceSet, FaceSet]:
    """The balanced small-sample setting: ``n_train`` training and ``n_val`` validation faces per class.

    Faces are drawn (seeded, shuffled) from ``split`` (all faces when None); a class with fewer than
    ``n_train + n_val`` faces is divided in the same proportion, so no face is in both parts.
    """
    pool = fs.split(split) if split else fs
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for c in range(pool.scheme.num_classes):
        idx = rng.permutation(np.flatnonzero(pool.labels == c))[: n_train + n_val]
        k = len(idx) if len(idx) < 2 else min(n_train, max(1, round(len(idx) * n_train / (n_train + n_val))))
        train_idx.append(idx[:k])
        val_idx.append(idx[k:])
    tr, va = rng.permutation(np.concatenate(train_idx)), rng.permutation(np.concatenate(val_idx))
    if len(tr) == 0 or len(va) == 0:
        raise DatasetError("the small setting needs at least two faces of some class")
    return pool.subset(tr), pool.subset(va)


def full_setting(fs: FaceSet, train_split: str = "Training", test_split: str = "PublicTest",
                 limit_per_class: int | None = None, seed: int = 0) -> tuple[FaceSet, FaceSet]:
    """The full setting: the whole ``train_split`` against ``test_split`` (``limit_per_class`` caps both)."""
    train, test = fs.split(train_split), fs.split(test_split)
    if limit_per_class:
        train = train.subset(np.sort(sample_per_class(train, limit_per_class, seed)))
        test = test.subset(np.sort(sample_per_class(test, limit_per_class, seed + 1)))
    return train, test


# --------------------------------------------------------------------------------------------- evaluation


def evaluate_baseline(pipeline: Pipeline, train: FaceSet, test: FaceSet, grid: bool = False,
                      param_grid: Mapping[str, Sequence] | None = None, cv: int = 3, seed: int = 0,
                      n_jobs: int = 1) -> dict[str, Any]:
    """Fit (optionally grid-searched) on ``train``, score on ``test``: accuracy, macro-F1, times, best params."""
    t0 = time.perf_counter()
    best_params: dict[str, Any] = {}
    cv_score = None
    if grid:
        search = grid_search(pipeline, train.images, train.labels, param_grid, cv, seed, n_jobs)
        model, best_params, cv_score = search.best_estimator_, search.best_params_, float(search.best_score_)
    else:
        model = pipeline.fit(train.images, train.labels)
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    pred = model.predict(test.images)
    predict_s = time.perf_counter() - t1
    m = classification_metrics(test.labels, pred, test.classes)
    return {
        "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
        "per_class_f1": {c: v["f1"] for c, v in m["per_class"].items()},
        "fit_s": fit_s, "predict_s": predict_s, "n_train": len(train), "n_test": len(test),
        "best_params": best_params, "cv_accuracy": cv_score, "model": model, "metrics": m,
    }


def run_baselines(train: FaceSet, test: FaceSet, features: Sequence[str], classifiers: Sequence[str],
                  grid: bool = False, cv: int = 3, seed: int = 0, n_jobs: int = 1, probability: bool = False,
                  progress: bool = True,
                  param_grids: Mapping[tuple[str, str], Mapping[str, Sequence]] | None = None,
                  ) -> list[dict[str, Any]]:
    """Every features x classifier combination on one train/test pair; one result dict per pair (no models).

    ``param_grids`` maps (features, classifier) to the grid to search (default: :func:`default_grid`).
    ``progress`` shows a bar on stderr (one step per pair, the pair being fitted beside it, elapsed time) and a
    line per finished pair, so a run inside a pipeline (stdout redirected) still shows where it is.
    """
    from tqdm.auto import tqdm

    rows = []
    pairs = [(f, c) for f in features for c in classifiers]
    with tqdm(pairs, desc="baselines", unit="pair", file=sys.stderr, disable=not progress) as bar:
        for f, c in bar:
            bar.set_postfix_str(f"{f} + {c}: {'grid search' if grid else 'fitting'}")
            pipe = make_baseline(f, c, seed=seed, probability=probability, n_jobs=n_jobs)
            pgrid = (param_grids or {}).get((f, c))
            res = evaluate_baseline(pipe, train, test, grid=grid, param_grid=pgrid, cv=cv, seed=seed, n_jobs=n_jobs)
            res.pop("model")
            res.pop("metrics")
            rows.append({"features": f, "classifier": c, **res})
            if progress:
                bar.write(f"  {f:>4} + {c:<6} acc {res['accuracy']:.3f}  macro-F1 {res['macro_f1']:.3f}  "
                          f"fit {res['fit_s']:.1f}s", file=sys.stderr)
    return rows


def baselines_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table of :func:`run_baselines` rows."""
    lines = ["| features | classifier | accuracy | macro-F1 | fit time (s) | n train | n test | best params |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        params = ", ".join(f"{k.split('__')[-1]}={v}" for k, v in (r.get("best_params") or {}).items()) or "-"
        lines.append(f"| {r['features']} | {r['classifier']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | "
                     f"{r['fit_s']:.1f} | {r['n_train']} | {r['n_test']} | {params} |")
    return "\n".join(lines) + "\n"


__all__ = [
    "CLASSIFIERS", "FEATURES", "HOGFeatures", "LBPFeatures", "PCAFeatures", "RawPixels", "SVMClassifier",
    "baselines_markdown", "default_grid", "evaluate_baseline", "full_setting", "grid_search", "lbp_image",
    "make_baseline", "make_classifier", "run_baselines", "sample_per_class", "small_setting",
]
