"""Each METHODS-owned method consumes exactly the views and actions its spec declares, and
trains for a few steps on the synthetic 3D data through the batch builder."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sslequi.augment.builder import make_batch_builder
from sslequi.config import import_components
from sslequi.data.synthetic import synthetic_raw_batch
from sslequi.registry import METHODS
from sslequi.types import ACTION_DIMS, Actions

TINY = "32-32"
CASES: dict[str, dict[str, object]] = {
    "sie": {"projector": TINY},
    "sie_nopvar": {"projector": TINY},
    "sie_rotcolor": {"projector": TINY},
    "sie_onlyequi": {"projector": TINY},
    "vicreg_partinv": {"projector": TINY},
    "equimod": {"projector": TINY},
    "equimod_vicreg": {"projector": TINY, "flavour": "vicreg"},
    "sen": {"projector": TINY},
    "augself": {"projector": TINY},
    "vicreg_traj": {"projector": TINY},
    "essl": {"base_overrides": {"projector": TINY}, "head_hidden": 16, "rotated_size": 8},
}


def _build(case: str, backbone: torch.nn.Module):
    import_components()
    name = "equimod" if case == "equimod_vicreg" else case
    entry = METHODS.entry(name)
    assert entry.config is not None
    config = entry.config(**CASES[case])
    return entry.obj(config, backbone, 16)


@pytest.mark.parametrize("case", sorted(CASES))
def test_consumes_exactly_the_declared_inputs(case: str, tiny_backbone, make_spec_batch) -> None:
    method = _build(case, tiny_backbone(16))
    spec = method.spec()
    exact = make_spec_batch(spec)
    assert torch.isfinite(method(exact).loss)

    # Undeclared inputs are poisoned with NaN: an extra view and every undeclared action.
    poisoned = make_spec_batch(spec)
    poisoned.views.append(torch.full_like(poisoned.views[0], float("nan")))
    b, v = poisoned.batch_size, spec.num_views
    undeclared = {
        name: torch.full((b, v - 1 if v > 1 else 1, k), float("nan"))
        for name, k in ACTION_DIMS.items()
        if name not in spec.actions
    }
    declared = {name: poisoned.actions.get(name) for name in spec.actions}
    poisoned.actions = Actions(**declared, **undeclared)
    assert torch.isfinite(method(poisoned).loss)

    # Each declared action is really read.
    for name in spec.actions:
        missing = make_spec_batch(spec)
        missing.actions = dataclasses.replace(missing.actions, **{name: None})
        with pytest.raises(KeyError, match=name):
            method(missing)


@pytest.mark.parametrize("case", sorted(CASES))
def test_few_steps_on_synthetic_give_finite_losses(case: str, tiny_backbone) -> None:
    torch.manual_seed(0)
    method = _build(case, tiny_backbone(16))
    spec = method.spec()
    raw, info = synthetic_raw_batch(8, spec.num_views, resolution=16)
    build = make_batch_builder(spec, info, None)
    opt = torch.optim.Adam(method.parameters(), lr=1e-3)
    for step in range(3):
        out = method(build(raw))
        assert torch.isfinite(out.loss), (case, step, out.terms)
        assert all(torch.isfinite(t) for t in out.terms.values())
        assert len(out.features) == spec.num_views
        opt.zero_grad()
        out.loss.backward()
        opt.step()


def test_only_methods_with_a_projector_declare_the_projector_representation() -> None:
    from sslequi.methods.base import ProjectsFeatures
    from sslequi.methods.simclr import SimCLR, SimCLRConfig
    from sslequi.methods.vicreg import VICReg, VICRegConfig
    from tests.methods.conftest import TinyBackbone

    simclr = SimCLR(SimCLRConfig(projector="32-8"), TinyBackbone(16), 16)
    vicreg = VICReg(VICRegConfig(projector="32-8"), TinyBackbone(16), 16)
    assert isinstance(simclr, ProjectsFeatures) and not isinstance(vicreg, ProjectsFeatures)
    assert "projector" not in vicreg.representations()
    projector = simclr.representations()["projector"]
    assert not projector.default  # read by the orthogonality probe, not probed by default
    unit = projector.compute(torch.randn(5, 16))  # type: ignore[misc]
    assert unit.shape == (5, 8)
    torch.testing.assert_close(unit.norm(dim=1), torch.ones(5))
