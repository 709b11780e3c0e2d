"""One writer per run directory: ``run.lock``, with a heartbeat and explicit stale rules.

The lock file is JSON: the holder's PID, host, start time, process start ticks (to tell a
reused PID from the original), SLURM job / array ids and a heartbeat that a daemon thread
refreshes every ``HEARTBEAT_S`` seconds (≤ 60 s). It is created with ``link(2)`` from a
fully written temporary file, so it is never seen half-written and two creators cannot both
succeed. A lock is *stale*, and is taken over, when

- its holder ran on this host and that process is gone (dead PID, or the PID now belongs to
  a process started at another time), or
- its heartbeat is older than ``STALE_AFTER_S`` (5 minutes; a holder on another host that
  stopped without releasing it), or
- it carries this process's SLURM job id (this job was requeued; the previous attempt of
  the same job cannot still be running) and its holder is not a live process on this host.

Anything else refuses with the holder's PID, host, start time and job id. Takeover happens
under a short-lived ``mkdir`` mutex, so two processes finding the same stale lock cannot
both win. The holder checks ``lost`` between steps and before each save: if another
process took the lock over (this one stalled past ``STALE_AFTER_S``), it stops.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sslequi.config import ConfigError
from sslequi.train.rundir import fsync_dir

LOCK_NAME = "run.lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0
TAKEOVER_MUTEX_STALE_S = 60.0
_BLOCKED_IN_THREAD = frozenset({signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM})


class RunLockedError(ConfigError):
    """Another live process writes this run directory."""


class LockLostError(RuntimeError):
    """This process's lock was taken over by another process."""


@dataclass
class LockHolder:
    """The content of ``run.lock``."""

    pid: int
    host: str
    start_time: str
    heartbeat: float  # Unix time of the last refresh
    token: str
    proc_start: int | None = None  # /proc/<pid>/stat start time (ticks since boot)
    slurm_job_id: str | None = None
    slurm_array_job_id: str | None = None
    slurm_array_task_id: str | None = None
    command: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockHolder:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def describe(self) -> str:
        age = max(0.0, time.time() - self.heartbeat)
        job = f", SLURM job {self.slurm_job_id}" if self.slurm_job_id else ""
        if self.slurm_array_job_id:
            job += f" (array {self.slurm_array_job_id}_{self.slurm_array_task_id})"
        return (
            f"PID {self.pid} on host {self.host}, started {self.start_time}{job}, "
            f"heartbeat {age:.0f} s ago"
        )


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (field 22 of ``/proc/<pid>/stat``); None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def current_job_ids() -> tuple[str | None, str | None, str | None]:
    """(SLURM job id, array job id, array task id) of this process, if under SLURM."""
    env = os.environ
    return (
        env.get("SLURM_JOB_ID") or None,
        env.get("SLURM_ARRAY_JOB_ID") or None,
        env.get("SLURM_ARRAY_TASK_ID") or None,
    )


def stale_reason(holder: LockHolder, now: float | None = None) -> str | None:
    """Why ``holder`` no longer holds the run (module docstring), or None if it does."""
    now = time.time() if now is None else now
    here = socket.gethostname()
    live_here = False
    if holder.host == here:
        if not pid_alive(holder.pid):
            return f"its process {holder.pid} on this host is gone"
        ticks = process_start_ticks(holder.pid)
        if holder.proc_start is not None and ticks is not None and ticks != holder.proc_start:
            return f"PID {holder.pid} on this host now belongs to another process"
        live_here = True
    if now - holder.heartbeat > STALE_AFTER_S:
        return f"its heartbeat is {now - holder.heartbeat:.0f} s old (> {STALE_AFTER_S:.0f} s)"
    job_id = current_job_ids()[0]
    if job_id and holder.slurm_job_id == job_id and not live_here:
        return f"it belongs to an earlier attempt of this SLURM job {job_id} (requeued)"
    return None


