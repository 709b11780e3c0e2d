"""SIE and its variants (methods.md §2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sslequi.methods.sie import (
    SIE,
    SIEConfig,
    SIENoPVar,
    SIENoPVarConfig,
    SIEOnlyEqui,
    SIEOnlyEquiConfig,
    SIERotColor,
    SIERotColorConfig,
    scaled_widths,
    sie_loss,
    sie_loss_terms,
)
from sslequi.registry import METHODS

TINY_MLP = "32-32"


# --------------------------------------------------------------------------- loss values
def _np_var(z: np.ndarray) -> float:
    """(1/D) Σ_d max(0, 1 − √(Var_unbiased(z_d) + 1e-4)), written with explicit sums."""
    n, d = z.shape
    total = 0.0
    for j in range(d):
        mean = sum(z[i, j] for i in range(n)) / n
        var = sum((z[i, j] - mean) ** 2 for i in range(n)) / (n - 1)
        total += max(0.0, 1.0 - math.sqrt(var + 1e-4))
    return total / d


def _np_cov(z: np.ndarray, n_denominator: int | None = None) -> float:
    n, d = z.shape
    m = n if n_denominator is None else n_denominator
    zc = z - z.mean(axis=0)
    total = 0.0
    for i in range(d):
        for j in range(d):
            if i != j:
                c = sum(zc[b, i] * zc[b, j] for b in range(n)) / (m - 1)
                total += c * c
    return total / d


def test_terms_hand_computed() -> None:
    """Two samples, hand-worked values (see comments)."""
    z_a_inv = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    z_b_inv = torch.tensor([[1.0, 1.0], [-1.0, 1.0]])  # MSE: (0+1+0+1)/4 = 0.5
    z_a_equi = torch.tensor([[0.0], [2.0]])
    z_b_equi = torch.tensor([[1.0], [1.0]])
    pred = torch.tensor([[1.0], [3.0]])  # MSE vs z_b_equi: (0 + 4)/2 = 2
    terms = sie_loss_terms(z_a_inv, z_a_equi, z_b_inv, z_b_equi, pred)
    assert terms["inv"].item() == pytest.approx(0.5)
    assert terms["equi"].item() == pytest.approx(2.0)
    # Z = [[1,0,0],[-1,0,2]]: column variances 2, 0, 2 → hinges 0, 1 − 0.01, 0 → mean 0.33
    # Z′ = [[1,1,1],[-1,1,1]]: variances 2, 0, 0 → hinges 0, 0.99, 0.99 → mean 0.66
    assert terms["var"].item() == pytest.approx(0.5 * 0.99 / 3 + 0.5 * 1.98 / 3, abs=1e-6)
    # Ẑ′ = [[1],[3]]: variance 2 → hinge 0
    assert terms["pvar"].item() == pytest.approx(0.0)
    # C(Z) with centred Z = [[1,0,-1],[-1,0,1]]: C = ZᵀZ/1 → C_13 = C_31 = −2; others 0 off-diag
    # → Σ_{i≠j} C² = 8, / D = 3 → 8/3;   C(Z′) off-diagonal all 0.
    assert terms["cov"].item() == pytest.approx(8 / 3, abs=1e-6)
    total = sie_loss(terms, 10.0, 4.5, 10.0, 1.0)
    expected = 10 * 0.5 + 4.5 * 2.0 + 10 * (0.5 * 0.99 / 3 + 0.5 * 1.98 / 3) + 8 / 3
    assert total.item() == pytest.approx(expected, abs=1e-5)


def test_terms_match_explicit_formulation() -> None:
    gen = torch.Generator().manual_seed(0)
    z_a_inv, z_b_inv = torch.randn(6, 3, generator=gen), torch.randn(6, 3, generator=gen)
    z_a_e, z_b_e = torch.randn(6, 2, generator=gen), torch.randn(6, 2, generator=gen)
    pred = 0.3 * torch.randn(6, 2, generator=gen)
    for denom in (None, 10):
        terms = sie_loss_terms(z_a_inv, z_a_e, z_b_inv, z_b_e, pred, cov_denominator=denom)
        za = torch.cat([z_a_inv, z_a_e], 1).numpy().astype(np.float64)
        zb = torch.cat([z_b_inv, z_b_e], 1).numpy().astype(np.float64)
        assert terms["var"].item() == pytest.approx(0.5 * _np_var(za) + 0.5 * _np_var(zb), rel=1e-5)
        assert terms["pvar"].item() == pytest.approx(0.5 * _np_var(pred.numpy()), rel=1e-5)
        expected_cov = _np_cov(za, denom) + _np_cov(zb, denom)
        assert terms["cov"].item() == pytest.approx(expected_cov, rel=1e-5)
        expected_inv = float(((z_a_inv - z_b_inv) ** 2).mean())
        assert terms["inv"].item() == pytest.approx(expected_inv, rel=1e-6)


def test_weights_paper_defaults_and_nopvar() -> None:
    cfg = SIEConfig()
    assert (cfg.sim_coeff, cfg.equi_factor, cfg.std_coeff, cfg.cov_coeff) == (10, 0.45, 10, 1)
    assert cfg.projector == "2048-2048-2048" and cfg.cov_denominator == "actual"
    terms = {
        k: torch.tensor(v) for k, v in dict(inv=1.0, equi=2.0, var=3.0, pvar=4.0, cov=5.0).items()
    }
    assert sie_loss(terms, 10, 4.5, 10, 1).item() == pytest.approx(10 + 9 + 70 + 5)
    assert sie_loss(terms, 10, 4.5, 10, 1, pred_var=False).item() == pytest.approx(10 + 9 + 30 + 5)
    assert SIENoPVarConfig().pred_var is False


def test_forward_total_equals_weighted_terms(tiny_backbone, make_spec_batch) -> None:
    method = SIE(SIEConfig(projector=TINY_MLP), tiny_backbone(16), 16)
    out = method(make_spec_batch(method.spec()))
    t = out.terms
    expected = 10 * t["inv"] + 4.5 * t["equi"] + 10 * (t["var"] + t["pvar"]) + t["cov"]
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert len(out.features) == 2 and out.features[0].shape == (8, 16)
    assert not out.features[0].requires_grad


# --------------------------------------------------------------------------- architecture
def test_resnet18_shapes_match_reference() -> None:
    """512-d backbone, equi 256: projectors 256 → 1024³ (2.365 M params each), W ∈ ℝ¹⁰²⁴ˣ¹⁰²⁴."""
    method = SIE(SIEConfig(), torch.nn.Identity(), 512)
    assert method.parts().invariant == slice(0, 256)
    assert method.parts().equivariant == slice(256, 512)
    for projector in (method.projector_inv, method.projector_equi):
        assert projector is not None
        assert sum(p.numel() for p in projector.parameters()) == 2_365_440
    assert sum(p.numel() for p in method.predictor.parameters()) == 4 * 1024 * 1024
    y = torch.randn(4, 512)
    z = method.embed_equivariant(y[:, method.parts().equivariant])
    assert method.predict(z, torch.randn(4, 4)).shape == (4, 1024)


def test_split_defaults_to_half_and_scales_widths() -> None:
    cfg = SIEConfig(projector="64-64")
    assert cfg.equi_dim_for(16) == 8
    assert scaled_widths("64-64", 0.25) == (16, 16)
    method = SIE(SIEConfig(projector="64-64", equi_dim=4), torch.nn.Identity(), 16)
    assert method.parts().invariant == slice(0, 12)
    assert method.embed_equivariant(torch.randn(3, 4)).shape == (3, 16)  # 64 · 4/16
    assert method.projector_inv is not None
    assert method.projector_inv(torch.randn(3, 12)).shape == (3, 48)  # 64 · 12/16


@pytest.mark.parametrize("equi_dim", [0, 16, 40])
def test_split_larger_than_backbone_fails_clearly(equi_dim: int) -> None:
    with pytest.raises(ValueError, match="equi_dim"):
        SIEConfig(equi_dim=equi_dim).validate(16)


def test_bad_options_fail_clearly() -> None:
    with pytest.raises(ValueError, match="cov_denominator"):
        SIEConfig(cov_denominator="global")
    with pytest.raises(ValueError, match="not an integer"):
        SIEConfig(projector="2048-x")


# --------------------------------------------------------------------------- variants
def test_variants_are_registered_with_their_configs() -> None:
    for name, cls, cfg in [
        ("sie", SIE, SIEConfig),
        ("sie_nopvar", SIENoPVar, SIENoPVarConfig),
        ("sie_rotcolor", SIERotColor, SIERotColorConfig),
        ("sie_onlyequi", SIEOnlyEqui, SIEOnlyEquiConfig),
    ]:
        entry = METHODS.entry(name)
        assert entry.obj is cls and entry.config is cfg and cfg().name == name


def test_rotcolor_declares_six_dim_action(tiny_backbone, make_spec_batch) -> None:
    method = SIERotColor(SIERotColorConfig(projector=TINY_MLP), tiny_backbone(16), 16)
    assert method.spec().actions == ("rot_color",)
    assert method.predictor_action == "rot_color"
    assert torch.isfinite(method(make_spec_batch(method.spec())).loss)


def test_onlyequi_uses_one_projector(tiny_backbone, make_spec_batch) -> None:
    method = SIEOnlyEqui(SIEOnlyEquiConfig(projector=TINY_MLP), tiny_backbone(16), 16)
    assert method.projector_inv is None
    assert method.parts().invariant is None and method.parts().equivariant == slice(0, 16)
    out = method(make_spec_batch(method.spec()))
    t = out.terms
    assert t["inv"].item() == 0.0
    expected = 10 * t["equi"] + 10 * (t["var"] + t["pvar"]) + t["cov"]
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_nopvar_drops_prediction_variance(tiny_backbone, make_spec_batch) -> None:
    method = SIENoPVar(SIENoPVarConfig(projector=TINY_MLP), tiny_backbone(16), 16)
    out = method(make_spec_batch(method.spec()))
    t = out.terms
    expected = 10 * t["inv"] + 4.5 * t["equi"] + 10 * t["var"] + t["cov"]
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


# --------------------------------------------------------------------------- learning
def _rotated_pairs(n: int, gen: torch.Generator) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Images and their k·90° rotations; g = quaternion of a rotation by k·90° about z."""
    base = torch.randn(n, 3, 16, 16, generator=gen)
    k = torch.randint(0, 4, (n,), generator=gen)
    rotated = torch.stack(
        [torch.rot90(img, int(kk), dims=(1, 2)) for img, kk in zip(base, k, strict=True)]
    )
    half = k.float() * math.pi / 4  # half-angle
    quat = torch.stack([torch.zeros(n), torch.zeros(n), torch.sin(half), torch.cos(half)], 1)
    return [base, rotated], quat


