"""VICReg: contract, weighted terms = lightly's VICRegLoss, configurable coefficients."""

from __future__ import annotations

import pytest
import torch
from lightly.loss import VICRegLoss

from sslequi.augment.builder import make_batch_builder
from sslequi.data.synthetic import synthetic_raw_batch
from sslequi.methods.vicreg import VICReg, VICRegConfig
from sslequi.models.backbones import TinyBackboneConfig, resnet18_tiny
from sslequi.registry import METHODS
from sslequi.types import Batch, StepOutput


def _setup(**overrides: object) -> tuple[VICReg, Batch]:
    torch.manual_seed(0)
    backbone, dim = resnet18_tiny(TinyBackboneConfig())
    method = VICReg(VICRegConfig(projector="64-64-32", **overrides), backbone, dim)
    raw, info = synthetic_raw_batch(8, method.spec().num_views)
    return method, make_batch_builder(method.spec(), info, None)(raw)


def test_registered_defaults_follow_the_vicreg_paper() -> None:
    assert METHODS.entry("vicreg").config is VICRegConfig
    cfg = VICRegConfig()
    assert (cfg.sim_coeff, cfg.std_coeff, cfg.cov_coeff) == (25.0, 25.0, 1.0)
    assert cfg.projector == "2048-2048-2048"


def test_step_output_contract() -> None:
    method, batch = _setup()
    out = method(batch)
    assert isinstance(out, StepOutput) and out.loss.requires_grad
    assert set(out.terms) == {"sim", "var", "cov"}
    assert all(not t.requires_grad and t.ndim == 0 for t in out.terms.values())
    assert [f.shape for f in out.features] == [(8, 64), (8, 64)]
    assert not any(f.requires_grad for f in out.features)


@pytest.mark.parametrize("coefficients", [(25.0, 25.0, 1.0), (10.0, 10.0, 1.0)])
def test_loss_matches_lightly(coefficients: tuple[float, float, float]) -> None:
    lam, mu, nu = coefficients
    method, batch = _setup(sim_coeff=lam, std_coeff=mu, cov_coeff=nu)
    method.eval()
    with torch.no_grad():
        out = method(batch)
        z = [method.projector(method.backbone(v)) for v in batch.views]
        expected = VICRegLoss(lam, mu, nu)(z[0], z[1])
    torch.testing.assert_close(out.loss, expected)
    recombined = lam * out.terms["sim"] + mu * out.terms["var"] + nu * out.terms["cov"]
    torch.testing.assert_close(recombined, out.loss)


def test_negative_coefficient_rejected() -> None:
    with pytest.raises(ValueError, match="std_coeff"):
        VICRegConfig(std_coeff=-1.0)


def test_a_few_steps_are_finite_and_learn() -> None:
    method, batch = _setup()
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    losses = []
    for step in range(4):
        out = method(batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.on_step_end(step + 1, 4)
        losses.append(out.loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
