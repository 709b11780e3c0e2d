"""The typed schema of the ``augment`` config group (``configs/augment/*.yaml``).

A recipe lists view pipelines. Each ``ViewConfig`` is an ordered list of ops, each op a
mapping ``{op: <name>, p: <probability>, <op fields>...}`` whose fields are those of the
op's config dataclass in ``sslequi.augment.ops`` (``crop``: size, scale, ratio;
``pad_crop``: size, padding, fill (torchvision's RandomCrop with padding);
``color_jitter``: brightness, contrast, saturation, hue; ``blur``: sigma, kernel_size;
``solarize``: threshold; ``rotation``: degrees; ``affine``: translate, scale; ``flip``,
``grayscale``, ``rot90``: p only; ``normalize``: mean, std). Unknown ops or fields fail
when the pipeline is built, before any compute.

Patterns (harness_lessons.md §1.5, §2.3, §9):
- symmetric views: one entry, ``count: null`` (= as many views as the method declares);
- asymmetric (BYOL-style) views: one entry per view;
- multi-crop: entries with different crop sizes and counts;
- E-SSL: ``rotated_view`` (methods.md §7.2), shown in all four rotations;
- CARE: entries with ``chunk_shared: true`` draw one parameter set per batch chunk
  (methods.md §8.1, §8.3);
- seq-JEPA: an ``observed`` entry with ``count: M`` and a ``target`` entry (§9.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


@dataclass
class ViewConfig:
    """One view pipeline, repeated ``count`` times (``None``: fill up to the number of
    views the method declares; at most one entry may do this)."""

    ops: list[Any] = field(default_factory=list)
    count: int | None = 1
    name: str = ""
    # CARE: draw the parameters once per batch chunk instead of once per sample.
    chunk_shared: bool = False
    # 3D datasets (distinct views): which delivered view this pipeline reads;
    # None = the view at the same position. Ignored for 2D datasets (one image per item).
    source_view: int | None = None


@dataclass
class AugmentConfig:
    """Augmentation recipe. ``none`` = no 2D augmentation (the 3DIEBench protocol: views
    are distinct renders, only converted and normalised)."""

    name: str = "none"
    views: list[ViewConfig] = field(default_factory=list)
    # E-SSL's extra small view; None = derived from the method's RotatedViewSpec.
    rotated_view: ViewConfig | None = None
    # Append the dataset's mean/std normalisation to every view that lacks one.
    normalize: bool = True
    # The view structure the recipe was written for (pairs, triplets, sequence,
    # multicrop); None = any. A method declaring another structure fails at config time.
    structure: str | None = None
    # CARE: number of chunks K the batch is split into for chunk-shared views.
    chunks: int = 1
    # CARE: images per chunk n; when set, K = batch / n (overrides ``chunks``), so a
    # small batch still gets chunks of n (recipes pin methods.md §8.2's K at the paper's
    # batch through n). Each chunk needs ≥ 2 images (the Gram matching is off-diagonal).
    chunk_size: int | None = None
    # CARE register item 15 (methods.md §0.7): True (paper) = each chunk draws its own
    # (t₁, t₂); False = every chunk shares one pair (what the official vmap code
    # probably does).
    independent_chunks: bool = True


def config_dir() -> Path:
    """The repository's ``configs/augment`` folder (next to the package)."""
    return Path(__file__).resolve().parents[2] / "configs" / "augment"


def available_recipes() -> list[str]:
    return sorted(p.stem for p in config_dir().glob("*.yaml"))


def load_augment_config(name_or_path: str) -> AugmentConfig:
    """Load ``configs/augment/<name>.yaml`` (or a YAML path) into a typed config."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = config_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"augment recipe {name_or_path!r} not found; available: {available_recipes()}"
        )
    loaded = OmegaConf.load(path)
    if not OmegaConf.is_dict(loaded):
        raise ValueError(f"{path}: an augment recipe must be a mapping")
    loaded_dict = OmegaConf.to_container(loaded, resolve=True)
    assert isinstance(loaded_dict, dict)
    loaded_dict.pop("defaults", None)
    merged = OmegaConf.merge(OmegaConf.structured(AugmentConfig), loaded_dict)
    config = OmegaConf.to_object(merged)
    assert isinstance(config, AugmentConfig)
    return config
