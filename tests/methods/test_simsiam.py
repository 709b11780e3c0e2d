"""SimSiam: contract, symmetric negative cosine with stop-gradient, a few finite steps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sslequi.augment.builder import make_batch_builder
from sslequi.data.synthetic import synthetic_raw_batch
from sslequi.methods.simsiam import SimSiam, SimSiamConfig
from sslequi.models.backbones import TinyBackboneConfig, resnet18_tiny
from sslequi.registry import METHODS
from sslequi.types import Batch, StepOutput


def _setup(**overrides: object) -> tuple[SimSiam, Batch]:
    torch.manual_seed(0)
    backbone, dim = resnet18_tiny(TinyBackboneConfig())
    cfg = SimSiamConfig(projector_hidden=64, projector_dim=32, predictor_hidden=16, **overrides)
    method = SimSiam(cfg, backbone, dim)
    raw, info = synthetic_raw_batch(8, method.spec().num_views)
    return method, make_batch_builder(method.spec(), info, None)(raw)


def test_registered_and_contract() -> None:
    assert METHODS.entry("simsiam").obj is SimSiam
    method, batch = _setup()
    out = method(batch)
    assert isinstance(out, StepOutput) and out.loss.ndim == 0 and out.loss.requires_grad
    assert set(out.terms) == {"neg_cosine"}
    assert [f.shape for f in out.features] == [(8, 64), (8, 64)]
    assert -1.0 <= out.loss.item() <= 1.0


def test_loss_formula() -> None:
    method, batch = _setup()
    method.eval()
    with torch.no_grad():
        out = method(batch)
        z = [method.projector(method.backbone(v)) for v in batch.views]
        p = [method.predictor(x) for x in z]
        expected = -0.5 * (
            F.cosine_similarity(p[0], z[1]).mean() + F.cosine_similarity(p[1], z[0]).mean()
        )
    torch.testing.assert_close(out.loss, expected)


def _manual(method: SimSiam, y_1: torch.Tensor, y_2: torch.Tensor, stop: bool) -> torch.Tensor:
    z_1, z_2 = method.projector(y_1), method.projector(y_2)
    p_1, p_2 = method.predictor(z_1), method.predictor(z_2)
    t_1, t_2 = (z_1.detach(), z_2.detach()) if stop else (z_1, z_2)
    return -0.5 * (F.cosine_similarity(p_1, t_2).mean() + F.cosine_similarity(p_2, t_1).mean())


def test_stop_gradient_on_targets() -> None:
    """The gradient w.r.t. the features equals the stop-gradient formula's, not the plain one."""
    method, batch = _setup()
    method.eval()
    with torch.no_grad():
        features = [method.backbone(v) for v in batch.views]
    y = [f.clone().requires_grad_(True) for f in features]
    ours = torch.autograd.grad(method.siamese_loss(*y), y)
    stopped = torch.autograd.grad(_manual(method, *y, stop=True), y)
    plain = torch.autograd.grad(_manual(method, *y, stop=False), y)
    for a, b in zip(ours, stopped, strict=True):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(ours[0], plain[0])


def test_two_layer_projector_option() -> None:
    method, batch = _setup(projector_layers=2)
    linears = [m for m in method.projector.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 2
    assert torch.isfinite(method(batch).loss)
    with pytest.raises(ValueError, match="projector_layers"):
        SimSiamConfig(projector_layers=4)


def test_a_few_steps_are_finite_and_learn() -> None:
    method, batch = _setup()
    optimizer = torch.optim.SGD(method.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for step in range(5):
        out = method(batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.on_step_end(step + 1, 5)
        losses.append(out.loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
