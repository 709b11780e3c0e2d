"""A fake SLURM for tests: ``sbatch``, ``srun``, ``sacct``, ``scancel`` and ``scontrol``.

Run as ``python fake_slurm.py <command> ARGS`` (the tests put one-line wrappers named
after each command on PATH). State lives in ``$FAKE_SLURM_STATE``: one JSON file per job
(or array task) with its state, as ``sacct`` reports it. While the file ``hold`` exists
there, submitted jobs stay PENDING, so a test can look at a sweep before it runs.

``sbatch`` starts one detached runner per array task, which runs the batch script with
SLURM's environment variables; ``srun`` runs the step with its output files;
``scancel --signal SIG`` signals the step; ``scontrol requeue`` makes the runner start the
script again once it exits (harness_lessons.md §7.7, item 5).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

STATE = Path(os.environ.get("FAKE_SLURM_STATE", "."))
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def _job_file(key: str) -> Path:
    return STATE / "jobs" / f"{key}.json"


def _read(key: str) -> dict:
    return json.loads(_job_file(key).read_text())


def _write(key: str, **changes: object) -> None:
    path = _job_file(key)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(changes)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


def _keys_of(job_id: str) -> list[str]:
    """Job files of ``job_id`` (``123`` → all its array tasks; ``123_4`` → that task)."""
    files = sorted((STATE / "jobs").glob("*.json"))
    keys = [f.stem for f in files]
    if "_" in job_id:
        return [k for k in keys if k == job_id]
    return [k for k in keys if k.split("_")[0] == job_id]


def sbatch(args: list[str]) -> int:
    script = Path(args[-1])
    text = script.read_text()
    (STATE / "jobs").mkdir(parents=True, exist_ok=True)
    counter = STATE / "counter"
    job_id = int(counter.read_text()) if counter.exists() else 4242
    counter.write_text(str(job_id + 1))
    match = re.search(r"#SBATCH --array=(\d+)-(\d+)", text)
    keys = (
        [f"{job_id}_{i}" for i in range(int(match[1]), int(match[2]) + 1)]
        if match
        else [str(job_id)]
    )
    for key in keys:
        _write(key, state="PENDING", script=str(script), attempts=0, requeue=False)
        subprocess.Popen(
            [sys.executable, __file__, "_run", key],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    print(f"Submitted batch job {job_id}")
    return 0


def _run(args: list[str]) -> int:
    """The runner of one job (or array task): hold, run, rerun after a requeue."""
    key = args[0]
    for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)  # handlers, unlike SIG_IGN, are not inherited
    job_id, _, task = key.partition("_")
    env = dict(os.environ)
    env.update(
        SLURM_JOB_ID=job_id if not task else str(int(job_id) * 1000 + int(task)),
        SLURM_NTASKS="1",
        SLURM_PROCID="0",
        SLURM_LOCALID="0",
        SLURM_NODEID="0",
        SLURM_JOB_NUM_NODES="1",
        SLURM_JOB_NODELIST=socket.gethostname(),
        FAKE_SLURM_KEY=key,
    )
    if task:
        env.update(SLURM_ARRAY_JOB_ID=job_id, SLURM_ARRAY_TASK_ID=task)
    while True:
        while (STATE / "hold").exists():
            time.sleep(0.05)
        info = _read(key)
        if info["state"] == "CANCELLED":
            return 0
        _write(key, state="RUNNING", attempts=info["attempts"] + 1, requeue=False)
        code = subprocess.call(["bash", info["script"]], env=env)
        info = _read(key)
        if info.get("requeue"):
            _write(key, state="PENDING")
            continue
        if info["state"] != "CANCELLED":
            _write(key, state="COMPLETED" if code == 0 else "FAILED", exit_code=code)
        return 0


def srun(args: list[str]) -> int:
    """Run the step (one task) with ``--output``/``--error`` patterns filled in."""
    files: dict[str, str] = {}
    index = 0
    while index < len(args) and args[index].startswith("-"):
        flag = args[index]
        if flag in ("--output", "--error"):
            files[flag] = args[index + 1]
            index += 2
        else:
            index += 1
    command = args[index:]
    fill = {
        "%A": os.environ.get("SLURM_ARRAY_JOB_ID", ""),
        "%a": os.environ.get("SLURM_ARRAY_TASK_ID", ""),
        "%j": os.environ.get("SLURM_JOB_ID", ""),
        "%t": "0",
    }
    for flag, fd in (("--output", 1), ("--error", 2)):
        if flag in files:
            path = files[flag]
            for pattern, value in fill.items():
                path = path.replace(pattern, value)
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(handle, fd)
    _write(os.environ["FAKE_SLURM_KEY"], step_pid=os.getpid())
    os.execvp(command[0], command)
    return 1


def sacct(args: list[str]) -> int:
    ids = [args[i + 1] for i, a in enumerate(args) if a == "-j"]
    print("JobID|State|NodeList")
    for job_id in ids:
        for key in _keys_of(job_id):
            print(f"{key}|{_read(key)['state']}|{socket.gethostname()}")
    return 0


def scancel(args: list[str]) -> int:
    job_id = args[0]
    sig = None
    if "--signal" in args:
        name = args[args.index("--signal") + 1]
        sig = getattr(signal, name if name.startswith("SIG") else f"SIG{name}")
    for key in _keys_of(job_id):
        info = _read(key)
        if sig is None:
            _write(key, state="CANCELLED")
        if info.get("step_pid") and info["state"] == "RUNNING":
            try:
                os.kill(info["step_pid"], sig or signal.SIGTERM)
            except ProcessLookupError:
                pass
    return 0


def scontrol(args: list[str]) -> int:
    if args[:1] == ["requeue"]:
        for key in _keys_of(args[1]):
            _write(key, requeue=True)
        return 0
    print(f"fake scontrol: unsupported {args}", file=sys.stderr)
    return 1


COMMANDS = {
    "sbatch": sbatch,
    "srun": srun,
    "sacct": sacct,
    "scancel": scancel,
    "scontrol": scontrol,
    "_run": _run,
}


def install(bin_dir: Path, state_dir: Path) -> dict[str, str]:
    """Write the command wrappers into ``bin_dir``; return the environment to use them."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    for name in COMMANDS:
        if name.startswith("_"):
            continue
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{__file__}" {name} "$@"\n')
        wrapper.chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_SLURM_STATE": str(state_dir),
    }


if __name__ == "__main__":
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
