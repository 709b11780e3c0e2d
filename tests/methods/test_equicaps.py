"""EquiCaps (methods.md §11): the P·M convention against the dataset's, the loss of §11.3
against hand-computed values and an independent numpy formulation, the method end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sslequi.actions import compute_actions
from sslequi.actions.rotation import euler_xyz_to_matrix, rigid_transform
from sslequi.methods.equicaps import (
    EquiCaps,
    EquiCapsConfig,
    activation_cross_entropy,
    equicaps_loss,
    equicaps_loss_terms,
    frobenius_normalise,
    memax_penalty,
    transform_poses,
)
from sslequi.models.backbones import BackboneConfig, build_resnet
from tests.methods.conftest import IMAGE_SIZE, spec_batch


def _latents(batch: int, views: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    angles = (torch.rand(batch, views, 3, generator=gen, dtype=torch.float64) - 0.5) * math.pi
    others = torch.rand(batch, views, 4, generator=gen, dtype=torch.float64)
    shift = torch.rand(batch, views, 3, generator=gen, dtype=torch.float64) - 0.5
    return torch.cat([angles, others, shift], dim=-1)


@pytest.mark.parametrize("encoding", ["rotation_matrix", "transform_object", "transform_base"])
def test_pose_times_relative_transform_matches_the_dataset(encoding: str) -> None:
    """If P(view) = P₀·M(view) then P(view₂) = P(view₁)·M₁⁻¹M₂ (R₁ᵀR₂ for rotations), and the
    equivariance term vanishes on such poses."""
    latents = _latents(6, 2)
    if encoding == "rotation_matrix":
        absolute, side = euler_xyz_to_matrix(latents[..., :3]), 3
    else:
        absolute, side = rigid_transform(latents, encoding.split("_")[1]), 4
    relative = compute_actions((encoding,), latents, []).pair(encoding).reshape(-1, side, side)
    base = torch.randn(6, 5, side, side, dtype=torch.float64)  # P₀ per object and capsule
    poses_1 = base @ absolute[:, 0].unsqueeze(1)
    poses_2 = base @ absolute[:, 1].unsqueeze(1)
    assert torch.allclose(transform_poses(poses_1, relative), poses_2, atol=1e-10)
    activations = torch.softmax(torch.randn(6, 5, dtype=torch.float64), dim=1)
    terms = equicaps_loss_terms(activations, poses_1, activations, poses_2, relative)
    assert terms["equi"].item() < 1e-20
    # The opposite convention (M·P) does not hold on the same data.
    assert not torch.allclose(relative.unsqueeze(1) @ poses_1, poses_2, atol=1e-3)


def test_loss_terms_by_hand() -> None:
    a_1 = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    a_2 = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    # L_inv = mean_b Σ_j −a′ log a
    inv = 0.5 * (-(0.5 * math.log(0.25) + 0.5 * math.log(0.75)) - math.log(0.5))
    assert activation_cross_entropy(a_1, a_2).item() == pytest.approx(inv, rel=1e-6)
    # MEMAX: ā = (0.375, 0.625) and (0.75, 0.25)
    h_1 = -(0.375 * math.log(0.375) + 0.625 * math.log(0.625))
    h_2 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert memax_penalty(a_1).item() == pytest.approx(math.log(2) - h_1, rel=1e-5)
    assert memax_penalty(a_2).item() == pytest.approx(math.log(2) - h_2, rel=1e-5)
    assert memax_penalty(torch.tensor([[0.9, 0.1], [0.1, 0.9]])).abs().item() < 1e-6
    # L_equi: P = I, M = 90° turn, P′ = I: P̃ = M/√2, P̃′ = I/√2; (M − I)²/2 sums to 2 over 4.
    eye = torch.eye(2).expand(2, 2, 2, 2)
    turn = torch.tensor([[0.0, -1.0], [1.0, 0.0]]).expand(2, 2, 2)
    terms = equicaps_loss_terms(a_1, eye, a_2, eye, turn)
    assert terms["equi"].item() == pytest.approx(0.5, rel=1e-6)
    assert terms["inv"].item() == pytest.approx(inv, rel=1e-6)
    assert frobenius_normalise(3.0 * eye).flatten(-2).norm(dim=-1).allclose(torch.ones(2, 2))


def _numpy_vicreg(e: np.ndarray) -> tuple[float, float]:
    """v(E) and c(E) of §1.1 written with numpy's unbiased variance and covariance."""
    var = np.maximum(0.0, 1.0 - np.sqrt(e.var(axis=0, ddof=1) + 1e-4)).mean()
    cov = np.cov(e, rowvar=False)
    off = cov - np.diag(np.diag(cov))
    return float(var), float((off**2).sum() / e.shape[1])


