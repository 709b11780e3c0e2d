"""Sweep manifests and what follows a submission: status of each run, results in one table.

The launcher writes ``sweep.json`` (a ``SweepManifest``) into the sweep directory before it
returns (at once with ``launcher.wait=false``). ``sweep_status`` combines each run's
``run.json`` (written by the trainer: running | requeued | completed | failed) with the
scheduler's view (``sacct`` for SLURM, the controller process for local jobs), because
neither alone is enough: SLURM reports a crashed Hydra job as COMPLETED (hydra#1928), and
a run that has not started yet has no ``run.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from submitit.slurm.slurm import SlurmInfoWatcher

from sslequi.train.rundir import RunDir, RunInfo

MANIFEST_NAME = "sweep.json"
RunState = Literal["queued", "running", "completed", "failed", "requeued"]

# SLURM job states (sacct) grouped by what they mean for a run.
_SLURM_WAITING = {
    "PENDING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESV_DEL_HOLD",
    "SUSPENDED",
}
_SLURM_ACTIVE = {"RUNNING", "CONFIGURING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING"}
_SLURM_PREEMPTED = {"PREEMPTED"}


class ManifestError(ValueError):
    """A manifest that cannot be read (missing file, wrong format)."""


@dataclass
class ManifestRun:
    """One sweep point: its overrides, run directory and scheduler job id."""

    index: int
    overrides: list[str]
    run_slug: str
    run_dir: str
    job_id: str


@dataclass
class SweepManifest:
    """What a submission produced; enough to follow and collect the sweep later.

    ``array_id`` is the SLURM array job id (all points share it) or None for local jobs;
    ``job_id`` of each run is ``<array>_<index>`` on SLURM, the controller's pid locally.
    """

    sweep_name: str
    sweep_id: str
    launcher: str
    sweep_dir: str
    submitit_folder: str
    array_id: str | None
    created: str
    runs: list[ManifestRun] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return Path(self.sweep_dir) / MANIFEST_NAME

    def write(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(temporary, self.path)
        return self.path

    @classmethod
    def read(cls, path: str | Path) -> SweepManifest:
        file = Path(path)
        if file.is_dir():
            file = file / MANIFEST_NAME
        if not file.exists():
            raise ManifestError(f"no sweep manifest at {file}")
        try:
            data = json.loads(file.read_text())
            runs = [ManifestRun(**run) for run in data.pop("runs")]
            return cls(**data, runs=runs)
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ManifestError(f"{file} is not a sweep manifest: {error}") from None


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RunStatus:
    """The state of one run, with where it came from."""

    run: ManifestRun
    state: RunState
    scheduler_state: str  # e.g. PENDING, RUNNING, COMPLETED, "alive"/"exited", or "unknown"
    step: int
    total_steps: int
    reason: str


# ----------------------------------------------------------------------- scheduler views


def slurm_states(job_ids: Sequence[str]) -> dict[str, str]:
    """``sacct`` states by job id (``<array>_<index>`` or plain), {} when sacct is absent."""
    roots = sorted({job_id.split("_")[0] for job_id in job_ids})
    if not roots or shutil.which("sacct") is None:
        return {}
    command = ["sacct", "-o", "JobID,State,NodeList", "--parsable2"]
    for root in roots:
        command += ["-j", root]
    try:
        output = subprocess.check_output(command, stderr=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return {}
    table = SlurmInfoWatcher().read_info(output)
    # "CANCELLED by 123" → CANCELLED
    return {job_id: info.get("State", "UNKNOWN").split()[0] for job_id, info in table.items()}


def local_states(job_ids: Sequence[str]) -> dict[str, str]:
    """``alive`` or ``exited`` for local jobs, whose id is the controller's pid."""
    return {job_id: "alive" if _pid_alive(int(job_id)) else "exited" for job_id in job_ids}


def _pid_alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:  # a zombie (exited, not yet reaped) is not alive
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------------- combined status


