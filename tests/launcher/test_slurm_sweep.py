"""A Hydra ``launcher=slurm`` sweep end to end against a fake SLURM on PATH.

``sslequi-pretrain -m seed=0,1 launcher=slurm launcher.wait=false`` must return while the
jobs are still PENDING (the fake scheduler holds them), after writing a manifest that
names one array; the sbatch script submitit wrote must equal ``render_sbatch`` of the
same config; once released, the array's tasks train to completion in the run
directories the manifest names; ``sslequi-sweep status|collect`` read the manifest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sslequi.cli import sweep as sweep_cli
from sslequi.evaluation.protocol import Protocol
from sslequi.evaluation.results import ResultRow, append_results
from sslequi.launcher.config import SlurmLauncherConfig
from sslequi.launcher.slurm import render_sbatch
from sslequi.launcher.sweeps import SweepManifest, sweep_status
from sslequi.train.rundir import RunDir, read_metrics

sys.path.insert(0, str(Path(__file__).parent))
import fake_slurm  # noqa: E402

COMMON = [
    "launcher=slurm",
    "launcher.wait=false",
    "launcher.partition=debug",
    "launcher.gpus_per_node=0",
    "launcher.cpus_per_task=1",
    "launcher.timeout_min=30",
    "launcher.sweep_name=fake",
    "train.device=cpu",
    "train.steps=3",
    "train.batch_size=8",
    "train.log_every=1",
    "train.progress=false",
    "train.checkpoint_every_min=0",
]


def _sweep_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fake SLURM on PATH, here (for sacct in ``sweep_status``) and for the submission."""
    for name, value in fake_slurm.install(tmp_path / "bin", tmp_path / "slurm").items():
        monkeypatch.setenv(name, value)
    env = dict(os.environ)
    env.update(WANDB_MODE="disabled", SSLEQUI_SWEEP_ID="", OMP_NUM_THREADS="1")
    return env


