"""Shared loss terms against hand-computed values and independent formulations (lightly)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import NegativeCosineSimilarity, NTXentLoss, VICRegLoss
from lightly.loss.vicreg_loss import covariance_loss, variance_loss

from sslequi.methods import losses


def test_invariance_mse_by_hand() -> None:
    z_a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    z_b = torch.tensor([[1.0, 0.0], [0.0, 4.0]])
    assert losses.invariance_mse(z_a, z_b).item() == pytest.approx(13 / 4)


def test_variance_hinge_by_hand() -> None:
    z = torch.tensor([[0.0, 5.0], [2.0, 5.0]])
    # column 0: unbiased var 2 → std √2.0001 > 1 → 0; column 1: var 0 → 1 − √1e-4 = 0.99
    assert losses.variance_hinge(z).item() == pytest.approx(0.99 / 2)


def test_covariance_penalty_by_hand() -> None:
    z = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    # C = ZᵀZ / (2 − 1) = [[2, 2], [2, 2]] → off-diagonal squares 4 + 4, / D = 2
    assert losses.covariance_penalty(z).item() == pytest.approx(4.0)
    # SIE's batch-size argument (register item 4): C = ZᵀZ / (3 − 1) → (1 + 1) / 2
    assert losses.covariance_penalty(z, denominator=3).item() == pytest.approx(1.0)


def test_nt_xent_by_hand() -> None:
    eye = torch.eye(2)
    # Anchor e1: positive sim 1, two negatives at 0 → −log(e / (e + 2)), same for all four.
    expected = math.log(math.e + 2) - 1
    assert losses.nt_xent(eye, eye, temperature=1.0).item() == pytest.approx(expected)


def _nt_xent_loop(z_a: torch.Tensor, z_b: torch.Tensor, tau: float) -> torch.Tensor:
    """Independent per-anchor formulation of §1.2."""
    u = F.normalize(torch.cat([z_a, z_b]), dim=1)
    n = z_a.shape[0]
    total = torch.tensor(0.0)
    for a in range(2 * n):
        p = (a + n) % (2 * n)
        sims = torch.stack([u[a] @ u[k] for k in range(2 * n) if k != a]) / tau
        total = total - (u[a] @ u[p] / tau - torch.logsumexp(sims, 0))
    return total / (2 * n)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_matches_loop_and_lightly(tau: float) -> None:
    g = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    ours = losses.nt_xent(z_a, z_b, tau)
    torch.testing.assert_close(ours, _nt_xent_loop(z_a, z_b, tau))
    torch.testing.assert_close(ours, NTXentLoss(temperature=tau)(z_a, z_b))


def test_cross_view_infonce_by_hand_and_by_formula() -> None:
    eye = torch.eye(2)
    # logits = I: each row −log(e / (e + 1)); both directions equal.
    expected = math.log(1 + math.e) - 1
    assert losses.cross_view_infonce(eye, eye, 1.0).item() == pytest.approx(expected)
    g = torch.Generator().manual_seed(1)
    z_a, z_b = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    a, b = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
    sims = a @ b.T / 0.5
    rows = -(torch.diagonal(sims) - torch.logsumexp(sims, dim=1)).mean()
    cols = -(torch.diagonal(sims) - torch.logsumexp(sims, dim=0)).mean()
    torch.testing.assert_close(losses.cross_view_infonce(z_a, z_b, 0.5), 0.5 * rows + 0.5 * cols)


def test_negative_cosine_by_hand_and_lightly() -> None:
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    z = torch.tensor([[0.0, 1.0], [2.0, 2.0]])
    assert losses.negative_cosine(p, z).item() == pytest.approx(2 - 2 * 0.5)
    g = torch.Generator().manual_seed(2)
    p, z = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    torch.testing.assert_close(
        losses.negative_cosine(p, z), 2 + 2 * NegativeCosineSimilarity()(p, z)
    )


def test_variance_and_covariance_match_lightly() -> None:
    z = torch.randn(9, 6, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(losses.variance_hinge(z), variance_loss(z))
    torch.testing.assert_close(losses.covariance_penalty(z), covariance_loss(z))


@pytest.mark.parametrize("coefficients", [(25.0, 25.0, 1.0), (10.0, 10.0, 1.0)])
def test_vicreg_terms_match_lightly_vicreg_loss(coefficients: tuple[float, float, float]) -> None:
    g = torch.Generator().manual_seed(4)
    z_a, z_b = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g) * 0.3
    terms = losses.vicreg_terms(z_a, z_b)
    assert set(terms) == {"sim", "var", "cov"}
    lam, mu, nu = coefficients
    ours = lam * terms["sim"] + mu * terms["var"] + nu * terms["cov"]
    torch.testing.assert_close(ours, VICRegLoss(lam, mu, nu)(z_a, z_b))
    torch.testing.assert_close(terms["sim"], losses.invariance_mse(z_a, z_b))