def test_loss_matches_an_independent_numpy_formulation() -> None:
    gen = torch.Generator().manual_seed(0)
    b, k, n = 7, 3, 3
    a_1 = torch.softmax(torch.randn(b, k, generator=gen, dtype=torch.float64), 1)
    a_2 = torch.softmax(torch.randn(b, k, generator=gen, dtype=torch.float64), 1)
    p_1 = torch.randn(b, k, n, n, generator=gen, dtype=torch.float64)
    p_2 = torch.randn(b, k, n, n, generator=gen, dtype=torch.float64)
    m = torch.randn(b, n, n, generator=gen, dtype=torch.float64)
    terms = equicaps_loss_terms(a_1, p_1, a_2, p_2, m)
    total = equicaps_loss(terms, 0.1, 5.0, 10.0, 1.0, 1.0)

    A1, A2, P1, P2, M = (t.numpy() for t in (a_1, a_2, p_1, p_2, m))
    inv = np.mean([-(A2[i] * np.log(A1[i])).sum() for i in range(b)])
    moved = np.stack([[P1[i, j] @ M[i] for j in range(k)] for i in range(b)])
    moved /= np.linalg.norm(moved, axis=(2, 3), keepdims=True)
    target = P2 / np.linalg.norm(P2, axis=(2, 3), keepdims=True)
    equi = np.mean((moved - target) ** 2)

    def memax(a: np.ndarray) -> float:
        mean = a.mean(0)
        return math.log(k) + float((mean * np.log(mean)).sum())

    e_1 = np.concatenate([A1, moved.reshape(b, -1)], 1)
    e_2 = np.concatenate([A2, target.reshape(b, -1)], 1)
    (v_1, c_1), (v_2, c_2) = _numpy_vicreg(e_1), _numpy_vicreg(e_2)
    expected = {
        "inv": inv,
        "equi": equi,
        "memax": memax(A1) + memax(A2),
        "var": 0.5 * v_1 + 0.5 * v_2,
        "cov": c_1 + c_2,
    }
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value, rel=1e-9), name
    weighted = 0.1 * inv + 5 * equi + 10 * expected["var"] + expected["memax"] + 1 * expected["cov"]
    assert total.item() == pytest.approx(weighted, rel=1e-9)


def _method(**overrides: object) -> EquiCaps:
    torch.manual_seed(0)
    backbone, dim = build_resnet(18, BackboneConfig(width_multiplier=0.125, stem="cifar"))
    config = EquiCapsConfig(resolution=IMAGE_SIZE, **overrides)  # type: ignore[arg-type]
    return EquiCaps(config, backbone, dim)


@pytest.mark.parametrize(
    ("pose", "frame", "action"),
    [
        ("3x3", "object", "rotation_matrix"),
        ("4x4", "object", "transform_object"),
        ("4x4", "base", "transform_base"),
    ],
)
def test_method_trains_end_to_end(pose: str, frame: str, action: str) -> None:
    method = _method(pose=pose, frame=frame, num_capsules=4)
    assert method.spec().actions == (action,)
    batch = spec_batch(method.spec(), batch_size=6)
    out = method(batch)
    assert set(out.terms) == {"inv", "equi", "memax", "var", "cov"}
    assert torch.isfinite(out.loss) and out.features[0].shape == (6, 64)
    out.loss.backward()
    routing = method.capsules.routing
    assert routing.W1 is not None and routing.W1.grad is not None
    assert routing.W1.grad.abs().sum() > 0 and method.backbone.conv1.weight.grad is not None
    # Routing starts uniform: every activation is 1/K, so L_inv = log K and MEMAX = 0.
    assert out.terms["inv"].item() == pytest.approx(math.log(4), rel=1e-5)
    assert abs(out.terms["memax"].item()) < 1e-5


def test_representations_for_the_probes() -> None:
    method = _method(num_capsules=4).eval()
    reps = method.representations()
    assert {"full", "activations", "poses", "capsules"} <= set(reps)
    assert not reps["capsules"].default and reps["activations"].default
    images = torch.randn(3, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        feature_map = method.feature_map(images)
        acts = reps["activations"].compute(feature_map)  # type: ignore[misc]
        poses = reps["poses"].compute(feature_map)  # type: ignore[misc]
        both = reps["capsules"].compute(feature_map)  # type: ignore[misc]
    assert acts.shape == (3, 4) and poses.shape == (3, 36)
    assert torch.allclose(acts.sum(1), torch.ones(3), atol=1e-6)
    assert torch.equal(both, torch.cat([acts, poses], 1))
    assert all(reps[n].source == "feature_map" for n in ("activations", "poses", "capsules"))


def test_bad_configs_fail_clearly() -> None:
    with pytest.raises(ValueError, match="needs 4x4 poses"):
        EquiCapsConfig(pose="3x3", frame="base")
    with pytest.raises(ValueError, match="'3x3' or '4x4'"):
        EquiCapsConfig(pose="5x5")
    with pytest.raises(ValueError, match="frame must be one of"):
        EquiCapsConfig(pose="4x4", frame="world")
    with pytest.raises(ValueError, match="cov_denominator"):
        EquiCapsConfig(cov_denominator="global")
    method = _method(num_capsules=4)
    batch = spec_batch(method.spec(), batch_size=2)
    batch.views = [torch.randn(2, 3, 2 * IMAGE_SIZE, 2 * IMAGE_SIZE) for _ in range(2)]
    with pytest.raises(ValueError, match="resolution must match"):
        method(batch)
