"""Evaluation numbers go into the run's own wandb run, in the demo's study too.

A stand-in ``wandb`` module (in ``sys.modules``) records what the evaluation writes.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import fakes
import pytest

from sslequi.evaluation.results import load_results, push_wandb_summary
from sslequi.study import study_eval_config


class _Recorder:
    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []

    def init(self, **kwargs: Any) -> Any:
        record: dict[str, Any] = {"init": kwargs, "summary": {}, "finished": False}
        self.runs.append(record)

        class Run:
            summary = record["summary"]

            def finish(self, exit_code: int = 0) -> None:
                record["finished"] = True

        return Run()


def test_the_demo_study_sends_its_numbers_to_wandb() -> None:
    assert study_eval_config(["linear"], seed=0).wandb is True


def test_numbers_land_in_the_runs_wandb_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = _Recorder()
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=recorder.init))
    run_dir = fakes.make_run(tmp_path, "sie_s0", "sie", 0)
    info = json.loads((run_dir / "run.json").read_text())
    rows = load_results(run_dir)
    assert push_wandb_summary(run_dir, rows) is True
    (record,) = recorder.runs
    assert record["init"]["id"] == info["wandb_id"] and record["init"]["resume"] == "allow"
    assert record["finished"]
    assert record["summary"]["eval/linear/full/top1/val"] == fakes.value("sie", "top1", 0)
