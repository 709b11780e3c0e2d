"""The 3D action encodings against scipy's computation (datasets.md §1.5, §1.6, §1.10)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from sslequi.actions import ACTIONS, ActionOptions, compute_actions, latent_encodings
from sslequi.actions.rotation import relative_quaternion
from sslequi.types import ACTION_DIMS


def _latents(batch: int, views: int, dim: int = 7, seed: int = 0, ood: bool = False) -> np.ndarray:
    """Latents sampled as the generators do (datasets.md §6.2), float64."""
    rng = np.random.default_rng(seed)
    if ood:
        angles = rng.choice([-1.0, 1.0], (batch, views, 3)) * rng.uniform(
            math.pi / 2, math.pi, (batch, views, 3)
        )
    else:
        angles = rng.uniform(-math.pi / 2, math.pi / 2, (batch, views, 3))
    rest = [
        rng.uniform(0, 1, (batch, views, 1)),
        rng.uniform(0, math.pi / 4, (batch, views, 1)),
        rng.uniform(0, 2 * math.pi, (batch, views, 1)),
        rng.uniform(0, 1, (batch, views, 1)),
    ]
    if dim == 10:
        rest.append(rng.uniform(-0.5, 0.5, (batch, views, 3)))
    return np.concatenate([angles, *rest], axis=-1)


def _scipy_pairs(lat: np.ndarray, fn) -> np.ndarray:
    out = np.zeros((lat.shape[0], lat.shape[1] - 1) + np.shape(fn(lat[0, 0], lat[0, 1])))
    for b in range(lat.shape[0]):
        for v in range(lat.shape[1] - 1):
            out[b, v] = fn(lat[b, v], lat[b, v + 1])
    return out


def _rel(l1: np.ndarray, l2: np.ndarray) -> Rotation:
    return Rotation.from_euler("xyz", l1[:3]).inv() * Rotation.from_euler("xyz", l2[:3])


@pytest.mark.parametrize("ood", [False, True])
def test_quaternion_matches_scipy_composition_including_sign(ood: bool) -> None:
    lat = _latents(64, 4, ood=ood)
    actions = compute_actions(("rotation_quat",), torch.from_numpy(lat), [])
    expected = _scipy_pairs(lat, lambda a, b: _rel(a, b).as_quat())
    assert actions.rotation_quat is not None
    np.testing.assert_allclose(actions.rotation_quat.numpy(), expected, atol=1e-12)


def test_float32_latents_keep_the_sign() -> None:
    lat = _latents(256, 2, seed=3)
    got = compute_actions(("rotation_quat",), torch.from_numpy(lat).float(), []).pair(
        "rotation_quat"
    )
    expected = _scipy_pairs(lat, lambda a, b: _rel(a, b).as_quat())[:, 0]
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


def test_matrix_path_would_differ_in_sign() -> None:
    """Sanity check of the spec's warning: from_matrix gives other signs on some pairs."""
    lat = _latents(2000, 2, seed=1)
    ours = relative_quaternion(torch.from_numpy(lat))[:, 0].numpy()
    via_matrix = _scipy_pairs(
        lat, lambda a, b: Rotation.from_matrix(_rel(a, b).as_matrix()).as_quat()
    )[:, 0]
    assert np.mean(np.sign(ours[:, 3]) != np.sign(via_matrix[:, 3])) > 0.1


def test_canonicalisation_option() -> None:
    lat = torch.from_numpy(_latents(500, 3, seed=2))
    raw = compute_actions(("rotation_quat",), lat, []).get("rotation_quat")
    canon = compute_actions(
        ("rotation_quat",), lat, [], ActionOptions(canonicalize_quaternion=True)
    ).get("rotation_quat")
    assert (raw[..., 3] < 0).any()
    assert (canon[..., 3] >= 0).all()
    flipped = raw[..., 3] < 0
    torch.testing.assert_close(canon[flipped], -raw[flipped])
    torch.testing.assert_close(canon[~flipped], raw[~flipped])


