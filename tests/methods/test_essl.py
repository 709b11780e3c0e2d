"""E-SSL as a composition over any invariant method (methods.md §7)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sslequi.augment.builder import make_batch_builder
from sslequi.data.synthetic import synthetic_raw_batch
from sslequi.methods.essl import ESSL, ESSLConfig, rotation_classification_loss, rotation_head
from sslequi.methods.losses import cross_view_infonce

TINY = "32-32"


def _essl(tiny_backbone, **kwargs) -> ESSL:
    overrides = {"projector": TINY, **kwargs.pop("base_overrides", {})}
    cfg = ESSLConfig(base_overrides=overrides, head_hidden=16, rotated_size=8, **kwargs)
    return ESSL(cfg, tiny_backbone(16), 16)


def test_rotation_loss_hand_computed() -> None:
    logits = torch.zeros(8, 4)
    labels = torch.arange(4).repeat(2)
    assert rotation_classification_loss(logits, labels).item() == pytest.approx(math.log(4))
    logits = torch.tensor([[math.log(3.0), 0.0, 0.0, 0.0]])  # p(0) = 3/6
    assert rotation_classification_loss(logits, torch.tensor([0])).item() == pytest.approx(
        math.log(2)
    )


def test_cross_view_infonce_matches_explicit_sum() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    an, bn = F.normalize(a, dim=1), F.normalize(b, dim=1)
    total = 0.0
    for i in range(5):  # ½ NCE(a, b) + ½ NCE(b, a), B − 1 cross-view negatives
        row = [float(an[i] @ bn[j]) / 0.5 for j in range(5)]
        col = [float(bn[i] @ an[j]) / 0.5 for j in range(5)]
        total += 0.5 * (math.log(sum(math.exp(r) for r in row)) - row[i])
        total += 0.5 * (math.log(sum(math.exp(c) for c in col)) - col[i])
    assert cross_view_infonce(a, b, 0.5).item() == pytest.approx(total / 5, rel=1e-5)


def test_composition_loss_terms_and_spec(tiny_backbone, make_spec_batch) -> None:
    method = _essl(tiny_backbone, rotation_weight=0.4)
    spec = method.spec()
    assert spec.num_views == 2 and spec.rotated_view is not None
    assert spec.rotated_view.size == 8 and spec.rotated_view.scale == (0.2, 1.0)
    out = method(make_spec_batch(spec))
    assert out.loss.item() == pytest.approx((out.terms["base"] + 0.4 * out.terms["rot"]).item())
    assert "nt_xent" in out.terms and 0.0 <= out.terms["rot_acc"].item() <= 1.0
    assert len(out.features) == 2


def test_base_overrides_reach_the_base(tiny_backbone) -> None:
    method = _essl(tiny_backbone, base_overrides={"temperature": 0.5, "negatives": "cross_view"})
    assert method.base.config.temperature == 0.5
    assert method.base.config.negatives == "cross_view"
    assert method.backbone is method.base.backbone


def test_e_simclr_base_loss_is_cross_view_infonce(tiny_backbone, make_spec_batch) -> None:
    method = _essl(tiny_backbone, base_overrides={"temperature": 0.5, "negatives": "cross_view"})
    batch = make_spec_batch(method.spec())
    out = method(batch)
    y = [method.backbone(v) for v in batch.views]
    expected = cross_view_infonce(method.base.projector(y[0]), method.base.projector(y[1]), 0.5)
    assert out.terms["base"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_single_backbone_copy_in_state_dict(tiny_backbone) -> None:
    method = _essl(tiny_backbone)
    keys = list(method.state_dict())
    assert not any(k.startswith("backbone.") for k in keys)
    assert any(k.startswith("base.backbone.") for k in keys)
    n_params = sum(p.numel() for p in method.parameters())
    assert n_params == sum(p.numel() for p in method.base.parameters()) + sum(
        p.numel() for p in method.rotation_head.parameters()
    )


def test_bad_configs_fail_clearly(tiny_backbone, make_spec_batch) -> None:
    with pytest.raises(ValueError, match="not fields of SimCLRConfig"):
        ESSLConfig(base_overrides={"temprature": 0.5})
    with pytest.raises(ValueError, match="available"):
        ESSLConfig(base="simclrr")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        ESSLConfig(base_overrides={"temperature": -1.0})
    with pytest.raises(ValueError, match="invariant method"):
        ESSLConfig(base="essl")
    method = _essl(tiny_backbone)
    batch = make_spec_batch(method.spec())
    batch.rotated = None
    with pytest.raises(ValueError, match="rotated"):
        method(batch)


def test_heads_follow_the_reference() -> None:
    simclr_head = rotation_head(512)
    relus = [m for m in simclr_head if isinstance(m, torch.nn.ReLU)]
    norms = [m for m in simclr_head if isinstance(m, torch.nn.LayerNorm)]
    assert len(relus) == 2 and len(norms) == 2 and simclr_head[-1].out_features == 4
    simsiam_head = rotation_head(512, second_relu=False)
    assert len([m for m in simsiam_head if isinstance(m, torch.nn.ReLU)]) == 1
    imagenet = rotation_head(2048, bottleneck=128)
    assert imagenet[-1].in_features == 128 and isinstance(imagenet[-2], torch.nn.LayerNorm)


def test_trains_on_synthetic_through_the_batch_builder(tiny_backbone) -> None:
    """spec → make_batch_builder → Batch with the rotated view → finite loss over steps."""
    torch.manual_seed(0)
    method = _essl(tiny_backbone, base_overrides={"temperature": 0.5})
    raw, info = synthetic_raw_batch(8, 2, resolution=16)
    build = make_batch_builder(method.spec(), info, None)
    opt = torch.optim.Adam(method.parameters(), lr=1e-3)
    for _ in range(3):
        batch = build(raw)
        assert batch.rotated is not None and batch.rotated.images.shape[0] == 4 * 8
        out = method(batch)
        assert torch.isfinite(out.loss)
        opt.zero_grad()
        out.loss.backward()
        opt.step()


@pytest.mark.parametrize("base", ["simsiam", "vicreg", "byol"])
def test_any_invariant_base(base: str, tiny_backbone, make_spec_batch) -> None:
    overrides = {"projector": TINY} if base == "vicreg" else {}
    cfg = ESSLConfig(base=base, base_overrides=overrides, head_hidden=16, rotated_size=8)
    method = ESSL(cfg, tiny_backbone(16), 16)
    out = method(make_spec_batch(method.spec()))
    assert torch.isfinite(out.loss)
    method.on_step_end(1, 10)  # BYOL's EMA update goes through the composition
