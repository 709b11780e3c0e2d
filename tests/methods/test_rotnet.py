"""RotNet (methods.md §12): the pad-crop augmentation, the four-rotation batch, the loss."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor, nn

from sslequi.augment.builder import make_batch_builder
from sslequi.augment.config import load_augment_config
from sslequi.augment.ops import AugmentConfigError, PadCropConfig, RandomPadCrop
from sslequi.augment.pipeline import build_pipeline
from sslequi.data.base import DatasetInfo
from sslequi.methods.rotnet import RotNet, RotNetConfig, rotation_prediction_loss
from sslequi.types import MethodSpec, RawBatch

torch.set_num_threads(1)

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
INFO_2D = DatasetInfo(10, MEAN, STD, 32, None, distinct_views=False)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class RecordingBackbone(nn.Module):
    """Mean-pooled pixels through a linear map; remembers the images it was given."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.seen: list[Tensor] = []
        self.conv = nn.Conv2d(3, dim, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(x.detach().clone())
        return self.conv(x).relu().mean((2, 3))


def _raw_2d(batch: int, seed: int = 0) -> RawBatch:
    images = torch.randint(0, 256, (batch, 1, 3, 32, 32), generator=_gen(seed), dtype=torch.uint8)
    return RawBatch(images, None, torch.zeros(batch, dtype=torch.long), torch.arange(batch))


# ----------------------------------------------------------------------------- pad_crop


def test_pad_crop_matches_torchvision_pad_then_crop() -> None:
    x = torch.rand(12, 3, 32, 32, generator=_gen(0))
    op = RandomPadCrop(PadCropConfig(size=None, padding=4))
    record = op.sample(12, (32, 32), x.device, _gen(1))
    out = op.apply(x, record)
    for b in range(12):
        padded = TF.pad(x[b], [4, 4, 4, 4], fill=0.0)
        top, left = int(record.top[b]) + 4, int(record.left[b]) + 4
        assert torch.equal(out[b], TF.crop(padded, top, left, 32, 32))
    assert record.size == (32, 32) and record.source_size == (32, 32)
    assert torch.equal(out, op.apply(x, record))  # replay is exact


def test_pad_crop_offsets_are_uniform_over_the_padded_range() -> None:
    op = RandomPadCrop(PadCropConfig(size=None, padding=4))
    record = op.sample(9000, (32, 32), torch.device("cpu"), _gen(2))
    counts = torch.bincount((record.top + 4).long(), minlength=9)
    assert int(record.top.min()) == -4 and int(record.top.max()) == 4
    assert counts.shape[0] == 9 and int(counts.min()) > 850 and int(counts.max()) < 1150
    skipped = RandomPadCrop(PadCropConfig(size=24, padding=2, p=0.0))
    still = skipped.sample(4, (32, 32), torch.device("cpu"), _gen(3))
    x = torch.rand(4, 3, 32, 32, generator=_gen(4))
    assert torch.equal(skipped.apply(x, still), x[:, :, 4:28, 4:28])  # centre crop


def test_pad_crop_bad_configs_fail_at_build_time() -> None:
    with pytest.raises(AugmentConfigError, match="padding"):
        RandomPadCrop(PadCropConfig(padding=-1))
    with pytest.raises(AugmentConfigError, match="does not fit"):
        RandomPadCrop(PadCropConfig(size=48, padding=4)).check_input((32, 32))


# ----------------------------------------------------------------------------- the batch


def test_view_replays_pad_crop_and_flip_from_the_recorded_params() -> None:
    """The RotNet recipe's view equals torchvision's pad → crop → flip → normalise for the
    parameters recorded in Batch.params."""
    recipe = load_augment_config("rotnet_cifar")
    build = make_batch_builder(MethodSpec(num_views=1), INFO_2D, recipe)
    raw = _raw_2d(16)
    torch.manual_seed(0)
    batch = build(raw)
    crop, flip = batch.params[0].crop, batch.params[0].flip
    assert crop is not None and flip is not None
    assert 0 < int(flip.applied.sum()) < 16 and bool((crop.top != 0).any())
    for b in range(16):
        image = raw.images[b, 0].float() / 255.0
        padded = TF.pad(image, [4, 4, 4, 4], fill=0.0)
        cut = TF.crop(padded, int(crop.top[b]) + 4, int(crop.left[b]) + 4, 32, 32)
        cut = TF.hflip(cut) if bool(flip.applied[b]) else cut
        expected = TF.normalize(cut, list(MEAN), list(STD))
        assert torch.allclose(batch.views[0][b], expected, atol=1e-6)


def test_labels_match_the_rotation_applied() -> None:
    """Sample k·B + i fed to the backbone is rot90(view i, k) (k quarter turns CCW) with label
    k; the top-left pixel of a quarter turn is the view's top-right pixel."""
    backbone = RecordingBackbone()
    method = RotNet(RotNetConfig(), backbone, 8)
    recipe = load_augment_config("rotnet_cifar")
    batch = make_batch_builder(method.spec(), INFO_2D, recipe)(_raw_2d(5, seed=3))
    captured: dict[str, Tensor] = {}
    method.rotation_head.register_forward_hook(lambda m, i, o: captured.update(logits=o))
    out = method(batch)
    (images,) = backbone.seen
    view = batch.views[0]
    b = view.shape[0]
    assert images.shape == (4 * b, 3, 32, 32)
    labels = torch.arange(4).repeat_interleave(b)
    for k in range(4):
        for i in range(b):
            assert torch.equal(images[k * b + i], torch.rot90(view[i], k, dims=(-2, -1)))
    assert torch.equal(images[b + 2][:, 0, 0], view[2][:, 0, -1])  # CCW quarter turn
    expected = rotation_prediction_loss(captured["logits"], labels)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert len(out.features) == 1 and torch.allclose(out.features[0], backbone(view), atol=1e-6)


def test_loss_matches_the_double_sum_of_log_softmax() -> None:
    """L = −(1/4N) Σ_i Σ_k log softmax(F(R_k x_i))_k, computed by explicit loops."""
    n = 3
    logits = torch.randn(4 * n, 4, generator=_gen(5))
    labels = torch.arange(4).repeat_interleave(n)
    total = 0.0
    for i in range(n):
        for k in range(4):
            row = logits[k * n + i].tolist()
            log_norm = math.log(sum(math.exp(v) for v in row))
            total -= row[k] - log_norm
    assert rotation_prediction_loss(logits, labels).item() == pytest.approx(total / (4 * n))
    assert rotation_prediction_loss(torch.zeros(8, 4), labels[:8]).item() == pytest.approx(
        math.log(4)
    )


def test_heads_and_bad_configs() -> None:
    linear = RotNet(RotNetConfig(), RecordingBackbone(), 8).rotation_head
    assert len(linear) == 1 and linear[0].in_features == 8 and linear[0].out_features == 4
    mlp = RotNet(RotNetConfig(head_hidden=[16]), RecordingBackbone(), 8).rotation_head
    assert [type(m) for m in mlp] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    with pytest.raises(ValueError, match="head_hidden"):
        RotNetConfig(head_hidden=[0])


def test_rotnet_learns_the_pretext_on_a_tiny_batch() -> None:
    """A few Adam steps on fixed images raise the training rotation accuracy above chance."""
    torch.manual_seed(0)
    method = RotNet(RotNetConfig(), RecordingBackbone(16), 16)
    pipeline = build_pipeline(load_augment_config("rotnet_cifar"), method.spec(), INFO_2D)
    assert pipeline.views[0].out_size == (32, 32)
    build = make_batch_builder(method.spec(), INFO_2D, load_augment_config("rotnet_cifar"))
    raw = _raw_2d(16, seed=7)
    raw.images[..., :16, :] //= 4  # a dark top half: the rotation is visible
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-2)
    for _ in range(40):
        out = method(build(raw))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.backbone.seen.clear()
    assert out.terms["rot_acc"].item() > 0.5 and math.isfinite(out.loss.item())


def test_a_view_with_crop_and_pad_crop_is_refused() -> None:
    """Both ops write ViewParams.crop: one view may hold only one of them."""
    from sslequi.augment.config import AugmentConfig, ViewConfig

    recipe = AugmentConfig(
        name="both",
        views=[ViewConfig(ops=[{"op": "pad_crop"}, {"op": "crop", "size": 24}], count=None)],
    )
    with pytest.raises(AugmentConfigError, match="both record ViewParams.crop"):
        build_pipeline(recipe, MethodSpec(num_views=1), INFO_2D)
