"""Every registered architecture: shapes, gradients, checkpoint round trip, export; plus the seed-net specifics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from emoscope.labels import EMOTIONS
from emoscope.models import create_model, list_models, model_info
from emoscope.models.checkpoint import atomic_save, load_model, model_meta
from emoscope.models.seed_cnns import LocalContrastNorm
from emoscope.models.vgg import make_alexnet_features, make_vgg16_features

ALL = list_models()
SEED = [
    "pytorch_4conv", "gudi_tflearn", "conv_and_res", "keras_4conv", "vgg16_fer", "alexnet_fer",
    *(f"keras_arch{i}" for i in range(1, 7)),
]  # fmt: skip
SLIM = {"width_mult": 0.125}  # for the 224x224 nets where the real shape is not what a test is about

# torchvision's layouts, written out independently of emoscope's code: index -> (out, in, k, k)
TV_ALEXNET = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
_VGG16_CONVS = [(64, 3), (64, 64), (128, 64), (128, 128), (256, 128), (256, 256), (256, 256), (512, 256)]
_VGG16_CONVS += [(512, 512)] * 5
TV_VGG16 = {i: (o, c, 3, 3) for i, (o, c) in zip((0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28), _VGG16_CONVS)}


@pytest.fixture(autouse=True)
def one_thread():
    """Keep CPU use small (the test machine may be busy) and restore the setting for other test files."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _input(name: str, batch: int = 2) -> torch.Tensor:
    info = model_info(name)
    return torch.randn(
        batch, info.in_chans, info.input_size, info.input_size, generator=torch.Generator().manual_seed(0)
    )


def _slim(name: str) -> dict:
    return SLIM if model_info(name).input_size == 224 else {}


def test_seed_models_registered() -> None:
    assert set(SEED) <= set(ALL)
    assert {"emovgg_s", "emovgg_m"} <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_every_parameter_gets_a_gradient(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=7)  # the real shape, VGG16 included
    model.train()
    logits = model(_input(name))
    assert logits.shape == (2, 7)
    nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"


@pytest.mark.parametrize("k", [6, 8])
@pytest.mark.parametrize("name", ALL)
def test_num_classes(name: str, k: int) -> None:
    model = create_model(name, num_classes=k, **_slim(name)).eval()
    with torch.no_grad():
        assert model(_input(name)).shape == (2, k)


@pytest.mark.parametrize("name", ALL)
def test_checkpoint_round_trip(name: str, tmp_path: Path) -> None:
    kw = _slim(name)
    classes = EMOTIONS[:6] if name == "keras_arch2" else EMOTIONS
    model = create_model(name, num_classes=len(classes), **kw).eval()
    path = tmp_path / f"{name}.pt"
    atomic_save({**model_meta(name, classes, **kw), "model": model.state_dict()}, path)
    loaded, meta = load_model(path)
    assert meta["model_name"] == name and meta["classes"] == list(classes)
    assert (meta["input_size"], meta["in_chans"]) == (model_info(name).input_size, model_info(name).in_chans)
    x = _input(name)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_load_model_flushes_subnormal_weights(tmp_path: Path) -> None:
    """Weight decay leaves weights like 1e-40, which make fp32 CPU inference ~15x slower; loading zeroes them."""
    model = create_model("keras_arch4", num_classes=6).eval()
    with torch.no_grad():
        w = model.state_dict()
        conv = next(k for k, v in w.items() if v.dim() == 4)
        w[conv].view(-1)[::2] = 1e-40  # subnormal in fp32
    path = tmp_path / "arch4.pt"
    atomic_save({**model_meta("keras_arch4", EMOTIONS[:6]), "model": model.state_dict()}, path)
    loaded, _ = load_model(path)
    got, kept = loaded.state_dict(), model.state_dict()
    assert (got[conv].view(-1)[::2] == 0).all()
    assert torch.equal(got[conv].view(-1)[1::2], kept[conv].view(-1)[1::2])
    for k in kept:
        if k != conv:
            assert torch.equal(got[k], kept[k]), k
    x = torch.rand(4, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


@pytest.mark.parametrize("name", ALL)
def test_export_has_no_python_control_flow(name: str) -> None:
    model = create_model(name, num_classes=7, **_slim(name)).eval()
    x = _input(name)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x))


def test_unknown_model_lists_available() -> None:
    with pytest.raises(ValueError, match="available") as exc:
        create_model("no_such_net")
    assert "keras_arch6" in str(exc.value) and "emovgg_s" in str(exc.value)


# ------------------------------------------------------------------------------------------- seed CNN shapes


def _modules(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def test_pytorch_4conv_shape_and_224() -> None:
    model = create_model("pytorch_4conv", num_classes=7).eval()
    assert len(_modules(model, nn.Conv2d)) == 4 and len(_modules(model, nn.Linear)) == 3
    assert _modules(model, nn.BatchNorm2d) and _modules(model, nn.Dropout)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 224, 224)).shape == (2, 7)


