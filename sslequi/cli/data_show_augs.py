"""``sslequi-data show-augs --augment NAME``: a PNG grid of the views a recipe produces.

One row per source image, one column per view (E-SSL's rotated view last, if the recipe
has one), each view's recorded parameters printed under it. Images come from a dataset
(``--dataset NAME``, a ``configs/dataset`` entry), an image file (``--image``), or a
built-in procedural test card.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from sslequi.augment.config import AugmentConfig, load_augment_config  # noqa: E402
from sslequi.augment.params import ViewParams  # noqa: E402
from sslequi.augment.pipeline import build_pipeline  # noqa: E402
from sslequi.cli.data import register_subcommand  # noqa: E402
from sslequi.data.base import DatasetInfo  # noqa: E402
from sslequi.types import MethodSpec, RotatedViewSpec  # noqa: E402

ORDER_NAMES = "bcsh"  # colour jitter step letters: brightness, contrast, saturation, hue


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--augment", required=True, help="recipe name (configs/augment) or YAML")
    parser.add_argument("--dataset", default=None, help="dataset config name (configs/dataset)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--image", type=Path, default=None, help="an image file instead")
    parser.add_argument("--size", type=int, default=64, help="sample-card side in pixels")
    parser.add_argument("--samples", type=int, default=3, help="rows (source images)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("augmentations.png"))


def spec_for_recipe(config: AugmentConfig) -> MethodSpec:
    """A method declaration that the recipe satisfies exactly (open counts → 2 views)."""
    num_views = sum(2 if v.count is None else v.count for v in config.views) or 2
    rotated = None
    if config.rotated_view is not None:
        crop = next((op for op in config.rotated_view.ops if op.get("op") == "crop"), {})
        rotated = RotatedViewSpec(size=int(crop.get("size") or 16))
    return MethodSpec(
        num_views=num_views,
        structure=config.structure or "pairs",  # type: ignore[arg-type]
        rotated_view=rotated,
        chunk_shared_params=any(v.chunk_shared for v in config.views),
    )


def sample_card(size: int, count: int, seed: int) -> torch.Tensor:
    """[count, 1, 3, size, size] uint8: colour gradients with an off-centre disc and an
    arrow-like bar, so flips, rotations and crops are visible."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    cards = []
    for _ in range(count):
        hue = torch.rand(3, generator=g)
        img = torch.stack([xs * hue[0], ys * hue[1], (1 - xs) * hue[2] + 0.2]).clamp(0, 1)
        cx, cy = 0.3 + 0.2 * float(torch.rand(1, generator=g)), 0.35
        disc = ((xs - cx) ** 2 + (ys - cy) ** 2) < 0.02
        img[:, disc] = torch.tensor([1.0, 0.85, 0.1])[:, None]
        bar = (ys > 0.65) & (ys < 0.75) & (xs > 0.2) & (xs < 0.8)
        img[:, bar] = torch.tensor([0.1, 0.2, 0.9])[:, None]
        tip = (xs > 0.7) & (xs < 0.85) & ((ys - 0.7).abs() < (0.85 - xs))
        img[:, tip] = torch.tensor([0.9, 0.1, 0.1])[:, None]
        cards.append(img)
    return (torch.stack(cards) * 255).round().to(torch.uint8).unsqueeze(1)


def load_images(args: argparse.Namespace) -> tuple[torch.Tensor, DatasetInfo]:
    """[N, V, 3, H, W] uint8 and the dataset facts used for normalisation."""
    if args.image is not None:
        from torchvision.io import ImageReadMode, decode_image

        image = decode_image(str(args.image), mode=ImageReadMode.RGB)
        side = min(image.shape[-2:])
        images = image[:, :side, :side].unsqueeze(0).unsqueeze(0).repeat(args.samples, 1, 1, 1, 1)
        return images, DatasetInfo(0, (0.5,) * 3, (0.25,) * 3, side, None, False)
    if args.dataset is None:
        info = DatasetInfo(0, (0.5,) * 3, (0.25,) * 3, args.size, None, False)
        return sample_card(args.size, args.samples, args.seed), info
    from omegaconf import OmegaConf

    from sslequi.build import build_dataset
    from sslequi.config import import_components
    from sslequi.registry import DATASETS

    import_components()
    path = Path(__file__).resolve().parents[2] / "configs" / "dataset" / f"{args.dataset}.yaml"
    node = OmegaConf.load(path) if path.is_file() else OmegaConf.create({"name": args.dataset})
    entry = DATASETS.entry(str(node.get("name", args.dataset)))
    assert entry.config is not None
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(entry.config), node))
    dataset = build_dataset(config, args.split, 2)  # type: ignore[arg-type]
    samples = [dataset[i] for i in range(min(args.samples, len(dataset)))]
    return torch.stack([s.images for s in samples]), dataset.info


