"""The trainer end to end on tiny runs: every baseline trains, the run directory and its
status, the online probe, checkpoints and ``load_method``, signals between steps."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict
from torch import nn

from sslequi.methods.base import Method, MethodConfig
from sslequi.registry import register_method
from sslequi.train.checkpoint import load_checkpoint, load_method
from sslequi.train.run import pretrain
from sslequi.train.rundir import read_metrics
from sslequi.train.trainer import current_trainer
from sslequi.types import Batch, MethodSpec, StepOutput

SMALL_HEADS = {
    "vicreg": ["method.projector=32-32"],
    "simclr": ["method.projector=32-32"],
    "byol": ["method.projector_hidden=32", "method.projector_dim=16", "method.predictor_hidden=32"],
    "simsiam": [
        "method.projector_hidden=32",
        "method.projector_dim=16",
        "method.predictor_hidden=8",
    ],
}


def _tiny_without_heads(tiny_overrides: list[str]) -> list[str]:
    return [o for o in tiny_overrides if not o.startswith("method.")]


@pytest.mark.parametrize("method", sorted(SMALL_HEADS))
def test_each_baseline_trains_and_logs(compose_cfg, tiny_overrides, tmp_path, method) -> None:
    overrides = [*_tiny_without_heads(tiny_overrides), f"method={method}", *SMALL_HEADS[method]]
    run_dir = pretrain(compose_cfg(*overrides, "train.steps=2", tiny=False))
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed" and info["step"] == 2
    records = read_metrics(run_dir)
    assert [r["step"] for r in records] == [2]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
    assert 0.0 <= records[-1]["probe/acc"] <= 1.0 and records[-1]["lr"] >= 0
    assert OmegaConf.load(run_dir / "config.yaml").method.name == method


def test_run_directory_checkpoint_and_load_method(compose_cfg, tmp_path: Path) -> None:
    run_dir = pretrain(compose_cfg("train.checkpoint_every_steps=2", "train.keep_checkpoints=true"))
    assert (run_dir / "checkpoints" / "step_2.pt").exists()
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["step"] == 4 and state["reason"] == "final"
    assert state["data_position"] == {"epoch": 1, "batch": 0}  # 32 objects / batch 8 = 4 steps
    groups = state["optimizer"]["param_groups"]
    assert groups[-1]["name"] == "probe" and groups[-1]["lr"] == pytest.approx(1e-3)
    assert set(state["rng"]) == {"python", "numpy", "torch", "cuda"}

    loaded = load_method(run_dir)
    assert loaded.step == 4 and not loaded.method.training
    for key, value in loaded.method.state_dict().items():
        assert torch.equal(value, state["method"][key]), key
    early = load_method(run_dir, which="step_2")
    assert early.step == 2
    with pytest.raises(FileNotFoundError, match="available"):
        load_method(run_dir, which="step_3")
    with pytest.raises(FileNotFoundError, match="no run directory"):
        load_method(tmp_path / "missing")
    info = json.loads((run_dir / "run.json").read_text())
    assert info["packages"]["torch"] == torch.__version__.split("+")[0]
    assert info["end_time"] and info["code_version"]


def test_corrupt_checkpoint_fails_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_checkpoint(bad)
    torch.save({"weights": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not an sslequi checkpoint"):
        load_checkpoint(bad)


@dataclass
class _FailingConfig(MethodConfig):
    name: str = "_test_fails_at_step_3"
    fail_at: int = 3


@register_method("_test_fails_at_step_3", config=_FailingConfig)
class _FailingMethod(Method):
    """A linear method that raises during its third forward (tests the failed status)."""

    def __init__(self, config: _FailingConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        self.calls = 0

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=2)

    def forward(self, batch: Batch) -> StepOutput:
        self.calls += 1
        if self.calls == self.config.fail_at:
            raise RuntimeError("exploded on purpose")
        features = [self.encode(v) for v in batch.views]
        loss = (features[0] - features[1]).pow(2).mean()
        return StepOutput(loss=loss, features=[f.detach() for f in features])


def _with_method(cfg, name: str, **values):
    with open_dict(cfg):
        cfg.method = OmegaConf.create({"name": name, **values})
    return cfg


def test_failed_run_is_marked_failed_never_completed(compose_cfg) -> None:
    cfg = _with_method(compose_cfg(), "_test_fails_at_step_3")
    with pytest.raises(RuntimeError, match="exploded"):
        pretrain(cfg)
    info = json.loads((Path(cfg.run_dir) / "run.json").read_text())
    assert info["status"] == "failed" and "exploded on purpose" in info["reason"]
    assert info["end_time"]


def test_nan_loss_fails_the_run(compose_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    """A NaN weight before step 2 (what a diverging update leaves) makes its loss NaN."""
    from sslequi.train.trainer import Trainer

    original = Trainer._train_step

    def poisoned(self: Trainer, raw):  # type: ignore[no-untyped-def]
        if self.step + 1 == 2:
            with torch.no_grad():
                next(self.method.parameters()).fill_(float("nan"))
        return original(self, raw)

    monkeypatch.setattr(Trainer, "_train_step", poisoned)
    with pytest.raises(FloatingPointError, match=r"loss is nan in steps 1\.\.2"):
        pretrain(compose_cfg("train.steps=4"))


def test_stop_after_leaves_a_requeued_run(compose_cfg) -> None:
    run_dir = pretrain(compose_cfg("train.stop_after=1"))
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "requeued" and info["step"] == 1 and not info["end_time"]


@dataclass
class _SignalConfig(MethodConfig):
    name: str = "_test_signals_itself"


@register_method("_test_signals_itself", config=_SignalConfig)
class _SignallingMethod(Method):
    """Sends SIGUSR2 to its own process in the middle of its second step."""

    def __init__(self, config: _SignalConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__(config, backbone, feature_dim)
        self.calls = 0

    def spec(self) -> MethodSpec:
        return MethodSpec(num_views=2)

    def forward(self, batch: Batch) -> StepOutput:
        self.calls += 1
        if self.calls == 2:
            os.kill(os.getpid(), signal.SIGUSR2)
        features = [self.encode(v) for v in batch.views]
        loss = (features[0] - features[1]).pow(2).mean()
        return StepOutput(loss=loss, features=[f.detach() for f in features])


class _Requeue(Exception):
    pass


def test_signal_handler_runs_between_steps_and_checkpoints(compose_cfg) -> None:
    seen: list[int] = []

    def handler(signum: int, frame: object) -> None:  # what submitit's handler does
        trainer = current_trainer()
        assert trainer is not None
        seen.append(trainer.step)
        trainer.save_checkpoint("requeue")
        raise _Requeue

    previous = signal.signal(signal.SIGUSR2, handler)
    try:
        cfg = _with_method(compose_cfg(), "_test_signals_itself")
        with pytest.raises(_Requeue):
            pretrain(cfg)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert seen == [2]  # sent during step 2, handled only once step 2 had completed
    run_dir = Path(cfg.run_dir)
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 2
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "requeued"
    assert current_trainer() is None
    assert signal.SIGUSR2 not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_clipping_channels_last_and_timed_checkpoints(compose_cfg) -> None:
    run_dir = pretrain(
        compose_cfg(
            "train.grad_clip=0.5",
            "train.channels_last=true",
            "train.checkpoint_every_min=1e-9",  # due after every step
            "train.keep_checkpoints=true",
            "train.log_every=1",
        )
    )
    records = read_metrics(run_dir)
    assert all(0 < r["grad_norm"] for r in records)  # the norm before clipping is logged
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("step_*.pt")) == [
        "step_1.pt",
        "step_2.pt",
        "step_3.pt",
    ]


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "lars"])
def test_each_optimizer_takes_a_step(compose_cfg, name: str) -> None:
    from sslequi.config import resolve_config
    from sslequi.train.optim import make_optimizer, param_groups

    resolved = resolve_config(compose_cfg(f"optim={name}"))
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    optimizer = make_optimizer(param_groups(model, resolved.optim, 0.1, None), resolved.optim)
    before = model[0].weight.detach().clone()
    model(torch.randn(5, 3)).pow(2).sum().backward()
    optimizer.step()
    assert type(optimizer).__name__.lower() == name
    assert not torch.equal(before, model[0].weight)


def test_online_probe_loss_skips_unlabelled_images() -> None:
    from sslequi.train.trainer import online_probe_loss

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]], requires_grad=True)
    labels = torch.tensor([0, -1, 1])  # -1: unlabelled (STL-10's unlabeled split)
    loss, correct, seen = online_probe_loss(logits, labels)
    expected = (-torch.log_softmax(logits[0], 0)[0] - torch.log_softmax(logits[2], 0)[1]) / 2
    assert loss.item() == pytest.approx(expected.item())
    assert (int(correct), int(seen)) == (1, 2)
    loss, correct, seen = online_probe_loss(logits, torch.full((3,), -1))
    loss.backward()  # no labels: a zero loss that keeps the graph
    assert loss.item() == 0.0 and int(seen) == 0 and int(correct) == 0
    assert logits.grad is not None and not logits.grad.any()
