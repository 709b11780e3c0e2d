"""3DIEBench, 3DIEBench-T and 3DIEBench-OOD read in their exact on-disk format.

Layout (datasets.md §1.2, §1.7): ``ROOT/<synset>/<object_id>/image_<v>.jpg`` and
``latent_<v>.npy``; split files ``{train,val}_images.npy`` ('/<synset>/<object_id>/')
and ``{train,val}_labels.npy`` (rank of the synset among all synsets sorted) in
``splits_dir`` (default ROOT; the real tarball ships without them, they live in the SIE
repository's ``data/`` folder). A root written by ``sslequi-data render3d`` has the same
layout and is read by the same classes.

Items sample objects, not images (SIE ``src/dataset.py``, seq-JEPA
``Dataset_3DIEBench_MultipleViews``): ``dataset[i]`` draws ``num_views`` distinct views
of object ``i`` without replacement (torch's generator, seeded per DataLoader worker)
and returns their uint8 images [V, 3, R, R], float32 latents [V, L], label and index.
Relative actions are not stored: ``sslequi.actions`` computes them from the latents.
``views_of(i)`` returns every view of an object in view-number order (evaluation).

View numbers are discovered per object from the files (3DIEBench-OOD uses image_2..5,
the rendered presets fewer than 50), so nothing assumes 50 views or a view 0.

Images are decoded with ``torchvision.io.decode_jpeg`` and resized (antialiased,
bilinear, like torchvision's ``Resize`` in SIE) when ``resolution`` differs from the
file's size: 256 is native, seq-JEPA uses 128.

Checks at open (``check_on_open``, on by default): the split files, the labels against
the synset order, and a structural scan of every object of the split
(``sslequi.data.check.scan_split``: every folder listed, every view an image + latent pair,
every latent read for dtype, shape and finite values, every JPEG's markers and headers
parsed; at least ``num_views`` views per object). A clean scan is cached by the split's
listing (names, sizes, mtimes), so reopening an unchanged root reads no file. What only a
full decode sees (corrupt entropy-coded image data) raises ``DataError`` naming the file
when the item is loaded; the trainer marks the run failed and the CLI exits 2 with that
one line. ``sslequi-data check`` decodes every image.

Split names: ``train`` and ``val``; ``test`` is an alias of ``val`` (the benchmark has no
separate test set; SIE evaluates on val). 3DIEBench-OOD holds only the val objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as tvf

from sslequi.data.base import DatasetConfig, DatasetInfo, ObjectDataset
from sslequi.data.check import (
    DataError,
    ScanSummary,
    decode_image,
    discover_views,
    label_problems,
    load_split,
    read_latent,
    scan_split,
    split_files,
    synset_order,
)
from sslequi.registry import register_dataset
from sslequi.types import Sample

# datasets.md §1.9: used by SIE, CapsIE, EquiCaps and seq-JEPA.
THREEDIE_MEAN = (0.5016, 0.5037, 0.5060)
THREEDIE_STD = (0.1030, 0.0999, 0.0969)
SPLIT_ALIASES = {"train": "train", "val": "val", "test": "val"}
MAX_LISTED_PROBLEMS = 10


@dataclass
class ThreeDIEConfig(DatasetConfig):
    """3DIEBench (``configs/dataset/3diebench.yaml``).

    ``splits_dir`` empty means ROOT. ``num_classes`` 0 means the number of synsets in the
    split files (55 for the real set). ``mean``/``std`` default to the spec's constants;
    ``sslequi-data check ROOT --stats`` measures them on another root (e.g. a render).
    """

    name: str = "3diebench"
    root: str = ""
    resolution: int = 256
    splits_dir: str = ""
    num_classes: int = 0
    mean: tuple[float, float, float] = field(default_factory=lambda: THREEDIE_MEAN)
    std: tuple[float, float, float] = field(default_factory=lambda: THREEDIE_STD)
    check_on_open: bool = True  # the structural scan of every object (module docstring)

    def __post_init__(self) -> None:
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"{self.name}: mean/std need 3 values, std > 0")
        if self.resolution < 8:
            raise ValueError(f"{self.name}.resolution must be ≥ 8, got {self.resolution}")
        if self.num_classes < 0:
            raise ValueError(f"{self.name}.num_classes must be ≥ 0 (0 = from the split files)")


@dataclass
class ThreeDIETConfig(ThreeDIEConfig):
    """3DIEBench-T (EquiCaps): same layout and splits, 10-value latents (+ translation)."""

    name: str = "3diebench_t"


@dataclass
class ThreeDIEOODConfig(ThreeDIEConfig):
    """3DIEBench-OOD (seq-JEPA): the val objects, views image_2..5, OOD Euler angles."""

    name: str = "3diebench_ood"


@register_dataset("3diebench", config=ThreeDIEConfig)
class ThreeDIEBench(ObjectDataset):
    """3DIEBench objects × views (module docstring). ``len`` counts objects."""

    latent_dim = 7

    def __init__(self, config: ThreeDIEConfig, split: str, num_views: int) -> None:
        super().__init__(num_views)
        if split not in SPLIT_ALIASES:
            raise ValueError(
                f"{config.name}: unknown split {split!r}; expected one of {sorted(SPLIT_ALIASES)}"
            )
        if not config.root:
            raise DataError(
                f"{config.name}: dataset.root is empty; set it to the folder holding the "
                "<synset>/<object_id>/ folders (the real 3DIEBench, or one written by "
                "'sslequi-data render3d --out ROOT')"
            )
        self.config = config
        self.root = Path(config.root).expanduser()
        self.splits_dir = Path(config.splits_dir).expanduser() if config.splits_dir else self.root
        self.split = SPLIT_ALIASES[split]
        if not self.root.is_dir():
            raise DataError(f"{config.name}: dataset root {self.root} does not exist")
        self.index = load_split(self.splits_dir, self.split)
        self._check_split_is_usable(num_views)
        other = [
            s
            for s in ("train", "val")
            if s != self.split and all(p.is_file() for p in split_files(self.splits_dir, s))
        ]
        # labels = rank among every synset of the benchmark: read both split files
        self.synsets = synset_order([self.index] + [load_split(self.splits_dir, s) for s in other])
        num_classes = config.num_classes or len(self.synsets)
        self._views: dict[int, list[int]] = {}
        self.scan: ScanSummary | None = None
        if config.check_on_open:
            self._open_checks()
        self.info = DatasetInfo(
            num_classes=num_classes,
            mean=config.mean,
            std=config.std,
            image_size=config.resolution,
            latent_dim=self.latent_dim,
            distinct_views=True,
        )

    # --- open-time checks -----------------------------------------------------------

    def _check_split_is_usable(self, num_views: int) -> None:
        if not self.index.paths:
            raise DataError(
                f"{self.config.name}: split {self.split!r} in {self.splits_dir} lists no objects"
                + (" (3DIEBench-OOD holds only val objects)" if "ood" in self.config.name else "")
            )
        if num_views < 1:
            raise ValueError(f"{self.config.name}: num_views must be ≥ 1, got {num_views}")

    def _open_checks(self) -> None:
        """Labels and the structural scan of every object (module docstring)."""
        problems = label_problems(self.index, self.synsets, self.splits_dir)
        self.scan = scan_split(self.root, self.index, self.latent_dim)
        problems += self.scan.problems
        if problems:
            listed = "\n  ".join(str(p) for p in problems[:MAX_LISTED_PROBLEMS])
            more = len(problems) - MAX_LISTED_PROBLEMS
            raise DataError(
                f"{self.config.name}: {self.root} failed the checks at open "
                f"({len(problems)} problem(s); 'sslequi-data check {self.root}' lists them "
                f"all):\n  {listed}" + (f"\n  ... and {more} more" if more > 0 else "")
            )
        if self.scan.min_views < self.num_views:
            raise DataError(
                f"{self.config.name}: the method asks for {self.num_views} distinct views per "
                f"item but {self.scan.fewest_views} has {self.scan.min_views}"
            )

    # --- items ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.index.paths)

    def folder(self, index: int) -> Path:
        return self.root / self.index.paths[index].strip("/")

    def view_numbers(self, index: int) -> list[int]:
        """The view numbers of object ``index`` found on disk (cached)."""
        if index not in self._views:
            folder = self.folder(index)
            if not folder.is_dir():
                raise DataError(f"{folder}: split entry {self.index.paths[index]!r} has no folder")
            views, problems = discover_views(folder)
            if problems:
                raise DataError("; ".join(str(p) for p in problems))
            self._views[index] = views
        return self._views[index]

    def load_views(self, index: int, views: list[int]) -> Sample:
        """Images and latents of the given view numbers of object ``index``."""
        folder = self.folder(index)
        images = torch.stack([self._image(folder / f"image_{v}.jpg") for v in views])
        latents = np.stack(
            [read_latent(folder / f"latent_{v}.npy", self.latent_dim) for v in views]
        )
        return Sample(
            images=images,
            latents=torch.from_numpy(latents).float(),
            label=int(self.index.labels[index]),
            index=index,
        )

    def __getitem__(self, index: int) -> Sample:
        views = self.view_numbers(index)
        if len(views) < self.num_views:
            raise DataError(
                f"{self.folder(index)}: the method asks for {self.num_views} distinct views "
                f"per item but this object has {len(views)} ({views})"
            )
        chosen = torch.randperm(len(views))[: self.num_views].tolist()
        return self.load_views(index, [views[i] for i in chosen])

    def views_of(self, index: int) -> Sample:
        return self.load_views(index, self.view_numbers(index))

    def _image(self, path: Path) -> Tensor:
        image = decode_image(path)
        size = self.config.resolution
        if image.shape[-2:] != (size, size):
            image = tvf.resize(image, [size, size], antialias=True)
        return image


@register_dataset("3diebench_t", config=ThreeDIETConfig)
class ThreeDIEBenchT(ThreeDIEBench):
    """3DIEBench-T: latents of 10 values (indices 7–9: translation), datasets.md §2."""

    latent_dim = 10


@register_dataset("3diebench_ood", config=ThreeDIEOODConfig)
class ThreeDIEBenchOOD(ThreeDIEBench):
    """3DIEBench-OOD: val objects only, views discovered (image_2..5), 7-value latents (§3)."""

    latent_dim = 7