def combine(info: RunInfo | None, scheduler_state: str) -> tuple[RunState, str]:
    """One run's state from its ``run.json`` and the scheduler's state (see module doc)."""
    recorded = info.status if info else None
    reason = info.reason if info else ""
    if recorded in ("completed", "failed"):
        return recorded, reason
    if scheduler_state in ("exited", "COMPLETED") or _slurm_failed(scheduler_state):
        why = "after a requeue (requeue limit reached?)" if recorded == "requeued" else ""
        return "failed", f"job ended ({scheduler_state}) without completing the run {why}".strip()
    if scheduler_state in _SLURM_ACTIVE or scheduler_state == "alive":
        # A restarted job is 'requeued' until its trainer marks the run running again.
        return (recorded if recorded in ("running", "requeued") else "queued"), ""
    if scheduler_state in _SLURM_PREEMPTED or recorded == "requeued":
        return "requeued", reason
    if scheduler_state in _SLURM_WAITING:
        return "queued", ""
    # Scheduler unknown (no sacct, or the job left its accounting window): trust run.json.
    return ("running" if recorded == "running" else "queued"), ""


def _slurm_failed(state: str) -> bool:
    return state in {
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "BOOT_FAIL",
        "DEADLINE",
    }


def sweep_status(manifest: SweepManifest) -> list[RunStatus]:
    """The state of every run of ``manifest``."""
    job_ids = [run.job_id for run in manifest.runs]
    if manifest.launcher == "slurm":
        scheduler = slurm_states(job_ids)
    else:
        scheduler = local_states(job_ids)
    statuses = []
    for run in manifest.runs:
        info = RunDir(run.run_dir, writer=False).read_info()
        scheduler_state = scheduler.get(run.job_id, "unknown")
        state, reason = combine(info, scheduler_state)
        statuses.append(
            RunStatus(
                run=run,
                state=state,
                scheduler_state=scheduler_state,
                step=info.step if info else 0,
                total_steps=info.total_steps if info else 0,
                reason=reason,
            )
        )
    return statuses


def format_status(manifest: SweepManifest, statuses: Sequence[RunStatus]) -> str:
    """A plain-text table: one line per run, then counts per state."""
    header = f"sweep {manifest.sweep_id} ({manifest.launcher}, {len(statuses)} runs)"
    rows = [("#", "state", "scheduler", "step", "job", "run")]
    for status in statuses:
        progress = f"{status.step}/{status.total_steps}" if status.total_steps else "-"
        rows.append(
            (
                str(status.run.index),
                status.state,
                status.scheduler_state,
                progress,
                status.run.job_id,
                status.run.run_slug + (f"  ({status.reason})" if status.reason else ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [header]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]))
    counts = status_counts(statuses)
    lines.append(", ".join(f"{state}: {count}" for state, count in sorted(counts.items())))
    return "\n".join(lines)


def status_counts(statuses: Sequence[RunStatus]) -> Mapping[str, int]:
    """How many runs are in each state."""
    return Counter(status.state for status in statuses)


def collect(
    manifest: SweepManifest, out: str | Path | None = None, include_unfinished: bool = False
) -> Any:
    """One results table over the sweep's completed runs (``sslequi.evaluation.results.compare``).

    Writes ``comparison.md``/``.csv`` into ``<sweep dir>/results`` (or ``out``). Unfinished runs are left out
    (and named) unless ``include_unfinished``.
    """
    from sslequi.evaluation.results import compare

    statuses = sweep_status(manifest)
    chosen = [s.run.run_dir for s in statuses if include_unfinished or s.state == "completed"]
    if not chosen:
        raise ManifestError(
            f"sweep {manifest.sweep_id}: no completed run to collect yet "
            f"({dict(status_counts(statuses))})"
        )
    directory = Path(out) if out is not None else Path(manifest.sweep_dir) / "results"
    directory.mkdir(parents=True, exist_ok=True)  # compare writes comparison.{md,csv} inside
    return compare(chosen, out=directory)
