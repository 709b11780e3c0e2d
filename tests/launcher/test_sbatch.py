"""The sbatch script of a representative SLURM sweep, checked against a golden file.

The same ``executor_parameters`` feed the real submission (``make_executor``) and
``render_sbatch``; the end-to-end fake-SLURM test checks that the two scripts agree.
Regenerate the golden file deliberately with ``SSLEQUI_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import os
from pathlib import Path

from sslequi.launcher.config import SlurmLauncherConfig, SubmititLocalLauncherConfig
from sslequi.launcher.slurm import executor_parameters, render_sbatch

GOLDEN = Path(__file__).parent / "golden" / "sbatch_array.sh"
FOLDER = "/shared/runs/sie_3diebench/method-seed-20260101-000000-abcdef/.submitit/%j"

REPRESENTATIVE = SlurmLauncherConfig(
    partition="gpu",
    account="mylab",
    qos="normal",
    constraint="a100",
    nodes=2,
    gpus_per_node=4,
    cpus_per_task=8,
    mem_gb=64,
    timeout_min=1440,
    array_parallelism=4,
    signal_delay_s=180,
    setup=["module load cuda/12.1", "source ~/venvs/sslequi/bin/activate"],
    additional_parameters={"mail-type": "END"},
)


def test_sbatch_script_matches_golden_file() -> None:
    script = render_sbatch(REPRESENTATIVE, FOLDER, "method-seed", array_size=6, python="python")
    if os.environ.get("SSLEQUI_UPDATE_GOLDEN"):
        GOLDEN.write_text(script)
    assert script == GOLDEN.read_text()


def test_sbatch_essentials() -> None:
    script = render_sbatch(REPRESENTATIVE, FOLDER, "method-seed", array_size=6, python="python")
    lines = script.splitlines()
    assert "#SBATCH --array=0-5%4" in lines  # one array, at most 4 points at once
    assert "#SBATCH --ntasks-per-node=4" in lines  # one task per GPU by default
    assert "#SBATCH --gpus-per-node=4" in lines and "#SBATCH --nodes=2" in lines
    assert "#SBATCH --signal=USR2@180" in lines and "#SBATCH --open-mode=append" in lines
    assert "#SBATCH --time=1440" in lines and "#SBATCH --mem=64GB" in lines
    assert lines.index("module load cuda/12.1") < lines.index("export SUBMITIT_EXECUTOR=slurm")
    single = render_sbatch(REPRESENTATIVE, FOLDER, "one", array_size=1, python="python")
    assert "--array" not in single


def test_executor_parameters() -> None:
    params = executor_parameters(SlurmLauncherConfig(gpus_per_node=2, mem_gb=7.5), "s")
    assert params["ntasks_per_node"] == 2 and params["mem"] == "7680MB"
    assert "partition" not in params  # unset options are left to the cluster's defaults
    cpu = executor_parameters(SlurmLauncherConfig(gpus_per_node=0, tasks_per_node=3), "s")
    assert cpu["ntasks_per_node"] == 3 and "gpus_per_node" not in cpu
    local = executor_parameters(SubmititLocalLauncherConfig(timeout_min=0.5), "s")
    assert local == {
        "name": "s",
        "timeout_min": 0.5,
        "tasks_per_node": 1,
        "gpus_per_node": 0,
        "signal_delay_s": 120,
    }
