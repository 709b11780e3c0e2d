"""``optim.lars_trust_ratio=update_norm``: the LARS of E-SSL's ImageNet code (methods.md
§7.4), against a per-parameter re-implementation of its update written from the formulas:
u = g + λp, q = η‖p‖/‖u‖ (1 if a norm is 0), μ ← mμ + qu, p ← p − lr·μ; parameters in a
group without decay take neither decay nor adaptation."""

from __future__ import annotations

import copy

import pytest
import torch

from sslequi.config import LarsTrustRatio, OptimConfig, OptimizerName
from sslequi.train.optim import make_optimizer, param_groups


def _reference_steps(model: torch.nn.Module, grads: list[list[torch.Tensor]], lr: float) -> None:
    eta, decay, momentum = 0.001, 1e-2, 0.9
    buffers = [torch.zeros_like(p) for p in model.parameters()]
    for step_grads in grads:
        with torch.no_grad():
            for p, g, mu in zip(model.parameters(), step_grads, buffers, strict=True):
                if p.ndim > 1:  # exclude_bias_and_norm: 1-D params skip decay and adaptation
                    u = g + decay * p
                    pn, un = float(p.norm()), float(u.norm())
                    q = eta * pn / un if pn > 0 and un > 0 else 1.0
                    u = q * u
                else:
                    u = g
                mu.mul_(momentum).add_(u)
                p.sub_(lr * mu)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 3)
    )


def _run(trust: LarsTrustRatio, grads: list[list[torch.Tensor]]) -> torch.nn.Module:
    model = _model()
    config = OptimConfig(
        name=OptimizerName.lars, weight_decay=1e-2, exclude_bias_norm_from_wd=True,
        lars_trust_ratio=trust,
    )  # fmt: skip
    optimizer = make_optimizer(param_groups(model, config, 0.5, None), config)
    for step_grads in grads:
        for p, g in zip(model.parameters(), step_grads, strict=True):
            p.grad = g.clone()
        optimizer.step()
    return model


def test_update_norm_lars_equals_the_reference_update() -> None:
    g = torch.Generator().manual_seed(1)
    shapes = [p.shape for p in _model().parameters()]
    grads = [[torch.randn(s, generator=g) for s in shapes] for _ in range(3)]
    ours = _run(LarsTrustRatio.update_norm, grads)
    reference = copy.deepcopy(_model())
    _reference_steps(reference, grads, 0.5)
    for a, b in zip(ours.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    lightly = _run(LarsTrustRatio.lightly, grads)  # ‖g‖ + λ‖p‖ in the denominator instead
    weight = next(iter(lightly.parameters()))
    assert not torch.allclose(weight, next(iter(ours.parameters())), atol=1e-7, rtol=0)


def test_update_norm_lars_refuses_nesterov() -> None:
    config = OptimConfig(
        name=OptimizerName.lars, nesterov=True, lars_trust_ratio=LarsTrustRatio.update_norm
    )
    with pytest.raises(ValueError, match="Nesterov"):
        make_optimizer(param_groups(_model(), config, 0.1, None), config)