def test_statistics_over_many_pairs() -> None:
    """datasets.md §1.6: w < 0 for ≈ 4.4 %, mean ≈ (0, 0, 0, 0.533), std ≈ (.458, .., .299)."""
    lat = torch.from_numpy(_latents(200_000, 2, seed=4))
    q = relative_quaternion(lat)[:, 0]
    assert abs((q[:, 3] < 0).double().mean().item() - 0.044) < 0.003
    mean = q.mean(0)
    torch.testing.assert_close(
        mean, torch.tensor([0, 0, 0, 0.533], dtype=mean.dtype), atol=0.006, rtol=0
    )
    std = q.std(0)
    torch.testing.assert_close(
        std, torch.tensor([0.458, 0.457, 0.456, 0.299], dtype=std.dtype), atol=0.006, rtol=0
    )
    canon = relative_quaternion(lat, canonicalize=True)[:, 0]
    assert abs(canon[:, 3].mean().item() - 0.548) < 0.005


def test_ood_absolute_quaternions_half_negative() -> None:
    from sslequi.actions.rotation import euler_xyz_to_quat

    q_in = euler_xyz_to_quat(torch.from_numpy(_latents(20_000, 1, seed=5)[..., :3]))
    q_ood = euler_xyz_to_quat(torch.from_numpy(_latents(20_000, 1, seed=5, ood=True)[..., :3]))
    assert (q_in[..., 3] >= 0).all()
    assert abs((q_ood[..., 3] < 0).double().mean().item() - 0.5) < 0.02


def test_matrix_euler_and_colour_encodings_match_scipy() -> None:
    lat = _latents(50, 5, seed=6)
    names = ("rotation_matrix", "rotation_euler", "color_delta", "rot_color", "all_latents")
    actions = compute_actions(names, torch.from_numpy(lat), [])
    mat = _scipy_pairs(lat, lambda a, b: _rel(a, b).as_matrix().reshape(9))
    eul = _scipy_pairs(lat, lambda a, b: _rel(a, b).as_euler("xyz"))
    col = _scipy_pairs(lat, lambda a, b: b[[3, 6]] - a[[3, 6]])
    quat = _scipy_pairs(lat, lambda a, b: _rel(a, b).as_quat())
    rest = _scipy_pairs(lat, lambda a, b: b[3:7] - a[3:7])
    np.testing.assert_allclose(actions.get("rotation_matrix").numpy(), mat, atol=1e-12)
    np.testing.assert_allclose(actions.get("rotation_euler").numpy(), eul, atol=1e-9)
    np.testing.assert_allclose(actions.get("color_delta").numpy(), col, atol=1e-12)
    np.testing.assert_allclose(
        actions.get("rot_color").numpy(), np.concatenate([quat, col], -1), atol=1e-12
    )
    np.testing.assert_allclose(
        actions.get("all_latents").numpy(), np.concatenate([quat, rest], -1), atol=1e-12
    )
    for name in names:
        assert actions.get(name).shape == (50, 4, ACTION_DIMS[name])


def test_translation_encodings() -> None:
    lat = _latents(30, 3, dim=10, seed=7)
    actions = compute_actions(("translation_object", "translation_base"), torch.from_numpy(lat), [])

    def base(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ra, rb = Rotation.from_euler("xyz", a[:3]), Rotation.from_euler("xyz", b[:3])
        return rb.apply(b[7:10]) - ra.apply(a[7:10])

    np.testing.assert_allclose(
        actions.get("translation_object").numpy(),
        _scipy_pairs(lat, lambda a, b: b[7:10] - a[7:10]),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        actions.get("translation_base").numpy(), _scipy_pairs(lat, base), atol=1e-12
    )


def test_clear_errors() -> None:
    with pytest.raises(ValueError, match="latents"):
        compute_actions(("rotation_quat",), None, [])
    with pytest.raises(ValueError, match="3DIEBench-T"):
        compute_actions(("translation_base",), torch.zeros(2, 2, 7), [])
    with pytest.raises(ValueError, match="V ≥ 2"):
        compute_actions(("rotation_quat",), torch.zeros(2, 1, 7), [])


def test_every_3d_encoding_is_registered() -> None:
    expected = {
        "rotation_quat",
        "rotation_matrix",
        "rotation_euler",
        "color_delta",
        "rot_color",
        "all_latents",
        "translation_object",
        "translation_base",
        "transform_object",
        "transform_base",
    }
    for name in expected:
        assert name in ACTIONS
    # the trainer's dataset check derives the latent-needing encodings from this
    # (plus seq-JEPA PLS fixation offsets, read from the glimpses' latents)
    assert latent_encodings() == expected | {"fixation_offset"}
