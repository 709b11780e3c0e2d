"""``render2d``: the built-in rendered benchmark (or any 3DIEBench-layout root) read as a 2D
image dataset: every view of every object of a split is one image, labelled with its
object's class, with no latents (datasets.md §6 for the layout).

A single-view adapter for 2D methods (CARE, SimCLR with 2D augmentations) on offline data:
items are (object, view) pairs in split-file order, so the train/val split of the objects
is kept (no object has images on both sides). One image per item; the augmentation
pipeline renders every view from it (``DatasetInfo.distinct_views`` False). The object
reader, its open-time checks and the normalisation constants are those of ``3diebench``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sslequi.data.base import ImageDataset
from sslequi.data.threedie import ThreeDIEBench, ThreeDIEConfig
from sslequi.registry import register_dataset
from sslequi.types import Sample


@dataclass
class Render2DConfig(ThreeDIEConfig):
    """``configs/dataset/render2d_small.yaml``; the fields of ``3diebench``."""

    name: str = "render2d"


@register_dataset("render2d", config=Render2DConfig)
class RenderSingleViews(ImageDataset):
    """Every (object, view) of a 3DIEBench-layout split as one labelled image."""

    def __init__(self, config: Render2DConfig, split: str, num_views: int) -> None:
        super().__init__(num_views)
        self.config = config
        self.objects = ThreeDIEBench(config, split, 1)
        self.items = [
            (index, view)
            for index in range(len(self.objects))
            for view in self.objects.view_numbers(index)
        ]
        self.info = replace(self.objects.info, latent_dim=None, distinct_views=False)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        obj, view = self.items[index]
        sample = self.objects.load_views(obj, [view])
        return Sample(images=sample.images, latents=None, label=sample.label, index=index)
