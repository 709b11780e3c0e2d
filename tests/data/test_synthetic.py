"""The ``synthetic`` dataset: layout, determinism, visible rotations, views_of."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from sslequi.data.base import ObjectDataset
from sslequi.data.synthetic import (
    LATENT_DIM,
    THREEDIE_MEAN,
    THREEDIE_STD,
    SyntheticConfig,
    SyntheticObjects,
    euler_xyz_to_matrix,
    hsv_to_rgb,
    render_views,
    synthetic_raw_batch,
)
from sslequi.registry import DATASETS


def _dataset(num_views: int = 2, **overrides: object) -> SyntheticObjects:
    config = SyntheticConfig(resolution=16, n_objects=12, n_val_objects=6, **overrides)
    return SyntheticObjects(config, "train", num_views)


def test_registered_with_config_and_info() -> None:
    entry = DATASETS.entry("synthetic")
    assert entry.obj is SyntheticObjects and entry.config is SyntheticConfig
    ds = _dataset()
    assert isinstance(ds, ObjectDataset)
    assert len(ds) == 12
    info = ds.info
    assert info.latent_dim == LATENT_DIM == 7
    assert info.distinct_views is True
    assert info.mean == THREEDIE_MEAN and info.std == THREEDIE_STD
    assert info.image_size == 16 and info.num_classes == 4


def test_sample_layout_and_latent_ranges() -> None:
    sample = _dataset(num_views=3)[5]
    assert sample.images.shape == (3, 3, 16, 16) and sample.images.dtype == torch.uint8
    assert sample.latents is not None and sample.latents.shape == (3, 7)
    assert sample.latents.dtype == torch.float32
    assert sample.label == 5 % 4 and sample.index == 5
    lat = _dataset().views_of(3).latents
    assert lat is not None
    assert torch.all(lat[:, :3].abs() <= np.pi / 2)
    assert torch.all((lat[:, 3] >= 0) & (lat[:, 3] <= 1)) and torch.all(
        (lat[:, 6] >= 0) & (lat[:, 6] <= 1)
    )
    assert torch.all((lat[:, 4] >= 0) & (lat[:, 4] <= np.pi / 4))
    assert torch.all((lat[:, 5] >= 0) & (lat[:, 5] <= 2 * np.pi))


def test_deterministic_by_seed_and_index() -> None:
    a, b = _dataset().views_of(4), _dataset().views_of(4)
    assert torch.equal(a.images, b.images) and torch.equal(a.latents, b.latents)
    other_seed = _dataset(seed=1).views_of(4)
    assert not torch.equal(a.images, other_seed.images)
    torch.manual_seed(0)
    first = _dataset()[2]
    torch.manual_seed(0)
    again = _dataset()[2]
    assert torch.equal(first.images, again.images)


def test_getitem_draws_distinct_views_that_are_rows_of_views_of() -> None:
    ds = _dataset(num_views=3)
    everything = ds.views_of(7)
    assert everything.images.shape[0] == ds.config.views_per_object
    sample = ds[7]
    rows = [int(torch.nonzero((everything.latents == lat).all(dim=1))[0]) for lat in sample.latents]
    assert len(set(rows)) == 3  # distinct renders
    for i, row in enumerate(rows):
        assert torch.equal(sample.images[i], everything.images[row])
    assert not torch.equal(sample.images[0], sample.images[1])


def test_rotation_is_visible_and_only_latents_change_pixels() -> None:
    ds = _dataset()
    obj = ds.object(0)
    base = obj.latents[:1].copy()
    same = render_views(obj, np.concatenate([base, base]), 32)
    assert np.array_equal(same[0], same[1])
    rotated = base.copy()
    rotated[0, 2] += 0.6  # rotate about z only
    pair = render_views(obj, np.concatenate([base, rotated]), 32)
    changed = (pair[0] != pair[1]).any(axis=0).mean()
    assert changed > 0.03  # the silhouette moves
    recoloured = base.copy()
    recoloured[0, 3] = (recoloured[0, 3] + 0.5) % 1.0  # floor hue
    floor_pair = render_views(obj, np.concatenate([base, recoloured]), 32)
    corner = (slice(None), slice(0, 2), slice(0, 2))
    assert not np.array_equal(floor_pair[0][corner], floor_pair[1][corner])


def test_splits_and_classes() -> None:
    config = SyntheticConfig(resolution=16, n_objects=8, n_val_objects=4)
    train, val = SyntheticObjects(config, "train", 2), SyntheticObjects(config, "val", 2)
    assert len(val) == 4
    assert not torch.equal(train.views_of(0).images, val.views_of(0).images)
    assert [train.views_of(i).label for i in range(8)] == [i % 4 for i in range(8)]


def test_euler_and_hsv_helpers_match_references() -> None:
    angles = np.random.default_rng(0).uniform(-np.pi, np.pi, size=(6, 3))
    np.testing.assert_allclose(
        euler_xyz_to_matrix(angles), Rotation.from_euler("xyz", angles).as_matrix(), atol=1e-12
    )
    for h in np.linspace(0, 0.99, 13):
        np.testing.assert_allclose(
            hsv_to_rgb(np.array(h), 0.6, 0.7), colorsys.hsv_to_rgb(h, 0.6, 0.7)
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_views": 9}, "views_per_object"),
        ({"split": "holdout"}, "split"),
    ],
)
def test_bad_requests_fail_clearly(kwargs: dict[str, object], match: str) -> None:
    args = {"split": "train", "num_views": 2} | kwargs
    with pytest.raises(ValueError, match=match):
        SyntheticObjects(SyntheticConfig(), args["split"], args["num_views"])  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["num_classes", "resolution", "views_per_object"])
def test_bad_config_fails_clearly(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SyntheticConfig(**{field: 0})


def test_out_of_range_index() -> None:
    with pytest.raises(IndexError):
        _dataset()[12]


def test_raw_batch_helper() -> None:
    raw, info = synthetic_raw_batch(5, 3, resolution=16)
    assert raw.images.shape == (5, 3, 3, 16, 16)
    assert raw.latents is not None and raw.latents.shape == (5, 3, 7)
    assert raw.labels.tolist() == [0, 1, 2, 3, 0]
    assert info.latent_dim == 7
