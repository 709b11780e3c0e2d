"""``sslequi-sweep evaluate|status|collect`` on a folder of real (tiny) runs.

One run is pretrained for real (synthetic data, 2 steps); beside it lie a failed run and a
run still training. ``evaluate`` evaluates the completed run, skips and lists the others,
records ``eval_status.json``, skips an already-evaluated run unless ``--force``, and checks
its request before touching any run; ``status`` reads progress from ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sslequi.cli import sweep as sweep_cli
from sslequi.cli.pretrain import compose_config
from sslequi.evaluation.results import load_results
from sslequi.launcher.sweep_eval import read_eval_status
from sslequi.launcher.sweeps import (
    NO_SCHEDULER,
    evaluate_sweep,
    load_sweep,
    sweep_status,
)
from sslequi.train.run import pretrain

RUN = [
    "dataset.n_objects=12",
    "dataset.n_val_objects=6",
    "dataset.resolution=16",
    "method.projector=32-32",
    "train.steps=2",
    "train.batch_size=4",
    "train.device=cpu",
    "train.progress=false",
    "train.online_probe_every=0",
    "logger.mode=disabled",
]
EVAL = ["probes=[linear]", "probe.linear.epochs=2", "progress=false", "wandb=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("trained") / "vicreg_s0"
    pretrain(compose_config([*RUN, f"run_dir={run_dir}"]))
    return run_dir


def _run_json(run_dir: Path, status: str, step: int, total: int) -> None:
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "run.json").write_text(
        json.dumps(
            {"status": status, "reason": "RuntimeError: boom", "step": step, "total_steps": total}
        )
    )


@pytest.fixture()
def sweep(tmp_path: Path, trained: Path) -> Path:
    folder = tmp_path / "sweep"
    shutil.copytree(trained, folder / "a_completed")
    _run_json(folder / "b_failed", "failed", 1, 2)
    _run_json(folder / "c_running", "running", 0, 20)
    with (folder / "c_running" / "metrics.jsonl").open("w") as stream:
        for step in (5, 10):
            stream.write(json.dumps({"step": step, "loss": 1.0}) + "\n")
        stream.write('{"step": 1')  # a line being written
    return folder


def test_status_reads_progress_from_the_run(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = load_sweep(sweep)
    assert manifest.launcher == NO_SCHEDULER
    states = {
        Path(s.run.run_dir).name: (s.state, s.step, s.total_steps) for s in sweep_status(manifest)
    }
    assert states == {
        "a_completed": ("completed", 2, 2),
        "b_failed": ("failed", 1, 2),
        "c_running": ("running", 10, 20),  # run.json still says 0
    }
    assert sweep_cli.main(["status", str(sweep)]) == 1  # a run failed
    printed = capsys.readouterr().out
    assert "10/20" in printed and "RuntimeError: boom" in printed


def test_evaluate_skips_and_lists_failed_runs(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sweep_cli.main(["evaluate", str(sweep), *EVAL]) == 0
    printed = capsys.readouterr().out
    lines = {line.split()[1]: line for line in printed.splitlines() if line.startswith("  ")}
    assert lines["a_completed"].split()[0] == "evaluated"
    assert (
        lines["b_failed"].split()[0] == "skipped"
        and "failed: RuntimeError: boom" in lines["b_failed"]
    )
    assert lines["c_running"].split()[0] == "skipped" and "running" in lines["c_running"]
    # The compact headline and the paths of the full table, not the full table.
    assert printed.count("| run | method | top-1 |") == 1  # one headline, for the sweep
    assert "eval.log" in lines["a_completed"]  # the run's own output went to its log
    comparison = sweep / "results" / "comparison.md"
    assert str(comparison) in printed and "| part |" in comparison.read_text()
    rows = load_results(sweep / "a_completed")
    assert {row.probe for row in rows} == {"linear"} and rows[0].protocol.epochs >= 2
    status = read_eval_status(sweep / "a_completed")
    assert status is not None and status.state == "completed" and status.step == 2
    assert status.rows == len(rows)
    assert not (sweep / "b_failed" / "results.json").exists()

    # Evaluated already: skipped, unless forced (a second evaluation is appended).
    outcomes = evaluate_sweep(load_sweep(sweep), EVAL, echo=False)
    assert outcomes[0].state == "skipped" and "already evaluated" in outcomes[0].detail
    outcomes = evaluate_sweep(load_sweep(sweep), EVAL, force=True, echo=False)
    assert outcomes[0].state == "evaluated"
    assert {row.evaluation for row in load_results(sweep / "a_completed")} == {1, 2}
    assert sweep_cli.main(["status", str(sweep)]) == 1
    assert f"{len(rows) * 2} rows" in capsys.readouterr().out


def test_a_bad_request_fails_before_any_run_is_touched(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sweep_cli.main(["evaluate", str(sweep), "probes=[linear,colour]"]) == 2
    assert "unknown ['colour']" in capsys.readouterr().err
    assert sweep_cli.main(["evaluate", str(sweep), "probe.linear.epoch=2"]) == 2
    assert "probe.linear.epoch" in capsys.readouterr().err
    assert not list(sweep.rglob("eval_status.json")) and not list(sweep.rglob("results.json"))


def test_collect_without_results_says_how_to_evaluate(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sweep_cli.main(["collect", str(sweep)]) == 2
    assert f"sslequi-sweep evaluate {sweep}" in capsys.readouterr().err


def test_eval_request_takes_its_probe_names_from_the_registry() -> None:
    from sslequi.evaluation.probes import load_probes
    from sslequi.launcher.sweep_eval import EvalRequestError, check_eval_request

    names = load_probes().names()
    assert list(check_eval_request([f"probes=[{','.join(names)}]"]).probes) == names
    with pytest.raises(EvalRequestError, match=r"unknown \['nonsense'\]; available: \[") as error:
        check_eval_request(["probes=[linear,nonsense]"])
    assert all(name in str(error.value) for name in names)
