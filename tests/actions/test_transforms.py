"""The 4×4 relative transforms of 3DIEBench-T (datasets.md §2) against numpy/scipy, on
latents read back from a ``--variant T`` render."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from sslequi.actions import compute_actions
from sslequi.data.render.generate import RenderConfig, generate
from sslequi.data.threedie import ThreeDIEBenchT, ThreeDIETConfig


def _matrix(latent: np.ndarray, frame: str) -> np.ndarray:
    """M = T(t)·R (object frame) or R·T(t) (base frame), by homogeneous matrix products."""
    rot = np.eye(4)
    rot[:3, :3] = Rotation.from_euler("xyz", latent[:3]).as_matrix()
    shift = np.eye(4)
    shift[:3, 3] = latent[7:10]
    return shift @ rot if frame == "object" else rot @ shift


@pytest.fixture(scope="module")
def rendered_latents(tmp_path_factory: pytest.TempPathFactory) -> torch.Tensor:
    root = Path(tmp_path_factory.mktemp("render_t"))
    generate(
        RenderConfig.from_preset("tiny", root, variant="T", objects_per_class=2, progress=False)
    )
    dataset = ThreeDIEBenchT(ThreeDIETConfig(root=str(root), resolution=32), "train", 2)
    latents = torch.stack([dataset.views_of(i).latents for i in range(len(dataset))])
    assert latents.shape[-1] == 10  # 3DIEBench-T: + translation
    return latents.double()


@pytest.mark.parametrize("frame", ["object", "base"])
def test_relative_transform_matches_numpy(rendered_latents: torch.Tensor, frame: str) -> None:
    lat = rendered_latents.numpy()
    name = f"transform_{frame}"
    actions = compute_actions((name, "rotation_matrix"), rendered_latents, [])
    got = actions.get(name).numpy()
    assert got.shape == (lat.shape[0], lat.shape[1] - 1, 16)
    for b in range(lat.shape[0]):
        for v in range(lat.shape[1] - 1):
            m1, m2 = _matrix(lat[b, v], frame), _matrix(lat[b, v + 1], frame)
            expected = np.linalg.inv(m1) @ m2
            np.testing.assert_allclose(got[b, v].reshape(4, 4), expected, atol=1e-12)
    # The rotation block is R₁ᵀR₂ (the 3×3 encoding); the last row is (0, 0, 0, 1).
    rel = torch.from_numpy(got).reshape(*got.shape[:2], 4, 4)
    rotation = actions.get("rotation_matrix").reshape(*got.shape[:2], 3, 3)
    assert torch.allclose(rel[..., :3, :3], rotation, atol=1e-12)
    assert torch.equal(rel[..., 3, :], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand_as(rel[..., 3, :]))


def test_base_frame_translation_is_the_visible_displacement(rendered_latents: torch.Tensor) -> None:
    """M₁·(M₁⁻¹M₂) = M₂: the base-frame relative transform moves the centre R₁t₁ to R₂t₂."""
    actions = compute_actions(("transform_base", "translation_base"), rendered_latents, [])
    rel = actions.get("transform_base").reshape(-1, 4, 4)
    lat = rendered_latents[:, :-1].reshape(-1, 10).numpy()
    m1 = torch.from_numpy(np.stack([_matrix(row, "base") for row in lat]))
    moved = (m1 @ rel)[:, :3, 3] - m1[:, :3, 3]
    assert torch.allclose(moved, actions.get("translation_base").reshape(-1, 3), atol=1e-12)


def test_transforms_need_translation_latents() -> None:
    with pytest.raises(ValueError, match="3DIEBench-T"):
        compute_actions(("transform_object",), torch.zeros(2, 2, 7), [])
