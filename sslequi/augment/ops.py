"""Batched augmentation ops on [B, C, H, W] float tensors (CPU or GPU).

Each op has a typed config, samples one parameter record per sample on the input's
device (``sample``), and applies a record (``apply``), so a recorded view can be replayed
exactly. Kernels are batched over samples with per-sample parameters and no per-sample
Python loops:

- crop + resize (+ flip): one pass of two batched matmuls with per-sample interpolation
  matrices (bilinear, with torchvision's antialias filter when shrinking; or bicubic,
  ``interpolation: bicubic``, torchvision's antialiased cubic a = −0.5 = PIL's, or
  ``interpolate``'s a = −0.75 without antialias);
- blur: the same batched-matmul form with reflect-padded Gaussian band matrices;
- colour ops: elementwise blends (torchvision's ``_blend`` formulas) with per-sample
  factors; hue via HSV, on the samples whose hue step it is;
- rotation and affine: one ``grid_sample`` with per-sample matrices built like
  torchvision's ``affine`` (pixel-centred, ``align_corners=False``, zero fill).

Images are floats in [0, 1] until ``normalize``. With fixed parameters every op matches
``torchvision.transforms.v2.functional`` (tolerances in ``tests/augment/test_ops.py``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

from sslequi.augment.params import (
    AffineRecord,
    BlurRecord,
    ColorJitterRecord,
    CropRecord,
    FlipRecord,
    GrayscaleRecord,
    OpRecord,
    Rot90Record,
    RotationRecord,
    SolarizeRecord,
)
from sslequi.registry import Registry

Size = tuple[int, int]
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision rgb_to_grayscale


class AugmentConfigError(ValueError):
    """An augmentation recipe that cannot run (raised at config time)."""


# ---------------------------------------------------------------------------------------
# Sampling helpers (all on the target device, from an optional generator)
# ---------------------------------------------------------------------------------------


def uniform(
    n: int, low: float, high: float, device: torch.device, generator: torch.Generator | None
) -> Tensor:
    """[n] floats uniform in [low, high)."""
    return torch.rand(n, device=device, generator=generator) * (high - low) + low


def coin(n: int, p: float, device: torch.device, generator: torch.Generator | None) -> Tensor:
    """[n] bools, True with probability p (always drawn, so streams do not depend on p)."""
    return torch.rand(n, device=device, generator=generator) < p


# ---------------------------------------------------------------------------------------
# Kernels (pure functions of images and per-sample parameters)
# ---------------------------------------------------------------------------------------


INTERPOLATIONS = ("bilinear", "bicubic")


def cubic_kernel(x: Tensor, a: float) -> Tensor:
    """Keys' cubic convolution kernel (a = −0.5: PIL and torch's antialias; −0.75: torch's
    plain bicubic), zero for |x| ≥ 2."""
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _plain_bicubic_matrix(start: Tensor, length: Tensor, in_size: int, out_size: int) -> Tensor:
    """[B, out, in] weights of ``interpolate(mode='bicubic', align_corners=False)`` (no
    antialias) on the crop [start, start + length): four taps around the source position,
    indices clamped to the crop's border, a = −0.75."""
    scale = length / out_size
    real = scale[:, None] * (torch.arange(out_size, device=start.device) + 0.5) - 0.5
    base = torch.floor(real)
    t = real - base
    weights = torch.zeros(start.shape[0], out_size, in_size, device=start.device)
    for k in range(-1, 3):
        index = torch.minimum(torch.clamp(base + k, min=0), (length - 1)[:, None])
        weight = cubic_kernel(t - k, -0.75)
        weights.scatter_add_(2, (start[:, None] + index).long()[..., None], weight[..., None])
    return weights


def resize_matrix(
    start: Tensor,
    length: Tensor,
    in_size: int,
    out_size: int,
    antialias: bool = True,
    interpolation: str = "bilinear",
) -> Tensor:
    """[B, out, in] weights that crop [start, start + length) and resize it to ``out_size``.

    Equals ``F.interpolate(mode='bilinear', align_corners=False, antialias=antialias)``
    applied to the integer crop: output pixel o samples the crop at
    ``(o + 0.5) · length / out − 0.5`` with a triangle filter whose support widens by the
    shrink factor when antialiasing (torchvision's default), renormalised at the crop
    border (which is what clamping the source coordinate does for plain bilinear).
    ``interpolation="bicubic"``: torch's antialiased bicubic (cubic a = −0.5, support 2
    widened by the shrink factor) with ``antialias``, else plain bicubic (a = −0.75).
    """
    dtype = torch.float32
    start = start.to(dtype)
    length = length.to(dtype)
    if interpolation == "bicubic" and not antialias:
        return _plain_bicubic_matrix(start, length, in_size, out_size)
    scale = length / out_size  # [B]
    support = scale.clamp(min=1.0) if antialias else torch.ones_like(scale)
    out_pos = torch.arange(out_size, device=start.device, dtype=dtype) + 0.5
    centre = start[:, None] + scale[:, None] * out_pos[None, :]  # [B, out] in source pixels
    src = torch.arange(in_size, device=start.device, dtype=dtype) + 0.5  # pixel centres
    dist = (src[None, None, :] - centre[:, :, None]) / support[:, None, None]
    if interpolation == "bicubic":
        weights = cubic_kernel(dist, -0.5)
    else:
        weights = (1.0 - dist.abs()).clamp_(min=0.0)
    inside = (src[None, :] > start[:, None]) & (src[None, :] < (start + length)[:, None])
    weights = weights * inside[:, None, :]
    return weights / weights.sum(-1, keepdim=True)


