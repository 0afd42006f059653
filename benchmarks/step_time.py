"""Time one training step (augmentation, bf16 forward and backward, SGD update) of a registered model.

How the 2-hour CPU flagship runs chose their input sizes (``benchmarks/FLAGSHIP_CPU.md``)::

    python benchmarks/step_time.py --model emovgg_m --batch 128 --sizes 48,40,32
    python benchmarks/step_time.py --sizes 48 --layout contiguous      # channels-first, for comparison
    python benchmarks/step_time.py --sizes 48 --compile                # torch.compile'd model
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from emoscope.augment import AugmentConfig, augment_batch
from emoscope.models import create_model


def step_ms(model_name: str, batch: int, size: int, layout: torch.memory_format, compile_model: bool,
            steps: int = 12, warmup: int = 2) -> tuple[float, float]:
    """Mean over ``steps - warmup`` steps: (augmentation ms, forward + backward + update ms)."""
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=7).to(memory_format=layout)
    run = torch.compile(model) if compile_model else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    g = torch.Generator().manual_seed(0)
    faces, labels = torch.rand(batch, 1, 48, 48), torch.randint(0, 7, (batch,))
    aug_s = train_s = 0.0
    for i in range(steps):
        t0 = time.perf_counter()
        x = augment_batch(faces, AugmentConfig(), g, size).contiguous(memory_format=layout)  # a size x size crop
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = run(x)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        if i >= warmup:
            aug_s, train_s = aug_s + t1 - t0, train_s + t2 - t1
    n = steps - warmup
    return 1000 * aug_s / n, 1000 * train_s / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="emovgg_m")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--sizes", default="48,40,32", help="comma list of training input sizes (crops of 48x48 faces)")
    p.add_argument("--layout", choices=["channels_last", "contiguous"], default="channels_last")
    p.add_argument("--compile", action="store_true", help="time a torch.compile'd model")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    layout = torch.channels_last if args.layout == "channels_last" else torch.contiguous_format
    print("| model | batch | size | layout | compiled | augmentation ms | step ms |")
    print("|---|---:|---:|---|---|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        aug, step = step_ms(args.model, args.batch, size, layout, args.compile)
        print(f"| {args.model} | {args.batch} | {size} | {args.layout} | {args.compile} | {aug:.1f} | {step:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
