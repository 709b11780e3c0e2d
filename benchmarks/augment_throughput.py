"""Augmentation throughput: two SimCLR-style views per image, three implementations.

Ops for all three: random resized crop (scale 0.08–1), horizontal flip 0.5, colour jitter
(0.8, 0.8, 0.8, 0.2) p 0.8, grayscale 0.2, Gaussian blur σ ∈ [0.1, 2] p 0.5, normalise;
output side = input side (32 and 64 px by default).

- sslequi: ``configs/augment/simclr.yaml`` through ``build_pipeline``, batched on uint8
  batches, ``torch.set_num_threads(threads)`` (default 2);
- lightly: ``SimCLRTransform`` on PIL images through a DataLoader with 2 workers (its blur
  is PIL's, sized by σ; the others use a kernel of ≈ 10 % of the side: 3 at 32 px, 7 at
  64 px);
- kornia: ``AugmentationSequential`` on the same float batches (bench extra only).

img/s counts source images (each yields two views); each figure is the best of
``--repeats`` timed passes over ``--images`` images, all measured in the same run.
``OMP_WAIT_POLICY`` defaults to PASSIVE here: on a shared, oversubscribed CPU, spinning
OpenMP threads make every multi-threaded torch op (ours and kornia's) several times
slower; lightly's workers run single-threaded and are unaffected.
Usage: ``python benchmarks/augment_throughput.py [--sizes 32 64] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from sslequi.augment.config import load_augment_config  # noqa: E402
from sslequi.augment.pipeline import build_pipeline  # noqa: E402
from sslequi.data.base import DatasetInfo  # noqa: E402
from sslequi.types import MethodSpec  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def kernel_size(side: int) -> int:
    k = max(3, int(round(0.1 * side)))
    return k if k % 2 else k + 1


def best_rate(run: Callable[[], int], repeats: int) -> float:
    """Images per second of the fastest of ``repeats`` passes (after one warm-up)."""
    run()
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        count = run()
        best = max(best, count / (time.perf_counter() - start))
    return best


def sslequi_runner(images: torch.Tensor, batch: int, device: torch.device) -> Callable[[], int]:
    side = images.shape[-1]
    info = DatasetInfo(10, MEAN, STD, side, None, False)
    pipeline = build_pipeline(load_augment_config("simclr"), MethodSpec(num_views=2), info)
    data = images.to(device)

    def run() -> int:
        for start in range(0, data.shape[0], batch):
            chunk = data[start : start + batch].unsqueeze(1)
            params, _ = pipeline.sample(chunk)
            views, _ = pipeline.apply(chunk, params)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return data.shape[0]

    return run


class _PilImages(Dataset):
    def __init__(self, images: torch.Tensor, transform: Callable) -> None:
        self.images = [Image.fromarray(im.permute(1, 2, 0).numpy()) for im in images]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        return self.transform(self.images[i])


def lightly_runner(images: torch.Tensor, batch: int, workers: int) -> Callable[[], int]:
    from lightly.transforms import SimCLRTransform

    transform = SimCLRTransform(
        input_size=images.shape[-1], normalize={"mean": list(MEAN), "std": list(STD)}
    )
    loader = DataLoader(
        _PilImages(images, transform),
        batch_size=batch,
        num_workers=workers,
        persistent_workers=workers > 0,
    )

    def run() -> int:
        count = 0
        for views in loader:
            count += views[0].shape[0]
        return count

    return run


def kornia_runner(images: torch.Tensor, batch: int, device: torch.device) -> Callable[[], int]:
    import kornia.augmentation as K

    side = images.shape[-1]
    k = kernel_size(side)
    aug = K.AugmentationSequential(
        K.RandomResizedCrop((side, side), scale=(0.08, 1.0)),
        K.RandomHorizontalFlip(p=0.5),
        K.ColorJitter(0.8, 0.8, 0.8, 0.2, p=0.8),
        K.RandomGrayscale(p=0.2),
        K.RandomGaussianBlur((k, k), (0.1, 2.0), p=0.5),
        K.Normalize(mean=torch.tensor(MEAN), std=torch.tensor(STD)),
    ).to(device)
    data = images.to(device)

    def run() -> int:
        with torch.no_grad():
            for start in range(0, data.shape[0], batch):
                x = data[start : start + batch].float() / 255.0
                aug(x)
                aug(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return data.shape[0]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-lightly", action="store_true")
    parser.add_argument("--skip-kornia", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    print(
        f"device {device}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
        f"{args.threads} threads, batch {args.batch}, {args.images} images, "
        f"best of {args.repeats}; img/s = source images (2 views each)"
    )
    header = (
        f"{'size':>5} {'sslequi':>10} {'lightly':>10} {'kornia':>10} {'×lightly':>9} {'×kornia':>8}"
    )
    print(header)
    for side in args.sizes:
        images = torch.from_numpy(
            rng.integers(0, 256, (args.images, 3, side, side), dtype=np.uint8)
        )
        ours = best_rate(sslequi_runner(images, args.batch, device), args.repeats)
        light = (
            float("nan")
            if args.skip_lightly
            else best_rate(lightly_runner(images, args.batch, args.workers), args.repeats)
        )
        korn = (
            float("nan")
            if args.skip_kornia
            else best_rate(kornia_runner(images, args.batch, device), args.repeats)
        )
        print(
            f"{side:>5} {ours:>10.0f} {light:>10.0f} {korn:>10.0f} "
            f"{ours / light:>9.2f} {ours / korn:>8.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
