"""STL-10 glimpse sequences for seq-JEPA's predictive learning across saccades (PLS,
methods.md §9.3; official ``datasets.py`` ``STL10_SalMap``, ``main_pls.py``).

An item of ``stl10_pls`` is one 96 × 96 STL-10 image seen through ``num_views`` foveal
glimpses (the method's M + 1 = 5 saccades): fixation centres are drawn from a saliency map
(multinomial over its pixels) with **inhibition of return** — after each draw a
(2·``ior_radius`` + 1)² square around the centre is zeroed and the map renormalised — and a
``fovea`` × ``fovea`` patch around each centre is read by bilinear ``grid_sample`` (zeros
outside the image), then resized to ``resolution`` if that differs. The glimpses are the
item's distinct views ([V, 3, r, r] uint8) and their fixation centres (row, col)/96 its
latents [V, 2], so the ``fixation_offset`` action is their difference
(``sslequi.actions.fixation``). The grid is built in (x = column, y = row) order, so no
rotate/flip is needed afterwards (the official code undoes a transposed grid instead).

Saliency: the paper uses precomputed DeepGaze IIE maps (HF ``Hafez/salmap-stl10``, with
an MIT1003 centre bias). **They cannot be computed here** (no DeepGaze model or weights in
this harness); give them as files — ``saliency_dir/<part>_saliency.npy`` float arrays
[N, 96, 96] aligned with the images of STL-10 part ``train`` / ``test`` / ``unlabeled`` —
or leave ``saliency_dir`` empty for uniform sampling (the code's ``--use-sal 0``).

Randomness: the fixations of ``dataset[i]`` come from torch's global generator (the
trainer seeds it per item, ``sslequi.train.sampler.SeededItems``); ``views_of(i)`` returns
``eval_fixations`` glimpses drawn from a generator seeded by (``seed``, i), so evaluation
sees the same glimpses every time. Splits as ``stl10`` (``train`` means ``train_split``,
``unlabeled`` by default: seq-JEPA pretrains on the 100k unlabelled images; probes read
``labeled`` and ``test``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import functional as tvf

from sslequi.data.base import DatasetInfo, ObjectDataset
from sslequi.data.check import DataError
from sslequi.data.folders import STL10, STL10Config
from sslequi.registry import register_dataset
from sslequi.types import Sample

STL_SIDE = 96
PARTS_OF_SPLIT = {
    "labeled": ["train"],
    "train_labeled": ["train"],
    "unlabeled": ["unlabeled"],
    "train+unlabeled": ["train", "unlabeled"],
    "test": ["test"],
    "val": ["test"],
}


@dataclass
class STL10PLSConfig(STL10Config):
    """``configs/dataset/stl10_pls.yaml``; ``resolution`` is the glimpse side after resizing."""

    name: str = "stl10_pls"
    resolution: int = 32
    train_split: str = "unlabeled"  # seq-JEPA pretrains on the unlabelled split
    fovea: int = 32  # --fovea-size: glimpse side in source pixels
    ior_radius: int = 16  # inhibition of return: zero a (2r + 1)² square per fixation
    saliency_dir: str = ""  # <part>_saliency.npy maps [N, 96, 96]; empty: uniform
    eval_fixations: int = 5  # glimpses per image returned by views_of (evaluation)
    seed: int = 0  # of the evaluation glimpses

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.fovea <= STL_SIDE:
            raise ValueError(f"{self.name}.fovea must lie in [1, {STL_SIDE}], got {self.fovea}")
        if self.ior_radius < 0:
            raise ValueError(f"{self.name}.ior_radius must be ≥ 0, got {self.ior_radius}")
        if self.eval_fixations < 1:
            raise ValueError(f"{self.name}.eval_fixations must be ≥ 1")


def sample_fixations(
    saliency: Tensor, count: int, ior_radius: int, generator: torch.Generator | None = None
) -> Tensor:
    """``count`` (row, col) centres [count, 2] drawn from ``saliency`` [H, W] (≥ 0) with
    inhibition of return; an exhausted map falls back to uniform over the unvisited pixels."""
    height, width = saliency.shape
    weights = saliency.double().clamp_min(0).flatten().clone()
    visited = torch.zeros(height, width, dtype=torch.bool)
    centres = []
    for _ in range(count):
        if float(weights.sum()) <= 0:
            weights = (~visited).double().flatten()
            if float(weights.sum()) <= 0:
                weights = torch.ones(height * width, dtype=torch.float64)
        flat = int(torch.multinomial(weights / weights.sum(), 1, generator=generator))
        row, col = divmod(flat, width)
        centres.append((row, col))
        top, left = max(0, row - ior_radius), max(0, col - ior_radius)
        block = (slice(top, row + ior_radius + 1), slice(left, col + ior_radius + 1))
        visited[block] = True
        grid = weights.view(height, width)
        grid[block] = 0.0
    return torch.tensor(centres, dtype=torch.long)


def foveal_patches(image: Tensor, centres: Tensor, fovea: int) -> Tensor:
    """Bilinear ``fovea`` × ``fovea`` patches of ``image`` [C, H, W] (float) centred on each
    (row, col) of ``centres`` [K, 2], zeros outside the image: [K, C, fovea, fovea]."""
    _, height, width = image.shape
    offsets = torch.arange(fovea, dtype=torch.float32) - (fovea - 1) / 2
    rows = centres[:, 0:1].float() + offsets  # [K, F] pixel coordinates
    cols = centres[:, 1:2].float() + offsets
    y = (2 * rows + 1) / height - 1  # align_corners=False normalisation
    x = (2 * cols + 1) / width - 1
    grid = torch.stack(
        [x[:, None, :].expand(-1, fovea, -1), y[:, :, None].expand(-1, -1, fovea)], dim=-1
    )
    batch = image.unsqueeze(0).expand(len(centres), -1, -1, -1)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@register_dataset("stl10_pls", config=STL10PLSConfig)
class STL10PLS(ObjectDataset):
    """STL-10 images as glimpse sequences (module docstring)."""

    def __init__(self, config: STL10PLSConfig, split: str, num_views: int) -> None:
        super().__init__(num_views)
        self.config = config
        source_config = replace(config, resolution=STL_SIDE)
        self.source = STL10(source_config, split, 1)
        chosen = config.train_split if split == "train" else split
        self.saliency = self._saliency(PARTS_OF_SPLIT.get(chosen, []))
        self.info = DatasetInfo(
            num_classes=10,
            mean=config.mean,
            std=config.std,
            image_size=config.resolution,
            latent_dim=2,
            distinct_views=True,
        )

    def _saliency(self, parts: list[str]) -> list[np.ndarray] | None:
        if not self.config.saliency_dir:
            return None
        folder = Path(self.config.saliency_dir).expanduser()
        maps = []
        for part in parts:
            path = folder / f"{part}_saliency.npy"
            if not path.is_file():
                raise DataError(
                    f"{self.config.name}: saliency map file {path} is missing (one float array "
                    f"[N, {STL_SIDE}, {STL_SIDE}] per STL-10 part; or saliency_dir='' for "
                    "uniform fixations)"
                )
            array = np.load(path, mmap_mode="r")
            if array.ndim != 3 or array.shape[1:] != (STL_SIDE, STL_SIDE):
                raise DataError(f"{path}: shape {array.shape}, expected [N, 96, 96]")
            maps.append(array)
        if sum(len(m) for m in maps) != len(self.source):
            raise DataError(
                f"{self.config.name}: the saliency maps hold {sum(len(m) for m in maps)} maps for "
                f"{len(self.source)} images"
            )
        return maps

    def saliency_of(self, index: int) -> Tensor:
        if self.saliency is None:
            return torch.ones(STL_SIDE, STL_SIDE)
        for part in self.saliency:
            if index < len(part):
                return torch.from_numpy(np.array(part[index], dtype=np.float32))
            index -= len(part)
        raise IndexError(index)

    def __len__(self) -> int:
        return len(self.source)

    def glimpses(self, index: int, count: int, generator: torch.Generator | None) -> Sample:
        item = self.source[index]
        image = item.images[0].float()
        centres = sample_fixations(
            self.saliency_of(index), count, self.config.ior_radius, generator
        )
        patches = foveal_patches(image, centres, self.config.fovea)
        if self.config.resolution != self.config.fovea:
            size = [self.config.resolution] * 2
            patches = tvf.resize(patches, size, antialias=True)
        images = patches.round().clamp(0, 255).to(torch.uint8)
        latents = centres.float() / STL_SIDE
        return Sample(images=images, latents=latents, label=item.label, index=index)

    def __getitem__(self, index: int) -> Sample:
        return self.glimpses(index, self.num_views, None)

    def views_of(self, index: int) -> Sample:
        generator = torch.Generator().manual_seed(1_000_003 * self.config.seed + index)
        return self.glimpses(index, max(self.config.eval_fixations, 2), generator)
