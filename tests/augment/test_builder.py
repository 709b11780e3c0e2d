"""make_batch_builder delivers each kind of request a method can declare, with its params.

Test-only method specs stand in for the real methods: pairs, triplets, M+1 sequences,
E-SSL's extra rotated view, CARE's chunk-shared pairs, BYOL-style asymmetric views, and
the 3D protocol (distinct renders, no 2D augmentation)."""

from __future__ import annotations

import pytest
import torch

from sslequi.augment.builder import make_batch_builder
from sslequi.augment.config import AugmentConfig, ViewConfig, load_augment_config
from sslequi.augment.ops import rot90
from sslequi.data.base import DatasetInfo
from sslequi.types import MethodSpec, RawBatch, RotatedViewSpec

torch.set_num_threads(1)

CIFAR_LIKE = DatasetInfo(10, (0.49, 0.48, 0.45), (0.2, 0.2, 0.2), 32, None, False)
THREED_LIKE = DatasetInfo(55, (0.5, 0.5, 0.5), (0.1, 0.1, 0.1), 32, 7, True)


def _raw(b: int = 16, v: int = 1, size: int = 32, latents: bool = False) -> RawBatch:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (b, v, 3, size, size), generator=g, dtype=torch.uint8)
    return RawBatch(
        images=images,
        latents=torch.rand(b, v, 7, generator=g) if latents else None,
        labels=torch.arange(b) % 10,
        index=torch.arange(b),
    )


def test_pairs_with_full_actions() -> None:
    spec = MethodSpec(num_views=2, actions=("aug_params_full",), needs_params=True)
    builder = make_batch_builder(spec, CIFAR_LIKE, load_augment_config("simclr"))
    batch = builder(_raw())
    assert batch.num_views == 2 and batch.views[0].shape == (16, 3, 32, 32)
    assert batch.params[0].crop is not None and batch.params[1].blur is not None
    assert batch.actions.get("aug_params_full").shape == (16, 1, 15)
    assert torch.equal(batch.labels, torch.arange(16) % 10)


def test_triplets_from_a_symmetric_recipe() -> None:
    spec = MethodSpec(num_views=3, structure="triplets")
    batch = make_batch_builder(spec, CIFAR_LIKE, load_augment_config("simclr_cifar"))(_raw())
    assert batch.num_views == 3
    tops = torch.stack([p.crop.top for p in batch.params])  # type: ignore[union-attr]
    assert not torch.equal(tops[0], tops[1])  # each view draws its own crop


def test_sequence_of_m_plus_one_views_with_9d_actions() -> None:
    spec = MethodSpec(num_views=4, structure="sequence", actions=("aug_params_9d",))
    builder = make_batch_builder(spec, CIFAR_LIKE, load_augment_config("seqjepa"))
    batch = builder(_raw())
    assert batch.num_views == 4
    actions = batch.actions.get("aug_params_9d")
    assert actions.shape == (16, 3, 9)
    # observed views: blur p 1 and solarize p 0; target: blur p 0.1, solarize p 0.2
    for p in batch.params[:3]:
        assert bool(p.blur.applied.all()) and not bool(p.solarize.applied.any())  # type: ignore[union-attr]
    sigma = torch.stack([p.blur.sigma for p in batch.params], 1)  # type: ignore[union-attr]
    torch.testing.assert_close(actions[..., 8], sigma[:, 1:] - sigma[:, :-1])
    # M is an override: 5 observed + target
    config = load_augment_config("seqjepa")
    config.views[0].count = 5
    spec6 = MethodSpec(num_views=6, structure="sequence", actions=("aug_params_9d",))
    assert make_batch_builder(spec6, CIFAR_LIKE, config)(_raw()).actions.get(
        "aug_params_9d"
    ).shape == (16, 5, 9)


def test_essl_rotated_view_labels_rotate_back() -> None:
    spec = MethodSpec(num_views=2, rotated_view=RotatedViewSpec(size=16))
    batch = make_batch_builder(spec, CIFAR_LIKE, load_augment_config("essl_cifar"))(_raw())
    rotated = batch.rotated
    assert rotated is not None
    assert rotated.images.shape == (64, 3, 16, 16)
    assert torch.equal(rotated.labels, torch.arange(4).repeat_interleave(16))
    base = rotated.images[:16]
    for k in range(4):
        chunk = rotated.images[16 * k : 16 * (k + 1)]
        assert bool((rotated.labels[16 * k : 16 * (k + 1)] == k).all())
        assert torch.equal(torch.rot90(chunk, -k, dims=(-2, -1)), base)  # rotate back
    assert torch.equal(rot90(base, torch.ones(16, dtype=torch.long)), rotated.images[16:32])


