"""Reproduce the reference CNN experiments with the registered seed architectures and each report's recipe.

Experiments (``--experiment``, default all):

- ``fer7``: FER-2013 7 classes, train on Training, pick the best epoch on PublicTest, report PrivateTest;
  pytorch_4conv, gudi_tflearn, conv_and_res, keras_4conv.
- ``fer6``: FER-2013 6 classes (scheme ``fer6``: no disgust class, disgust faces folded into angry),
  all 35,887 faces re-split seeded and stratified 80/10/10; the six Keras variants keras_arch1..6.
- ``muxspace``: the muxspace legend.csv setting (labels cleaned, contempt -> disgust, neutral and happiness
  capped at 500, seeded 60/20/20); pytorch_4conv at 48x48, vgg16_fer and alexnet_fer at 224x224 (from scratch:
  no ImageNet weights are downloaded; pass ``--pretrained-dir`` with local torchvision state_dicts to start there).

Examples::

    python benchmarks/reproduce.py --smoke
    python benchmarks/reproduce.py --experiment fer6 --models keras_arch1,keras_arch2
"""

from __future__ import annotations

from pathlib import Path

import common

# A recipe is a set of TrainConfig fields; ``--epochs`` (and ``--batch-size``) override theirs.
# The reports used no label smoothing, mixup or one-cycle schedule; their own optimiser and schedule are kept.
_PLAIN = {"label_smoothing": 0.0, "mixup_alpha": 0.0, "train_crop": None, "early_stopping": 0}
_NO_AUG = {"augment": False}
#: horizontal flip and small rotations (torchvision RandomHorizontalFlip + RandomRotation(10))
_FLIP_ROT = {"augment": True, "aug": {"rotation": 10.0, "scale": 0.0, "shift": 0.0, "shear": 0.0, "hflip": 0.5,
                                      "brightness": 0.0, "contrast": 0.0, "erasing": 0.0}}
#: Keras ImageDataGenerator(rotation_range=10, width/height_shift_range=0.1, zoom_range=0.1, horizontal_flip=True)
_KERAS_GEN = {"augment": True, "aug": {"rotation": 10.0, "scale": 0.1, "shift": 0.1, "shear": 0.0, "hflip": 0.5,
                                       "brightness": 0.0, "contrast": 0.0, "erasing": 0.0}}
_ADAM = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "constant"}

RECIPES: dict[str, dict] = {
    # PyTorch report: Adam 1e-3, batch 64, ReduceLROnPlateau on validation accuracy, flip + rotation.
    "pytorch_4conv": {**_PLAIN, **_FLIP_ROT, **_ADAM, "schedule": "plateau", "batch_size": 64, "epochs": 30},
    # TFLearn net: SGD with momentum 0.9 (no Nesterov), constant rate, batch 50, no augmentation.
    "gudi_tflearn": {**_PLAIN, **_NO_AUG, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": False,
                     "weight_decay": 0.0, "schedule": "constant", "batch_size": 50, "epochs": 30},
    # conv + residual report: SGD momentum, weight decay 5e-4, plateau schedule, Keras-style augmentation.
    "conv_and_res": {**_PLAIN, **_KERAS_GEN, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": False,
                     "weight_decay": 5e-4, "schedule": "plateau", "batch_size": 128, "epochs": 40},
    # Keras 4-conv report: Adam 1e-3 (Keras default), batch 64, no augmentation.
    "keras_4conv": {**_PLAIN, **_NO_AUG, **_ADAM, "batch_size": 64, "epochs": 50},
    # transfer nets: SGD 1e-3 momentum 0.9 (fine-tuning rate), batch 32, flip + rotation.
    "vgg16_fer": {**_PLAIN, **_FLIP_ROT, "optimizer": "sgd", "lr": 1e-3, "momentum": 0.9, "nesterov": False,
                  "weight_decay": 0.0, "schedule": "constant", "batch_size": 32, "epochs": 20},
    "alexnet_fer": {**_PLAIN, **_FLIP_ROT, "optimizer": "sgd", "lr": 1e-3, "momentum": 0.9, "nesterov": False,
                    "weight_decay": 0.0, "schedule": "constant", "batch_size": 32, "epochs": 20},
}
# The six Keras variants: Adam (Keras defaults), batch 64, no augmentation; arch 4-6 carry Keras L2(0.001),
# i.e. PyTorch weight_decay 0.002 (on all parameters here: TrainConfig cannot exclude biases/BatchNorm).
for _i in range(1, 7):
    RECIPES[f"keras_arch{_i}"] = {**_PLAIN, **_NO_AUG, **_ADAM, "batch_size": 64, "epochs": 50,
                                  "weight_decay": 0.002 if _i >= 4 else 0.0}

EXPERIMENTS: dict[str, list[str]] = {
    "fer7": ["pytorch_4conv", "gudi_tflearn", "conv_and_res", "keras_4conv"],
    "fer6": [f"keras_arch{i}" for i in range(1, 7)],
    "muxspace": ["pytorch_4conv", "vgg16_fer", "alexnet_fer"],
}
SETTINGS = {
    "fer7": ("fer2013", "7-class, Training / best on PublicTest / PrivateTest"),
    "fer6": ("fer2013", "6-class (no disgust), seeded stratified 80/10/10"),
    "muxspace": ("muxspace", "legend.csv cleaned, neutral/happy <= 500, seeded 60/20/20"),
}


def main() -> None:
    p = common.base_parser(__doc__.split("\n\n")[0], epochs=0)
    p.add_argument("--experiment", default="all", choices=["all", *EXPERIMENTS])
    p.add_argument("--models", help="comma list: only these models of the chosen experiment(s)")
    p.add_argument("--pretrained-dir", dest="pretrained_dir",
                   help="folder with vgg16_imagenet.pt / alexnet_imagenet.pt (torchvision state_dicts)")
    args = common.finish_args(p.parse_args(), "reproduce")
    wanted = set(args.models.split(",")) if args.models else None
    for exp in EXPERIMENTS if args.experiment == "all" else [args.experiment]:
        models = [m for m in EXPERIMENTS[exp] if wanted is None or m in wanted]
        if not models:
            continue
        dataset, setting = SETTINGS[exp]
        rows = []
        data_cache: dict[int, tuple] = {}
        for name in models:
            recipe = dict(RECIPES[name])
            size = common.input_size(name)
            if exp == "fer7":
                data = data_cache.setdefault(48, common.fer_splits(args))
            elif exp == "fer6":
                data = data_cache.setdefault(48, common.fer6_split(args))
            else:  # the 224x224 nets get faces stored at 224, not upsampled from 48
                stored = 224 if size == 224 else 48
                if stored not in data_cache:
                    data_cache[stored] = common.muxspace_splits(args, size=stored)
                data = data_cache[stored]
            if args.pretrained_dir and name in ("vgg16_fer", "alexnet_fer"):
                arch = name.split("_")[0]
                recipe["model_kwargs"] = {"pretrained": str(Path(args.pretrained_dir) / f"{arch}_imagenet.pt")}
            recipe["model"] = name
            cfg = common.make_config(args, recipe, args.out / exp / name)
            result = common.train_and_test(args, cfg, *data)
            if result is None:  # --train-only
                continue
            own = RECIPES[name]["epochs"]
            note = f"{cfg.epochs} of the recipe's {own} epochs" if cfg.epochs != own and not args.smoke else ""
            rows.append(common.row(args, f"reproduce: {exp}", dataset, setting, name, result,
                                   common.recipe_params(cfg), notes=note))
            common.save_rows(args, rows[-1:])  # a crash later keeps the rows already measured


if __name__ == "__main__":
    main()
