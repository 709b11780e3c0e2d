"""SIE's hypernetwork predictor (methods.md §1.5, §2.1)."""

from __future__ import annotations

import pytest
import torch

from sslequi.models.hypernetwork import (
    ConcatPredictor,
    HypernetworkPredictor,
    PredictorConfig,
    build_predictor,
)


def _explicit(pred: HypernetworkPredictor, z: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """ẑ = W(g) z with W(g) materialised from H's output (the code's bmm path)."""
    return torch.bmm(pred.weight(g), z.unsqueeze(-1)).squeeze(-1)


def test_output_is_linear_in_g() -> None:
    torch.manual_seed(0)
    pred = HypernetworkPredictor(dim=6, action_dim=4)
    z = torch.randn(5, 6)
    g1, g2 = torch.randn(5, 4), torch.randn(5, 4)
    a, b = 0.7, -1.3
    combined = pred(z, a * g1 + b * g2)
    assert torch.allclose(combined, a * pred(z, g1) + b * pred(z, g2), atol=1e-5)


def test_weight_is_sum_of_gk_ak_and_odd_in_q() -> None:
    torch.manual_seed(1)
    pred = HypernetworkPredictor(dim=5, action_dim=4)
    q = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    w = pred.weight(q)
    assert torch.allclose(pred.weight(-q), -w)
    # W(g) = Σ_k g_k A_k with A_k = W(e_k)
    basis = pred.weight(torch.eye(4))
    assert torch.allclose(w, torch.einsum("bk,koi->boi", q, basis), atol=1e-6)
    z = torch.randn(3, 5)
    assert torch.allclose(pred(z, -q), -pred(z, q), atol=1e-6)


def test_fast_path_matches_materialised_weight() -> None:
    torch.manual_seed(2)
    pred = HypernetworkPredictor(dim=7, action_dim=6)
    z, g = torch.randn(4, 7), torch.randn(4, 6)
    assert pred._is_plain_linear()
    assert torch.allclose(pred(z, g), _explicit(pred, z, g), atol=1e-5)


def test_bias_and_deep_options_change_the_map() -> None:
    torch.manual_seed(3)
    z, g = torch.randn(4, 5), torch.randn(4, 4)
    zero = torch.zeros(4, 4)
    # bias_hypernet: W(0) = A_0 ≠ 0;  bias_pred: ẑ(0) = b(0) with b from H (still 0 without
    # a hypernet bias) — each option takes the general path and keeps the explicit value.
    with_hb = HypernetworkPredictor(5, 4, bias_hypernet=True)
    assert not with_hb._is_plain_linear()
    assert with_hb.weight(zero).abs().sum() > 0
    assert torch.allclose(with_hb(z, g), _explicit(with_hb, z, g), atol=1e-5)
    with_pb = HypernetworkPredictor(5, 4, bias_pred=True)
    (weight, bias), *_ = with_pb.predicted_parameters(g)
    expected = torch.bmm(weight, z.unsqueeze(-1)).squeeze(-1) + bias
    assert torch.allclose(with_pb(z, g), expected, atol=1e-5)
    deep = HypernetworkPredictor(5, 4, kind="deep")
    assert deep(z, g).shape == (4, 5)
    assert len([m for m in deep.hypernet if isinstance(m, torch.nn.Linear)]) == 3


def test_hidden_layers_with_relu() -> None:
    torch.manual_seed(4)
    pred = HypernetworkPredictor(5, 4, hidden=[3], relu=True)
    z, g = torch.randn(2, 5), torch.randn(2, 4)
    (w1, _), (w2, _) = pred.predicted_parameters(g)
    assert w1.shape == (2, 3, 5) and w2.shape == (2, 5, 3)
    hidden = torch.relu(torch.bmm(w1, z.unsqueeze(-1)))
    assert torch.allclose(pred(z, g), torch.bmm(w2, hidden).squeeze(-1), atol=1e-5)


def test_sie_parameter_count() -> None:
    """4 × 1024² = 4,194,304 hypernetwork parameters (methods.md §2.1, §0.6)."""
    pred = HypernetworkPredictor(1024, 4)
    assert sum(p.numel() for p in pred.parameters()) == 4_194_304


def test_concat_predictor_and_builder() -> None:
    pred = build_predictor(PredictorConfig(type="mlp", mlp_layers=2), dim=6, action_dim=4)
    assert isinstance(pred, ConcatPredictor)
    assert pred(torch.randn(3, 6), torch.randn(3, 4)).shape == (3, 6)
    assert isinstance(build_predictor(PredictorConfig(), 6, 4), HypernetworkPredictor)


def test_bad_inputs_fail_clearly() -> None:
    with pytest.raises(ValueError, match="action width"):
        HypernetworkPredictor(5, 4)(torch.randn(2, 5), torch.randn(2, 6))
    with pytest.raises(ValueError, match="predictor.type"):
        PredictorConfig(type="transformer")
    with pytest.raises(ValueError, match="predictor.hypernetwork"):
        PredictorConfig(hypernetwork="wide")


def test_predictor_learns_a_known_equivariant_map() -> None:
    """On data with z′ = R(g) z for a g-linear R, the predictor error falls to ~0."""
    torch.manual_seed(5)
    dim, k = 6, 4
    true_a = torch.randn(k, dim, dim) / dim**0.5
    pred = HypernetworkPredictor(dim, k)
    opt = torch.optim.Adam(pred.parameters(), lr=0.02)

    def sample() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z, g = torch.randn(64, dim), torch.randn(64, k)
        return z, g, torch.einsum("bk,koi,bi->bo", g, true_a, z)

    z, g, target = sample()
    initial = torch.nn.functional.mse_loss(pred(z, g), target).item()
    for _ in range(300):
        zs, gs, ts = sample()
        loss = torch.nn.functional.mse_loss(pred(zs, gs), ts)
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = torch.nn.functional.mse_loss(pred(z, g), target).item()
    assert final < 0.01 * initial
