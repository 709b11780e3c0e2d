"""TiCo (methods.md §13): lightly's loss against the formula, the running covariance, the
momentum target branch, the z_a branch option, and exact resume."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from sslequi.methods.tico import TiCo, TiCoConfig, tico_loss
from sslequi.models.ema import cosine_momentum
from sslequi.types import MethodSpec

torch.set_num_threads(1)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def reference_tico(
    z_a: torch.Tensor, z_b: torch.Tensor, c_prev: torch.Tensor, beta: float, rho: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """§13 written out with loops: B_t = Σ_i a_i a_iᵀ / N (detached), C_t = β C + (1 − β) B_t,
    L = 1 − (1/N) Σ_i ⟨a_i, b_i⟩ + ρ (1/N) Σ_i a_iᵀ C_t a_i."""
    n, d = z_a.shape
    a = [z_a[i] / z_a[i].norm() for i in range(n)]
    b = [z_b[i] / z_b[i].norm() for i in range(n)]
    second_moment = torch.zeros(d, d)
    for i in range(n):
        second_moment = second_moment + torch.outer(a[i], a[i]).detach() / n
    c_t = beta * c_prev + (1 - beta) * second_moment
    invariance = 1 - sum(torch.dot(a[i], b[i]) for i in range(n)) / n
    contrast = sum(a[i] @ c_t @ a[i] for i in range(n)) / n
    return invariance + rho * contrast, c_t.detach()


def _method(**kwargs: object) -> TiCo:
    from tests.methods.conftest import TinyBackbone

    torch.manual_seed(0)
    config = TiCoConfig(projector_hidden=32, projector_dim=8, **kwargs)  # type: ignore[arg-type]
    return TiCo(config, TinyBackbone(16), 16)


def test_lightly_loss_matches_the_formula_over_steps() -> None:
    """Three consecutive steps: values, the carried C and the gradient w.r.t. z_a agree."""
    c_ours, c_ref = torch.zeros(5, 5), torch.zeros(5, 5)
    for step in range(3):
        z_a = torch.randn(6, 5, generator=_gen(step)).requires_grad_()
        z_b = torch.randn(6, 5, generator=_gen(10 + step))
        ours, c_ours = tico_loss(z_a, z_b, c_ours, beta=0.9, rho=8.0)
        (grad_ours,) = torch.autograd.grad(ours, z_a)
        ref, c_ref = reference_tico(z_a, z_b, c_ref, beta=0.9, rho=8.0)
        (grad_ref,) = torch.autograd.grad(ref, z_a)
        assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
        torch.testing.assert_close(c_ours, c_ref)
        torch.testing.assert_close(grad_ours, grad_ref, rtol=1e-4, atol=1e-6)
        assert not c_ours.requires_grad


def test_loss_by_hand_on_two_points() -> None:
    """a = e₁, e₂; b = a: invariance 0; B = diag(½, ½, 0); from C₀ = 0, C₁ = (1 − β)B, so
    L = ρ (1 − β) ½ = 8 · 0.1 · 0.5 = 0.4."""
    a = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    loss, c_1 = tico_loss(a, a.clone(), torch.zeros(3, 3))
    assert loss.item() == pytest.approx(0.4)
    torch.testing.assert_close(c_1, torch.diag(torch.tensor([0.05, 0.05, 0.0])))


def test_forward_uses_online_view_1_and_target_view_2(make_spec_batch) -> None:
    method = _method()
    batch = make_spec_batch(method.spec(), batch_size=8)
    before = method.covariance.clone()
    out = method(batch)
    z_a = method.projector(method.backbone(batch.views[0]))
    z_b = method.target_projector(method.target_backbone(batch.views[1]))
    expected, c_1 = reference_tico(z_a, z_b, before, 0.9, 8.0)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(method.covariance, c_1)
    assert "covariance" in method.state_dict()
    assert out.terms["invariance"].item() + out.terms["covariance_contrast"].item() == (
        pytest.approx(out.loss.item(), rel=1e-5)
    )
    method.eval()
    frozen = method.covariance.clone()
    method(batch)
    assert torch.equal(method.covariance, frozen)  # eval mode: C is not updated


def test_covariance_term_has_gradient_only_when_z_a_is_online(make_spec_batch) -> None:
    """z_a_branch=target (lightly's benchmark order) leaves the covariance term without a
    gradient: the projector's gradient does not depend on ρ. With the online z_a it does."""

    def projector_grad(branch: str, rho: float) -> torch.Tensor:
        method = _method(z_a_branch=branch, rho=rho)
        method.covariance.fill_(0.1)
        batch = make_spec_batch(method.spec(), batch_size=8, seed=3)
        method(batch).loss.backward()
        return method.projector.layers[0].weight.grad.clone()

    assert torch.allclose(projector_grad("target", 0.0), projector_grad("target", 8.0))
    assert not torch.allclose(projector_grad("online", 0.0), projector_grad("online", 8.0))


def test_target_branch_follows_the_cosine_momentum(make_spec_batch) -> None:
    method = _method()
    online = method.projector.layers[0].weight
    target = method.target_projector.module.layers[0].weight
    assert torch.equal(online, target) and not target.requires_grad
    with torch.no_grad():
        online.add_(1.0)
    old = target.clone()
    method.on_step_end(0, 10)
    assert method.momentum == pytest.approx(0.99)
    torch.testing.assert_close(target, 0.99 * old + 0.01 * online.detach())
    assert cosine_momentum(10, 10, 0.99) == pytest.approx(1.0)
    method.on_step_end(10, 10)
    assert method.momentum == pytest.approx(1.0)


def _step(method: TiCo, optimizer: torch.optim.Optimizer, make_spec_batch, seed: int) -> float:
    out = method(make_spec_batch(MethodSpec(num_views=2), batch_size=8, seed=seed))
    optimizer.zero_grad()
    out.loss.backward()
    optimizer.step()
    method.on_step_end(seed, 10)
    return out.loss.item()


def test_resume_is_exact_with_the_target_and_covariance(make_spec_batch) -> None:
    method = _method()
    optimizer = torch.optim.SGD(method.parameters(), lr=0.1, momentum=0.9)
    _step(method, optimizer, make_spec_batch, seed=0)
    _step(method, optimizer, make_spec_batch, seed=1)
    state = copy.deepcopy(method.state_dict())
    assert {"covariance", "target_backbone.module.net.0.weight"} <= set(state)
    opt_state = copy.deepcopy(optimizer.state_dict())
    losses = [_step(method, optimizer, make_spec_batch, seed=s) for s in (2, 3, 4)]

    resumed = _method()
    resumed.load_state_dict(state)
    resumed_opt = torch.optim.SGD(resumed.parameters(), lr=0.1, momentum=0.9)
    resumed_opt.load_state_dict(opt_state)
    again = [_step(resumed, resumed_opt, make_spec_batch, seed=s) for s in (2, 3, 4)]
    assert again == losses
    assert torch.equal(resumed.covariance, method.covariance)
    for (name, a), b in zip(
        method.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_projector_shapes_and_bad_configs() -> None:
    method = TiCo(TiCoConfig(), torch.nn.Identity(), 2048)
    assert [
        m.out_features for m in method.projector.modules() if isinstance(m, torch.nn.Linear)
    ] == [
        4096,
        256,
    ]
    assert method.covariance.shape == (256, 256)
    reps = method.representations()
    assert not reps["projector"].default
    y = torch.randn(4, 2048)
    method.eval()
    torch.testing.assert_close(reps["projector"].compute(y), F.normalize(method.projector(y)))  # type: ignore[misc]
    for bad, message in (
        ({"beta": 1.0}, "beta"),
        ({"rho": -1.0}, "rho"),
        ({"z_a_branch": "student"}, "z_a_branch"),
        ({"momentum_schedule": "linear"}, "momentum_schedule"),
    ):
        with pytest.raises(ValueError, match=message):
            TiCoConfig(**bad)  # type: ignore[arg-type]
