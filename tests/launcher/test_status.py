"""Run states from run.json and the scheduler, and the manifest's round trip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sslequi.launcher.sweeps import (
    ManifestError,
    ManifestRun,
    SweepManifest,
    combine,
    local_states,
)
from sslequi.train.rundir import RunInfo


def _info(status: str) -> RunInfo:
    return RunInfo(status=status, reason=f"why {status}")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("recorded", "scheduler", "expected"),
    [
        (None, "PENDING", "queued"),
        (None, "RUNNING", "queued"),  # started, trainer not yet up
        ("running", "RUNNING", "running"),
        ("running", "alive", "running"),
        ("requeued", "PENDING", "requeued"),
        ("requeued", "REQUEUED", "requeued"),
        ("requeued", "RUNNING", "requeued"),  # restarted, not yet resumed
        ("running", "PREEMPTED", "requeued"),
        ("completed", "COMPLETED", "completed"),
        ("completed", "unknown", "completed"),
        ("failed", "COMPLETED", "failed"),  # hydra#1928: SLURM says COMPLETED
        ("running", "COMPLETED", "failed"),  # ended without finishing the run
        ("running", "exited", "failed"),
        ("running", "TIMEOUT", "failed"),
        ("requeued", "TIMEOUT", "failed"),  # requeue limit reached
        (None, "CANCELLED", "failed"),
        ("running", "unknown", "running"),  # no sacct: trust run.json
        (None, "unknown", "queued"),
    ],
)
def test_combined_state(recorded: str | None, scheduler: str, expected: str) -> None:
    state, reason = combine(_info(recorded) if recorded else None, scheduler)
    assert state == expected
    if expected == "failed" and recorded not in ("failed",):
        assert scheduler in reason


def test_local_state_follows_the_controller_process() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert local_states([str(process.pid)]) == {str(process.pid): "alive"}
    finally:
        process.kill()
    process.wait()
    assert local_states([str(process.pid)]) == {str(process.pid): "exited"}


def test_manifest_round_trip_and_errors(tmp_path: Path) -> None:
    manifest = SweepManifest(
        sweep_name="s",
        sweep_id="s-1",
        launcher="slurm",
        sweep_dir=str(tmp_path),
        submitit_folder=str(tmp_path / ".submitit" / "%j"),
        array_id="12",
        created="now",
        runs=[ManifestRun(0, ["seed=0"], "seed-0", str(tmp_path / "seed-0"), "12_0")],
    )
    path = manifest.write()
    assert SweepManifest.read(path) == manifest == SweepManifest.read(tmp_path)
    (tmp_path / "sweep.json").write_text('{"sweep_name": "s"}')
    with pytest.raises(ManifestError, match="is not a sweep manifest"):
        SweepManifest.read(tmp_path)
    with pytest.raises(ManifestError, match="no sweep manifest"):
        SweepManifest.read(tmp_path / "elsewhere")
    assert os.path.basename(path) == "sweep.json"
