"""Fixtures for the trainer and config tests: tiny composed configs, one CPU thread."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from sslequi.cli.pretrain import compose_config

# A VICReg run small enough for a few CPU steps: 16 px, 32 objects, batch 8, 32-d heads.
TINY = [
    "backbone=resnet18_tiny",
    "dataset.resolution=16",
    "dataset.n_objects=32",
    "dataset.n_val_objects=8",
    "train.batch_size=8",
    "train.steps=4",
    "train.log_every=2",
    "train.online_probe_every=2",
    "train.progress=false",
    "train.checkpoint_every_min=0",
    "logger.mode=disabled",
    "method.projector=32-32",
]

ComposeFn = Callable[..., DictConfig]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One intra-op thread (the CI box is shared) and wandb never online."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("SSLEQUI_SWEEP_ID", raising=False)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def compose_cfg(tmp_path: Path) -> ComposeFn:
    """``compose_cfg(*overrides, tiny=True, run_dir=...)`` → the composed pretrain config."""

    def compose_fn(*overrides: str, tiny: bool = True, run_dir: Path | None = None) -> DictConfig:
        items = (TINY if tiny else []) + list(overrides)
        if not any(o.startswith("run_dir=") for o in items):
            items.append(f"run_dir={run_dir or tmp_path / 'run'}")
        return compose_config(items)

    return compose_fn


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """The environment for CLI subprocesses: one thread, wandb off."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_MODE="disabled")
    env.pop("SSLEQUI_SWEEP_ID", None)
    return env


@pytest.fixture
def tiny_overrides() -> list[str]:
    """The overrides of a tiny run (for CLI subprocesses)."""
    return list(TINY)
