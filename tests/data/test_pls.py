"""STL-10 PLS glimpses (methods.md §9.3): fixations with inhibition of return, bilinear
foveal patches, latents (row, col)/96, saliency files, fixation-offset actions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sslequi.actions import compute_actions
from sslequi.augment.params import ViewParams
from sslequi.data.check import DataError
from sslequi.data.pls import STL10PLS, STL10PLSConfig, foveal_patches, sample_fixations


def write_tiny_stl(root: Path, counts: tuple[int, int, int] = (4, 3, 5)) -> dict[str, np.ndarray]:
    """A tiny STL-10 binary copy (column-major images, labels 1..10)."""
    base = root / "stl10_binary"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {}
    for part, n in zip(("train", "test", "unlabeled"), counts, strict=True):
        hwc = rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
        images[part] = hwc
        hwc.transpose(0, 3, 2, 1).tofile(base / f"{part}_X.bin")
        if part != "unlabeled":
            (rng.integers(1, 11, n).astype(np.uint8)).tofile(base / f"{part}_y.bin")
    return images


def test_inhibition_of_return_keeps_fixations_apart() -> None:
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        centres = sample_fixations(torch.ones(96, 96), 5, 16, gen)
        for i in range(5):
            for j in range(i):
                gap = (centres[i] - centres[j]).abs().max().item()
                assert gap > 16, centres


def test_saliency_concentrates_the_first_fixation() -> None:
    saliency = torch.zeros(96, 96)
    saliency[10, 70] = 1.0
    centres = sample_fixations(saliency, 3, 4, torch.Generator().manual_seed(1))
    assert centres[0].tolist() == [10, 70]
    assert all((c - centres[0]).abs().max() > 4 for c in centres[1:])  # fell back to uniform


def test_foveal_patch_reads_the_pixels_around_the_centre() -> None:
    image = torch.arange(1, 96 * 96 + 1, dtype=torch.float32).reshape(1, 96, 96)
    patch = foveal_patches(image, torch.tensor([[40, 50]]), 3)  # odd fovea: exact pixels
    assert torch.allclose(patch[0, 0], image[0, 39:42, 49:52], rtol=1e-5)
    edge = foveal_patches(image, torch.tensor([[0, 0]]), 3)
    assert abs(edge[0, 0, 0, 0].item()) < 1e-6  # zero padding outside the image
    assert edge[0, 0, 1, 1].item() == pytest.approx(1.0, rel=1e-4)


def test_items_are_glimpse_sequences_with_fixation_latents(tmp_path: Path) -> None:
    write_tiny_stl(tmp_path)
    dataset = STL10PLS(STL10PLSConfig(root=str(tmp_path)), "train", 5)
    assert len(dataset) == 5 and dataset.info.distinct_views and dataset.info.latent_dim == 2
    torch.manual_seed(0)
    item = dataset[1]
    assert item.images.shape == (5, 3, 32, 32) and item.images.dtype == torch.uint8
    assert item.label == -1 and item.latents.shape == (5, 2)
    assert float(item.latents.min()) >= 0 and float(item.latents.max()) < 1
    again = dataset.views_of(1)
    assert torch.equal(again.images, dataset.views_of(1).images)  # seeded for evaluation
    labeled = STL10PLS(STL10PLSConfig(root=str(tmp_path)), "labeled", 5)
    assert len(labeled) == 4 and labeled[0].label >= 0
    actions = compute_actions(
        ("fixation_offset",), item.latents[None], [ViewParams.empty() for _ in range(5)]
    ).get("fixation_offset")
    assert torch.allclose(actions[0], item.latents[1:] - item.latents[:-1])


def test_saliency_files_are_read_and_checked(tmp_path: Path) -> None:
    write_tiny_stl(tmp_path)
    maps = tmp_path / "maps"
    maps.mkdir()
    saliency = np.zeros((5, 96, 96), dtype=np.float32)
    saliency[:, 48, 20] = 1.0
    np.save(maps / "unlabeled_saliency.npy", saliency)
    config = STL10PLSConfig(root=str(tmp_path), saliency_dir=str(maps), ior_radius=2)
    dataset = STL10PLS(config, "train", 3)
    assert dataset[0].latents[0].tolist() == pytest.approx([48 / 96, 20 / 96])
    with pytest.raises(DataError, match="test_saliency.npy"):
        STL10PLS(config, "test", 3)
