"""Preemption through the real path: Hydra sweep → submitit LocalExecutor → USR2 → requeue.

A one-point ``launcher=submitit_local`` sweep is submitted without waiting; once it is
training, the job's task process gets SIGUSR2 by hand (what SLURM sends before
preemption). submitit's handler calls our launcher's ``checkpoint``, which saves the
trainer's state and resubmits; the controller restarts the task, which resumes.

Checked: the run ends ``completed`` after two attempts in one run directory, with one
wandb run id (``wandb.init`` is recorded by a stand-in module on the job's PYTHONPATH:
the real one takes minutes to start offline on a loaded CPU box); no logged step is
lost or repeated; and the final weights equal those of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from sslequi.cli.pretrain import configs_dir, register_configs, register_resolvers
from sslequi.launcher.sweeps import SweepManifest, sweep_status
from sslequi.train.run import pretrain
from sslequi.train.rundir import read_metrics

STEPS = 60
LOG_EVERY = 2
RUN = [
    "seed=3",
    "dataset.resolution=16",
    "dataset.n_objects=32",
    "dataset.n_val_objects=8",
    "method.projector=32-32",
    f"train.steps={STEPS}",
    "train.batch_size=4",
    f"train.log_every={LOG_EVERY}",
    "train.online_probe_every=0",
    "train.checkpoint_every_min=0",
    "train.progress=false",
    "train.device=cpu",
]
LAUNCH = ["launcher=submitit_local", "launcher.wait=false", "launcher.sweep_name=pre"]

FAKE_WANDB = '''"""Stand-in for wandb in launcher tests: records each init call, logs nothing."""
import json
import os


class _Run:
    def log(self, record, step=None):
        pass

    def finish(self, exit_code=0):
        pass


def init(**kwargs):
    with open(os.environ["FAKE_WANDB_LOG"], "a") as stream:
        stream.write(json.dumps({k: kwargs.get(k) for k in ("id", "resume", "group", "name")}) + "\\n")
    return _Run()
'''


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _uninterrupted_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    register_configs()
    register_resolvers()
    with initialize_config_dir(config_dir=str(configs_dir()), version_base="1.3"):
        cfg = compose("pretrain", overrides=[*RUN, "logger.mode=disabled", f"run_dir={run_dir}"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the job (OMP_NUM_THREADS=1)
    try:
        pretrain(cfg)
    finally:
        torch.set_num_threads(threads)
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["method"]


def test_preempted_job_checkpoints_requeues_and_resumes_exactly(tmp_path: Path) -> None:
    fake = tmp_path / "fake_wandb" / "wandb"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(FAKE_WANDB)
    wandb_log = tmp_path / "wandb_calls.jsonl"
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(fake.parent),
        FAKE_WANDB_LOG=str(wandb_log),
        WANDB_MODE="offline",
        OMP_NUM_THREADS="1",
        SSLEQUI_SWEEP_ID="",
    )
    log = tmp_path / "submit.log"
    with log.open("w") as stream:  # a file, not a pipe: the job outlives the command
        code = subprocess.call(
            ["sslequi-pretrain", "-m", *RUN, *LAUNCH],
            cwd=tmp_path,
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    output = log.read_text()
    assert code == 0, output
    manifest_path = next(
        line.split(":", 1)[1].strip()
        for line in output.splitlines()
        if line.startswith("sweep manifest:")
    )
    manifest = SweepManifest.read(manifest_path)
    (run,) = manifest.runs
    run_dir = Path(run.run_dir)
    controller = int(run.job_id)

    def training() -> bool:
        steps = [r["step"] for r in read_metrics(run_dir)]
        return bool(steps) and max(steps) >= 5 * LOG_EVERY

    _wait_until(training, 240, "the job to train")
    (task,) = _children(controller)
    os.kill(task, signal.SIGUSR2)  # what SLURM sends signal_delay_s before preemption

    def finished() -> bool:
        return sweep_status(manifest)[0].scheduler_state == "exited"

    _wait_until(finished, 300, "the requeued job to finish")
    (status,) = sweep_status(manifest)
    info = json.loads((run_dir / "run.json").read_text())
    submitit_log = "".join(p.read_text() for p in Path(manifest.sweep_dir).rglob("*_log.*"))
    assert status.state == "completed", (status, submitit_log[-3000:])
    assert info["status"] == "completed" and info["step"] == STEPS
    assert info["attempts"] == 2, info
    assert "this job is preempted" in submitit_log and "Requeued job" in submitit_log

    # One run directory, one wandb run (same id, resumed, grouped by the sweep name).
    siblings = [p for p in Path(manifest.sweep_dir).iterdir() if p.is_dir() and p.name[0] != "."]
    assert siblings == [run_dir]
    calls = [json.loads(line) for line in wandb_log.read_text().splitlines()]
    assert len(calls) == 2 and calls[0]["id"] == calls[1]["id"] == info["wandb_id"]
    assert all(c["resume"] == "allow" and c["group"] == "pre" for c in calls)

    # No logged step lost or repeated across the requeue.
    steps = [record["step"] for record in read_metrics(run_dir)]
    assert steps == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))

    # The final weights equal an uninterrupted run's.
    resumed = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["method"]
    reference = _uninterrupted_weights(tmp_path / "uninterrupted")
    assert resumed.keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.equal(resumed[name], tensor), name
