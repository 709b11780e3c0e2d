"""Loader + augmentation throughput of the E-SSL ImageNet views, old path vs full-image
crops in workers (issue 11), measured in the same run.

Both paths read the same generated JPEG tree (non-square, 500×375 and 375×500) through
``SeededItems`` + ``ResumableSampler`` + a DataLoader with ``--workers`` workers and build
the ``essl_imagenet`` views (two 224 px views + the 96 px rotation view, 4 rotations) with
the batch builder on the CPU:

- old: workers decode, resize the shorter side to 224 and centre-crop 224 (uint8); every
  crop (bicubic main views, bilinear rotated view) runs batched in the main process;
- new (``dataset.full_image_crops``): workers decode and cut each view's box from the full
  image (torchvision ``resized_crop`` on uint8); the main process runs the other ops.

Each pass is one epoch over the tree (the workers exit at its end, so their CPU time is
counted in ``RUSAGE_CHILDREN``); passes alternate old/new, the best of ``--repeats`` is
kept. Printed: images/s (wall) and CPU-seconds per image (main + workers), and new/old.
Usage: ``python benchmarks/worker_crops_throughput.py [--images 256] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torchvision.io import encode_jpeg  # noqa: E402

from sslequi.augment.builder import BatchBuilder  # noqa: E402
from sslequi.augment.config import load_augment_config  # noqa: E402
from sslequi.augment.worker_crops import full_image_crops_for  # noqa: E402
from sslequi.data.folders import ImageFolder, ImageFolderConfig  # noqa: E402
from sslequi.train.sampler import ResumableSampler, SeededItems  # noqa: E402
from sslequi.types import MethodSpec, RotatedViewSpec, collate_samples  # noqa: E402


def write_tree(root: Path, count: int) -> None:
    """``count`` smooth random JPEGs (quality 90), half 500×375 and half 375×500."""
    g = torch.Generator().manual_seed(0)
    folder = root / "train" / "n00"
    folder.mkdir(parents=True)
    for i in range(count):
        h, w = (375, 500) if i % 2 else (500, 375)
        low = torch.rand(1, 3, h // 25, w // 25, generator=g)
        image = F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)
        image = (image.clamp(0, 1)[0] * 255).to(torch.uint8)
        (folder / f"{i}.JPEG").write_bytes(encode_jpeg(image, quality=90).numpy().tobytes())


def one_pass(
    dataset: ImageFolder, builder: BatchBuilder, batch: int, workers: int
) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process and its workers, images) of one epoch."""
    loader = DataLoader(
        SeededItems(dataset), batch_size=batch, sampler=ResumableSampler(len(dataset), 0),
        num_workers=workers, collate_fn=collate_samples, drop_last=True,
    )  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    seen = 0
    for raw in loader:
        out = builder(raw)
        seen += out.views[0].shape[0]
    del loader  # workers exit: their CPU time lands in RUSAGE_CHILDREN
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(
        a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime
        for a, b in zip(after, before, strict=True)
    )
    return wall, cpu, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="main-process torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = MethodSpec(num_views=2, rotated_view=RotatedViewSpec(size=96, scale=(0.05, 0.14)))
    augment = load_augment_config("essl_imagenet")
    with tempfile.TemporaryDirectory() as tmp:
        write_tree(Path(tmp), args.images)
        config = ImageFolderConfig(root=tmp, resolution=224)
        old = ImageFolder(config, "train", 2)
        new = ImageFolder(config, "train", 2)
        builder = BatchBuilder(spec, old.info, augment)
        new.set_full_image_crops(full_image_crops_for(builder.pipeline, 224))
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.repeats):
            for name, dataset in (("old", old), ("new", new)):
                wall, cpu, seen = one_pass(dataset, builder, args.batch, args.workers)
                rate, cpu_per = seen / wall, cpu / seen
                previous = best.get(name)
                if previous is None or rate > previous[0]:
                    best[name] = (rate, cpu_per)
    print(
        f"{args.images} JPEGs 500x375 / 375x500, batch {args.batch}, {args.workers} workers, "
        f"{args.threads} main thread(s), CPU device, best of {args.repeats} interleaved passes; "
        f"{os.cpu_count()} CPUs, 1-min load average at the end: {os.getloadavg()[0]:.1f}"
    )
    for name in ("old", "new"):
        rate, cpu_per = best[name]
        print(
            f"  {name}: {rate:7.1f} img/s wall, {1000 * cpu_per:6.1f} CPU-ms/img (main + workers)"
        )
    ratio = best["new"][0] / best["old"][0]
    cpu_ratio = best["old"][1] / best["new"][1]
    print(f"  new/old: {ratio:.2f}x throughput (wall), {cpu_ratio:.2f}x images per CPU-second")


if __name__ == "__main__":
    main()
