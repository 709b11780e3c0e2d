"""Render tiny → check → load: layout, latents, labels and actions (datasets.md §1, §6)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from sslequi.actions import compute_actions
from sslequi.build import build_dataset
from sslequi.data.check import check_root
from sslequi.data.threedie import (
    THREEDIE_MEAN,
    ThreeDIEBench,
    ThreeDIEConfig,
    ThreeDIEOODConfig,
    ThreeDIETConfig,
)
from sslequi.types import collate_samples
from tests.data.conftest import render_tiny


def test_layout_matches_3diebench(tiny_root: Path) -> None:
    train = np.load(tiny_root / "train_images.npy")
    labels = np.load(tiny_root / "train_labels.npy")
    assert train.dtype == np.dtype("<U43") and labels.dtype == np.int64
    synsets = sorted({p.split("/")[1] for p in train})
    for path, label in zip(train, labels, strict=True):
        assert path.startswith("/") and path.endswith("/") and len(path) == 43
        synset, obj = path.strip("/").split("/")
        assert len(synset) == 8 and synset.isdigit() and len(obj) == 32
        assert int(label) == synsets.index(synset)
        folder = tiny_root / synset / obj
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [f"image_{v}.jpg" for v in range(4)] + [f"latent_{v}.npy" for v in range(4)]
        )
        latent = np.load(folder / "latent_0.npy")
        assert latent.dtype == np.float64 and latent.shape == (7,)
    all_latents = np.load(tiny_root / "all_latents_train.npy")
    assert all_latents.shape == (len(train) * 4, 7)
    first = tiny_root / train[0].strip("/")
    np.testing.assert_array_equal(all_latents[1], np.load(first / "latent_1.npy"))


def test_latent_ranges(tiny_root: Path) -> None:
    lat = np.load(tiny_root / "all_latents_train.npy")
    assert np.all(np.abs(lat[:, :3]) <= math.pi / 2)
    assert np.all((lat[:, 3] >= 0) & (lat[:, 3] <= 1) & (lat[:, 6] >= 0) & (lat[:, 6] <= 1))
    assert np.all((lat[:, 4] >= 0) & (lat[:, 4] <= math.pi / 4))
    assert np.all((lat[:, 5] >= 0) & (lat[:, 5] <= 2 * math.pi))


def test_check_passes_and_counts(tiny_root: Path) -> None:
    report = check_root(tiny_root)
    assert report.ok, report.format()
    assert sum(report.counts["train"].objects.values()) == 8
    assert sum(report.counts["val"].images.values()) == 16
    assert len(report.synsets) == 4


def test_loader_round_trip(tiny_root: Path) -> None:
    config = ThreeDIEConfig(root=str(tiny_root), resolution=24)
    dataset = build_dataset(config, "train", num_views=3)
    assert isinstance(dataset, ThreeDIEBench)
    assert len(dataset) == 8
    assert dataset.info.num_classes == 4 and dataset.info.mean == THREEDIE_MEAN
    assert dataset.info.latent_dim == 7 and dataset.info.distinct_views
    torch.manual_seed(0)
    sample = dataset[5]
    assert sample.images.shape == (3, 3, 24, 24) and sample.images.dtype == torch.uint8
    assert sample.latents is not None and sample.latents.shape == (3, 7)
    folder = dataset.folder(5)
    files = {v: np.load(folder / f"latent_{v}.npy") for v in range(4)}
    for row in sample.latents.double().numpy():  # distinct views, each equal to its file
        matches = [v for v, lat in files.items() if np.allclose(row, lat, atol=1e-6)]
        assert len(matches) == 1
    assert len({tuple(r) for r in sample.latents.tolist()}) == 3
    assert sample.label == int(np.load(tiny_root / "train_labels.npy")[5])
    everything = dataset.views_of(5)
    np.testing.assert_allclose(
        everything.latents.double().numpy(), np.stack([files[v] for v in range(4)]), atol=1e-6
    )
    batch = collate_samples([dataset[i] for i in range(4)])
    assert batch.images.shape == (4, 3, 3, 24, 24)


def test_resize_to_resolution(tiny_root: Path) -> None:
    dataset = ThreeDIEBench(ThreeDIEConfig(root=str(tiny_root), resolution=16), "val", 2)
    assert dataset.views_of(0).images.shape == (4, 3, 16, 16)
    assert dataset.info.image_size == 16


def test_test_split_is_val(tiny_root: Path) -> None:
    config = ThreeDIEConfig(root=str(tiny_root))
    assert (
        ThreeDIEBench(config, "test", 2).index.paths == ThreeDIEBench(config, "val", 2).index.paths
    )


def test_actions_from_loaded_latents_match_scipy(tiny_root: Path) -> None:
    dataset = ThreeDIEBench(ThreeDIEConfig(root=str(tiny_root)), "train", 2)
    samples = [dataset.views_of(i) for i in range(len(dataset))]
    latents = torch.stack([s.latents for s in samples])  # [B, 4, 7] float32
    actions = compute_actions(("rotation_quat", "rotation_matrix", "color_delta"), latents, [])
    for b in range(len(dataset)):
        folder = dataset.folder(b)
        for v in range(3):
            l1, l2 = (np.load(folder / f"latent_{w}.npy") for w in (v, v + 1))
            rel = Rotation.from_euler("xyz", l1[:3]).inv() * Rotation.from_euler("xyz", l2[:3])
            np.testing.assert_allclose(
                actions.rotation_quat[b, v].numpy(), rel.as_quat(), atol=2e-6
            )
            np.testing.assert_allclose(
                actions.rotation_matrix[b, v].numpy(), rel.as_matrix().reshape(9), atol=2e-6
            )
            np.testing.assert_allclose(
                actions.color_delta[b, v].numpy(), l2[[3, 6]] - l1[[3, 6]], atol=2e-6
            )


def test_translation_variant(tiny_root_t: Path, tiny_root: Path) -> None:
    dataset = build_dataset(ThreeDIETConfig(root=str(tiny_root_t)), "train", 2)
    sample = dataset.views_of(0)
    assert sample.latents.shape == (4, 10)
    lat = np.load(tiny_root_t / "all_latents_train.npy")
    assert np.all(np.abs(lat[:, 7:10]) <= 0.5)
    actions = compute_actions(("translation_base",), sample.latents[None], [])
    l1, l2 = sample.latents[0].double().numpy(), sample.latents[1].double().numpy()
    expected = Rotation.from_euler("xyz", l2[:3]).apply(l2[7:]) - Rotation.from_euler(
        "xyz", l1[:3]
    ).apply(l1[7:])
    np.testing.assert_allclose(actions.translation_base[0, 0].numpy(), expected, atol=1e-5)
    # same objects as the standard variant with the same seed; a 7-latent loader refuses it
    assert (np.load(tiny_root_t / "val_images.npy") == np.load(tiny_root / "val_images.npy")).all()
    with pytest.raises(ValueError, match=r"float64 \(7,\)"):
        ThreeDIEBench(ThreeDIEConfig(root=str(tiny_root_t)), "train", 2)


def test_ood_variant(tmp_path: Path, tiny_root: Path) -> None:
    root = render_tiny(tmp_path / "ood", variant="OOD", resolution=16)
    assert len(np.load(root / "train_images.npy")) == 0
    val = np.load(root / "val_images.npy")
    assert (val == np.load(tiny_root / "val_images.npy")).all()
    dataset = build_dataset(ThreeDIEOODConfig(root=str(root), resolution=16), "val", 2)
    assert dataset.view_numbers(0) == [2, 3, 4, 5]
    assert dataset[0].images.shape == (2, 3, 16, 16)
    angles = np.load(root / "all_latents_val.npy")[:, :3]
    assert np.all(np.abs(angles) >= math.pi / 2) and np.all(np.abs(angles) <= math.pi)
    assert json.loads((root / "render_info.json").read_text())["views"] == [2, 3, 4, 5]
    with pytest.raises(ValueError, match="only val objects"):
        build_dataset(ThreeDIEOODConfig(root=str(root)), "train", 2)


def test_too_many_views_requested(tiny_root: Path) -> None:
    with pytest.raises(ValueError, match="5 distinct views"):
        ThreeDIEBench(ThreeDIEConfig(root=str(tiny_root)), "train", 5)
    unchecked = ThreeDIEBench(ThreeDIEConfig(root=str(tiny_root), check_on_open=False), "train", 5)
    with pytest.raises(ValueError, match="5 distinct views"):
        unchecked[0]
