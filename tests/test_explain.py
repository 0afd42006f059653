"""Explanations: hooks, Grad-CAM, saliency, and every figure function writes a valid PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from threadpoolctl import threadpool_limits
from torch import nn

from emoscope import explain
from emoscope.classic import PCAFeatures
from emoscope.labels import EMOTIONS
from emoscope.models import create_model


@pytest.fixture(autouse=True)
def one_thread():
    """Keep CPU use small on a busy machine; restore torch's setting for other test files."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


class TinyNet(nn.Module):
    """Conv directly followed by an in-place ReLU (the case Grad-CAM hooks must survive), then BN, pool, head."""

    def __init__(self, num_classes: int = 7) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def faces(n: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:48, :48]
    base = np.where(((xx - 24) / 16) ** 2 + ((yy - 24) / 21) ** 2 < 1, 160, 50).astype(float)
    return np.clip(base + rng.normal(0, 20, (n, 48, 48)), 0, 255).astype(np.uint8)


META = {"classes": list(EMOTIONS), "input_size": 48, "in_chans": 1}


def assert_png(path: Path, min_side: int = 50) -> None:
    path = Path(path)
    assert path.is_file() and path.stat().st_size > 0 and path.suffix == ".png"
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and min(im.size) >= min_side


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return TinyNet().eval()


def test_model_input_shapes():
    x = explain.model_input({"input_size": 64, "in_chans": 3}, faces(1)[0])
    assert x.shape == (1, 3, 64, 64)
    assert explain.model_input(None, faces(2)).shape == (2, 1, 48, 48)


def test_feature_maps_one_per_conv(tiny):
    maps = explain.feature_maps(tiny, explain.model_input(META, faces(1)[0]))
    assert [name for name, _ in maps] == ["features.0", "features.3", "features.7"]
    assert maps[0][1].shape == (1, 4, 48, 48) and maps[2][1].shape == (1, 8, 12, 12)
    assert not any(h for m in tiny.modules() for h in m._forward_hooks.values())  # hooks removed


def test_feature_maps_residual_model():
    model = create_model("emovgg_s").eval()
    maps = explain.feature_maps(model, explain.model_input(META, faces(1)[0]))
    assert len(maps) == len(explain.conv_layers(model))


@pytest.mark.parametrize("target", [None, 2])
def test_grad_cam_and_saliency(tiny, target):
    x = explain.model_input(META, faces(1)[0])
    cam, t, probs = explain.grad_cam(tiny, x, target)
    assert cam.shape == (48, 48) and cam.min() >= 0 and cam.max() <= 1 + 1e-6
    assert probs.shape == (7,) and abs(probs.sum() - 1) < 1e-4
    assert t == (int(probs.argmax()) if target is None else 2)
    sal, t2 = explain.gradient_saliency(tiny, x, t)
    assert sal.shape == (48, 48) and t2 == t and sal.max() <= 1 + 1e-6
    assert all(p.grad is None for p in tiny.parameters())  # gradients cleared, model untouched


def test_grad_cam_uses_last_conv_run():
    model = create_model("emovgg_s").eval()
    x = explain.model_input(META, faces(1)[0])
    cam, _, _ = explain.grad_cam(model, x)
    assert cam.shape == (48, 48)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    last = explain._run_order(model, x, convs)[-1]
    assert last is convs[-1]


def test_grad_cam_weighs_the_activation_after_the_last_conv():
    model = create_model("emovgg_s").eval()
    x = explain.model_input(META, faces(1)[0])
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    layer = explain._cam_layer(model, x)
    assert isinstance(layer, nn.ReLU) and layer is not convs[-1]
    # a conv followed by pooling, no activation: the conv itself
    bare = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 7)).eval()
    assert explain._cam_layer(bare, x) is bare[0]


