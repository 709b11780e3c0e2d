"""Bad sweeps fail before submission with a clear error, and claim no sweep directory.

Configs are composed from the repository's ``configs/`` with Hydra's compose API, as the
launcher's ``load_sweep_config`` composes them, and planned with ``plan_sweep``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from sslequi.cli.pretrain import configs_dir, register_configs, register_resolvers
from sslequi.config import ConfigError
from sslequi.launcher.config import SlurmLauncherConfig, SubmititLocalLauncherConfig
from sslequi.launcher.naming import (
    RunNameCollisionError,
    default_sweep_name,
    new_sweep_id,
    swept_keys,
)
from sslequi.launcher.submit import plan_sweep, resume_overrides, sweep_identity
from sslequi.launcher.sweeps import MANIFEST_NAME

Loader = Callable[[list[str]], DictConfig]
SLURM = ["launcher=slurm", "launcher.gpus_per_node=0", "train.checkpoint_every_min=0"]


@pytest.fixture(scope="module")
def load() -> Iterator[Loader]:
    register_configs()
    register_resolvers()
    with initialize_config_dir(config_dir=str(configs_dir()), version_base="1.3"):
        yield lambda overrides: compose("pretrain", overrides=overrides, return_hydra_config=True)


@pytest.fixture()
def fake_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``sbatch``/``srun`` on PATH (never called: planning submits nothing)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "srun"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _plan(load: Loader, *jobs: list[str]):
    return plan_sweep(list(jobs), load, sweep_name="test", sweep_id=new_sweep_id("test"))


def _assert_nothing_claimed(tmp_path: Path) -> None:
    assert (
        not list((tmp_path / "runs").rglob(MANIFEST_NAME)) if (tmp_path / "runs").exists() else True
    )


def test_slurm_without_sbatch_is_refused(
    load: Loader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ConfigError, match="needs sbatch and srun on PATH"):
        _plan(load, [*SLURM, "seed=0"])
    _assert_nothing_claimed(tmp_path)


@pytest.mark.usefixtures("fake_sbatch")
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["launcher.tasks_per_node=3", "train.batch_size=64"], "not divisible by the world size 3"),
        (
            ["launcher.timeout_min=5", "train.checkpoint_every_min=10"],
            "shorter than train.checkpoint_every_min=10 min plus launcher.signal_delay_s=120",
        ),
        (["launcher.gpus_per_node=2", "launcher.tasks_per_node=1"], "one task per GPU"),
        (["launcher.sync_batchnorm=true"], "SyncBatchNorm rejects CPU"),
        (["+launcher.partion=gpu"], "partion"),
        (["launcher.nodes=0"], "launcher.nodes must be >= 1"),
    ],
)
def test_bad_slurm_settings_are_refused(
    load: Loader, tmp_path: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _plan(load, [*SLURM, "seed=0", *overrides], [*SLURM, "seed=1", *overrides])
    _assert_nothing_claimed(tmp_path)


@pytest.mark.usefixtures("fake_sbatch")
def test_gpu_sweep_is_planned_on_a_cpu_login_node(load: Loader, tmp_path: Path) -> None:
    gpu = ["launcher=slurm", "launcher.gpus_per_node=4", "train.device=cuda", "seed=0"]
    plan = _plan(load, [*gpu, "train.batch_size=64", "launcher.sync_batchnorm=true"])
    assert plan.launcher.world_size() == 4
    with pytest.raises(ConfigError, match="launcher.gpus_per_node=0"):
        _plan(load, ["launcher=slurm", "launcher.gpus_per_node=0", "train.device=cuda"])


def test_colliding_run_names_are_refused(load: Loader, tmp_path: Path) -> None:
    local = ["launcher=submitit_local", "train.checkpoint_every_min=0"]
    with pytest.raises(RunNameCollisionError, match="#0 .* and #2 .*seed-0"):
        _plan(load, [*local, "seed=0"], [*local, "seed=1"], [*local, "seed=0"])
    _assert_nothing_claimed(tmp_path)


def test_launcher_options_cannot_vary_within_a_sweep(load: Loader) -> None:
    local = ["launcher=submitit_local", "train.checkpoint_every_min=0"]
    with pytest.raises(ConfigError, match="changes launcher options"):
        _plan(load, [*local, "launcher.timeout_min=30"], [*local, "launcher.timeout_min=60"])


def test_sync_batchnorm_refused_on_cpu_for_local_jobs(load: Loader) -> None:
    local = ["launcher=submitit_local", "train.checkpoint_every_min=0"]
    with pytest.raises(ConfigError, match="SyncBatchNorm rejects CPU"):
        _plan(load, [*local, "launcher.sync_batchnorm=true"])


def test_plan_pins_sweep_run_dir_and_wandb_group(load: Loader, tmp_path: Path) -> None:
    local = ["launcher=submitit_local", "train.checkpoint_every_min=0"]
    sweep_id = new_sweep_id("lr")
    jobs = [[*local, "optim.lr=0.1"], [*local, "optim.lr=0.01"]]
    plan = plan_sweep(jobs, load, sweep_name="lr", sweep_id=sweep_id)
    assert isinstance(plan.launcher, SubmititLocalLauncherConfig)
    assert plan.launcher.sweep_id == sweep_id and plan.launcher.world_size() == 1
    assert plan.sweep_dir == tmp_path / "runs" / "default" / sweep_id
    assert (plan.sweep_dir / MANIFEST_NAME).exists()  # claimed
    assert [run.run_dir for run in plan.runs] == [
        plan.sweep_dir / "optim.lr-0.1",
        plan.sweep_dir / "optim.lr-0.01",
    ]
    for run, job in zip(plan.runs, jobs, strict=True):
        assert run.user_overrides == job
        assert run.job_overrides[: len(job)] == job
        assert f"launcher.sweep_id='{sweep_id}'" in run.job_overrides
        assert f"run_slug='{run.run_dir.name}'" in run.job_overrides
        assert "logger.group='lr'" in run.job_overrides
        # The job composes to the same run directory (Hydra's output dir).
        cfg = load(run.job_overrides)
        assert cfg.launcher.sweep_id == sweep_id and cfg.logger.group == "lr"
    # A second sweep with the same id cannot take the directory.
    with pytest.raises(ConfigError, match="already holds a sweep"):
        plan_sweep(jobs, load, sweep_name="lr", sweep_id=sweep_id)
    manifest = plan.manifest(["101", "102"])
    assert manifest.array_id is None and [r.job_id for r in manifest.runs] == ["101", "102"]


def test_sweep_names_and_ids(load: Loader) -> None:
    task = ["method=simclr,vicreg", "seed=0,1,2", "launcher=slurm", "launcher.cpus_per_task=1,2"]
    assert swept_keys(task) == ["method", "seed"]
    assert default_sweep_name(task) == "method-seed"
    assert default_sweep_name(["seed=0"]) == "sweep"
    ids = {new_sweep_id("a b/c") for _ in range(50)}
    assert len(ids) == 50 and all(i.startswith("a-b-c-") for i in ids)
    cfg = load(["launcher=slurm", "launcher.sweep_name=my sweep", "seed=0"])
    name, sweep_id = sweep_identity(cfg)
    assert name == "my-sweep" and sweep_id.startswith("my-sweep-")


def test_slurm_config_defaults(load: Loader) -> None:
    cfg = load(["launcher=slurm"])
    assert cfg.hydra.launcher._target_.endswith("sslequi_launcher.launcher.SslequiLauncher")
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    config = SlurmLauncherConfig(gpus_per_node=4, nodes=2)
    assert config.effective_tasks_per_node() == 4 and config.world_size() == 8
    assert SlurmLauncherConfig(gpus_per_node=0).effective_tasks_per_node() == 1


def test_requeued_jobs_resume() -> None:
    assert resume_overrides(["seed=0", "train.resume=never"]) == ["seed=0", "train.resume=auto"]
    assert resume_overrides(["seed=0"]) == ["seed=0", "train.resume=auto"]
