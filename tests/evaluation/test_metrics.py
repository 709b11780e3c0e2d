"""Known-answer tests of the metric formulas (evaluation.md §3, §4, §6, §7)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from sslequi.actions import compute_actions
from sslequi.augment.params import ViewParams
from sslequi.evaluation import metrics


def _relative_quats(n: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    angles = rng.uniform(-np.pi / 2, np.pi / 2, (n, 2, 3))
    latents = torch.zeros(n, 2, 7, dtype=torch.float64)
    latents[..., :3] = torch.from_numpy(angles)
    params = [ViewParams.empty(), ViewParams.empty()]
    ours = compute_actions(("rotation_quat",), latents, params).pair("rotation_quat")
    scipy_path = (
        Rotation.from_euler("xyz", angles[:, 0]).inv() * Rotation.from_euler("xyz", angles[:, 1])
    ).as_quat()
    return ours, scipy_path


def test_r2_definitions_match_hand_formulas() -> None:
    y = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]], dtype=torch.float64)
    y_hat = torch.tensor([[1.5, 12.0], [2.0, 18.0], [2.5, 30.0], [4.0, 44.0]], dtype=torch.float64)
    grand = y.mean()
    expected_global = 1 - ((y - y_hat) ** 2).sum() / ((y - grand) ** 2).sum()
    per = [
        1 - ((y[:, j] - y_hat[:, j]) ** 2).sum() / ((y[:, j] - y[:, j].mean()) ** 2).sum()
        for j in range(2)
    ]
    assert abs(metrics.r2_global(y, y_hat) - float(expected_global)) < 1e-9
    assert abs(metrics.r2_per_component(y, y_hat) - float(sum(per) / 2)) < 1e-9


def test_constant_predictor_floor_on_3diebench_relative_quaternions() -> None:
    """R²_SIE floor ≈ 0.229 raw, ≈ 0.243 canonical; R²_pc floor 0 (evaluation.md §4.2)."""
    quats, scipy_quats = _relative_quats(100_000)
    assert np.allclose(quats.numpy(), scipy_quats, atol=1e-9)  # same sign path as scipy
    assert abs(metrics.constant_floor_global(quats) - 0.229) < 0.01
    assert abs(metrics.constant_floor_global(metrics.canonicalize_quaternion(quats)) - 0.243) < 0.01
    assert abs(metrics.constant_floor_per_component(quats)) < 1e-12
    assert abs(float((quats[:, 3] < 0).double().mean()) - 0.044) < 0.005


def test_sign_invariant_error_ignores_the_sign() -> None:
    quats, _ = _relative_quats(1000)
    assert metrics.sign_invariant_error(quats, -3.0 * quats) < 1e-12
    canon = metrics.canonicalize_quaternion(quats)
    assert bool((canon[:, 3] >= 0).all())
    assert metrics.r2_global(canon, metrics.canonicalize_quaternion(-quats)) == 1.0


def test_knn_on_separated_clusters() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 16, generator=gen) * 10
    bank_labels = torch.arange(5).repeat(40)
    bank = centres[bank_labels] + torch.randn(200, 16, generator=gen)
    query_labels = torch.arange(5).repeat(20)
    queries = centres[query_labels] + torch.randn(100, 16, generator=gen)
    scores = metrics.knn_class_scores(bank, bank_labels, queries, 5, k=20, temperature=0.1)
    assert metrics.topk_accuracy(scores, query_labels, 1) >= 0.99


def test_knn_weights_follow_the_formula() -> None:
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.2]])
    scores = metrics.knn_class_scores(bank, labels, query, 2, k=2, temperature=0.5)
    q = query / query.norm()
    s = (torch.nn.functional.normalize(bank, dim=1) @ q.T).squeeze()
    top = s.topk(2).indices
    expected = torch.zeros(2)
    for i in top:
        expected[labels[i]] += torch.exp(s[i] / 0.5)
    assert torch.allclose(scores[0], expected, atol=1e-5)


def test_ranks_mrr_and_chance() -> None:
    z = torch.nn.functional.normalize(torch.randn(30, 10, 8), dim=-1)
    ranks = metrics.retrieval_ranks(z.clone(), z)
    assert bool((ranks == 1).all())
    assert metrics.mrr_and_hits(ranks)["mrr"] == 1.0
    reversed_scores = metrics.retrieval_ranks(-z, z)  # true candidate scores lowest
    assert bool((reversed_scores == 10).all())
    assert abs(metrics.chance_mrr(50) - 0.0900) < 5e-4


def test_pre_is_sin_squared_of_half_angle() -> None:
    q = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    theta = 1.0
    q_nn = torch.tensor([[0.0, 0.0, np.sin(theta / 2), np.cos(theta / 2)]])
    assert abs(metrics.prediction_error_of_retrieval(q, q_nn) - np.sin(theta / 2) ** 2) < 1e-9
    assert metrics.prediction_error_of_retrieval(q, -q) < 1e-12
