"""The dataset contract shared by the 3D and 2D datasets."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from torch.utils.data import Dataset

from sslequi.types import Sample


@dataclass(frozen=True)
class DatasetInfo:
    """Facts about a dataset the rest of the harness needs before any compute."""

    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int
    latent_dim: int | None  # None for 2D datasets (no latents)
    distinct_views: bool  # True: an item holds V distinct renders; False: one image to augment


class ImageDataset(Dataset[Sample], ABC):
    """Base of every registered dataset. ``num_views`` is what the method declared."""

    info: DatasetInfo

    def __init__(self, num_views: int) -> None:
        self.num_views = num_views

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> Sample: ...


@dataclass
class DatasetConfig:
    """Fields every dataset config has (each dataset subclasses this)."""

    name: str = "???"
    root: str = ""
    resolution: int = 64


class ObjectDataset(ImageDataset):
    """A dataset of objects with several views each (the 3DIEBench family, synthetic).

    ``len`` counts objects; ``__getitem__`` draws ``num_views`` distinct views of one object.
    Evaluation enumerates every view of an object deterministically with ``views_of``.
    """

    @abstractmethod
    def views_of(self, index: int) -> Sample:
        """Every view of object ``index``: images [V_all, C, H, W], latents [V_all, L]."""