def test_gudi_tflearn_shape() -> None:
    model = create_model("gudi_tflearn")
    convs = _modules(model, nn.Conv2d)
    assert [c.kernel_size[0] for c in convs] == [5, 5, 4] and [c.out_channels for c in convs] == [64, 64, 128]
    assert len(_modules(model, nn.MaxPool2d)) == 2 and len(_modules(model, LocalContrastNorm)) == 1
    assert [m.out_features for m in _modules(model, nn.Linear)] == [3072, 7]
    same = create_model("gudi_tflearn", same_padding=True).eval()
    assert same.fc[0].in_features == 128 * 12 * 12
    with torch.no_grad():
        assert same(_input("gudi_tflearn")).shape == (2, 7)


def test_local_contrast_norm_is_brightness_and_contrast_invariant() -> None:
    lcn = LocalContrastNorm(eps=1e-8)
    x = torch.rand(2, 3, 20, 20)
    torch.testing.assert_close(lcn(x), lcn(3.0 * x + 5.0), atol=1e-3, rtol=1e-3)
    per_map = LocalContrastNorm(across_channels=False)
    assert per_map(x).shape == x.shape
    assert lcn.state_dict() == {}  # the Gaussian kernel is fixed, not part of checkpoints


def test_local_contrast_norm_pools_the_blurred_maps() -> None:
    """Across channels: mean over maps of each map's Gaussian blur (the definition), computed as one blur."""
    lcn = LocalContrastNorm()
    x = torch.randn(2, 5, 16, 16, dtype=torch.float64)

    def blur_then_mean(t: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(t, (lcn.pad,) * 4, mode="reflect")
        k = lcn.kernel.to(t.dtype).expand(t.shape[1], 1, -1, -1)
        return torch.nn.functional.conv2d(padded, k, groups=t.shape[1]).mean(1, keepdim=True)

    centred = x - blur_then_mean(x)
    expected = centred / torch.sqrt(blur_then_mean(centred * centred) + lcn.eps)
    lcn.kernel = lcn.kernel.double()
    torch.testing.assert_close(lcn(x), expected)


def test_conv_and_res_counts() -> None:
    model = create_model("conv_and_res")
    assert len([c for c in _modules(model, nn.Conv2d) if c.kernel_size == (3, 3)]) == 14
    assert len(_modules(model, nn.Linear)) == 2


@pytest.mark.parametrize(
    ("name", "fc", "bn", "dropout", "convs", "wd"),
    [
        ("keras_arch1", 128, False, False, [32, 64, 128], 0.0),
        ("keras_arch2", 128, False, True, [32, 64, 128], 0.0),
        ("keras_arch3", 128, True, True, [32, 64, 128], 0.0),
        ("keras_arch4", 256, False, True, [32, 32, 64, 64], 0.002),
        ("keras_arch5", 256, True, True, [32, 32, 64, 64], 0.002),
        ("keras_arch6", 512, True, True, [32, 32, 64, 64], 0.002),
    ],
)
def test_keras_variants(name: str, fc: int, bn: bool, dropout: bool, convs: list[int], wd: float) -> None:
    model = create_model(name)
    assert [c.out_channels for c in _modules(model, nn.Conv2d)] == convs
    assert [m.out_features for m in _modules(model, nn.Linear)] == [fc, 7]
    assert bool(_modules(model, nn.BatchNorm2d)) is bn
    drops = sorted({m.p for m in _modules(model, nn.Dropout)})
    assert drops == ([0.25, 0.5] if dropout else [])
    assert model.recommended_weight_decay == pytest.approx(wd)  # PyTorch equivalent of Keras l2(0.001) = 0.002
    assert model.keras_l2 == pytest.approx(wd / 2)


def test_keras_4conv_shape() -> None:
    model = create_model("keras_4conv", num_classes=6)
    convs = _modules(model, nn.Conv2d)
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [(64, 3), (128, 5), (512, 3), (512, 3)]
    assert len(_modules(model, nn.BatchNorm2d)) == 4 and len(_modules(model, nn.MaxPool2d)) == 4
    assert [m.out_features for m in _modules(model, nn.Linear)] == [256, 512, 6]


# ------------------------------------------------------------------------------------ VGG16 / AlexNet transfer


@pytest.mark.parametrize(("make", "layout"), [(make_vgg16_features, TV_VGG16), (make_alexnet_features, TV_ALEXNET)])
def test_features_follow_torchvision_layout(make, layout: dict[int, tuple[int, ...]]) -> None:
    state = make().state_dict()
    expected = {f"{i}.weight": s for i, s in layout.items()} | {f"{i}.bias": s[:1] for i, s in layout.items()}
    assert {k: tuple(v.shape) for k, v in state.items()} == expected


@pytest.mark.parametrize(("name", "fin"), [("vgg16_fer", 512 * 7 * 7), ("alexnet_fer", 256 * 6 * 6)])
def test_report_heads(name: str, fin: int) -> None:
    model = create_model(name, num_classes=8)
    dims = [(m.in_features, m.out_features) for m in _modules(model.classifier, nn.Linear)]
    assert dims == [(fin, 4096), (4096, 1024), (1024, 256), (256, 8)]


def _fake_torchvision_state(layout: dict[int, tuple[int, ...]], path: Path) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    state = {}
    for i, shape in layout.items():
        state[f"features.{i}.weight"] = torch.randn(shape, generator=g)
        state[f"features.{i}.bias"] = torch.randn(shape[:1], generator=g)
    state["classifier.6.bias"] = torch.zeros(1000)  # an ImageNet head tensor: must be ignored
    torch.save(state, path)
    return state


@pytest.mark.parametrize(("name", "layout"), [("alexnet_fer", TV_ALEXNET), ("vgg16_fer", TV_VGG16)])
def test_pretrained_features_load_from_local_file(name: str, layout: dict, tmp_path: Path) -> None:
    path = tmp_path / "imagenet.pt"
    state = _fake_torchvision_state(layout, path)
    model = create_model(name, num_classes=7, pretrained=str(path), freeze_features=True)
    assert model.pretrained_loaded == 2 * len(layout)
    for key, value in state.items():
        if key.startswith("features."):
            assert torch.equal(model.state_dict()[key], value)
    assert not any(p.requires_grad for p in model.features.parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())


def test_pretrained_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="never downloads") as exc:
        create_model("alexnet_fer", pretrained=tmp_path / "nope.pt", **SLIM)
    assert "torchvision" in str(exc.value) and "nope.pt" in str(exc.value)


