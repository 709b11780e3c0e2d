"""Each op: equals torchvision.transforms.v2.functional for fixed parameters, replays
exactly from its record, and samples inside its configured ranges."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from sslequi.augment import ops
from sslequi.augment.params import ColorJitterRecord

# Tolerances (float32, images in [0, 1]): pointwise ops and crops agree to rounding
# (≤ 5e-6); hue goes through HSV and back (≤ 1e-5); grid-sampled rotations agree to
# 1e-5 except where a sample lands within float error of a pixel boundary.
ATOL = 5e-6
HUE_ATOL = 1e-5

torch.set_num_threads(1)


@pytest.fixture()
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(6, 3, 24, 28, generator=g)


def _gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("size", [(24, 24), (16, 16), (40, 36), (7, 9)])
def test_resized_crop_matches_torchvision(images: torch.Tensor, size: tuple[int, int]) -> None:
    top = torch.tensor([0.0, 3, 5, 10, 1, 0])
    left = torch.tensor([0.0, 7, 2, 1, 9, 27])
    height = torch.tensor([24.0, 20, 11, 14, 3, 24])
    width = torch.tensor([28.0, 17, 26, 9, 19, 1])
    flip = torch.tensor([False, True, False, True, True, False])
    out = ops.resized_crop(images, top, left, height, width, size, flip=flip)
    for i in range(6):
        ref = TF.resized_crop(
            images[i],
            int(top[i]),
            int(left[i]),
            int(height[i]),
            int(width[i]),
            list(size),
            antialias=True,
        )
        if flip[i]:
            ref = TF.horizontal_flip(ref)
        torch.testing.assert_close(out[i], ref, atol=ATOL, rtol=0)


def test_crop_without_antialias_matches_plain_bilinear(images: torch.Tensor) -> None:
    top, left = torch.tensor([2.0]), torch.tensor([1.0])
    height, width = torch.tensor([20.0]), torch.tensor([26.0])
    out = ops.resized_crop(images[:1], top, left, height, width, (8, 8), antialias=False)
    ref = TF.resized_crop(images[0], 2, 1, 20, 26, [8, 8], antialias=False)
    torch.testing.assert_close(out[0], ref, atol=ATOL, rtol=0)


def test_color_ops_match_torchvision(images: torch.Tensor) -> None:
    b = torch.tensor([0.7, 1.2, 1.0, 0.9, 1.6, 0.2])
    c = torch.tensor([1.3, 0.6, 0.9, 1.1, 0.0, 1.9])
    s = torch.tensor([0.5, 1.4, 1.0, 0.2, 1.0, 0.0])
    h = torch.tensor([0.1, -0.3, 0.5, 0.0, -0.5, 0.05])
    order = torch.stack([torch.randperm(4, generator=_gen(i)) for i in range(6)])
    applied = torch.tensor([True, True, False, True, True, True])
    record = ColorJitterRecord(
        applied=applied, brightness=b, contrast=c, saturation=s, hue=h, order=order
    )
    out = ops.color_jitter(images, record)
    steps = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    for i in range(6):
        ref = images[i]
        if applied[i]:
            for j in order[i].tolist():
                ref = steps[j](ref, float([b, c, s, h][j][i]))
        torch.testing.assert_close(out[i], ref, atol=HUE_ATOL, rtol=0)


def test_hue_matches_torchvision_on_extreme_colours() -> None:
    x = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0.5, 0.5, 0.5], [0, 0, 0]])
    x = x.t().reshape(1, 3, 2, 3).repeat(3, 1, 1, 1)
    hue = torch.tensor([0.25, -0.4, 0.5])
    out = ops.adjust_hue(x, hue)
    for i in range(3):
        torch.testing.assert_close(
            out[i], TF.adjust_hue(x[i], float(hue[i])), atol=HUE_ATOL, rtol=0
        )


def test_grayscale_solarize_flip_match_torchvision(images: torch.Tensor) -> None:
    mask = torch.tensor([True, False, True, True, False, True])
    gray = ops.to_grayscale(images, mask)
    sol = ops.solarize(images, mask, 0.4)
    flip = ops.hflip(images, mask)
    for i in range(6):
        if mask[i]:
            torch.testing.assert_close(
                gray[i], TF.rgb_to_grayscale(images[i], 3), atol=ATOL, rtol=0
            )
            torch.testing.assert_close(sol[i], TF.solarize(images[i], 0.4), atol=0, rtol=0)
            torch.testing.assert_close(flip[i], TF.horizontal_flip(images[i]), atol=0, rtol=0)
        else:
            assert torch.equal(gray[i], images[i]) and torch.equal(sol[i], images[i])


@pytest.mark.parametrize("kernel_size", [3, 7])
def test_blur_matches_torchvision(images: torch.Tensor, kernel_size: int) -> None:
    sigma = torch.tensor([0.5, 1.0, 0.0, 2.0, 0.1, 3.0])
    out = ops.gaussian_blur(images, sigma, kernel_size)
    for i in range(6):
        if sigma[i] == 0:
            assert torch.equal(out[i], images[i])
            continue
        ref = TF.gaussian_blur(images[i], [kernel_size, kernel_size], [float(sigma[i])] * 2)
        torch.testing.assert_close(out[i], ref, atol=ATOL, rtol=0)


def test_rotation_and_affine_match_torchvision() -> None:
    x = torch.rand(4, 3, 20, 20, generator=_gen(3))
    angle = torch.tensor([30.0, -45.0, 12.5, 170.0])
    m = ops.inverse_affine_matrices(angle, torch.zeros(4, 2), torch.ones(4))
    out = ops.warp_affine(x, m)
    for i in range(4):
        ref = TF.rotate(x[i], float(angle[i]), interpolation=TF.InterpolationMode.BILINEAR)
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)
    translate = torch.tensor([[2.0, -3.0], [0.0, 0.0], [5.0, 1.0], [-4.0, 4.0]])
    scale = torch.tensor([0.9, 1.1, 1.0, 1.2])
    m = ops.inverse_affine_matrices(torch.zeros(4), translate, scale)
    out = ops.warp_affine(x, m)
    for i in range(4):
        ref = TF.affine(
            x[i],
            0.0,
            translate[i].tolist(),
            float(scale[i]),
            [0.0, 0.0],
            interpolation=TF.InterpolationMode.BILINEAR,
        )
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)


def test_rot90_is_counter_clockwise_and_matches_torchvision() -> None:
    x = torch.rand(4, 3, 8, 8, generator=_gen(4))
    out = ops.rot90(x, torch.tensor([0, 1, 2, 3]))
    for k in range(4):
        assert torch.equal(out[k], TF.rotate(x[k], 90.0 * k))
    # E-SSL's definition: rot90 = flip the width axis, then transpose H and W.
    assert torch.equal(out[1], x[1].flip(-1).transpose(-2, -1))


OP_CASES: list[tuple[type[ops.Op], ops.OpConfig]] = [
    (ops.RandomResizedCrop, ops.CropConfig(size=16, scale=(0.2, 0.9), ratio=(0.5, 2.0))),
    (ops.RandomResizedCrop, ops.CropConfig(size=None, p=0.5)),
    (ops.HorizontalFlip, ops.OpConfig(p=0.5)),
    (
        ops.ColorJitter,
        ops.ColorJitterConfig(p=0.8, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2),
    ),
    (ops.RandomGrayscale, ops.OpConfig(p=0.5)),
    (ops.GaussianBlur, ops.BlurConfig(p=0.5, sigma=(0.1, 2.0), kernel_size=5)),
    (ops.RandomSolarize, ops.SolarizeConfig(p=0.5, threshold=0.3)),
    (ops.RandomRot90, ops.OpConfig(p=0.9)),
    (ops.RandomRotation, ops.RotationConfig(p=0.7, degrees=(-30.0, 60.0))),
    (ops.RandomAffine, ops.AffineConfig(p=0.7, translate=(0.2, 0.1), scale=(0.8, 1.2))),
    (ops.Normalize, ops.NormalizeConfig(mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.25))),
]


@pytest.mark.parametrize(("op_cls", "config"), OP_CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_every_op_replays_exactly(op_cls: type[ops.Op], config: ops.OpConfig) -> None:
    x = torch.rand(16, 3, 24, 24, generator=_gen(5))
    op = op_cls(config)
    record = op.sample(16, (24, 24), x.device, _gen(6))
    first = op.apply(x, record)
    assert torch.equal(first, op.apply(x, record))
    # the same generator state draws the same record
    again = op.sample(16, (24, 24), x.device, _gen(6))
    assert torch.equal(first, op.apply(x, again))
    if record is not None and not bool(record.applied.all()):
        skipped = ~record.applied
        if op_cls is not ops.RandomResizedCrop:  # a skipped crop still resizes
            assert torch.equal(first[skipped], x[skipped])


def test_sampled_ranges_stay_in_bounds() -> None:
    n, gen, dev = 4000, _gen(7), torch.device("cpu")
    crop = ops.RandomResizedCrop(ops.CropConfig(size=8, scale=(0.2, 0.6), ratio=(0.5, 2.0)))
    r = crop.sample(n, (30, 40), dev, gen)
    area = r.height * r.width / (30 * 40)
    assert bool((r.top >= 0).all() and (r.left >= 0).all())
    assert bool((r.top + r.height <= 30).all() and (r.left + r.width <= 40).all())
    # rounding of h and w moves the area a little outside the sampled range
    assert float(area.min()) > 0.2 * 0.85 and float(area.max()) < 0.6 * 1.15
    aspect = r.width / r.height
    assert float(aspect.min()) > 0.5 * 0.8 and float(aspect.max()) < 2.0 * 1.25
    assert bool((r.top == r.top.round()).all())

    jitter = ops.ColorJitter(
        ops.ColorJitterConfig(p=1.0, brightness=0.4, contrast=1.5, saturation=0.2, hue=0.1)
    )
    j = jitter.sample(n, (8, 8), dev, gen)
    assert 0.6 <= float(j.brightness.min()) and float(j.brightness.max()) <= 1.4
    assert 0.0 <= float(j.contrast.min()) and float(j.contrast.max()) <= 2.5
    assert 0.8 <= float(j.saturation.min()) and float(j.saturation.max()) <= 1.2
    assert -0.1 <= float(j.hue.min()) and float(j.hue.max()) <= 0.1
    assert torch.equal(j.order.sort(1).values, torch.arange(4).expand(n, 4))
    first_counts = torch.bincount(j.order[:, 0], minlength=4).float() / n
    assert float((first_counts - 0.25).abs().max()) < 0.04  # every order is drawn

    blur = ops.GaussianBlur(ops.BlurConfig(p=0.3, sigma=(0.5, 1.5)))
    s = blur.sample(n, (32, 32), dev, gen)
    assert bool(((s.sigma >= 0.5) & (s.sigma <= 1.5))[s.applied].all())
    assert bool((s.sigma[~s.applied] == 0).all())
    assert abs(float(s.applied.float().mean()) - 0.3) < 0.03

    rot = ops.RandomRotation(ops.RotationConfig(degrees=(-10.0, 25.0)))
    a = rot.sample(n, (8, 8), dev, gen).angle
    assert -10 <= float(a.min()) and float(a.max()) <= 25
    k = ops.RandomRot90(ops.OpConfig()).sample(n, (8, 8), dev, gen).k
    assert set(k.tolist()) == {0, 1, 2, 3}
    aff = ops.RandomAffine(ops.AffineConfig(translate=(0.25, 0.1), scale=(0.9, 1.1)))
    t = aff.sample(n, (20, 40), dev, gen)
    assert float(t.translate[:, 0].abs().max()) <= 10 and float(t.translate[:, 1].abs().max()) <= 2
    assert 0.9 <= float(t.scale.min()) and float(t.scale.max()) <= 1.1


def test_crop_fallback_is_the_ratio_clamped_centre_crop() -> None:
    # a ratio range no box of a 4×40 image can satisfy with this scale → fallback
    crop = ops.RandomResizedCrop(ops.CropConfig(size=4, scale=(0.9, 1.0), ratio=(1.0, 1.0)))
    r = crop.sample(5, (4, 40), torch.device("cpu"), _gen(8))
    assert torch.equal(r.height, torch.full((5,), 4.0))
    assert torch.equal(r.width, torch.full((5,), 4.0))
    assert torch.equal(r.left, torch.full((5,), float((40 - 4) // 2)))


def test_gaussian_kernel_matches_formula() -> None:
    k = ops.gaussian_kernels(torch.tensor([1.0, 0.0]), 5)
    x = torch.arange(-2.0, 3.0)
    ref = torch.exp(-0.5 * x**2)
    torch.testing.assert_close(k[0], ref / ref.sum())
    assert torch.equal(k[1], torch.tensor([0.0, 0, 1, 0, 0]))
    assert math.isclose(float(k.sum(1)[0]), 1.0, rel_tol=1e-6)


def test_blur_on_large_images_matches_torchvision() -> None:
    """Images above 48 px take the depthwise-convolution path."""
    x = torch.rand(3, 3, 56, 60, generator=_gen(9))
    sigma = torch.tensor([0.7, 0.0, 1.9])
    out = ops.gaussian_blur(x, sigma, 7)
    assert torch.equal(out[1], x[1])
    for i in (0, 2):
        ref = TF.gaussian_blur(x[i], [7, 7], [float(sigma[i])] * 2)
        torch.testing.assert_close(out[i], ref, atol=ATOL, rtol=0)