def _wait_until(predicate, timeout_s: float, what: str, every_s: float = 0.2) -> None:
    """Poll ``predicate``; a predicate that runs ``sacct`` starts a Python process (about
    0.05 CPU-s), so the long waits poll once a second, beside the jobs on the same cores."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every_s)


def test_slurm_sweep_is_one_array_submitted_without_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _sweep_env(tmp_path, monkeypatch)
    (tmp_path / "slurm" / "hold").touch()
    log = tmp_path / "submit.log"
    with log.open("w") as stream:
        code = subprocess.call(
            ["sslequi-pretrain", "-m", "seed=0,1", *COMMON],
            cwd=tmp_path,
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    output = log.read_text()
    assert code == 0, output
    manifest_line = next(line for line in output.splitlines() if line.startswith("sweep manifest:"))
    manifest = SweepManifest.read(manifest_line.split(":", 1)[1].strip())

    # One array, two tasks, one run directory each, all inside the sweep directory.
    assert manifest.launcher == "slurm" and manifest.sweep_name == "fake"
    assert manifest.sweep_id.startswith("fake-")
    assert [run.job_id for run in manifest.runs] == [
        f"{manifest.array_id}_0",
        f"{manifest.array_id}_1",
    ]
    assert [run.overrides[0] for run in manifest.runs] == ["seed=0", "seed=1"]
    run_dirs = [Path(run.run_dir) for run in manifest.runs]
    assert len(set(run_dirs)) == 2
    assert all(d.parent == Path(manifest.sweep_dir) for d in run_dirs)
    assert (Path(manifest.sweep_dir) / "multirun.yaml").exists()

    # Submitted, not run: the submission returned while the scheduler holds the jobs.
    statuses = sweep_status(manifest)
    assert [s.state for s in statuses] == ["queued", "queued"]
    assert [s.scheduler_state for s in statuses] == ["PENDING", "PENDING"]

    # The sbatch script is what render_sbatch gives for this config.
    folder = Path(manifest.submitit_folder)
    scripts = list(folder.parent.glob("*/*_submission.sh"))
    assert len(scripts) == 1
    expected_config = SlurmLauncherConfig(
        partition="debug", gpus_per_node=0, cpus_per_task=1, timeout_min=30, sweep_name="fake"
    )
    assert scripts[0].read_text() == render_sbatch(expected_config, folder, "fake", array_size=2)
    assert "#SBATCH --array=0-1%2" in scripts[0].read_text()

    # Released, the array trains to completion in the manifest's run directories.
    (tmp_path / "slurm" / "hold").unlink()

    def done() -> bool:
        return all(s.scheduler_state in fake_slurm.TERMINAL for s in sweep_status(manifest))

    _wait_until(done, 300, "the sweep to finish", every_s=1.0)
    statuses = sweep_status(manifest)
    assert [s.state for s in statuses] == ["completed", "completed"], [s.reason for s in statuses]
    assert [s.scheduler_state for s in statuses] == ["COMPLETED", "COMPLETED"]
    assert all(s.step == 3 for s in statuses)
    for run_dir in run_dirs:
        config = (run_dir / "config.yaml").read_text()
        assert f"sweep_id: {manifest.sweep_id}" in config
        assert "group: fake" in config  # wandb group = sweep name
    assert sweep_cli.main(["status", str(manifest.path)]) == 0

    # collect: one table over the sweep's evaluated runs.
    for seed, run_dir in enumerate(run_dirs):
        protocol = Protocol(probe="linear", part="invariant", metric_definition="top1", seed=seed)
        row = ResultRow(
            run=run_dir.name,
            method="vicreg",
            probe="linear",
            metric="top1",
            split="val",
            value=0.5 + seed / 10,
            floor=0.1,
            n=10,
            protocol=protocol,
        )
        append_results(run_dir, [row])
    assert sweep_cli.main(["collect", manifest.sweep_dir]) == 0
    table = (Path(manifest.sweep_dir) / "results" / "comparison.md").read_text()
    assert "0.5" in table and "0.6" in table


@pytest.mark.parametrize("argument", ["missing.json"])
def test_status_of_a_missing_manifest_is_a_clear_error(
    tmp_path: Path, argument: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sweep_cli.main(["status", str(tmp_path / argument)]) == 2
    assert "no sweep manifest" in capsys.readouterr().err


def test_slurm_job_requeues_itself_on_usr2_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``scancel --signal USR2`` (SLURM's pre-preemption signal) on a running SLURM job:
    submitit's handler checkpoints through our launcher, runs ``scontrol requeue``, and the
    requeued job resumes in the same run directory until it completes."""
    env = _sweep_env(tmp_path, monkeypatch)
    steps = 40
    run = [
        "seed=0",
        *COMMON,
        "launcher.wait=false",
        f"train.steps={steps}",
        "train.log_every=2",
        "dataset.resolution=16",
        "dataset.n_objects=32",
        "dataset.n_val_objects=8",
        "method.projector=32-32",
        "train.online_probe_every=0",
    ]
    log = tmp_path / "submit.log"
    with log.open("w") as stream:
        code = subprocess.call(
            ["sslequi-pretrain", "-m", *run],
            cwd=tmp_path,
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    assert code == 0, log.read_text()
    (sweep_dir,) = (tmp_path / "runs" / "default").iterdir()
    manifest = SweepManifest.read(sweep_dir)
    (point,) = manifest.runs
    run_dir = Path(point.run_dir)

    def training() -> bool:
        steps_logged = [r["step"] for r in read_metrics(run_dir)]
        return bool(steps_logged) and max(steps_logged) >= 6

    _wait_until(training, 240, "the job to train")
    subprocess.check_call(["scancel", point.job_id, "--signal", "USR2"], env=env)

    def finished() -> bool:
        return sweep_status(manifest)[0].scheduler_state in fake_slurm.TERMINAL

    _wait_until(finished, 300, "the requeued job to finish", every_s=1.0)
    (status,) = sweep_status(manifest)
    info = RunDir(run_dir, writer=False).read_info()
    assert info is not None
    logs = "".join(p.read_text() for p in Path(manifest.sweep_dir).rglob("*_log.*"))
    assert status.state == "completed" and status.scheduler_state == "COMPLETED", logs[-3000:]
    assert info.attempts == 2 and info.step == steps
    assert "this job is preempted" in logs and f"Requeued job {point.job_id}" in logs
    assert [r["step"] for r in read_metrics(run_dir)] == list(range(2, steps + 1, 2))