def test_pretrained_that_does_not_fit_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "imagenet.pt"
    _fake_torchvision_state(TV_ALEXNET, path)
    with pytest.raises(ValueError, match="width_mult"):
        create_model("alexnet_fer", pretrained=path, **SLIM)


# ------------------------------------------------------------------------------------------- flagship variants


def _conv_widths(model: nn.Module) -> list[int]:
    return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_emovgg_default_plan_is_width_doubling() -> None:
    """The shipped nets' layout must not move: the default plan doubles ``width`` over 4 stages of 2 convs."""
    assert _conv_widths(create_model("emovgg_m")) == [48, 48, 96, 96, 192, 192, 384, 384]
    assert _conv_widths(create_model("emovgg_s", stages=3, convs_per_stage=1)) == [32, 64, 128]


def test_emovgg_s2d_folds_pixels_and_ends_at_one_position() -> None:
    model = create_model("emovgg_s2d").eval()
    assert isinstance(model.body[0], nn.PixelUnshuffle) and model.body[1][0].in_channels == 4
    assert _conv_widths(model) == [64, 64, 128, 128, 256, 256, 384]
    x = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        assert model.features(x).shape == (3, 384, 1, 1)
        folded = model.body[0](x)
    assert folded.shape == (3, 4, 24, 24)
    assert torch.equal(folded.flatten(1).sort(1).values, x.flatten(1).sort(1).values)  # every pixel kept, once


def test_emovgg_plan_from_json_lists_round_trips(tmp_path: Path) -> None:
    """A config read from JSON gives lists, not tuples; the checkpoint must rebuild the same net from them."""
    kw = {"stem": "s2d", "widths": [16, 32], "convs": [1, 2]}
    model = create_model("emovgg_s", **kw).eval()
    assert _conv_widths(model) == [16, 32, 32]
    path = tmp_path / "plan.pt"
    atomic_save({**model_meta("emovgg_s", EMOTIONS, **kw), "model": model.state_dict()}, path)
    loaded, _ = load_model(path)
    x = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"widths": (16, 32), "convs": (2,)}, "2 stage widths but 1 conv counts"), ({"stem": "patch"}, "unknown stem")],
)
def test_emovgg_bad_plan_is_a_clear_error(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_model("emovgg_s", **kw)


@pytest.mark.parametrize("stem", ["none", "s2d"])
def test_slim_keeps_the_channels_that_matter(stem: str) -> None:
    """Where half of every layer's channels are dead (BatchNorm scale and shift 0), slimming to half width drops
    exactly those and reads every face the same; otherwise it keeps the largest |gamma|."""
    from emoscope.models.flagship import EmoVGG, EmoVGGConfig, slim

    torch.manual_seed(0)
    model = EmoVGG(7, EmoVGGConfig(width=8, stem=stem)).eval()
    with torch.no_grad():
        for block in (m for m in model.body if isinstance(m, nn.Sequential)):
            bn = block[1]
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2)
            bn.bias.uniform_(-0.5, 0.5)
            dead = torch.randperm(bn.num_features)[: bn.num_features // 2]
            bn.weight[dead] = 0.0
            bn.bias[dead] = 0.0
    small = slim(model, 4).eval()
    assert [w for w, _ in small.cfg.stage_plan()] == [4, 8, 16, 32] and small.cfg.stem == stem
    x = torch.randn(3, 1, 48, 48)
    assert torch.allclose(small(x), model(x), atol=1e-5)
    with pytest.raises(ValueError, match="width must be"):
        slim(model, 9)
