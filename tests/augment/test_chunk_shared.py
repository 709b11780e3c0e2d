"""CARE's chunk-shared augmentation pairs (methods.md §8.1, §8.3; register item 15): every
image of a chunk gets the same recorded (t₁, t₂), chunks differ under the default, replay
reproduces the views, chunks defined by size, and the 3D source view."""

from __future__ import annotations

import pytest
import torch

from sslequi.augment.builder import make_batch_builder
from sslequi.augment.config import load_augment_config
from sslequi.augment.params import ViewParams
from sslequi.augment.pipeline import AugmentConfigError, build_pipeline, check_chunking
from sslequi.data.base import DatasetInfo
from sslequi.data.synthetic import synthetic_raw_batch
from sslequi.types import MethodSpec, RawBatch

torch.set_num_threads(1)

SPEC = MethodSpec(num_views=4, chunk_shared_params=True)
CIFAR_LIKE = DatasetInfo(10, (0.49, 0.48, 0.45), (0.2, 0.2, 0.2), 16, None, False)


def _raw(b: int, seed: int = 0) -> RawBatch:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (b, 1, 3, 16, 16), generator=g, dtype=torch.uint8)
    return RawBatch(images, None, torch.zeros(b, dtype=torch.long), torch.arange(b))


def _per_chunk(params: ViewParams, k: int) -> list[torch.Tensor]:
    """Every recorded tensor field, reshaped to [K, n, ...]."""
    out = []
    for record in params.records().values():
        for name in ("applied", "top", "left", "height", "width", "brightness", "hue", "sigma"):
            value = getattr(record, name, None)
            if isinstance(value, torch.Tensor):
                out.append(value.reshape(k, -1, *value.shape[1:]))
    return out


@pytest.mark.parametrize("independent", [True, False])
def test_every_image_of_a_chunk_gets_the_same_params(independent: bool) -> None:
    config = load_augment_config("care")
    config.chunk_size, config.independent_chunks = 4, independent
    torch.manual_seed(0)
    batch = make_batch_builder(SPEC, CIFAR_LIKE, config)(_raw(16))
    for view in batch.params[2:]:
        assert view.chunks == 4  # K = 16 / 4
        fields = _per_chunk(view, 4)
        assert fields
        for t in fields:  # shared within a chunk
            assert torch.equal(t, t[:, :1].expand_as(t))
        firsts = [t[:, 0] for t in fields]
        differ = any(bool((f != f[0]).any()) for f in firsts)
        assert differ == independent  # default: each chunk draws its own pair
    t1, t2 = batch.params[2].crop, batch.params[3].crop
    assert t1 is not None and t2 is not None
    boxes = [torch.stack([c.top, c.left, c.height, c.width]) for c in (t1, t2)]
    assert not torch.equal(*boxes)  # t1 ≠ t2
    for view in batch.params[:2]:  # the InfoNCE views stay per-sample
        assert view.chunks is None and len(set(view.crop.top.tolist())) > 4  # type: ignore[union-attr]


def test_replay_from_recorded_params_reproduces_the_views() -> None:
    config = load_augment_config("care")
    config.chunk_size = 4
    builder = make_batch_builder(SPEC, CIFAR_LIKE, config)
    raw = _raw(8)
    torch.manual_seed(3)
    batch = builder(raw)
    replayed = builder.render(raw, batch.params)
    for a, b in zip(batch.views, replayed.views, strict=True):
        assert torch.equal(a, b)
    # identical images in one chunk come out identical in the shared views only
    raw.images[1] = raw.images[0]
    again = builder(raw)
    assert torch.equal(again.views[2][0], again.views[2][1])
    assert torch.equal(again.views[3][0], again.views[3][1])


def test_chunks_by_size_and_clear_errors() -> None:
    assert check_chunking(64, 16, 16) == 4  # chunk size wins: K = 64 / 16
    assert check_chunking(256, 16, None) == 16
    with pytest.raises(AugmentConfigError, match="augment.chunk_size=16"):
        check_chunking(24, 16, 16)
    with pytest.raises(AugmentConfigError, match="augment.chunks=16"):
        check_chunking(16, 16, None)  # chunks of one image: no off-diagonal pair
    config = load_augment_config("care")
    config.chunk_size = 1
    with pytest.raises(AugmentConfigError, match="chunk_size must be ≥ 2"):
        build_pipeline(config, SPEC, CIFAR_LIKE)
    config.chunk_size = 4
    builder = make_batch_builder(SPEC, CIFAR_LIKE, config)
    with pytest.raises(AugmentConfigError, match="augment.chunk_size=4"):
        builder(_raw(6))


def test_3d_chunk_shared_pair_is_cut_from_one_delivered_view() -> None:
    raw, info = synthetic_raw_batch(8, 4, resolution=16)
    assert info.distinct_views
    config = load_augment_config("care")
    config.chunk_size = 4
    torch.manual_seed(0)
    builder = make_batch_builder(SPEC, info, config)
    batch = builder(raw)
    pipeline = builder.pipeline
    assert [pipeline.source_of(i, 4) for i in range(4)] == [0, 1, 0, 0]
    for i in (2, 3):  # t1 X and t2 X of the same delivered render X
        expected = pipeline.views[i].apply(raw.images[:, 0], batch.params[i])
        assert torch.equal(batch.views[i], expected)
    assert torch.equal(batch.latents[:, 2], raw.latents[:, 0])  # type: ignore[index]
    config.views[1].source_view = None  # the shared views would read two different renders
    with pytest.raises(AugmentConfigError, match="source_view"):
        build_pipeline(config, SPEC, info)
