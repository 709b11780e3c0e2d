"""The EMA helper for momentum targets (sslequi/models/ema.py) against hand computation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sslequi.models.ema import EMA, cosine_momentum, ema_update


def test_ema_update_by_hand() -> None:
    online = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    target = EMA(online)
    with torch.no_grad():
        for parameter in online.parameters():
            parameter.fill_(1.0)
        online[1].running_mean.fill_(5.0)
    before = target.module[0].weight.clone()
    target.update(online, momentum=0.75)
    expected = 0.75 * before + 0.25 * torch.ones_like(before)
    assert torch.allclose(target.module[0].weight, expected)
    assert torch.equal(target.module[1].running_mean, torch.full((2,), 5.0))  # copied
    assert not any(p.requires_grad for p in target.parameters())
    ema_update(target.module, online, momentum=0.0)
    assert torch.equal(target.module[0].weight, online[0].weight)


def test_ema_rejects_bad_momentum_and_mismatched_modules() -> None:
    with pytest.raises(ValueError, match="momentum"):
        ema_update(nn.Linear(2, 2), nn.Linear(2, 2), 1.5)
    with pytest.raises(ValueError, match="differ"):
        ema_update(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2)), 0.5)


def test_cosine_momentum_schedule() -> None:
    assert cosine_momentum(0, 100, 0.996) == pytest.approx(0.996)
    assert cosine_momentum(100, 100, 0.996) == pytest.approx(1.0)
    halfway = 1 - (1 - 0.996) * (math.cos(math.pi * 0.5) + 1) / 2
    assert cosine_momentum(50, 100, 0.996) == pytest.approx(halfway)