def _relative_prediction_error(method: SIE, batch, shuffle: bool = False) -> float:
    """‖p_g(z_a) − z_b‖² / total variance of z_b (scale-free; 1 ≈ predicting the mean)."""
    with torch.no_grad():
        y_a, y_b = method.encode(batch.views[0]), method.encode(batch.views[1])
        part = method.parts().equivariant
        z_a, z_b = method.embed_equivariant(y_a[:, part]), method.embed_equivariant(y_b[:, part])
        g = batch.actions.pair("rotation_quat")
        if shuffle:
            g = g[torch.randperm(g.shape[0], generator=torch.Generator().manual_seed(1))]
        error = (method.predict(z_a, g) - z_b).pow(2).sum(1).mean()
        return float(error / z_b.var(0).sum())


def test_training_lowers_equivariance_error(tiny_backbone) -> None:
    """On pairs related by a known rotation, training makes the predictor error fall."""
    from sslequi.types import Actions, Batch

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    method = SIE(SIEConfig(projector=TINY_MLP), tiny_backbone(16), 16)
    opt = torch.optim.Adam(method.parameters(), lr=3e-3)

    def batch() -> Batch:
        views, quat = _rotated_pairs(64, gen)
        return Batch(
            views=views,
            params=[],
            actions=Actions(rotation_quat=quat[:, None]),
            labels=torch.zeros(64, dtype=torch.long),
            index=torch.arange(64),
        )

    fixed = batch()
    method.train()
    first = _relative_prediction_error(method, fixed)
    for _ in range(60):
        out = method(batch())
        assert torch.isfinite(out.loss)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    last = _relative_prediction_error(method, fixed)
    assert last < 0.6 * first
    assert last < _relative_prediction_error(method, fixed, shuffle=True)
