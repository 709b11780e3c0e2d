"""One writer per run directory (issue 16 item 2): a live holder is refused with its PID,
host and start time, and nothing of its run is touched; a killed holder's lock is taken
over; the stale rules (dead PID here, old heartbeat, this requeued SLURM job); the
heartbeat; a takeover race has one winner; a process whose lock was taken stops."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sslequi.train import lock as lock_module
from sslequi.train.checkpoint import load_checkpoint
from sslequi.train.lock import (
    LOCK_NAME,
    LockHolder,
    LockLostError,
    RunLock,
    RunLockedError,
    process_start_ticks,
    stale_reason,
)
from sslequi.train.run import pretrain

HOLD = textwrap.dedent(
    """
    import sys, time
    from sslequi.train.lock import RunLock
    lock = RunLock(sys.argv[1])
    lock.acquire()
    print("held", flush=True)
    time.sleep(120)
    """
)


def _hold_in_subprocess(run_dir: Path) -> subprocess.Popen[str]:
    """A live process holding the run directory's lock (real ``RunLock``)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("SLURM_JOB_ID", None)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def _holder(**changes: object) -> LockHolder:
    values: dict[str, object] = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "start_time": "2026-01-01T00:00:00+00:00",
        "heartbeat": time.time(),
        "token": "t",
        "proc_start": process_start_ticks(os.getpid()),
    }
    values.update(changes)
    return LockHolder(**values)  # type: ignore[arg-type]


def test_live_holder_is_refused_then_a_killed_holders_lock_is_taken_over(
    compose_cfg, tmp_path: Path
) -> None:
    run_dir = pretrain(compose_cfg("train.steps=3", "train.stop_after=2"))
    checkpoint = run_dir / "checkpoints" / "last.pt"
    before = (checkpoint.stat().st_mtime_ns, (run_dir / "run.json").read_text())

    holder = _hold_in_subprocess(run_dir)
    try:
        # A second writer, even one asked to start over, is refused before touching anything.
        with pytest.raises(RunLockedError) as refused:
            pretrain(compose_cfg("train.steps=3", "train.resume=never"))
        message = str(refused.value)
        stored = json.loads((run_dir / LOCK_NAME).read_text())
        assert f"PID {holder.pid}" in message
        assert f"host {socket.gethostname()}" in message
        assert f"started {stored['start_time']}" in message
        assert (checkpoint.stat().st_mtime_ns, (run_dir / "run.json").read_text()) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()

    # kill -9 left the lock behind; its PID is dead on this host: taken over.
    assert (run_dir / LOCK_NAME).exists()
    pretrain(compose_cfg("train.steps=3"))  # continues the run for its last step
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed" and info["step"] == 3
    assert len(info["lock_takeovers"]) == 1 and f"PID {holder.pid}" in info["lock_takeovers"][0]
    assert load_checkpoint(checkpoint)["step"] == 3
    assert not (run_dir / LOCK_NAME).exists()  # released at the end


def test_stale_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert stale_reason(_holder()) is None  # this live process
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert "gone" in (stale_reason(_holder(pid=dead.pid)) or "")
    reused = _holder(proc_start=(process_start_ticks(os.getpid()) or 0) + 1)
    assert "another process" in (stale_reason(reused) or "")
    elsewhere = _holder(host="other-node", pid=1)
    assert stale_reason(elsewhere) is None  # live heartbeat on another host
    old = _holder(host="other-node", heartbeat=time.time() - 301)
    assert "heartbeat" in (stale_reason(old) or "")
    # A requeued SLURM job finds the lock of its own previous attempt (another node).
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert "4242" in (stale_reason(_holder(host="other-node", slurm_job_id="4242")) or "")
    assert stale_reason(_holder(host="other-node", slurm_job_id="4243")) is None
    # ... but never that of a live process of the same job on this host (two runs in salloc).
    assert stale_reason(_holder(slurm_job_id="4242")) is None


def test_lock_records_identity_and_heartbeat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "70")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    monkeypatch.setattr(lock_module, "HEARTBEAT_S", 0.05)
    assert lock_module.HEARTBEAT_S <= 60
    with RunLock(tmp_path) as lock:
        first = json.loads((tmp_path / LOCK_NAME).read_text())
        assert first["pid"] == os.getpid() and first["host"] == socket.gethostname()
        assert first["start_time"] and first["slurm_job_id"] == "77"
        assert (first["slurm_array_job_id"], first["slurm_array_task_id"]) == ("70", "7")
        deadline = time.time() + 10
        while json.loads((tmp_path / LOCK_NAME).read_text())["heartbeat"] == first["heartbeat"]:
            assert time.time() < deadline, "the heartbeat was never refreshed"
            time.sleep(0.05)
        lock.check(verify=True)
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_process_whose_lock_was_taken_stops(tmp_path: Path) -> None:
    lock = RunLock(tmp_path)
    lock.acquire()
    try:
        intruder = _holder(pid=1, host="other-node", token="someone-else")
        (tmp_path / LOCK_NAME).write_text(json.dumps(intruder.__dict__))
        with pytest.raises(LockLostError, match="other-node"):
            lock.check(verify=True)
    finally:
        lock.release()
    assert (tmp_path / LOCK_NAME).exists()  # the other process's lock is left alone


RACE = textwrap.dedent(
    """
    import sys
    from sslequi.train.lock import RunLock, RunLockedError
    lock = RunLock(sys.argv[1])
    try:
        lock.acquire()
    except RunLockedError as error:
        print("refused", flush=True)
    else:
        print("won", flush=True)
        sys.stdin.read()  # hold until the test closes stdin
        lock.release()
    """
)


def test_takeover_race_has_one_winner(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(json.dumps(_holder(pid=dead.pid, token="dead").__dict__))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("SLURM_JOB_ID", None)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outcomes = [racer.stdout.readline().strip() for racer in racers]  # type: ignore[union-attr]
    for racer in racers:
        racer.communicate("", timeout=60)
    assert sorted(outcomes) == ["refused", "won"]