def test_grad_cam_of_the_shipped_model_on_a_real_smile_is_not_empty():
    """Regression: on the raw last-conv output (before BatchNorm and ReLU) this CAM was zero everywhere."""
    from emoscope.faces import crop_faces, get_detector
    from emoscope.models.checkpoint import load_model
    from emoscope.samples import astronaut_bgr
    from emoscope.weights import resolve_weights

    model, meta = load_model(resolve_weights(None))
    photo = astronaut_bgr()
    (det,) = get_detector("auto").detect(photo)
    x = explain.model_input(meta, crop_faces(photo, [det], 48, 0.1)[0])
    cam, t, probs = explain.grad_cam(model, x)
    assert meta["classes"][t] == "happy" and probs[t] > 0.5
    assert cam.max() == pytest.approx(1.0) and 0.02 < (cam > 0.5).mean() < 0.8  # a region, not all or nothing


def test_grad_cam_without_conv_raises():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, 7))
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        explain.grad_cam(mlp, explain.model_input(META, faces(1)[0]))


def test_every_figure_is_a_png(tmp_path, tiny):
    imgs = faces(12)
    labels = np.arange(12) % 7
    probs = np.random.default_rng(0).dirichlet(np.ones(7), 12).astype(np.float32)
    pca = PCAFeatures(n_components=8).fit(imgs)
    paths = [
        explain.plot_eigenfaces(imgs, tmp_path / "eig.png", n=7),
        explain.plot_eigenfaces(pca, tmp_path / "eig_fitted.png"),
        explain.plot_mean_face(imgs, tmp_path / "mean.png", EMOTIONS, labels),
        explain.plot_lbp(imgs[:3], tmp_path / "lbp.png"),
        explain.plot_lbp(imgs[0], tmp_path / "lbp_one.png"),
        explain.plot_feature_maps(tiny, imgs[0], tmp_path / "maps.png", META, channels=4),
        explain.plot_saliency(tiny, imgs[0], tmp_path / "sal.png", META),
        explain.plot_misclassified(imgs, labels, probs.argmax(1), EMOTIONS, tmp_path / "wrong.png"),
        explain.plot_misclassified(imgs, labels, labels, EMOTIONS, tmp_path / "none_wrong.png"),
        explain.plot_probability_bars(imgs[:3], probs[:3], EMOTIONS, tmp_path / "bars.png", labels[:3]),
        explain.plot_probability_bars(imgs[0], probs[0], EMOTIONS, tmp_path / "sub" / "bars_one.png"),
    ]
    for p in paths:
        assert_png(p)


def test_explain_face_writes_all(tmp_path, tiny):
    imgs = faces(10)
    paths = explain.explain_face(tiny, META, imgs[0], tmp_path / "out", imgs, np.arange(10) % 7)
    names = {p.name for p in paths}
    assert {"probabilities.png", "saliency.png", "feature_maps.png", "lbp.png", "eigenfaces.png",
            "misclassified.png", "mean_faces.png", "sample_probabilities.png"} <= names
    for p in paths:
        assert_png(p)
    only_face = explain.explain_face(tiny, META, imgs[0], tmp_path / "face_only")
    assert len(only_face) == 4


def test_pick_errors_takes_turns_over_true_classes_most_confident_first():
    from emoscope.plots import pick_errors

    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([1, 1, 1, 1, 0, 1, 0, 0, 2])  # class 0: 4 errors, class 1: 1, class 2: 2
    conf = np.array([0.1, 0.9, 0.5, 0.3, 0.8, 0.9, 0.2, 0.7, 0.9])
    assert pick_errors(y_true, y_pred, conf, 4).tolist() == [1, 2, 4, 7]  # grouped by class, confident first
    assert pick_errors(y_true, y_pred, conf, 10).tolist() == [1, 2, 3, 0, 4, 7, 6]  # every error once
    assert pick_errors(y_true, y_pred, None, 3).tolist() == [0, 4, 6]  # no confidence: first of each class
    assert pick_errors(y_true, y_true, conf).tolist() == []
