"""SIE-table / seq-JEPA-table baselines (methods.md §2.3, §3–§6)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss, VICRegLoss

from sslequi.methods.augself import AugSelf, AugSelfConfig, augself_regression
from sslequi.methods.equimod import EquiMod, EquiModConfig, vicreg_equivariance_terms
from sslequi.methods.losses import vicreg_terms
from sslequi.methods.sen import SEN, SENConfig, sen_loss
from sslequi.methods.vicreg_partinv import (
    VICRegPartInv,
    VICRegPartInvConfig,
    partial_invariance_terms,
)
from sslequi.methods.vicreg_traj import VICRegTraj, VICRegTrajConfig, trajectory_loss

TINY = "32-32"


def test_vicreg_terms_match_lightly() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(10, 6, generator=gen), torch.randn(10, 6, generator=gen)
    t = vicreg_terms(a, b)
    ours = 25 * t["sim"] + 25 * t["var"] + 1 * t["cov"]
    reference = VICRegLoss(lambda_param=25, mu_param=25, nu_param=1)(a, b)
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)


def test_partial_invariance_ignores_last_dims() -> None:
    z_a = torch.tensor([[1.0, 0.0, 5.0], [0.0, 1.0, -5.0]])
    z_b = torch.tensor([[1.0, 2.0, -7.0], [0.0, 1.0, 3.0]])  # differs in dim 1 (once) and dim 2
    t = partial_invariance_terms(z_a, z_b, inv_dims=2)
    assert t["inv"].item() == pytest.approx(4.0 / 4)  # (0 + 4 + 0 + 0) / (2 × 2)
    full = vicreg_terms(z_a, z_b)
    assert torch.allclose(t["var"], full["var"]) and torch.allclose(t["cov"], full["cov"])


def test_partinv_default_split_and_error(tiny_backbone, make_spec_batch) -> None:
    method = VICRegPartInv(VICRegPartInvConfig(projector="24-24"), tiny_backbone(16), 16)
    assert method.inv_dims == 24 - 8
    assert torch.isfinite(method(make_spec_batch(method.spec())).loss)
    with pytest.raises(ValueError, match="equi_dim"):
        VICRegPartInvConfig(projector=TINY, equi_dim=32).validate(16)


def test_equimod_simclr_loss_matches_lightly(tiny_backbone, make_spec_batch) -> None:
    method = EquiMod(EquiModConfig(projector=TINY), tiny_backbone(16), 16)
    batch = make_spec_batch(method.spec())
    out = method(batch)
    y_a, y_b = method.backbone(batch.views[0]), method.backbone(batch.views[1])
    ntxent = NTXentLoss(temperature=0.1)
    inv = ntxent(method.projector_inv(y_a), method.projector_inv(y_b))
    pred = method.predict(method.embed_equivariant(y_a), batch.actions.pair("rotation_quat"))
    equi = ntxent(pred, method.embed_equivariant(y_b))
    assert out.loss.item() == pytest.approx((inv + equi).item(), rel=1e-5)


def test_equimod_vicreg_flavour(tiny_backbone, make_spec_batch) -> None:
    cfg = EquiModConfig(projector=TINY, flavour="vicreg", equi_weight=0.5)
    method = EquiMod(cfg, tiny_backbone(16), 16)
    out = method(make_spec_batch(method.spec()))
    assert out.loss.item() == pytest.approx(
        (out.terms["inv"] + 0.5 * out.terms["equi"]).item(), rel=1e-5
    )
    # equivariance terms: MSE against the prediction, var/cov on the two embeddings
    z_a, z_b = torch.tensor([[0.0], [2.0]]), torch.tensor([[1.0], [1.0]])
    t = vicreg_equivariance_terms(torch.tensor([[1.0], [3.0]]), z_a, z_b)
    assert t["sim"].item() == pytest.approx(2.0)
    # v: z_a var 2 → hinge 0; z_b var 0 → hinge 1 − √1e-4 = 0.99 → ½·0 + ½·0.99
    assert t["var"].item() == pytest.approx(0.495, abs=1e-6)
    with pytest.raises(ValueError, match="flavour"):
        EquiModConfig(flavour="byol")


def test_sen_loss_matches_lightly(tiny_backbone, make_spec_batch) -> None:
    gen = torch.Generator().manual_seed(1)
    pred, z = torch.randn(6, 5, generator=gen), torch.randn(6, 5, generator=gen)
    assert sen_loss(pred, z, 0.1).item() == pytest.approx(
        NTXentLoss(temperature=0.1)(pred, z).item(), rel=1e-5
    )
    method = SEN(SENConfig(projector=TINY, predictor={"type": "mlp"}), tiny_backbone(16), 16)
    assert method.has_predictor and method.predictor_action == "rotation_quat"
    assert torch.isfinite(method(make_spec_batch(method.spec())).loss)


def test_augself_hand_computed_and_total(tiny_backbone, make_spec_batch) -> None:
    pred = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0]])
    target = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    assert augself_regression(pred, target).item() == pytest.approx(3.0 / 8)
    method = AugSelf(AugSelfConfig(projector=TINY, ec_weight=2.0), tiny_backbone(16), 16)
    assert not method.has_predictor
    assert method.head[0].in_features == 32 and method.head[-1].out_features == 4
    out = method(make_spec_batch(method.spec()))
    expected = out.terms["inv"] + 2.0 * out.terms["augself"]
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    rotcolor = AugSelf(AugSelfConfig(projector=TINY, action="rot_color"), tiny_backbone(16), 16)
    assert rotcolor.spec().actions == ("rot_color",) and rotcolor.head[-1].out_features == 6


def test_trajectory_loss_hand_computed() -> None:
    y_l, y_c = torch.tensor([[1.0, -1.0]]), torch.tensor([[1.0, 0.0]])
    # v1 = (0, 1), v2 = (0, ±1); both ⟂ y_c, so u = v: aligned → −1, opposed → +1
    assert trajectory_loss(y_l, y_c, torch.tensor([[1.0, 1.0]])).item() == pytest.approx(-1.0)
    assert trajectory_loss(y_l, y_c, torch.tensor([[1.0, -1.0]])).item() == pytest.approx(1.0)
    # Unnormalised centre (as coded): c = (2, 0), y_l = (1, −1) → v1 = (1, 1),
    # u1 = v1 − ⟨v1, c⟩ c = (1, 1) − 2·(2, 0) = (−3, 1); y_r = (3, 0) → v2 = (1, 0),
    # u2 = (1, 0) − 2·(2, 0) = (−3, 0); cos = 9 / (√10 · 3) = 3/√10
    loss = trajectory_loss(
        torch.tensor([[1.0, -1.0]]), torch.tensor([[2.0, 0.0]]), torch.tensor([[3.0, 0.0]])
    )
    assert loss.item() == pytest.approx(-3 / 10**0.5, rel=1e-6)
    # normalised centre: ĉ = (1, 0): u1 = (1,1) − 1·(1,0) = (0, 1), u2 = (1,0) − (1,0) = 0 → cos 0
    normed = trajectory_loss(
        torch.tensor([[1.0, -1.0]]), torch.tensor([[2.0, 0.0]]), torch.tensor([[3.0, 0.0]]), True
    )
    assert normed.item() == pytest.approx(0.0, abs=1e-6)


def test_vicreg_traj_uses_triplets(tiny_backbone, make_spec_batch) -> None:
    method = VICRegTraj(VICRegTrajConfig(projector=TINY), tiny_backbone(16), 16)
    spec = method.spec()
    assert spec.num_views == 3 and spec.structure == "triplets" and spec.actions == ()
    out = method(make_spec_batch(spec))
    t = out.terms
    expected = 25 * t["sim"] + 25 * t["var"] + t["cov"] + t["traj"]
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert len(out.features) == 3


@pytest.mark.parametrize("flavour", ["simclr", "vicreg"])
def test_equimod_predictor_error_falls(flavour: str, tiny_backbone) -> None:
    """On pairs where view 2 is a g-dependent linear map of view 1's pixels, training
    makes the relative predictor error fall."""
    from sslequi.types import Actions, Batch

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    method = EquiMod(EquiModConfig(projector=TINY, flavour=flavour), tiny_backbone(16), 16)
    opt = torch.optim.Adam(method.parameters(), lr=3e-3)

    def batch() -> Batch:
        x = torch.randn(64, 3, 16, 16, generator=gen)
        k = torch.randint(0, 4, (64,), generator=gen)
        x2 = torch.stack(
            [torch.rot90(img, int(kk), dims=(1, 2)) for img, kk in zip(x, k, strict=True)]
        )
        g = F.one_hot(k, 4).float()[:, None]
        return Batch(
            [x, x2],
            [],
            Actions(rotation_quat=g),
            torch.zeros(64, dtype=torch.long),
            torch.arange(64),
        )

    def error(b: Batch) -> float:
        with torch.no_grad():
            z_a = method.embed_equivariant(method.encode(b.views[0]))
            z_b = method.embed_equivariant(method.encode(b.views[1]))
            p = method.predict(z_a, b.actions.pair("rotation_quat"))
            return float((p - z_b).pow(2).sum(1).mean() / z_b.var(0).sum())

    fixed = batch()
    first = error(fixed)
    for _ in range(40):
        out = method(batch())
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        assert torch.isfinite(out.loss)
    assert error(fixed) < 0.7 * first
