"""``sslequi-data check ROOT``: validate a 3DIEBench-format root and print counts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from sslequi.cli.data import register_subcommand
from sslequi.data.check import DataError, check_root, decode_image, load_split
from sslequi.data.render.shapes import CLASSES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path)
    parser.add_argument("--splits-dir", type=Path, default=None,
                        help="folder with {train,val}_{images,labels}.npy (default ROOT)")  # fmt: skip
    parser.add_argument("--latent-dim", type=int, choices=[7, 10], default=None,
                        help="expected latent length (default: 7 or 10, one across the root)")  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true", help="check JPEG markers instead of decoding"
    )
    parser.add_argument("--stats", action="store_true",
                        help="also measure per-channel mean/std over the train images")  # fmt: skip


def channel_stats(
    root: Path, splits_dir: Path, max_images: int = 5000
) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1] over (up to) ``max_images`` train images."""
    index = load_split(splits_dir, "train")
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    pixels = 0
    for entry in index.paths:
        for image_path in sorted((root / entry.strip("/")).glob("image_*.jpg")):
            image = decode_image(image_path).double() / 255
            total += image.sum((1, 2))
            squares += (image * image).sum((1, 2))
            pixels += image.shape[1] * image.shape[2]
            max_images -= 1
            if max_images == 0:
                break
        if max_images == 0:
            break
    mean = total / max(pixels, 1)
    std = (squares / max(pixels, 1) - mean * mean).clamp(min=0).sqrt()
    return mean.tolist(), std.tolist()


@register_subcommand("check", help="validate a 3DIEBench-format root", add_arguments=add_arguments)
def run(args: argparse.Namespace) -> int:
    try:
        report = check_root(
            args.root, args.splits_dir, args.latent_dim, deep=not args.quick, progress=True
        )
    except DataError as error:
        print(f"error: {error}")
        return 1
    names = {c.synset: c.name for c in CLASSES}
    info = args.root / "render_info.json"
    if info.is_file():
        names.update(json.loads(info.read_text()).get("classes", {}))
    print(report.format(names))
    if args.stats and report.counts.get("train"):
        mean, std = channel_stats(args.root, args.splits_dir or args.root)
        print(f"train mean {np.round(mean, 4).tolist()} std {np.round(std, 4).tolist()} "
              "(use as dataset.mean / dataset.std)")  # fmt: skip
    return 0 if report.ok else 1