class RunLock:
    """The lock of one run directory (module docstring). Use as a context manager."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.holder: LockHolder | None = None
        self.taken_over: LockHolder | None = None  # the stale holder replaced, if any
        self.taken_over_reason: str = ""
        self._lost: LockHolder | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._io = threading.Lock()

    # ------------------------------------------------------------ reading and writing

    def read(self) -> LockHolder | None:
        """The current holder, None without a lock file; raises ValueError when unreadable."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            return LockHolder.from_json(json.loads(text))
        except (ValueError, TypeError) as error:
            raise ValueError(f"unreadable lock file {self.path}: {error}") from None

    def _temporary(self, holder: LockHolder) -> Path:
        temporary = self.run_dir / f".{LOCK_NAME}.{holder.token}.{os.getpid()}.tmp"
        with temporary.open("w") as stream:
            stream.write(json.dumps(asdict(holder), indent=1) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        return temporary

    def _new_holder(self) -> LockHolder:
        job, array_job, array_task = current_job_ids()
        return LockHolder(
            pid=os.getpid(),
            host=socket.gethostname(),
            start_time=_now_iso(),
            heartbeat=time.time(),
            token=os.urandom(8).hex(),
            proc_start=process_start_ticks(os.getpid()),
            slurm_job_id=job,
            slurm_array_job_id=array_job,
            slurm_array_task_id=array_task,
            command=" ".join(sys.argv)[:500],
        )

    # ------------------------------------------------------------ acquire / release

    def acquire(self) -> LockHolder:
        """Take the lock, taking over a stale one; raise ``RunLockedError`` if it is live."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        holder = self._new_holder()
        for _ in range(5):
            temporary = self._temporary(holder)
            try:
                os.link(temporary, self.path)
            except FileExistsError:
                pass
            else:
                fsync_dir(self.run_dir)
                self.holder = holder
                self._start_heartbeat()
                return holder
            finally:
                temporary.unlink(missing_ok=True)
            if self._take_over_if_stale(holder):
                self.holder = holder
                self._start_heartbeat()
                return holder
        raise RunLockedError(f"could not take the lock {self.path} (it keeps changing hands)")

    def _take_over_if_stale(self, holder: LockHolder) -> bool:
        """Replace a stale lock by ``holder`` (True), or raise if the lock is live.

        False means the lock vanished or changed meanwhile: try again.
        """
        mutex = self.run_dir / f".{LOCK_NAME}.takeover"
        try:
            mutex.mkdir()
        except FileExistsError:
            try:
                age = time.time() - mutex.stat().st_mtime
            except FileNotFoundError:
                return False
            if age > TAKEOVER_MUTEX_STALE_S:
                os.rmdir(mutex)  # left by a process killed mid-takeover
                return False
            raise RunLockedError(
                f"run directory {self.run_dir}: another process is taking over its stale lock "
                f"right now ({mutex}); try again in a minute"
            ) from None
        try:
            try:
                current = self.read()
            except ValueError as error:
                age = time.time() - self.path.stat().st_mtime
                if age <= STALE_AFTER_S:
                    raise RunLockedError(
                        f"run directory {self.run_dir} is locked by an unreadable {self.path} "
                        f"written {age:.0f} s ago ({error}); if no other process writes this "
                        "run, delete the file"
                    ) from None
                current = None
                reason = f"the lock file is unreadable and {age:.0f} s old"
            else:
                if current is None:
                    return False
                reason = stale_reason(current) or ""
                if not reason:
                    raise RunLockedError(
                        f"run directory {self.run_dir} is in use by another process: "
                        f"{current.describe()}. Wait for it to finish, stop it, or write this "
                        f"run elsewhere (another run_slug/experiment). Lock file: {self.path}"
                    )
            temporary = self._temporary(holder)
            os.replace(temporary, self.path)
            fsync_dir(self.run_dir)
            self.taken_over, self.taken_over_reason = current, reason
            return True
        finally:
            os.rmdir(mutex)

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file if this process still holds it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.holder is None:
            return
        with self._io:
            try:
                current = self.read()
            except ValueError:
                current = None
            if current is not None and current.token == self.holder.token:
                self.path.unlink(missing_ok=True)
            self.holder = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ------------------------------------------------------------ heartbeat

    def refresh(self) -> None:
        """Rewrite the heartbeat (if this process still holds the lock)."""
        if self.holder is None:
            return
        with self._io:
            try:
                current = self.read()
            except ValueError:
                current = None
            if current is None or current.token != self.holder.token:
                self._lost = current or self._lost or self.holder
                return
            self.holder.heartbeat = time.time()
            temporary = self._temporary(self.holder)
            os.replace(temporary, self.path)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.refresh()
            except OSError:  # a full disk or a flaky mount: retry at the next beat
                continue

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="sslequi-run-lock", daemon=True)
        # Started with the requeue signals blocked, so they are delivered to the training
        # thread's step boundary and never to this thread.
        blocked = hasattr(signal, "pthread_sigmask")
        if blocked:
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED_IN_THREAD)
        try:
            self._thread.start()
        finally:
            if blocked:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def check(self, verify: bool = False) -> None:
        """Raise ``LockLostError`` if another process took this lock over.

        Cheap by default (the heartbeat's finding); ``verify=True`` also reads the file.
        """
        if self.holder is None:
            return
        if verify and self._lost is None:
            try:
                current = self.read()
            except ValueError:
                current = None
            if current is None or current.token != self.holder.token:
                self._lost = current or self.holder
        if self._lost is not None:
            other = self._lost.describe() if self._lost is not self.holder else "nobody"
            raise LockLostError(
                f"run directory {self.run_dir}: this process (PID {os.getpid()}) lost its lock "
                f"{self.path}; it is now held by {other}. Stopping without writing."
            )
