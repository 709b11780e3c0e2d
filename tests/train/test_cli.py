"""``sslequi-pretrain`` through Hydra: run directories from the overrides, sweeps, no stray
``outputs/``, clear errors; and the run-slug / sweep-id rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sslequi.train.rundir import run_dir_path, run_slug, sweep_id


def test_run_slug_from_overrides() -> None:
    assert run_slug([]) == "default"
    assert run_slug(["optim.lr=0.1", "method=sie"]) == "method-sie_optim.lr-0.1"
    # Keys that do not change the run stay out of the folder name.
    assert run_slug(["method=sie", "train.resume=never", "logger.mode=online"]) == "method-sie"
    assert run_slug(["launcher=slurm", "launcher.partition=gpu", "+experiment=x"]) == "default"
    assert run_slug(["dataset.root=/data/x y"]) == "default"
    assert run_slug(["backbone.stem=a/b c"]) == "backbone.stem-a-b-c"
    long = run_slug([f"method.k{i}={'v' * 20}" for i in range(20)])
    assert len(long) <= 120 and long != run_slug([f"method.k{i}={'w' * 20}" for i in range(20)])


def test_sweep_id_explicit_then_env_then_per_process(monkeypatch) -> None:
    assert sweep_id("given") == "given"
    monkeypatch.setenv("SSLEQUI_SWEEP_ID", "from-env")
    assert sweep_id() == "from-env"
    monkeypatch.delenv("SSLEQUI_SWEEP_ID")
    assert sweep_id() == sweep_id()  # one id per process
    assert run_dir_path("runs", "exp", "slug") == Path("runs/exp/single/slug")


def test_multirun_writes_each_run_in_its_folder_and_nothing_else(
    tiny_overrides, subprocess_env, tmp_path: Path
) -> None:
    subprocess_env["SSLEQUI_SWEEP_ID"] = "sweep-123"
    args = [o for o in tiny_overrides if not o.startswith("train.steps")]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sslequi.cli.pretrain",
            "--multirun",
            *args,
            "train.steps=1",
            "output_root=runs",
            "seed=1,2",
        ],
        cwd=tmp_path,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "runs" / "default" / "sweep-123"
    slugs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert len(slugs) == 2
    for slug in slugs:
        overrides = OmegaConf.load(sweep / slug / ".hydra" / "overrides.yaml")
        assert run_slug(list(overrides)) == slug  # the folder is named by its overrides
        info = json.loads((sweep / slug / "run.json").read_text())
        assert info["status"] == "completed" and info["sweep_id"] == "sweep-123"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # no outputs/ or multirun/


def test_bad_override_exits_with_a_clear_message(monkeypatch, capsys, tmp_path: Path) -> None:
    from hydra.core.global_hydra import GlobalHydra

    from sslequi.cli.pretrain import main

    GlobalHydra.instance().clear()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["sslequi-pretrain", "optim.lr=-1", "output_root=runs"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "optim.lr must be > 0" in capsys.readouterr().err
    assert not list(tmp_path.rglob("metrics.jsonl"))
