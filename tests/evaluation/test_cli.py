"""``sslequi-eval`` config composition and bad-input errors (before any compute)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra

from sslequi.cli.evaluate import SCHEMA_NAME, eval_configs_dir, to_eval_config
from sslequi.evaluation.runner import EvalConfig, evaluate_run


def _compose(overrides: list[str]) -> EvalConfig:
    ConfigStore.instance().store(name=SCHEMA_NAME, node=EvalConfig)
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(eval_configs_dir()), version_base="1.3"):
        return to_eval_config(compose("evaluate", overrides=overrides))


def test_config_composes_with_paper_defaults_and_overrides() -> None:
    cfg = _compose(
        ["run=runs/x/y", "probes=[linear,rotation,color,mrr]", "probe.rotation.epochs=7"]
    )
    assert cfg.probes == ["linear", "rotation", "color", "mrr"]
    assert cfg.probe.rotation.epochs == 7 and cfg.probe.rotation.hidden == [1024, 1024]
    assert cfg.probe.linear.head == "linear" and cfg.probe.linear.lr == 1e-3
    assert cfg.bn_mode == "eval" and cfg.mode == "cached"


def test_unknown_key_fails_in_composition() -> None:
    with pytest.raises(Exception, match="probe_typo"):
        _compose(["probe_typo=3"])


def test_run_without_checkpoint_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="has no checkpoint"):
        evaluate_run(EvalConfig(run=str(tmp_path), probes=["linear"]))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_run(EvalConfig(run=str(tmp_path / "missing"), probes=["linear"]))
