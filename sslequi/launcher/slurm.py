"""Launcher config → submitit executor: parameters, the executor itself, the sbatch text.

One function (``executor_parameters``) turns a typed launcher config into the keyword
arguments of ``executor.update_parameters``. The real submission and the golden-file test
(``render_sbatch``) both use it, so what the test checks is what SLURM receives.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import submitit
from submitit.slurm.slurm import _make_sbatch_string

from sslequi.launcher.config import (
    LauncherConfigError,
    SlurmLauncherConfig,
    SubmititLocalLauncherConfig,
    SubmitLauncherConfig,
)


def executor_parameters(config: SubmitLauncherConfig, job_name: str) -> dict[str, Any]:
    """``update_parameters`` kwargs for ``config`` (sbatch spellings for SLURM)."""
    tasks_per_node = config.effective_tasks_per_node()
    if isinstance(config, SlurmLauncherConfig):
        params: dict[str, Any] = {
            "job_name": job_name,
            "time": max(1, int(round(config.timeout_min))),
            "nodes": config.nodes,
            "ntasks_per_node": tasks_per_node,
            "cpus_per_task": config.cpus_per_task,
            "gpus_per_node": config.gpus_per_node or None,
            "partition": config.partition,
            "account": config.account,
            "qos": config.qos,
            "constraint": config.constraint,
            "mem": None if config.mem_gb is None else _mem_string(config.mem_gb),
            "signal_delay_s": config.signal_delay_s,
            "array_parallelism": config.array_parallelism,
            "setup": list(config.setup) or None,
            "additional_parameters": dict(config.additional_parameters) or None,
        }
        return {key: value for key, value in params.items() if value is not None}
    if isinstance(config, SubmititLocalLauncherConfig):
        params = {
            "name": job_name,
            "timeout_min": config.timeout_min,
            "tasks_per_node": tasks_per_node,
            "gpus_per_node": config.gpus_per_node,
            "signal_delay_s": config.signal_delay_s,
            "setup": list(config.setup) or None,
        }
        return {key: value for key, value in params.items() if value is not None}
    raise LauncherConfigError(f"launcher {config.name!r} does not submit through submitit")


def _mem_string(mem_gb: float) -> str:
    return f"{int(mem_gb)}GB" if float(mem_gb).is_integer() else f"{int(mem_gb * 1024)}MB"


def cluster_name(config: SubmitLauncherConfig) -> str:
    """submitit's executor name for ``config``."""
    return "slurm" if isinstance(config, SlurmLauncherConfig) else "local"


def make_executor(config: SubmitLauncherConfig, folder: Path, job_name: str) -> submitit.Executor:
    """The submitit executor for ``config``, writing its pickles and logs under ``folder``."""
    executor: submitit.Executor
    if isinstance(config, SlurmLauncherConfig):
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=config.max_num_timeout)
    else:
        executor = submitit.LocalExecutor(folder=folder, max_num_timeout=config.max_num_timeout)
    executor.update_parameters(**executor_parameters(config, job_name))
    return executor


def render_sbatch(
    config: SlurmLauncherConfig,
    folder: Path | str,
    job_name: str,
    array_size: int,
    python: str | None = None,
) -> str:
    """The sbatch script submitit writes for an array of ``array_size`` sweep points.

    ``python`` is the interpreter command on the job side (default: this interpreter, as
    submitit's executor uses).
    """
    params = executor_parameters(config, job_name)
    interpreter = shlex.quote(sys.executable) if python is None else python
    return _make_sbatch_string(
        command=f"{interpreter} -u -m submitit.core._submit {shlex.quote(str(folder))}",
        folder=folder,
        map_count=array_size if array_size > 1 else None,
        **params,
    )
