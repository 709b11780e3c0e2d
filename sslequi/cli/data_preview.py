"""``sslequi-data preview ROOT``: a contact-sheet PNG, one row per class and a rotation sweep.

Class rows show the first view of several objects of each class (train split). The sweep
row shows one object turning: for a root written by ``render3d`` (it has
``render_info.json``) the object is re-rendered about the vertical axis in equal steps
with the lights fixed; for any other root (the real set) the views of one object are
ordered by their rotation angle away from its first view.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from sslequi.cli.data import register_subcommand  # noqa: E402
from sslequi.data.check import DataError, decode_image, discover_views, load_split  # noqa: E402
from sslequi.data.render.generate import object_geometry  # noqa: E402
from sslequi.data.render.scene import ViewBatch  # noqa: E402
from sslequi.data.render.shapes import CLASSES, class_by_name  # noqa: E402
from sslequi.data.render.tracer import render_views  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path)
    parser.add_argument(
        "--out", type=Path, default=None, help="PNG path (default ROOT/preview.png)"
    )
    parser.add_argument("--splits-dir", type=Path, default=None)
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument("--size", type=int, default=96, help="thumbnail side in pixels")


def class_rows(
    root: Path, splits_dir: Path, columns: int, size: int
) -> tuple[list[torch.Tensor], list[str]]:
    index = load_split(splits_dir, "train")
    by_synset: dict[str, list[str]] = {}
    for i, entry in enumerate(index.paths):
        by_synset.setdefault(index.synset(i), []).append(entry)
    images, synsets = [], sorted(by_synset)
    for synset in synsets:
        row = []
        for entry in by_synset[synset][:columns]:
            folder = root / entry.strip("/")
            views, _ = discover_views(folder)
            row.append(_thumb(decode_image(folder / f"image_{views[0]}.jpg"), size))
        row += [torch.zeros(3, size, size, dtype=torch.uint8)] * (columns - len(row))
        images += row
    return images, synsets


def sweep_row(
    root: Path, splits_dir: Path, columns: int, size: int
) -> tuple[list[torch.Tensor], str]:
    info_path = root / "render_info.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        synset, name = next(iter(info["classes"].items()))
        shape, palette = object_geometry(class_by_name(name), int(info["seed"]), 0)
        angles = np.linspace(-math.pi / 2, math.pi / 2, columns)
        latents = np.zeros((columns, 7))
        latents[:, 0], latents[:, 2] = 0.3, angles  # tilt a little, turn about z
        latents[:, 3], latents[:, 4], latents[:, 5], latents[:, 6] = 0.3, 0.3, 1.0, 0.1
        frames = render_views(
            shape, palette, ViewBatch.from_latents(latents), int(info["resolution"])
        )
        return [_thumb(f, size) for f in frames], f"sweep ({name})"
    index = load_split(splits_dir, "train")
    folder = root / index.paths[0].strip("/")
    views, _ = discover_views(folder)
    rotations = [Rotation.from_euler("xyz", np.load(folder / f"latent_{v}.npy")[:3]) for v in views]
    order = np.argsort([(rotations[0].inv() * r).magnitude() for r in rotations])[:columns]
    return [
        _thumb(decode_image(folder / f"image_{views[i]}.jpg"), size) for i in order
    ], "sweep (by angle)"


def _thumb(image: torch.Tensor, size: int) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as tvf

    return tvf.resize(image, [size, size], antialias=True)


@register_subcommand(
    "preview", help="contact sheet PNG of a 3DIEBench-format root", add_arguments=add_arguments
)
def run(args: argparse.Namespace) -> int:
    root, splits_dir = args.root, args.splits_dir or args.root
    out = args.out or root / "preview.png"
    try:
        images, synsets = class_rows(root, splits_dir, args.columns, args.size)
        sweep, sweep_label = sweep_row(root, splits_dir, args.columns, args.size)
    except DataError as error:
        print(f"error: {error}")
        return 1
    sweep += [torch.zeros(3, args.size, args.size, dtype=torch.uint8)] * (args.columns - len(sweep))
    grid = make_grid(torch.stack(images + sweep), nrow=args.columns, padding=2)
    names = {c.synset: c.name for c in CLASSES}
    labels = [f"{names.get(s, s)}" for s in synsets] + [sweep_label]
    rows = len(labels)
    fig, ax = plt.subplots(figsize=(args.columns * 1.2 + 2.0, rows * 1.2 + 0.4), dpi=100)
    ax.imshow(grid.permute(1, 2, 0).numpy())
    ax.set_yticks([(i + 0.5) * (args.size + 2) for i in range(rows)], labels)
    ax.set_xticks([])
    ax.set_title(
        f"{root.name}: one row per class (first view of each object); last row: rotation sweep"
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    print(f"wrote {out}")
    return 0
