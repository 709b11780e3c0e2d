"""wandb stays offline (even with a stored API key) and a resumed run continues the same
wandb run; the mode rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sslequi.config import LoggerConfig, LoggerMode
from sslequi.train.logging import wandb_mode
from sslequi.train.run import pretrain


def test_wandb_mode_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert wandb_mode(LoggerConfig()) == "offline"
    assert wandb_mode(LoggerConfig(mode=LoggerMode.online)) == "online"
    assert wandb_mode(LoggerConfig(mode=LoggerMode.disabled)) == "disabled"
    monkeypatch.setenv("WANDB_MODE", "online")
    assert wandb_mode(LoggerConfig()) == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode(LoggerConfig(mode=LoggerMode.online)) == "disabled"


def test_offline_run_with_api_key_is_resumed_with_the_same_id(
    compose_cfg, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)  # a stored key must change nothing
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir = pretrain(compose_cfg("logger.mode=offline", "train.stop_after=1"))
    first_id = json.loads((run_dir / "run.json").read_text())["wandb_id"]
    assert first_id
    pretrain(compose_cfg("logger.mode=offline"))
    info = json.loads((run_dir / "run.json").read_text())
    assert info["wandb_id"] == first_id and info["status"] == "completed"
    runs = sorted(p.name for p in (run_dir / "wandb").glob("*-run-*"))
    assert len(runs) == 2 and all(name.startswith("offline-run-") for name in runs)
    assert all(name.endswith(first_id) for name in runs)
