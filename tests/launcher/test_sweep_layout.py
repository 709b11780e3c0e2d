"""Sweeps across recipes and methods: one folder, one manifest, distinct run names; a method
swept under one method's recipe fails short, naming the recipes to sweep; the evaluation a
sweep asks for is checked before submission; wandb runs are grouped and tagged.

Configs are composed from the repository's ``configs/`` as the launcher composes them
(Hydra's compose API) and planned with ``plan_sweep``; one test runs the real command.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from sslequi.cli.pretrain import configs_dir, register_configs, register_resolvers
from sslequi.config import ConfigError
from sslequi.launcher.naming import new_sweep_id
from sslequi.launcher.submit import (
    MULTI_EXPERIMENT_DIR,
    plan_sweep,
    sweep_run_slug,
    varying_keys,
)
from sslequi.launcher.sweep_eval import EvalRequestError
from sslequi.launcher.sweeps import MANIFEST_NAME
from sslequi.train.rundir import run_slug

Loader = Callable[[list[str]], DictConfig]
LOCAL = ["launcher=submitit_local", "train.steps=5", "train.batch_size=4"]


@pytest.fixture(scope="module")
def load() -> Iterator[Loader]:
    register_configs()
    register_resolvers()
    with initialize_config_dir(config_dir=str(configs_dir()), version_base="1.3"):
        yield lambda overrides: compose("pretrain", overrides=overrides, return_hydra_config=True)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SSLEQUI_SWEEP_ID", raising=False)


def _grid(key: str, values: list[str], seeds: tuple[int, ...] = (0, 1)) -> list[list[str]]:
    return [[f"{key}={value}", f"seed={seed}", *LOCAL] for value in values for seed in seeds]


def test_a_sweep_over_recipes_is_one_sweep_with_distinct_run_names(
    load: Loader, tmp_path: Path
) -> None:
    sweep_id = new_sweep_id("experiment-seed")
    jobs = _grid("experiment", ["sie_3diebench_cpu", "vicreg_3diebench_cpu"])
    plan = plan_sweep(jobs, load, sweep_name="experiment-seed", sweep_id=sweep_id)

    expected_dir = tmp_path / "runs" / MULTI_EXPERIMENT_DIR / sweep_id
    assert plan.sweep_dir == expected_dir
    assert (expected_dir / MANIFEST_NAME).exists()
    names = [run.run_dir.name for run in plan.runs]
    assert len(set(names)) == 4
    assert all(run.run_dir.parent == expected_dir for run in plan.runs)
    assert names == [  # named by what differs between the points: recipe and seed
        "experiment-sie_3diebench_cpu_seed-0",
        "experiment-sie_3diebench_cpu_seed-1",
        "experiment-vicreg_3diebench_cpu_seed-0",
        "experiment-vicreg_3diebench_cpu_seed-1",
    ]
    # What each job will compose: the pinned sweep folder, the run slug, group and tag.
    for run, method in zip(plan.runs, ["sie", "sie", "vicreg", "vicreg"], strict=True):
        cfg = load(run.job_overrides)
        assert Path(str(cfg.hydra.sweep.dir)) == expected_dir
        assert str(cfg.run_slug) == run.run_slug
        assert str(cfg.logger.group) == "experiment-seed"
        assert list(cfg.logger.tags) == [method]
        assert cfg.method.name == method


def test_one_experiment_keeps_its_folder_and_user_tags(load: Loader, tmp_path: Path) -> None:
    sweep_id = new_sweep_id("seed")
    jobs = [["seed=0", *LOCAL, "logger.tags=[mine]"], ["seed=1", *LOCAL, "logger.tags=[mine]"]]
    plan = plan_sweep(jobs, load, sweep_name="seed", sweep_id=sweep_id)
    assert plan.sweep_dir == tmp_path / "runs" / "default" / sweep_id
    assert [run.run_slug for run in plan.runs] == ["seed-0", "seed-1"]
    (single,) = plan_sweep([jobs[0]], load, sweep_name="seed", sweep_id=new_sweep_id("seed")).runs
    assert single.run_slug == "seed-0_train.batch_size-4_train.steps-5"  # as a single run
    assert [list(load(run.job_overrides).logger.tags) for run in plan.runs] == [
        ["mine", "vicreg"],
        ["mine", "vicreg"],
    ]


def test_a_method_swept_under_one_recipe_names_the_recipes_to_sweep(
    load: Loader, tmp_path: Path
) -> None:
    jobs = [[f"method={m}", "experiment=sie_3diebench", *LOCAL] for m in ("sie", "vicreg")]
    with pytest.raises(ConfigError) as caught:
        plan_sweep(jobs, load, sweep_name="method", sweep_id=new_sweep_id("method"))
    message = str(caught.value)
    assert message.startswith("sweep point #1 (method=vicreg experiment=sie_3diebench")
    assert "equi_dim" in message
    assert "-m experiment=sie_3diebench,vicreg_3diebench" in message
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob(MANIFEST_NAME))


def test_the_command_fails_in_a_few_lines_and_leaves_no_folder(tmp_path: Path) -> None:
    env = {**os.environ, "WANDB_MODE": "disabled", "SSLEQUI_SWEEP_ID": ""}
    result = subprocess.run(
        [
            "sslequi-pretrain",
            "-m",
            "method=sie,vicreg",
            "seed=0",
            "experiment=sie_3diebench",
            "launcher=submitit_local",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 4, result.stderr
    assert "-m experiment=sie_3diebench,vicreg_3diebench" in result.stderr
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.rglob("*")), list(runs.rglob("*"))


def test_the_evaluation_a_sweep_asks_for_is_checked_before_submission(
    load: Loader, tmp_path: Path
) -> None:
    with pytest.raises(EvalRequestError, match="unknown \\['rotaton'\\]"):
        plan_sweep(
            [["seed=0", *LOCAL, "launcher.eval_probes=[linear,rotaton]"]],
            load,
            sweep_name="s",
            sweep_id=new_sweep_id("s"),
        )
    with pytest.raises(EvalRequestError, match="probe.linear.epoch"):
        plan_sweep(
            [
                [
                    "seed=0",
                    *LOCAL,
                    "launcher.eval_probes=[linear]",
                    "launcher.eval_overrides=['probe.linear.epoch=3']",
                ]
            ],
            load,
            sweep_name="s",
            sweep_id=new_sweep_id("s"),
        )
    assert (
        not list((tmp_path / "runs").rglob(MANIFEST_NAME)) if (tmp_path / "runs").exists() else True
    )
    plan = plan_sweep(
        [
            [
                "seed=0",
                *LOCAL,
                "launcher.eval_probes=[linear,rotation]",
                "launcher.eval_overrides=['probe.linear.epochs=3']",
            ]
        ],
        load,
        sweep_name="s",
        sweep_id=new_sweep_id("s"),
    )
    assert plan.evaluate == ["probes=[linear,rotation]", "probe.linear.epochs=3"]
    assert plan.manifest(["123"]).evaluate == plan.evaluate


def test_run_names_in_a_sweep() -> None:
    varying = varying_keys([["experiment=a", "seed=0", "x=1"], ["experiment=b", "seed=0", "x=1"]])
    assert varying == {"experiment"}
    assert sweep_run_slug(["experiment=a", "seed=0", "x=1"], varying) == "experiment-a"
    # Only run-invariant keys differ: named by all overrides (a collision is then refused).
    job = ["train.num_workers=2", "seed=0"]
    assert sweep_run_slug(job, {"train.num_workers"}) == run_slug(job) == "seed-0"