def apply_separable(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """out[b, c] = rows[b] @ x[b, c] @ cols[b]ᵀ: rows [B, h, H], cols [B, w, W].

    Two ``bmm`` calls over the whole batch: rows act on x viewed as [B, H, C·W], then the
    columns on [B, h·C, W]; the result is returned as a [B, C, h, w] tensor."""
    n, c, height, width = x.shape
    h, w = rows.shape[1], cols.shape[1]
    x = x.to(rows.dtype).permute(0, 2, 1, 3).reshape(n, height, c * width)
    y = torch.bmm(rows, x).view(n, h * c, width)
    y = torch.bmm(y, cols.transpose(1, 2))
    return y.view(n, h, c, w).permute(0, 2, 1, 3).contiguous()


def _crop_coordinates(start: Tensor, length: Tensor, in_size: int, out_size: int) -> Tensor:
    """[B, out] grid_sample coordinates (align_corners=False) of bilinear resampling of
    [start, start + length) to ``out_size``, clamped to the crop like ``interpolate``."""
    pos = torch.arange(out_size, device=start.device, dtype=torch.float32) + 0.5
    src = start[:, None] + pos[None, :] * (length / out_size)[:, None] - 0.5
    src = torch.maximum(torch.minimum(src, (start + length - 1.0)[:, None]), start[:, None])
    return (src + 0.5) * (2.0 / in_size) - 1.0


def resized_crop(
    x: Tensor,
    top: Tensor,
    left: Tensor,
    height: Tensor,
    width: Tensor,
    size: Size,
    flip: Tensor | None = None,
    antialias: bool = True,
    interpolation: str = "bilinear",
) -> Tensor:
    """Crop each sample's box and resize it to ``size`` in one pass; optionally flip
    horizontally the samples where ``flip`` is True (folded into the sampling positions).
    ``interpolation`` is ``bilinear`` or ``bicubic`` (the latter always through the
    resampling matrices; like torchvision on float images, the result is not clamped).

    When no box shrinks (or without antialias) this is one bilinear ``grid_sample``
    with source coordinates clamped to the box (= torchvision's crop then
    ``interpolate``); a shrinking box with antialias uses per-sample resampling matrices
    (torchvision's antialias filter) applied as two batched matmuls."""
    top, left, height, width = (t.to(torch.float32) for t in (top, left, height, width))
    shrinks = bool(((height > size[0]) | (width > size[1])).any())
    if (antialias and shrinks) or interpolation == "bicubic":
        rows = resize_matrix(top, height, x.shape[-2], size[0], antialias, interpolation)
        cols = resize_matrix(left, width, x.shape[-1], size[1], antialias, interpolation)
        if flip is not None:
            cols = torch.where(flip[:, None, None], cols.flip(1), cols)
        return apply_separable(x, rows, cols)
    gy = _crop_coordinates(top, height, x.shape[-2], size[0])
    gx = _crop_coordinates(left, width, x.shape[-1], size[1])
    if flip is not None:
        gx = torch.where(flip[:, None], gx.flip(1), gx)
    grid = torch.stack(
        [gx[:, None, :].expand(-1, size[0], -1), gy[:, :, None].expand(-1, -1, size[1])], dim=-1
    )
    x = x if x.is_floating_point() else x.float()
    return F.grid_sample(
        x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=False
    )


def padded_crop(x: Tensor, top: Tensor, left: Tensor, size: Size, fill: float = 0.0) -> Tensor:
    """Cut each sample's ``size`` box at integer (top, left) in source pixels; pixels
    outside the image are ``fill`` (torchvision's pad-then-crop, exact, no resampling)."""
    n, _, height, width = x.shape
    pad = int(max(0.0, float(-top.min()), float(-left.min())))
    pad = max(
        pad, int(float((top + size[0]).max()) - height), int(float((left + size[1]).max()) - width)
    )
    padded = F.pad(x, (pad, pad, pad, pad), value=fill) if pad > 0 else x
    rows = (top.long() + pad)[:, None] + torch.arange(size[0], device=x.device)  # [B, h]
    cols = (left.long() + pad)[:, None] + torch.arange(size[1], device=x.device)  # [B, w]
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # [B, h, w, C]
    return out.permute(0, 3, 1, 2).contiguous()


def hflip(x: Tensor, mask: Tensor) -> Tensor:
    """Flip the width axis of the samples where ``mask`` is True."""
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


def grayscale_image(x: Tensor) -> Tensor:
    """[B, 1, H, W] luma with torchvision's weights."""
    r, g, b = x.unbind(1)
    gray = (r * GRAY_WEIGHTS[0]).add_(g, alpha=GRAY_WEIGHTS[1]).add_(b, alpha=GRAY_WEIGHTS[2])
    return gray.unsqueeze(1)


def to_grayscale(x: Tensor, mask: Tensor) -> Tensor:
    """Replace the samples where ``mask`` is True by their 3-channel luma."""
    return torch.where(mask[:, None, None, None], grayscale_image(x).expand_as(x), x)


def adjust_hue(x: Tensor, hue: Tensor) -> Tensor:
    """Shift the HSV hue of each sample by ``hue`` [B] (fraction of a turn).

    Hue as torchvision/Pillow compute it (6h = (g − b)/C, 2 + (b − r)/C or 4 + (r − g)/C
    by the maximal channel, C = max − min); back to RGB with the closed form
    min + C·clamp(ramp_c(6h'), 0, 1), ramp_r = |6h − 3| − 1, ramp_g = 2 − |6h − 2|,
    ramp_b = 2 − |6h − 4|, which equals torchvision's table lookup."""
    r, g, b = x.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    chroma = maxc - minc
    inv = torch.where(chroma > 0, chroma, 1.0).reciprocal_()
    h6 = torch.where(
        maxc == r,
        (g - b).mul_(inv),
        torch.where(maxc == g, (b - r).mul_(inv).add_(2.0), (r - g).mul_(inv).add_(4.0)),
    )
    h6.add_((hue * 6.0).to(x.dtype)[:, None, None]).remainder_(6.0)
    channels = []
    for channel, centre in enumerate((3.0, 2.0, 4.0)):
        ramp = (h6 - centre).abs_()
        ramp = ramp.sub_(1.0) if channel == 0 else ramp.neg_().add_(2.0)
        channels.append(ramp.clamp_(0.0, 1.0).mul_(chroma).add_(minc))
    return torch.stack(channels, dim=1)


def color_jitter(x: Tensor, record: ColorJitterRecord) -> Tensor:
    """Apply each sample's four jitter steps in its recorded order.

    At each of the four positions every sample does one step. Brightness, contrast and
    saturation are all torchvision's ``_blend`` clamp(f·x + (1 − f)·t) with t = 0, the
    mean luma or the luma image, so one fused pass clamp(a·x + s·gray + c) serves all
    samples (identity: a = 1, s = c = 0); hue runs on the samples whose step it is."""
    factors = torch.stack([record.brightness, record.contrast, record.saturation], dim=1)
    weights = torch.tensor(GRAY_WEIGHTS, device=x.device, dtype=x.dtype)
    for position in range(4):
        which = record.order[:, position]
        active = record.applied & (which < 3)
        f = torch.where(active, factors.gather(1, which.clamp(max=2)[:, None]).squeeze(1), 1.0)
        f = f.to(x.dtype)
        contrast = active & (which == 1)
        saturation = active & (which == 2)
        mean_luma = (x.mean(dim=(2, 3)) * weights).sum(1)
        offset = torch.where(contrast, (1.0 - f) * mean_luma, 0.0)
        y = (x * f.view(-1, 1, 1, 1)).add_(offset.view(-1, 1, 1, 1))
        if bool(saturation.any()):
            sat_weight = torch.where(saturation, 1.0 - f, 0.0).view(-1, 1, 1, 1)
            y.add_(grayscale_image(x).mul_(sat_weight))
        x = y.clamp_(0.0, 1.0)
        hue_idx = torch.nonzero(record.applied & (which == 3) & (record.hue != 0)).squeeze(1)
        if hue_idx.numel():  # x is this function's own tensor here: update in place
            x.index_copy_(0, hue_idx, adjust_hue(x[hue_idx], record.hue[hue_idx]))
    return x


def gaussian_kernels(sigma: Tensor, kernel_size: int) -> Tensor:
    """[B, k] normalised 1-D Gaussians (torchvision ``_get_gaussian_kernel1d``);
    σ = 0 gives the identity kernel."""
    half = (kernel_size - 1) * 0.5
    pos = torch.linspace(-half, half, kernel_size, device=sigma.device)
    safe = torch.where(sigma > 0, sigma, torch.ones_like(sigma))
    pdf = torch.exp(-0.5 * (pos[None, :] / safe[:, None]) ** 2)
    identity = (pos.abs() < 0.5).to(pdf.dtype).expand_as(pdf)
    pdf = torch.where(sigma[:, None] > 0, pdf, identity)
    return pdf / pdf.sum(1, keepdim=True)


def blur_matrix(kernels: Tensor, size: int) -> Tensor:
    """[B, size, size] band matrices: 1-D convolution with reflect padding."""
    k = kernels.shape[1]
    half = k // 2
    out = torch.arange(size, device=kernels.device)
    src = out[:, None] + torch.arange(-half, k - half, device=kernels.device)[None, :]
    # reflect (torch 'reflect' pad: -1 → 1, size → size - 2)
    src = src.abs()
    src = torch.where(src >= size, 2 * (size - 1) - src, src)
    matrix = torch.zeros(kernels.shape[0], size, size, device=kernels.device, dtype=kernels.dtype)
    index = src[None].expand(kernels.shape[0], -1, -1)
    weights = kernels[:, None, :].expand(-1, size, -1)
    return matrix.scatter_add_(2, index, weights)


def gaussian_blur(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Separable Gaussian blur with per-sample σ (reflect padding, like torchvision);
    samples with σ = 0 are left as they are.

    Small images use reflect-padded band matrices (two batched matmuls); larger ones a
    depthwise convolution with one kernel per (sample, channel)."""
    if kernel_size // 2 >= min(x.shape[-2:]):
        raise AugmentConfigError(
            f"blur kernel {kernel_size} is too large for the {tuple(x.shape[-2:])} image"
        )
    idx = torch.nonzero(sigma > 0).squeeze(1)
    if idx.numel() == 0:
        return x
    kernels = gaussian_kernels(sigma[idx], kernel_size).to(x.dtype)
    sub = x[idx]
    n, c, h, w = sub.shape
    if max(h, w) <= 48:
        blurred = apply_separable(sub, blur_matrix(kernels, h), blur_matrix(kernels, w))
    else:
        half = kernel_size // 2
        weights = kernels.repeat_interleave(c, dim=0)  # [n·C, k]
        padded = F.pad(sub, (half, half, half, half), mode="reflect").view(
            1, n * c, h + 2 * half, w + 2 * half
        )
        blurred = F.conv2d(padded, weights.view(n * c, 1, kernel_size, 1), groups=n * c)
        blurred = F.conv2d(blurred, weights.view(n * c, 1, 1, kernel_size), groups=n * c)
        blurred = blurred.view(n, c, h, w)
    return x.index_copy(0, idx, blurred)


def solarize(x: Tensor, mask: Tensor, threshold: float) -> Tensor:
    """Invert pixels ≥ threshold in the samples where ``mask`` is True."""
    hit = mask[:, None, None, None] & (x >= threshold)
    return torch.where(hit, 1.0 - x, x)


def rot90(x: Tensor, k: Tensor) -> Tensor:
    """Rotate each sample by k[b] counter-clockwise quarter turns (square images)."""
    out = x
    for turns in (1, 2, 3):
        idx = torch.nonzero(k == turns).squeeze(1)
        if idx.numel():
            out = out.index_copy(0, idx, torch.rot90(x[idx], turns, dims=(-2, -1)))
    return out


def inverse_affine_matrices(angle: Tensor, translate: Tensor, scale: Tensor) -> Tensor:
    """[B, 2, 3] output→input pixel maps about the image centre (torchvision
    ``_get_inverse_affine_matrix`` with zero shear; ``angle`` counter-clockwise degrees,
    the convention of ``rotate``)."""
    rot = torch.deg2rad(-angle)  # affine's angle is clockwise: rotate passes −angle
    cos, sin = torch.cos(rot), torch.sin(rot)
    m0, m1 = cos / scale, sin / scale
    m3, m4 = -sin / scale, cos / scale
    tx, ty = translate[:, 0], translate[:, 1]
    m2 = -m0 * tx - m1 * ty
    m5 = -m3 * tx - m4 * ty
    return torch.stack([m0, m1, m2, m3, m4, m5], dim=1).view(-1, 2, 3)


def warp_affine(x: Tensor, matrices: Tensor, mode: str = "bilinear") -> Tensor:
    """Resample each sample through its inverse matrix (zero fill, torchvision grid)."""
    b, _, h, w = x.shape
    dtype = x.dtype
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, w, device=x.device, dtype=dtype)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, h, device=x.device, dtype=dtype)
    base = torch.stack(
        [xs[None, :].expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w, device=x.device)],
        dim=-1,
    ).view(1, h * w, 3)
    norm = torch.tensor([0.5 * w, 0.5 * h], device=x.device, dtype=dtype)
    theta = matrices.to(dtype).transpose(1, 2) / norm  # [B, 3, 2]
    grid = torch.matmul(base, theta).view(b, h, w, 2)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def normalize(x: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


# ---------------------------------------------------------------------------------------
# Op configs and ops
# ---------------------------------------------------------------------------------------


def _check_probability(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise AugmentConfigError(f"op {name!r}: probability p={p} is outside [0, 1]")


def _check_range(
    name: str, field: str, bounds: tuple[float, float], low: float = -math.inf
) -> None:
    lo, hi = bounds
    if lo > hi:
        raise AugmentConfigError(f"op {name!r}: {field} range ({lo}, {hi}) is inverted")
    if lo < low:
        raise AugmentConfigError(f"op {name!r}: {field} range ({lo}, {hi}) goes below {low}")


@dataclass
class OpConfig:
    """Fields every op has: the probability that a sample gets the op."""

    p: float = 1.0


C = TypeVar("C", bound=OpConfig)
RecT = TypeVar("RecT", bound=OpRecord)


class Op(ABC, Generic[C, RecT]):
    """One augmentation step: sample a record per sample, apply records, replayably.

    ``record_field`` is the ``ViewParams`` field the record goes to (``None`` for
    deterministic ops such as ``normalize``)."""

    name: ClassVar[str]
    record_field: ClassVar[str | None]

    def __init__(self, config: C) -> None:
        self.config = config
        _check_probability(self.name, config.p)
        self.validate_config()

    def validate_config(self) -> None:
        """Range checks of the config; raise ``AugmentConfigError``."""

    def output_size(self, in_size: Size) -> Size:
        return in_size

    def check_input(self, in_size: Size) -> None:
        """Checks that need the input size (known at config time)."""

    @abstractmethod
    def sample(
        self, n: int, in_size: Size, device: torch.device, generator: torch.Generator | None
    ) -> RecT | None: ...

    @abstractmethod
    def apply(self, x: Tensor, record: RecT | None) -> Tensor: ...


OPS: Registry[type[Op]] = Registry("augmentation op")


def register_op(name: str, config: type[OpConfig]):  # type: ignore[no-untyped-def]
    """Register an ``Op`` subclass under ``name`` with its config dataclass."""

    def decorator(cls: type[Op]) -> type[Op]:
        cls.name = name
        return OPS.register(name, config=config)(cls)

    return decorator


@dataclass
class CropConfig(OpConfig):
    """Random resized crop (torchvision ``RandomResizedCrop``). ``size`` None keeps the
    input size. Output larger than the input fails unless ``allow_upsample``."""

    size: int | None = None
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    antialias: bool = True
    allow_upsample: bool = False
    interpolation: str = "bilinear"  # or "bicubic" (torchvision InterpolationMode.BICUBIC)


@register_op("crop", config=CropConfig)
class RandomResizedCrop(Op[CropConfig, CropRecord]):
    record_field = "crop"

    def validate_config(self) -> None:
        c = self.config
        _check_range(self.name, "scale", c.scale, low=0.0)
        _check_range(self.name, "ratio", c.ratio, low=0.0)
        if c.scale[1] > 1.0:
            raise AugmentConfigError(
                f"op 'crop': scale upper bound {c.scale[1]} > 1 asks for a crop larger than the image"
            )
        if c.scale[1] <= 0.0 or c.ratio[0] <= 0.0:
            raise AugmentConfigError("op 'crop': scale and ratio must be positive")
        if c.size is not None and c.size < 1:
            raise AugmentConfigError(f"op 'crop': size must be ≥ 1, got {c.size}")
        if c.interpolation not in INTERPOLATIONS:
            raise AugmentConfigError(
                f"op 'crop': interpolation must be one of {INTERPOLATIONS}, got {c.interpolation!r}"
            )

    def output_size(self, in_size: Size) -> Size:
        return in_size if self.config.size is None else (self.config.size, self.config.size)

    def check_input(self, in_size: Size) -> None:
        out = self.output_size(in_size)
        if not self.config.allow_upsample and (out[0] > in_size[0] or out[1] > in_size[1]):
            raise AugmentConfigError(
                f"op 'crop': output {out[0]}×{out[1]} is larger than the {in_size[0]}×{in_size[1]} "
                "image it is cut from (set allow_upsample: true if intended)"
            )

    def sample(
        self, n: int, in_size: Size, device: torch.device, generator: torch.Generator | None
    ) -> CropRecord:
        """torchvision ``RandomResizedCrop.get_params``, batched: 10 tries, first valid
        one wins, else the ratio-clamped centre crop."""
        height, width = in_size
        area = float(height * width)
        tries = 10
        c = self.config
        target = area * (
            torch.rand(n, tries, device=device, generator=generator) * (c.scale[1] - c.scale[0])
            + c.scale[0]
        )
        log_lo, log_hi = math.log(c.ratio[0]), math.log(c.ratio[1])
        aspect = torch.exp(
            torch.rand(n, tries, device=device, generator=generator) * (log_hi - log_lo) + log_lo
        )
        w = torch.round(torch.sqrt(target * aspect))
        h = torch.round(torch.sqrt(target / aspect))
        u_top = torch.rand(n, tries, device=device, generator=generator)
        u_left = torch.rand(n, tries, device=device, generator=generator)
        top = torch.floor(u_top * (height - h + 1))
        left = torch.floor(u_left * (width - w + 1))
        valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = torch.argmax(valid.to(torch.int8), dim=1, keepdim=True)
        any_valid = valid.any(1)
        pick = [t.gather(1, first).squeeze(1) for t in (top, left, h, w)]
        fb = self._fallback(in_size)
        top_, left_, h_, w_ = (
            torch.where(any_valid, p, torch.full_like(p, v)) for p, v in zip(pick, fb, strict=False)
        )
        applied = coin(n, c.p, device, generator)
        full = (0.0, 0.0, float(height), float(width))
        top_, left_, h_, w_ = (
            torch.where(applied, p, torch.full_like(p, v))
            for p, v in zip((top_, left_, h_, w_), full, strict=False)
        )
        return CropRecord(
            applied=applied,
            top=top_,
            left=left_,
            height=h_,
            width=w_,
            source_size=in_size,
            size=self.output_size(in_size),
        )

    def _fallback(self, in_size: Size) -> tuple[float, float, float, float]:
        height, width = in_size
        in_ratio = width / height
        lo, hi = self.config.ratio
        if in_ratio < lo:
            w, h = width, int(round(width / lo))
        elif in_ratio > hi:
            h, w = height, int(round(height * hi))
        else:
            w, h = width, height
        return float((height - h) // 2), float((width - w) // 2), float(h), float(w)

    def apply(self, x: Tensor, record: CropRecord | None, flip: Tensor | None = None) -> Tensor:
        assert record is not None
        return resized_crop(
            x,
            record.top,
            record.left,
            record.height,
            record.width,
            record.size,
            flip=flip,
            antialias=self.config.antialias,
            interpolation=self.config.interpolation,
        )


@dataclass
class PadCropConfig(OpConfig):
    """torchvision ``RandomCrop(size, padding)``: zero-pad ``padding`` pixels on every side
    (``fill``, constant mode), then cut a ``size`` square at a uniformly random integer
    offset (RotNet and most CIFAR recipes: size 32, padding 4). ``size`` None keeps the
    input size."""

    size: int | None = None
    padding: int = 4
    fill: float = 0.0


@register_op("pad_crop", config=PadCropConfig)
class RandomPadCrop(Op[PadCropConfig, CropRecord]):
    """Records the box in *source* pixels like ``crop`` (torchvision's i − padding,
    j − padding, size, size), so it may extend up to ``padding`` pixels past the image;
    where skipped (p < 1) the box is centred."""

    record_field = "crop"

    def validate_config(self) -> None:
        c = self.config
        if c.padding < 0:
            raise AugmentConfigError(f"op 'pad_crop': padding must be ≥ 0, got {c.padding}")
        if c.size is not None and c.size < 1:
            raise AugmentConfigError(f"op 'pad_crop': size must be ≥ 1, got {c.size}")

    def output_size(self, in_size: Size) -> Size:
        return in_size if self.config.size is None else (self.config.size, self.config.size)

    def check_input(self, in_size: Size) -> None:
        out, pad = self.output_size(in_size), self.config.padding
        if out[0] > in_size[0] + 2 * pad or out[1] > in_size[1] + 2 * pad:
            raise AugmentConfigError(
                f"op 'pad_crop': a {out[0]}×{out[1]} crop does not fit the "
                f"{in_size[0]}×{in_size[1]} image padded by {pad}"
            )

    def sample(
        self, n: int, in_size: Size, device: torch.device, generator: torch.Generator | None
    ) -> CropRecord:
        """torchvision ``RandomCrop.get_params`` on the padded image, batched."""
        (height, width), (out_h, out_w) = in_size, self.output_size(in_size)
        pad = self.config.padding
        top = torch.randint(
            0, height + 2 * pad - out_h + 1, (n,), device=device, generator=generator
        )
        left = torch.randint(
            0, width + 2 * pad - out_w + 1, (n,), device=device, generator=generator
        )
        applied = coin(n, self.config.p, device, generator)
        centre_top, centre_left = float((height - out_h) // 2), float((width - out_w) // 2)
        top = torch.where(applied, top.float() - pad, centre_top)
        left = torch.where(applied, left.float() - pad, centre_left)
        return CropRecord(
            applied=applied,
            top=top,
            left=left,
            height=torch.full((n,), float(out_h), device=device),
            width=torch.full((n,), float(out_w), device=device),
            source_size=in_size,
            size=(out_h, out_w),
        )

    def apply(self, x: Tensor, record: CropRecord | None) -> Tensor:
        assert record is not None
        return padded_crop(x, record.top, record.left, record.size, self.config.fill)


@register_op("flip", config=OpConfig)
class HorizontalFlip(Op[OpConfig, FlipRecord]):
    record_field = "flip"

    def sample(
        self, n: int, in_size: Size, device: torch.device, generator: torch.Generator | None
    ) -> FlipRecord:
        return FlipRecord(applied=coin(n, self.config.p, device, generator))

    def apply(self, x: Tensor, record: FlipRecord | None) -> Tensor:
        assert record is not None
        return hflip(x, record.applied)


@dataclass
class ColorJitterConfig(OpConfig):
    """torchvision ``ColorJitter`` strengths: factors U[max(0, 1 − s), 1 + s], hue
    U[−h, h]; the four steps run in a random order per sample."""

    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1


@register_op("color_jitter", config=ColorJitterConfig)
class ColorJitter(Op[ColorJitterConfig, ColorJitterRecord]):
    record_field = "color_jitter"

    def validate_config(self) -> None:
        c = self.config
        for field in ("brightness", "contrast", "saturation"):
            if getattr(c, field) < 0:
                raise AugmentConfigError(f"op 'color_jitter': {field} must be ≥ 0")
        if not 0.0 <= c.hue <= 0.5:
            raise AugmentConfigError(f"op 'color_jitter': hue {c.hue} must lie in [0, 0.5]")

    def sample(
        self, n: int, in_size: Size, device: torch.device, generator: torch.Generator | None
    ) -> ColorJitterRecord:
        c = self.config

        def factor(strength: float) -> Tensor:
            return uniform(n, max(0.0, 1.0 - strength), 1.0 + strength, device, generator)

        brightness, contrast, saturation = (
            factor(c.brightness),
            factor(c.contrast),
            factor(c.saturation),
        )
        hue = uniform(n, -c.hue, c.hue, device, generator)
        order = torch.argsort(torch.rand(n, 4, device=device, generator=generator), dim=1)
        applied = coin(n, c.p, device, generator)
        one = torch.ones_like(brightness)
        return ColorJitterRecord(
            applied=applied,
            brightness=torch.where(applied, brightness, one),
            contrast=torch.where(applied, contrast, one),
            saturation=torch.where(applied, saturation, one),
            hue=torch.where(applied, hue, torch.zeros_like(hue)),
            order=order,
        )

    def apply(self, x: Tensor, record: ColorJitterRecord | None) -> Tensor:
        assert record is not None
        return color_jitter(x, record)


@register_op("grayscale", config=OpConfig)
class RandomGrayscale(Op[OpConfig, GrayscaleRecord]):
    record_field = "grayscale"

    def sample(
        self, n: int, in_size: Size, device: torch.device, generator: torch.Generator | None
    ) -> GrayscaleRecord:
        return GrayscaleRecord(applied=coin(n, self.config.p, device, generator))

    def apply(self, x: Tensor, record: GrayscaleRecord | None) -> Tensor:
        assert record is not None
        return to_grayscale(x, record.applied)


@dataclass
class BlurConfig(OpConfig):
    """Gaussian blur, σ ~ U(sigma); ``kernel_size`` odd, or 0 = ≈ 10 % of the image side
    rounded to odd (SimCLR's 23 px at 224)."""

    sigma: tuple[float, float] = (0.1, 2.0)
    kernel_size: int = 0


@register_op("blur", config=BlurConfig)
class GaussianBlur(Op[BlurConfig, BlurRecord]):
    record_field = "blur"

    def validate_config(self) -> None:
        c = self.config
        _check_range(self.name, "sigma", c.sigma, low=0.0)
        if c.sigma[0] <= 0:
            raise AugmentConfigError("op 'blur': sigma must be > 0")
        if c.kernel_size < 0 or (c.kernel_size and c.kernel_size % 2 == 0):
            raise AugmentConfigError(
                f"op 'blur': kernel_size must be odd (or 0 = automatic), got {c.kernel_size}"
            )

    def kernel_size(self, in_size: Size) -> int:
        if self.config.kernel_size:
            return self.config.kernel_size
        k = max(3, int(round(0.1 * min(in_size))))
        return k if k % 2 else k + 1

    def check_input(self, in_size: Size) -> None:
        k = self.kernel_size(in_size)
        if k // 2 >= min(in_size):
            raise AugmentConfigError(f"op 'blur': kernel {k} is too large for a {in_size} image")

    def sample(
        self, n: int, in_size: Size, device: torch.device, generator: torch.Generator | None
    ) -> BlurRecord:
        c = self.config
        sigma = uniform(n, c.sigma[0], c.sigma[1], device, generator)
        applied = coin(n, c.p, device, generator)
        return BlurRecord(
            applied=applied,
            sigma=torch.where(applied, sigma, torch.zeros_like(sigma)),
            kernel_size=self.kernel_size(in_size),
        )

    def apply(self, x: Tensor, record: BlurRecord | None) -> Tensor:
        assert record is not None
        return gaussian_blur(x, record.sigma, record.kernel_size)


@dataclass
class SolarizeConfig(OpConfig):
    threshold: float = 0.5


@register_op("solarize", config=SolarizeConfig)
class RandomSolarize(Op[SolarizeConfig, SolarizeRecord]):
    record_field = "solarize"

    def validate_config(self) -> None:
        if not 0.0 <= self.config.threshold <= 1.0:
            raise AugmentConfigError("op 'solarize': threshold must lie in [0, 1]")

    def sample(
        self, n: int, in_size: Size, device: torch.device, generator: torch.Generator | None
    ) -> SolarizeRecord:
        return SolarizeRecord(
            applied=coin(n, self.config.p, device, generator), threshold=self.config.threshold
        )

    def apply(self, x: Tensor, record: SolarizeRecord | None) -> Tensor:
        assert record is not None
        return solarize(x, record.applied, record.threshold)


@register_op("rot90", config=OpConfig)
class RandomRot90(Op[OpConfig, Rot90Record]):
    """k ~ U{0, 1, 2, 3} counter-clockwise quarter turns (k = 0 where skipped)."""

    record_field = "rot90"

    def check_input(self, in_size: Size) -> None:
        if in_size[0] != in_size[1]:
            raise AugmentConfigError(f"op 'rot90' needs square images, got {in_size}")

    def sample(
        self, n: int, in_size: Size, device: torch.device, generator: torch.Generator | None
    ) -> Rot90Record:
        k = torch.randint(0, 4, (n,), device=device, generator=generator)
        applied = coin(n, self.config.p, device, generator)
        return Rot90Record(applied=applied, k=torch.where(applied, k, torch.zeros_like(k)))

    def apply(self, x: Tensor, record: Rot90Record | None) -> Tensor:
        assert record is not None
        return rot90(x, record.k)


@dataclass
class RotationConfig(OpConfig):
    """Rotation by U(degrees) counter-clockwise about the centre, zero fill."""

    degrees: tuple[float, float] = (-180.0, 180.0)
    interpolation: str = "bilinear"


@register_op("rotation", config=RotationConfig)
class RandomRotation(Op[RotationConfig, RotationRecord]):
    record_field = "rotation"

    def validate_config(self) -> None:
        _check_range(self.name, "degrees", self.config.degrees)
        if self.config.interpolation not in ("bilinear", "nearest"):
            raise AugmentConfigError("op 'rotation': interpolation must be bilinear or nearest")

    def sample(
        self, n: int, in_size: Size, device: torch.device, generator: torch.Generator | None
    ) -> RotationRecord:
        lo, hi = self.config.degrees
        angle = uniform(n, lo, hi, device, generator)
        applied = coin(n, self.config.p, device, generator)
        return RotationRecord(applied=applied, angle=torch.where(applied, angle, 0.0))

    def apply(self, x: Tensor, record: RotationRecord | None) -> Tensor:
        assert record is not None
        n = x.shape[0]
        matrices = inverse_affine_matrices(
            record.angle, torch.zeros(n, 2, device=x.device), torch.ones(n, device=x.device)
        )
        warped = warp_affine(x, matrices, self.config.interpolation)
        return torch.where(record.applied[:, None, None, None], warped, x)


@dataclass
class AffineConfig(OpConfig):
    """Translation by U(±translate · side) pixels per axis and scale U(scale)."""

    translate: tuple[float, float] = (0.1, 0.1)
    scale: tuple[float, float] = (0.9, 1.1)
    interpolation: str = "bilinear"


@register_op("affine", config=AffineConfig)
class RandomAffine(Op[AffineConfig, AffineRecord]):
    record_field = "affine"

    def validate_config(self) -> None:
        c = self.config
        _check_range(self.name, "scale", c.scale, low=0.0)
        if c.scale[0] <= 0:
            raise AugmentConfigError("op 'affine': scale must be > 0")
        if not all(0.0 <= t <= 1.0 for t in c.translate):
            raise AugmentConfigError("op 'affine': translate fractions must lie in [0, 1]")
        if c.interpolation not in ("bilinear", "nearest"):
            raise AugmentConfigError("op 'affine': interpolation must be bilinear or nearest")

    def sample(
        self, n: int, in_size: Size, device: torch.device, generator: torch.Generator | None
    ) -> AffineRecord:
        c = self.config
        max_dx, max_dy = c.translate[0] * in_size[1], c.translate[1] * in_size[0]
        tx = torch.round(uniform(n, -max_dx, max_dx, device, generator))
        ty = torch.round(uniform(n, -max_dy, max_dy, device, generator))
        scale = uniform(n, c.scale[0], c.scale[1], device, generator)
        applied = coin(n, c.p, device, generator)
        translate = torch.where(applied[:, None], torch.stack([tx, ty], 1), 0.0)
        return AffineRecord(
            applied=applied, translate=translate, scale=torch.where(applied, scale, 1.0)
        )

    def apply(self, x: Tensor, record: AffineRecord | None) -> Tensor:
        assert record is not None
        angle = torch.zeros(x.shape[0], device=x.device)
        matrices = inverse_affine_matrices(angle, record.translate, record.scale)
        warped = warp_affine(x, matrices, self.config.interpolation)
        return torch.where(record.applied[:, None, None, None], warped, x)


@dataclass
class NormalizeConfig(OpConfig):
    """Explicit normalisation; empty mean/std = the dataset's constants."""

    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()


@register_op("normalize", config=NormalizeConfig)
class Normalize(Op[NormalizeConfig, OpRecord]):
    """Deterministic: records nothing. The pipeline appends one with the dataset's
    constants unless the view lists its own."""

    record_field = None

    def validate_config(self) -> None:
        c = self.config
        if self.config.p != 1.0:
            raise AugmentConfigError("op 'normalize' is deterministic: p must be 1")
        if len(c.mean) != len(c.std):
            raise AugmentConfigError("op 'normalize': mean and std need the same length")
        if any(s <= 0 for s in c.std):
            raise AugmentConfigError("op 'normalize': std must be > 0")

    def sample(
        self, n: int, in_size: Size, device: torch.device, generator: torch.Generator | None
    ) -> None:
        return None

    def apply(self, x: Tensor, record: OpRecord | None) -> Tensor:
        return normalize(x, self.config.mean, self.config.std)
