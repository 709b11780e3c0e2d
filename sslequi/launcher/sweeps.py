"""Sweep manifests and what follows a submission: status, evaluation, results in one table.

The launcher writes ``sweep.json`` (a ``SweepManifest``) into the sweep directory before it
returns (at once with ``launcher.wait=false``). ``sweep_status`` combines each run's
``run.json`` (written by the trainer: running | requeued | completed | failed) with the
scheduler's view (``sacct`` for SLURM, the controller process for local jobs), because
neither alone is enough: SLURM reports a crashed Hydra job as COMPLETED (hydra#1928), and
a run that has not started yet has no ``run.json``. Progress is the last step the run
logged (``metrics.jsonl``), which ``run.json`` records only at the end of an attempt.

``load_sweep`` also reads a folder of runs without a manifest (an in-process ``-m`` sweep,
the demo's output): its runs are the run directories inside it. ``evaluate_sweep``
evaluates the completed runs (``sslequi.launcher.sweep_eval``), ``collect`` compares them.
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
NO_SCHEDULER = "none"  # the launcher of a folder of runs read without a manifest
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
    evaluate: list[str] = field(default_factory=list)  # sslequi-eval overrides of each job

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
    evaluation: str = "-"  # sweep_eval.eval_state: -, running, failed, <n> rows


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
    return {
        job_id: "alive" if _pid_alive(int(job_id)) else "exited"
        for job_id in job_ids
        if job_id.isdigit()
    }


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


def last_logged_step(run_dir: str | Path) -> int:
    """The step of the last record in the run's ``metrics.jsonl`` (0 if none)."""
    path = Path(run_dir) / "metrics.jsonl"
    try:
        with path.open("rb") as stream:
            stream.seek(0, os.SEEK_END)
            stream.seek(max(0, stream.tell() - 8192))
            lines = stream.read().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by the seek, or being written
    return 0


def sweep_status(manifest: SweepManifest) -> list[RunStatus]:
    """The state of every run of ``manifest``."""
    from sslequi.launcher.sweep_eval import eval_state

    job_ids = [run.job_id for run in manifest.runs if run.job_id]
    if manifest.launcher == "slurm":
        scheduler = slurm_states(job_ids)
    elif manifest.launcher == NO_SCHEDULER:
        scheduler = {}
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
                step=max(info.step if info else 0, last_logged_step(run.run_dir)),
                total_steps=info.total_steps if info else 0,
                reason=reason,
                evaluation=eval_state(run.run_dir),
            )
        )
    return statuses


