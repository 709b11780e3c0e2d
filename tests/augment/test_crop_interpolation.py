"""The crop op's ``interpolation: bicubic`` (issue 11; E-SSL ImageNet's RandomResizedCrop
224 bicubic, methods.md §7.4) equals torchvision's bicubic ``resized_crop`` on float images
within the crop tolerance of ``test_ops.py`` (ATOL 5e-6), with and without antialias."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from sslequi.augment import ops
from sslequi.augment.pipeline import parse_op

ATOL = 5e-6  # as tests/augment/test_ops.py

torch.set_num_threads(1)


@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize("size", [(24, 24), (16, 16), (40, 36), (7, 9)])
def test_bicubic_crop_matches_torchvision(size: tuple[int, int], antialias: bool) -> None:
    images = torch.rand(6, 3, 24, 28, generator=torch.Generator().manual_seed(0))
    top = torch.tensor([0.0, 3, 5, 10, 1, 0])
    left = torch.tensor([0.0, 7, 2, 1, 9, 27])
    height = torch.tensor([24.0, 20, 11, 14, 3, 24])
    width = torch.tensor([28.0, 17, 26, 9, 19, 1])
    flip = torch.tensor([False, True, False, True, True, False])
    out = ops.resized_crop(
        images, top, left, height, width, size, flip=flip, antialias=antialias,
        interpolation="bicubic",
    )  # fmt: skip
    for i in range(6):
        box = (int(top[i]), int(left[i]), int(height[i]), int(width[i]))
        ref = TF.resized_crop(
            images[i], *box, list(size), interpolation=InterpolationMode.BICUBIC,
            antialias=antialias,
        )  # fmt: skip
        if flip[i]:
            ref = TF.horizontal_flip(ref)
        torch.testing.assert_close(out[i], ref, atol=ATOL, rtol=0)


def test_bicubic_differs_from_bilinear_and_the_op_uses_it() -> None:
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    op = parse_op({"op": "crop", "size": 16, "interpolation": "bicubic"})
    record = op.sample(2, (32, 32), torch.device("cpu"), torch.Generator().manual_seed(2))
    bicubic = op.apply(images, record)
    bilinear = parse_op({"op": "crop", "size": 16}).apply(images, record)
    assert (bicubic - bilinear).abs().max() > 1e-3
    ref = TF.resized_crop(
        images[0], int(record.top[0]), int(record.left[0]), int(record.height[0]),
        int(record.width[0]), [16, 16], interpolation=InterpolationMode.BICUBIC,
    )  # fmt: skip
    torch.testing.assert_close(bicubic[0], ref, atol=ATOL, rtol=0)


def test_unknown_interpolation_fails_at_config_time() -> None:
    with pytest.raises(ops.AugmentConfigError, match="interpolation"):
        parse_op({"op": "crop", "size": 16, "interpolation": "lanczos"})
