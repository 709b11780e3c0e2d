"""SimCLR: contract, loss = NT-Xent of the projections, a few finite steps."""

from __future__ import annotations

import pytest
import torch

from sslequi.augment.builder import make_batch_builder
from sslequi.data.synthetic import synthetic_raw_batch
from sslequi.methods.losses import nt_xent
from sslequi.methods.simclr import SimCLR, SimCLRConfig
from sslequi.models.backbones import TinyBackboneConfig, resnet18_tiny
from sslequi.registry import METHODS
from sslequi.types import Batch, StepOutput


def _setup(**overrides: object) -> tuple[SimCLR, Batch]:
    torch.manual_seed(0)
    backbone, dim = resnet18_tiny(TinyBackboneConfig())
    method = SimCLR(SimCLRConfig(projector="64-64-32", **overrides), backbone, dim)
    raw, info = synthetic_raw_batch(8, method.spec().num_views)
    return method, make_batch_builder(method.spec(), info, None)(raw)


def test_registered_and_spec() -> None:
    assert METHODS.entry("simclr").obj is SimCLR
    assert METHODS.entry("simclr").config is SimCLRConfig
    method, _ = _setup()
    assert method.spec().num_views == 2 and method.spec().actions == ()


def test_step_output_contract() -> None:
    method, batch = _setup()
    out = method(batch)
    assert isinstance(out, StepOutput)
    assert out.loss.ndim == 0 and out.loss.requires_grad
    assert set(out.terms) == {"nt_xent"}
    assert all(t.ndim == 0 and not t.requires_grad for t in out.terms.values())
    assert len(out.features) == 2
    for feature in out.features:
        assert feature.shape == (8, method.feature_dim) and not feature.requires_grad


def test_loss_is_nt_xent_of_projections() -> None:
    method, batch = _setup(temperature=0.3)
    method.eval()  # fixed BN statistics so both computations see the same projections
    with torch.no_grad():
        out = method(batch)
        z = [method.projector(method.backbone(v)) for v in batch.views]
        expected = nt_xent(z[0], z[1], 0.3)
    torch.testing.assert_close(out.loss, expected)


def test_cross_view_option_and_bad_temperature() -> None:
    method, batch = _setup(negatives="cross_view")
    assert torch.isfinite(method(batch).loss)
    with pytest.raises(ValueError, match="temperature"):
        SimCLRConfig(temperature=0.0)


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
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