def test_essl_rotated_view_defaults_from_the_spec() -> None:
    spec = MethodSpec(num_views=2, rotated_view=RotatedViewSpec(size=8, scale=(0.2, 1.0)))
    batch = make_batch_builder(spec, CIFAR_LIKE, load_augment_config("simclr_cifar"))(_raw())
    assert batch.rotated is not None and batch.rotated.images.shape == (64, 3, 8, 8)
    # 3D data: a random resized crop of view 0 at half the image size
    batch3d = make_batch_builder(spec, THREED_LIKE, None)(_raw(v=2, latents=True))
    assert batch3d.rotated is not None and batch3d.rotated.images.shape == (64, 3, 16, 16)


def test_care_chunk_shared_pairs() -> None:
    spec = MethodSpec(num_views=4, chunk_shared_params=True)
    config = load_augment_config("care")
    config.chunk_size = 4  # K = 16 / 4
    batch = make_batch_builder(spec, CIFAR_LIKE, config)(_raw(b=16))
    infonce, shared = batch.params[:2], batch.params[2:]
    assert all(p.chunks is None for p in infonce) and all(p.chunks == 4 for p in shared)
    for p in shared:
        crop = p.crop
        assert crop is not None
        for t in (crop.top, crop.left, crop.height, p.color_jitter.brightness):  # type: ignore[union-attr]
            chunks = t.reshape(4, 4)
            assert torch.equal(chunks, chunks[:, :1].expand(4, 4))
    # the chunk's shared transform maps identical inputs to identical outputs
    raw = _raw(b=16)
    raw.images[:4] = raw.images[0]
    again = make_batch_builder(spec, CIFAR_LIKE, config)(raw)
    assert torch.equal(again.views[2][0], again.views[2][3])
    assert not torch.equal(again.views[0][0], again.views[0][3])  # per-sample views differ


def test_byol_asymmetric_views() -> None:
    spec = MethodSpec(num_views=2)
    raw = _raw(b=64)
    batch = make_batch_builder(spec, CIFAR_LIKE, load_augment_config("byol"))(raw)
    first, second = batch.params
    assert bool(first.blur.applied.all()) and not bool(first.solarize.applied.any())  # type: ignore[union-attr]
    assert 0 < int(second.solarize.applied.sum()) < 64  # type: ignore[union-attr]
    assert int(second.blur.applied.sum()) < 64  # type: ignore[union-attr]


def test_threed_protocol_without_augmentation() -> None:
    spec = MethodSpec(num_views=2, needs_latents=True)
    raw = _raw(v=2, latents=True)
    for augment in (None, AugmentConfig()):
        batch = make_batch_builder(spec, THREED_LIKE, augment)(raw)
        for i in range(2):
            expected = (raw.images[:, i].float() / 255 - 0.5) / 0.1
            torch.testing.assert_close(batch.views[i], expected)
            assert batch.params[i].is_empty()
        assert batch.latents is raw.latents


def test_threed_views_optionally_augmented_keep_latents_aligned() -> None:
    spec = MethodSpec(num_views=3, structure="triplets", needs_latents=True)
    config = AugmentConfig(
        name="crop3d", views=[ViewConfig(ops=[{"op": "crop", "scale": [0.5, 1.0]}], count=None)]
    )
    raw = _raw(v=2, latents=True)
    batch = make_batch_builder(spec, THREED_LIKE, config)(raw)
    assert batch.num_views == 3 and batch.params[2].crop is not None
    assert batch.latents is not None
    assert torch.equal(batch.latents[:, 2], raw.latents[:, 0])  # type: ignore[index]


def test_replay_through_the_builder() -> None:
    spec = MethodSpec(num_views=2, rotated_view=RotatedViewSpec(size=16))
    builder = make_batch_builder(spec, CIFAR_LIKE, load_augment_config("essl_cifar"))
    raw = _raw()
    params, rotated_params = builder.pipeline.sample(raw.images)
    first = builder.render(raw, params, rotated_params)
    second = builder.render(raw, params, rotated_params)
    assert all(torch.equal(a, b) for a, b in zip(first.views, second.views, strict=True))
    assert torch.equal(first.rotated.images, second.rotated.images)  # type: ignore[union-attr]


def test_builder_accepts_omegaconf_nodes_and_rejects_mismatches() -> None:
    from omegaconf import OmegaConf

    node = OmegaConf.create({"name": "simclr", "views": [{"ops": [{"op": "flip"}], "count": None}]})
    batch = make_batch_builder(MethodSpec(), CIFAR_LIKE, node)(_raw())
    assert batch.params[0].flip is not None
    with pytest.raises(ValueError, match="written for structure .sequence."):
        make_batch_builder(MethodSpec(), CIFAR_LIKE, load_augment_config("seqjepa"))
