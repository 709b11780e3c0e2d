"""CapsIE, re-implemented (methods.md §10.6): target sharpening, the temperature schedule
of §10.2, SIE's hypernetwork on the flattened poses, the loss's structure."""

from __future__ import annotations

import math

import pytest
import torch

from sslequi.methods.capsie import (
    CapsIE,
    CapsIEConfig,
    capsie_invariance,
    sharpen,
    target_temperature_at,
)
from sslequi.methods.equicaps import memax_penalty
from sslequi.models.backbones import BackboneConfig, build_resnet
from sslequi.models.hypernetwork import HypernetworkPredictor, PredictorConfig
from tests.methods.conftest import IMAGE_SIZE, spec_batch


def test_sharpening_by_hand() -> None:
    p = torch.tensor([[0.2, 0.8], [0.5, 0.5]])
    assert torch.allclose(sharpen(p, 1.0), p)
    squared = torch.tensor([[0.04 / 0.68, 0.64 / 0.68], [0.5, 0.5]])
    assert torch.allclose(sharpen(p, 2.0), squared)


def test_invariance_objective_by_hand() -> None:
    a_1 = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    a_2 = torch.tensor([[0.2, 0.8], [0.6, 0.4]])
    # T_a / T_t = 0.1 / 0.05 = 2: targets (0.04, 0.64)/0.68 and (0.36, 0.16)/0.52
    q = [(0.04 / 0.68, 0.64 / 0.68), (0.36 / 0.52, 0.16 / 0.52)]
    ce = -0.5 * (
        q[0][0] * math.log(0.25)
        + q[0][1] * math.log(0.75)
        + q[1][0] * math.log(0.5)
        + q[1][1] * math.log(0.5)
    )
    memax = memax_penalty(a_1) + memax_penalty(a_2)
    got = capsie_invariance(a_1, a_2, 0.1, 0.05, memax_coeff=1.0)
    assert got.item() == pytest.approx(ce + memax.item(), rel=1e-6)
    assert capsie_invariance(a_1, a_2, 0.1, 0.05, memax_coeff=0.0).item() == pytest.approx(
        ce, rel=1e-6
    )


def test_target_temperature_schedule() -> None:
    """§10.2: T_t goes 0.025 → 0.1 over 1.25 × the total steps, ending at ≈ 0.085."""
    assert target_temperature_at(0, 1000, 0.025, 0.1, 1.25) == pytest.approx(0.025)
    assert target_temperature_at(1000, 1000, 0.025, 0.1, 1.25) == pytest.approx(0.085)
    assert target_temperature_at(5000, 1000, 0.025, 0.1, 1.25) == pytest.approx(0.1)


def _method(**overrides: object) -> CapsIE:
    torch.manual_seed(0)
    backbone, dim = build_resnet(18, BackboneConfig(width_multiplier=0.125, stem="cifar"))
    return CapsIE(CapsIEConfig(resolution=IMAGE_SIZE, **overrides), backbone, dim)  # type: ignore[arg-type]


def test_paper_shapes_and_the_hypernetwork_on_the_poses() -> None:
    method = _method()
    assert method.capsules.num_capsules == 16 and method.capsules.pose_side == 4
    assert method.pose_dim == 256
    assert isinstance(method.predictor, HypernetworkPredictor)
    assert method.predictor.hypernet.weight.shape == (256 * 256, 4)  # W(q) = Σ q_k A_k
    assert method.predictor_action == "rotation_quat"
    assert method.predictor_representation in method.representations()
    z = torch.randn(3, 256)
    assert torch.equal(method.embed_equivariant(z), z)
    with pytest.raises(ValueError, match="256-d flattened poses"):
        method.embed_equivariant(torch.randn(3, 64))
    preserving = _method(predictor=PredictorConfig(init="norm_preserving"))
    q = torch.nn.functional.normalize(torch.randn(512, 4), dim=1)
    ratio = preserving.predict(torch.randn(512, 256), q).norm(dim=1).mean() / math.sqrt(256)
    assert 0.8 < ratio.item() < 1.2


def test_loss_is_sie_structured_and_trains() -> None:
    method = _method(num_capsules=4)
    batch = spec_batch(method.spec(), batch_size=6)
    out = method(batch)
    t = out.terms
    assert set(t) == {"inv", "equi", "var", "pvar", "cov", "target_temperature"}
    expected = 10 * t["inv"] + 4.5 * t["equi"] + 10 * (t["var"] + t["pvar"]) + t["cov"]
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # Uniform routing at init: CE = log K (sharpening a uniform target keeps it uniform).
    assert t["inv"].item() == pytest.approx(math.log(4), rel=1e-5)
    out.loss.backward()
    assert method.predictor.hypernet.weight.grad is not None
    assert method.capsules.routing.W1.grad is not None  # type: ignore[union-attr]
    method.on_step_end(100, 100)
    assert method.target_temperature.item() == pytest.approx(0.085)
    assert "target_temperature" in method.state_dict()


def test_bad_configs_fail_clearly() -> None:
    with pytest.raises(ValueError, match="temperatures must be > 0"):
        CapsIEConfig(target_temperature_start=0.0)
    with pytest.raises(ValueError, match="square size"):
        CapsIEConfig(pose="4x3")
    with pytest.raises(ValueError, match="num_capsules"):
        CapsIEConfig(num_capsules=1)
