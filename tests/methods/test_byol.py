"""BYOL: contract, symmetric 2 − 2cos loss against the EMA target, EMA update and schedule."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sslequi.augment.builder import make_batch_builder
from sslequi.data.synthetic import synthetic_raw_batch
from sslequi.methods.byol import BYOL, BYOLConfig
from sslequi.models.backbones import TinyBackboneConfig, resnet18_tiny
from sslequi.registry import METHODS
from sslequi.types import Batch, StepOutput


def _setup(**overrides: object) -> tuple[BYOL, Batch]:
    torch.manual_seed(0)
    backbone, dim = resnet18_tiny(TinyBackboneConfig())
    cfg = BYOLConfig(projector_hidden=64, projector_dim=32, predictor_hidden=64, **overrides)
    method = BYOL(cfg, backbone, dim)
    raw, info = synthetic_raw_batch(8, method.spec().num_views)
    return method, make_batch_builder(method.spec(), info, None)(raw)


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_registered_defaults_and_contract() -> None:
    assert METHODS.entry("byol").config is BYOLConfig
    cfg = BYOLConfig()
    assert (cfg.projector_hidden, cfg.projector_dim, cfg.base_momentum) == (4096, 256, 0.996)
    method, batch = _setup()
    out = method(batch)
    assert isinstance(out, StepOutput) and out.loss.requires_grad
    assert set(out.terms) == {"regression", "momentum"}
    assert [f.shape for f in out.features] == [(8, 64), (8, 64)]
    assert 0.0 <= out.loss.item() <= 8.0


def test_target_starts_as_a_frozen_copy() -> None:
    method, _ = _setup()
    for online, target in zip(
        method.backbone.parameters(), method.target_backbone.parameters(), strict=True
    ):
        assert torch.equal(online, target) and not target.requires_grad
    assert all(not p.requires_grad for p in method.target_projector.parameters())


def test_loss_formula_uses_target_without_gradient() -> None:
    method, batch = _setup()
    method.eval()
    out = method(batch)
    with torch.no_grad():
        p = [method.predictor(method.projector(method.backbone(v))) for v in batch.views]
        t = [method.target_projector(method.target_backbone(v)) for v in batch.views]
        expected = (2 - 2 * F.cosine_similarity(p[0], t[1]).mean()) + (
            2 - 2 * F.cosine_similarity(p[1], t[0]).mean()
        )
    torch.testing.assert_close(out.loss.detach(), expected)
    out.loss.backward()
    assert all(p.grad is None for p in method.target_backbone.parameters())


def test_target_is_ema_of_online_after_a_step() -> None:
    method, batch = _setup(base_momentum=0.9)
    optimizer = torch.optim.SGD(
        [p for p in method.parameters() if p.requires_grad], lr=0.1, momentum=0.0
    )
    target_before = _params(method.target_backbone) + _params(method.target_projector)
    out = method(batch)
    optimizer.zero_grad()
    out.loss.backward()
    optimizer.step()
    online_after = _params(method.backbone) + _params(method.projector)
    method.on_step_end(step=0, total_steps=10)  # cosine schedule at k = 0: τ = τ_base
    assert method.momentum == pytest.approx(0.9)
    target_after = _params(method.target_backbone) + _params(method.target_projector)
    changed = 0
    for before, online, after in zip(target_before, online_after, target_after, strict=True):
        torch.testing.assert_close(after, 0.9 * before + 0.1 * online)
        changed += int(not torch.equal(before, after))
    assert changed > 0


def test_momentum_schedule() -> None:
    method, _ = _setup(base_momentum=0.99)
    method.on_step_end(5, 10)
    expected = 1 - (1 - 0.99) * (math.cos(math.pi * 0.5) + 1) / 2
    assert method.momentum == pytest.approx(expected)
    method.on_step_end(10, 10)
    assert method.momentum == pytest.approx(1.0)
    constant, _ = _setup(base_momentum=0.99, momentum_schedule="constant")
    constant.on_step_end(5, 10)
    assert constant.momentum == pytest.approx(0.99)
    with pytest.raises(ValueError, match="momentum_schedule"):
        BYOLConfig(momentum_schedule="linear")


def test_a_few_steps_are_finite() -> None:
    method, batch = _setup()
    optimizer = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=1e-3)
    for step in range(4):
        out = method(batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.on_step_end(step + 1, 4)
        assert torch.isfinite(out.loss)
