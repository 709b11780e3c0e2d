"""MoCo-v2 (methods.md §8.4): the loss against lightly's memory-bank NT-Xent and a loop, the
queue's enqueue/dequeue, exact resume of the queue, shuffle-BN groups, the momentum update."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss

from sslequi.methods.moco import MoCo, MoCoConfig, grouped, moco_infonce
from sslequi.types import MethodSpec

torch.set_num_threads(1)


def _unit(*shape: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_loss_matches_lightly_memory_bank_and_a_loop() -> None:
    q, k, queue = _unit(6, 8, seed=0), _unit(6, 8, seed=1), _unit(12, 8, seed=2)
    tau = 0.2
    ours = moco_infonce(q, k, queue, tau)
    lightly_loss = NTXentLoss(temperature=tau, memory_bank_size=(12, 8))
    lightly_loss.memory_bank.bank.copy_(queue)
    torch.testing.assert_close(ours, lightly_loss(q, k))
    total = torch.zeros(())
    for i in range(6):  # −log e^{q·k/τ} / (e^{q·k/τ} + Σ_κ e^{q·κ/τ})
        positive = torch.exp(q[i] @ k[i] / tau)
        negatives = sum(torch.exp(q[i] @ queue[j] / tau) for j in range(12))
        total = total - torch.log(positive / (positive + negatives))
    torch.testing.assert_close(ours, total / 6)


def _method(queue_size: int = 8, **overrides: object) -> MoCo:
    from tests.methods.conftest import TinyBackbone

    torch.manual_seed(0)
    config = MoCoConfig(queue_size=queue_size, projector_hidden=16, projector_dim=8, **overrides)  # type: ignore[arg-type]
    return MoCo(config, TinyBackbone(16), 16)


def test_enqueue_dequeue_is_fifo() -> None:
    method = _method(queue_size=8)
    first, second, third = _unit(4, 8, seed=3), _unit(4, 8, seed=4), _unit(4, 8, seed=5)
    initial = method.queue.clone()
    method.enqueue(first)
    assert int(method.queue_ptr) == 4
    torch.testing.assert_close(method.queue[:4], first)
    torch.testing.assert_close(method.queue[4:], initial[4:])
    method.enqueue(second)
    assert int(method.queue_ptr) == 0  # wrapped
    method.enqueue(third)  # the oldest keys (first) leave the queue
    torch.testing.assert_close(method.queue, torch.cat([third, second]))
    with pytest.raises(ValueError, match="queue_size"):
        method.enqueue(_unit(3, 8, seed=6))


def _step(method: MoCo, optimizer: torch.optim.Optimizer, make_batch, seed: int) -> float:
    batch = make_batch(MethodSpec(num_views=2), batch_size=8, seed=seed)
    out = method(batch)
    optimizer.zero_grad()
    out.loss.backward()
    optimizer.step()
    method.on_step_end(0, 1)
    return float(out.loss.detach())


def test_forward_enqueues_keys_and_resume_is_exact(make_spec_batch) -> None:
    method = _method(queue_size=16, bn_groups=2)
    optimizer = torch.optim.SGD(method.parameters(), lr=0.1)
    _step(method, optimizer, make_spec_batch, seed=0)
    assert int(method.queue_ptr) == 8
    state = copy.deepcopy(method.state_dict())
    assert {"queue", "queue_ptr"} <= set(state)
    opt_state = copy.deepcopy(optimizer.state_dict())
    rng = torch.get_rng_state()
    losses = [_step(method, optimizer, make_spec_batch, seed=s) for s in (1, 2, 3)]
    final_queue = method.queue.clone()

    resumed = _method(queue_size=16, bn_groups=2)
    resumed.load_state_dict(state)
    resumed_opt = torch.optim.SGD(resumed.parameters(), lr=0.1)
    resumed_opt.load_state_dict(opt_state)
    torch.set_rng_state(rng)
    again = [_step(resumed, resumed_opt, make_spec_batch, seed=s) for s in (1, 2, 3)]
    assert again == losses
    assert torch.equal(resumed.queue, final_queue)
    assert int(resumed.queue_ptr) == int(method.queue_ptr)


def test_eval_mode_forward_leaves_the_queue(make_spec_batch) -> None:
    method = _method(queue_size=16).eval()
    before = method.queue.clone()
    method(make_spec_batch(MethodSpec(num_views=2), batch_size=8))
    assert torch.equal(method.queue, before) and int(method.queue_ptr) == 0


def test_shuffle_bn_groups_restore_order_and_use_own_statistics() -> None:
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))

    def centre(part: torch.Tensor) -> torch.Tensor:  # a BN-like per-group statistic
        return part - part.mean(dim=0)

    plain = grouped(centre, x, 2, shuffle=False)
    torch.testing.assert_close(plain, torch.cat([centre(x[:4]), centre(x[4:])]))
    torch.manual_seed(1)
    shuffled = grouped(lambda t: 2 * t, x, 2, shuffle=True)
    torch.testing.assert_close(shuffled, 2 * x)  # row-wise maps come back in order
    torch.manual_seed(1)
    order = torch.randperm(8)
    torch.manual_seed(1)
    centred = grouped(centre, x, 2, shuffle=True)
    groups = [order[:4], order[4:]]  # a row is centred by the mean of its shuffled group
    for group in groups:
        torch.testing.assert_close(centred[group], x[group] - x[group].mean(dim=0))


def test_momentum_update_and_batch_checks() -> None:
    method = _method()
    online = dict(method.backbone.named_parameters())
    before = {n: p.detach().clone() for n, p in method.key_backbone.named_parameters()}
    with torch.no_grad():
        for p in method.backbone.parameters():
            p.add_(1.0)
    method.on_step_end(0, 1)
    for name, key_param in method.key_backbone.named_parameters():
        expected = 0.99 * before[name] + 0.01 * online[name]
        torch.testing.assert_close(key_param, expected)
        assert not key_param.requires_grad
    config = MoCoConfig()
    config.check_batch(256)
    with pytest.raises(ValueError, match="queue_size"):
        config.check_batch(96)
    with pytest.raises(ValueError, match="bn_groups"):
        MoCoConfig(queue_size=4, bn_groups=4).check_batch(4)
    MoCoConfig(queue_size=4, bn_groups=4, sync_bn=True).check_batch(4)
    with pytest.raises(ValueError, match="temperature"):
        MoCoConfig(temperature=0.0)
