"""``sslequi-eval`` refuses a failed (diverged) run unless ``allow_failed=true``, and records
the run's status in every result row; results.json files without the field still load
(issue 16 item 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sslequi.build import build_method
from sslequi.cli.pretrain import configs_dir
from sslequi.config import register_configs, resolve_config
from sslequi.evaluation.protocol import HeadTraining
from sslequi.evaluation.results import RESULTS_FILE, load_results
from sslequi.evaluation.runner import EvalConfig, evaluate_run
from sslequi.train.checkpoint import FORMAT_VERSION, save_atomic

OVERRIDES = [
    "method=vicreg",
    "dataset=synthetic",
    "dataset.n_objects=12",
    "dataset.n_val_objects=6",
    "dataset.views_per_object=3",
    "dataset.resolution=16",
    "backbone=resnet18_tiny",
]


def _make_run(run_dir: Path, status: str, reason: str = "") -> None:
    register_configs()
    with initialize_config_dir(str(configs_dir()), version_base="1.3"):
        cfg = compose("pretrain", overrides=OVERRIDES)
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    method = build_method(resolve_config(cfg))
    state = {"format_version": FORMAT_VERSION, "step": 3, "method": method.state_dict()}
    save_atomic({**state, "config": container}, run_dir / "checkpoints" / "last.pt")
    (run_dir / "run.json").write_text(json.dumps({"status": status, "reason": reason}))


def _config(run_dir: Path, **changes: object) -> EvalConfig:
    cfg = EvalConfig(
        run=str(run_dir), probes=["linear"], progress=False, wandb=False, protocol="paper"
    )
    cfg.probe.linear = HeadTraining(head="linear", epochs=1, batch_size=8)
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg


def test_failed_run_is_refused_unless_allowed_and_rows_carry_the_status(tmp_path: Path) -> None:
    run_dir = tmp_path / "diverged"
    _make_run(run_dir, "failed", "FloatingPointError: loss is nan in steps 1..2")
    with pytest.raises(ValueError, match=r"failed \(FloatingPointError: loss is nan.*allow_failed"):
        evaluate_run(_config(run_dir))
    assert not (run_dir / RESULTS_FILE).exists()

    rows = evaluate_run(_config(run_dir, allow_failed=True))
    assert rows and {row.run_status for row in load_results(run_dir)} == {"failed"}


def test_completed_run_rows_record_completed_and_old_rows_still_load(tmp_path: Path) -> None:
    run_dir = tmp_path / "done"
    _make_run(run_dir, "completed")
    evaluate_run(_config(run_dir))
    payload = json.loads((run_dir / RESULTS_FILE).read_text())
    assert {row["run_status"] for row in payload["rows"]} == {"completed"}
    for row in payload["rows"]:  # a results.json written before the field existed
        del row["run_status"]
    (run_dir / RESULTS_FILE).write_text(json.dumps(payload))
    assert {row.run_status for row in load_results(run_dir)} == {None}