def format_status(manifest: SweepManifest, statuses: Sequence[RunStatus]) -> str:
    """A plain-text table: one line per run, then counts per state."""
    header = f"sweep {manifest.sweep_id} ({manifest.launcher}, {len(statuses)} runs)"
    rows = [("#", "state", "scheduler", "step", "eval", "job", "run")]
    for status in statuses:
        progress = f"{status.step}/{status.total_steps}" if status.total_steps else "-"
        rows.append(
            (
                str(status.run.index),
                status.state,
                status.scheduler_state,
                progress,
                status.evaluation,
                status.run.job_id or "-",
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


def load_sweep(path: str | Path) -> SweepManifest:
    """The sweep at ``path``: its ``sweep.json``, or, for a folder without one, a manifest
    of the run directories inside it (up to three levels down; no scheduler)."""
    folder = Path(path)
    if folder.is_file() or (folder / MANIFEST_NAME).exists() or not folder.is_dir():
        return SweepManifest.read(folder)
    run_dirs = find_run_dirs(folder)
    if not run_dirs:
        raise ManifestError(f"{folder} holds neither a {MANIFEST_NAME} nor run directories")
    return SweepManifest(
        sweep_name=folder.name,
        sweep_id=folder.name,
        launcher=NO_SCHEDULER,
        sweep_dir=str(folder.absolute()),
        submitit_folder="",
        array_id=None,
        created="",
        runs=[
            ManifestRun(
                index=index,
                overrides=[],
                run_slug=str(run_dir.relative_to(folder)),
                run_dir=str(run_dir.absolute()),
                job_id="",
            )
            for index, run_dir in enumerate(run_dirs)
        ],
    )


def is_run_dir(path: Path) -> bool:
    """A pretraining run directory: it has a ``run.json`` or a ``config.yaml`` and
    ``checkpoints/``."""
    return (path / "run.json").is_file() or (
        (path / "config.yaml").is_file() and (path / "checkpoints").is_dir()
    )


def find_run_dirs(folder: Path, depth: int = 3) -> list[Path]:
    """Run directories at or below ``folder`` (sorted; not below a run directory)."""
    if is_run_dir(folder):
        return [folder]
    if depth == 0 or not folder.is_dir():
        return []
    found: list[Path] = []
    for child in sorted(folder.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            found += find_run_dirs(child, depth - 1)
    return found


def evaluate_sweep(
    manifest: SweepManifest,
    overrides: Sequence[str] = (),
    force: bool = False,
    echo: bool = True,
) -> list[Any]:
    """Evaluate every completed run of ``manifest`` (``sweep_eval.evaluate_run_dir``).

    ``overrides`` (sslequi-eval options) follow the manifest's own (``launcher.eval_*``).
    Failed and unfinished runs are skipped and listed. The request is checked before any
    run is touched. Returns one ``EvalOutcome`` per run.
    """
    from sslequi.launcher.sweep_eval import (
        EvalOutcome,
        check_eval_request,
        evaluate_run_dir,
        merge_overrides,
    )

    request = merge_overrides(manifest.evaluate, overrides)
    check_eval_request(request)
    outcomes: list[EvalOutcome] = []
    for status in sweep_status(manifest):
        run_dir = Path(status.run.run_dir)
        if status.state != "completed":
            why = status.state + (f": {status.reason}" if status.reason else "")
            outcome = EvalOutcome(run_dir, "skipped", why)
        else:
            if echo:
                print(f"evaluating {status.run.run_slug} …", flush=True)
            outcome = evaluate_run_dir(run_dir, request, force=force)
        outcomes.append(outcome)
    return outcomes


def format_outcomes(manifest: SweepManifest, outcomes: Sequence[Any]) -> str:
    """One line per run: evaluated / skipped (and why) / failed (and the error)."""
    lines = []
    for run, outcome in zip(manifest.runs, outcomes, strict=True):
        took = f" in {outcome.seconds:.0f} s" if outcome.seconds else ""
        lines.append(f"  {outcome.state:<9} {run.run_slug}  ({outcome.detail}{took})")
    counts = Counter(outcome.state for outcome in outcomes)
    return "\n".join([*lines, ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))])


def collect(
    manifest: SweepManifest,
    out: str | Path | None = None,
    include_unfinished: bool = False,
    echo: bool = True,
) -> Any:
    """One results table over the sweep's evaluated runs (``sslequi.evaluation.results.compare``).

    Writes ``comparison.md``/``.csv``/``.png`` into ``<sweep dir>/results`` (or ``out``) and
    prints the headline table and the paths. Unfinished runs are left out unless
    ``include_unfinished``; completed runs without results yet are skipped with a note.
    """
    from sslequi.evaluation.results import RESULTS_FILE, compare

    statuses = sweep_status(manifest)
    chosen = [s.run.run_dir for s in statuses if include_unfinished or s.state == "completed"]
    evaluated = [d for d in chosen if (Path(d) / RESULTS_FILE).exists()]
    if not evaluated:
        raise ManifestError(
            f"sweep {manifest.sweep_id}: no evaluated run to collect yet "
            f"({dict(status_counts(statuses))}); evaluate with: sslequi-sweep evaluate "
            f"{manifest.sweep_dir}"
        )
    directory = Path(out) if out is not None else Path(manifest.sweep_dir) / "results"
    directory.mkdir(parents=True, exist_ok=True)  # compare writes comparison.{md,csv} inside
    return compare(chosen, out=directory, skip_missing=True, echo=echo)
