"""Run directories written by hand: the files a pretraining and an evaluation leave behind
(``run.json``, ``config.yaml``, ``metrics.jsonl``, ``results.json``), with known numbers, so
the dashboard's tests know what each group's mean must be and run in seconds."""

from __future__ import annotations

import json
import math
from pathlib import Path

from sslequi.evaluation.protocol import Protocol
from sslequi.evaluation.results import ResultRow, append_results

METHODS = {"sie": (0.30, 0.40), "vicreg": (0.50, 0.20)}  # (top-1, rot R² global) at seed 0
DATASET = "3diebench@32"


def value(method: str, metric: str, seed: int) -> float:
    """The number a fake run of ``method`` and ``seed`` reports for ``metric``."""
    top1, rotation = METHODS.get(method, (0.4, 0.3))
    base = {"top1": top1, "r2_global": rotation, "r2_per_component": rotation - 0.2}[metric]
    return round(base + 0.02 * seed, 6)


def _row(
    method: str, probe: str, part: str, metric: str, seed: int, floor: float, **kw: object
) -> ResultRow:
    protocol = Protocol(
        probe=probe,
        part=part,
        metric_definition=metric,
        head="linear" if probe == "linear" else "mlp(512-512)",
        optimizer="adam",
        lr=1e-3,
        epochs=100,
        checkpoint=f"{method}-{seed}",
        checkpoint_step=5,
        dataset=kw.pop("dataset", DATASET),  # type: ignore[arg-type]
        extra=f"epochs_run={40 + seed};best_epoch={30 + seed}",
        **kw,  # type: ignore[arg-type]
    )
    return ResultRow(
        run="x",
        method=method,
        probe=probe,
        metric=metric,
        split="val",
        value=value(method, metric, seed),
        floor=floor,
        n=96,
        protocol=protocol,
    )


def rows_for(method: str, seed: int, **kw: object) -> list[ResultRow]:
    rows = [
        _row(method, "linear", part, "top1", seed, 0.25, **kw) for part in ("full", "invariant")
    ]
    for part in ("full", "equivariant"):
        for metric in ("r2_global", "r2_per_component"):
            floor = 0.228 if metric == "r2_global" else 0.0
            rows.append(_row(method, "rotation", part, metric, seed, floor, **kw))
    return rows


def make_run(
    root: Path,
    name: str,
    method: str,
    seed: int,
    *,
    steps: int = 20,
    evaluated: bool = True,
    status: str = "completed",
    experiment: str | None = None,
) -> Path:
    """A run directory under ``root`` (with results unless ``evaluated=False``)."""
    run_dir = root / name
    (run_dir / "checkpoints").mkdir(parents=True)
    experiment = experiment or f"{method}_3diebench_cpu"
    (run_dir / "config.yaml").write_text(
        f"experiment: {experiment}\nseed: {seed}\noutput_root: runs\nrun_slug: null\n"
        f"method:\n  name: {method}\n  projector: 512-512-512\n"
        "dataset:\n  name: 3diebench\n  resolution: 32\n  root: data/render3d_tiny\n"
        f"train:\n  steps: {steps}\n  batch_size: 4\n  progress: false\n"
        "logger:\n  group: fake\n  tags: []\n"
        "launcher:\n  name: submitit_local\n  sweep_id: fake-1\n"
    )
    (run_dir / "run.json").write_text(
        json.dumps(
            {
                "status": status,
                "reason": "",
                "step": steps if status == "completed" else steps // 2,
                "total_steps": steps,
                "attempts": 1,
                "wandb_id": f"w{method}{seed}",
                "experiment": experiment,
                "sweep_id": "fake-1",
                "run_slug": name,
                "code_version": "abc123",
            }
        )
    )
    with (run_dir / "metrics.jsonl").open("w") as stream:
        for step in range(1, steps + 1):
            loss = 10 * math.exp(-step / steps) + seed
            record = {"step": step, "loss": loss, "terms/sim": loss / 3, "lr": 1e-3}
            stream.write(json.dumps(record) + "\n")
    if evaluated:
        append_results(run_dir, rows_for(method, seed))
    return run_dir


def make_sweep(root: Path, seeds: tuple[int, ...] = (0, 1)) -> list[Path]:
    """Two recipes × ``seeds``: ``root/<method>_s<seed>``."""
    return [
        make_run(root, f"{method}_s{seed}", method, seed) for method in METHODS for seed in seeds
    ]