def describe(params: ViewParams, index: int) -> str:
    """One sample's recorded parameters, a few short lines."""
    parts: list[str] = []
    if params.crop is not None:
        c = params.crop
        box = [int(t[index]) for t in (c.top, c.left, c.height, c.width)]
        parts.append(f"crop t{box[0]} l{box[1]} {box[2]}×{box[3]}→{c.size[0]}")
    if params.flip is not None and bool(params.flip.applied[index]):
        parts.append("flip")
    if params.color_jitter is not None and bool(params.color_jitter.applied[index]):
        j = params.color_jitter
        order = "".join(ORDER_NAMES[int(k)] for k in j.order[index])
        parts.append(
            f"jit b{float(j.brightness[index]):.2f} c{float(j.contrast[index]):.2f} "
            f"s{float(j.saturation[index]):.2f} h{float(j.hue[index]):+.2f} [{order}]"
        )
    if params.grayscale is not None and bool(params.grayscale.applied[index]):
        parts.append("gray")
    if params.blur is not None and bool(params.blur.applied[index]):
        parts.append(f"blur σ{float(params.blur.sigma[index]):.2f} k{params.blur.kernel_size}")
    if params.solarize is not None and bool(params.solarize.applied[index]):
        parts.append(f"solarize ≥{params.solarize.threshold:.2f}")
    if params.rotation is not None and bool(params.rotation.applied[index]):
        parts.append(f"rot {float(params.rotation.angle[index]):+.1f}°")
    if params.affine is not None and bool(params.affine.applied[index]):
        a = params.affine
        tx, ty = (int(v) for v in a.translate[index])
        parts.append(f"aff t({tx},{ty}) s{float(a.scale[index]):.2f}")
    if params.rot90 is not None and bool(params.rot90.applied[index]):
        parts.append(f"rot90 k{int(params.rot90.k[index])}")
    if params.chunks is not None:
        parts.append(f"chunk-shared (K={params.chunks})")
    return "\n".join(parts) or "(no ops)"


def _display(view: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    mean = torch.tensor(info.mean).view(3, 1, 1)
    std = torch.tensor(info.std).view(3, 1, 1)
    return (view * std + mean).clamp(0, 1).permute(1, 2, 0)


@register_subcommand(
    "show-augs",
    help="PNG grid of a recipe's views with their parameters",
    add_arguments=add_arguments,
)
def run(args: argparse.Namespace) -> int:
    config = load_augment_config(args.augment)
    images, info = load_images(args)
    spec = spec_for_recipe(config)
    if spec.chunk_shared_params:  # chunks of two rows, so sharing is visible
        rows = images.shape[0]
        config.chunks = rows // 2 if rows % 2 == 0 else math.gcd(rows, config.chunks)
    pipeline = build_pipeline(config, spec, info)
    generator = torch.Generator().manual_seed(args.seed)
    params, rotated_params = pipeline.sample(images, generator)
    views, rotated = pipeline.apply(images, params, rotated_params)
    columns = [
        (f"{v.name}", view, p) for v, view, p in zip(pipeline.views, views, params, strict=True)
    ]
    if rotated is not None and rotated_params is not None and pipeline.rotated is not None:
        columns.append(("rotated (E-SSL, k=0)", rotated, rotated_params))
    rows = images.shape[0]
    fig, axes = plt.subplots(
        rows, len(columns), figsize=(2.3 * len(columns), 3.0 * rows), squeeze=False
    )
    for r in range(rows):
        for c, (title, view, p) in enumerate(columns):
            ax = axes[r][c]
            ax.imshow(_display(view[r], info).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(describe(p, r), fontsize=6.5, family="monospace")
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.suptitle(f"augment: {config.name}", fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=130)
    plt.close(fig)
    print(f"wrote {args.out} ({rows} images × {len(columns)} views)")
    return 0
