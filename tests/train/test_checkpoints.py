"""Checkpoints and disks (issue 16 items 7, 8, 9): ``prev.pt`` by default and a fallback
past an unreadable ``last.pt`` that stays bitwise-exact; a full disk (fault injection) is
named, keeps the previous checkpoint and fails the run; stale temporaries are removed; the
directory is fsynced after the rename; every file follows the umask."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest
import torch

from sslequi.config import ConfigError
from sslequi.train import rundir
from sslequi.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_latest,
    load_method,
    save_atomic,
)
from sslequi.train.run import pretrain
from sslequi.train.rundir import DiskFullError

SIX_STEPS = ["train.steps=6", "train.checkpoint_every_steps=2"]


def _method_state(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["method"]


def test_previous_checkpoint_is_kept_by_default(compose_cfg) -> None:
    run_dir = pretrain(compose_cfg("train.checkpoint_every_steps=2"))
    checkpoints = run_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.pt", "prev.pt"]
    assert load_checkpoint(checkpoints / "last.pt")["step"] == 4
    assert load_checkpoint(checkpoints / "prev.pt")["step"] == 2


@pytest.mark.parametrize("damage", ["garbage", "empty"])
def test_unreadable_last_falls_back_to_prev_bitwise(compose_cfg, tmp_path, damage) -> None:
    straight = pretrain(compose_cfg(*SIX_STEPS, run_dir=tmp_path / "straight"))
    run_dir = pretrain(compose_cfg(*SIX_STEPS, "train.stop_after=4"))
    last = run_dir / "checkpoints" / "last.pt"
    assert load_checkpoint(last)["step"] == 4
    last.write_bytes(b"" if damage == "empty" else b"\x00garbage" * 100)

    pretrain(compose_cfg(*SIX_STEPS))  # resumes from prev.pt (step 4's periodic save)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed" and info["step"] == 6
    assert len(info["checkpoint_fallback"]) == 1 and "last.pt" in info["checkpoint_fallback"][0]
    assert "prev.pt" in info["checkpoint_fallback"][0]
    aside = list((run_dir / "checkpoints").glob("last.pt.corrupt-*"))
    assert len(aside) == 1 and (aside[0].stat().st_size == 0) == (damage == "empty")
    a, b = _method_state(straight), _method_state(run_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fallback_takes_the_newest_usable_and_never_starts_fresh(compose_cfg) -> None:
    run_dir = pretrain(compose_cfg(*SIX_STEPS, "train.keep_checkpoints=true"))
    checkpoints = run_dir / "checkpoints"
    good = load_checkpoint(checkpoints / "step_4.pt")
    (checkpoints / "last.pt").write_bytes(b"broken")
    # A prev.pt with an infinite weight (as older code could save) is not usable either.
    poisoned = load_checkpoint(checkpoints / "prev.pt")
    name = next(k for k, v in poisoned["method"].items() if v.is_floating_point())
    poisoned["method"][name] = torch.full_like(poisoned["method"][name], float("inf"))
    save_atomic(poisoned, checkpoints / "prev.pt")
    recovered = load_latest(checkpoints)
    assert recovered is not None and recovered.path.name == "step_4.pt"
    assert recovered.state["step"] == good["step"] == 4
    assert [p.name for p, _ in recovered.skipped] == ["last.pt", "prev.pt"]
    assert "non-finite" in recovered.skipped[1][1]

    for path in checkpoints.glob("step_*.pt"):
        path.write_bytes(b"")
    with pytest.raises(CheckpointError) as error:
        pretrain(compose_cfg(*SIX_STEPS, "train.keep_checkpoints=true"))
    message = str(error.value)
    assert "no usable checkpoint" in message and "step_2.pt" in message and "empty" in message
    assert (checkpoints / "last.pt").read_bytes() == b"broken"  # nothing was reset


def test_empty_checkpoint_message_and_eval_hint(compose_cfg, tmp_path: Path) -> None:
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"is empty \(0 bytes"):
        load_checkpoint(empty)
    run_dir = pretrain(compose_cfg("train.checkpoint_every_steps=2"))
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"other checkpoints here: \['prev.pt'\]"):
        load_method(run_dir)  # evaluation never silently evaluates another step


def _fail_writes_to(name: str, after: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Fault injection: writes into the temporary file of ``name`` fail with ENOSPC once
    ``after`` bytes went through (the first save of ``name`` succeeds)."""
    real_write = rundir._os_write
    seen: dict[str, int] = {}
    calls: list[int] = []

    def write(fd: int, data: memoryview) -> int:
        target = os.readlink(f"/proc/self/fd/{fd}")
        base = os.path.basename(target)
        if base.startswith(f".{name}.") and base.endswith(".tmp"):
            if seen.setdefault(target, len(seen)) >= 1:  # every save after the first
                calls.append(len(data))
                if sum(calls) > after:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(rundir, "_os_write", write)
    return calls


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_full_disk_is_named_keeps_the_previous_checkpoint_and_fails_the_run(
    compose_cfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _fail_writes_to("last.pt", after=4096, monkeypatch=monkeypatch)
    cfg = compose_cfg(*SIX_STEPS)
    with pytest.raises(DiskFullError) as error:
        pretrain(cfg)
    assert calls, "the fault was never injected"
    message = str(error.value)
    run_dir = Path(cfg.run_dir)
    assert "disk full while writing" in message and str(run_dir / "checkpoints") in message
    assert "bytes written of about" in message and "bytes free" in message
    assert "enforce fail" not in message
    checkpoints = run_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.pt"]  # no .tmp left
    assert load_checkpoint(checkpoints / "last.pt")["step"] == 2  # the previous one
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and "disk full" in info["reason"]


def test_stale_temporaries_are_removed_and_the_directory_is_fsynced(
    compose_cfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = compose_cfg("train.steps=2")
    run_dir = Path(cfg.run_dir)
    (run_dir / "checkpoints").mkdir(parents=True)
    left = [run_dir / "checkpoints" / ".last.pt.k1ll3d.tmp", run_dir / ".run.json.k1ll3d.tmp"]
    for path in left:
        path.write_bytes(b"half a save")
    foreign = run_dir / ".someone-elses.tmp"
    foreign.write_bytes(b"not ours")

    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    pretrain(cfg)
    assert not any(p.exists() for p in left) and foreign.exists()
    checkpoints = os.path.realpath(run_dir / "checkpoints")
    file_then_dir = [
        i
        for i, path in enumerate(synced[:-1])
        if Path(path).name.startswith(".last.pt.") and synced[i + 1] == checkpoints
    ]
    assert file_then_dir, f"checkpoints/ never fsynced after a rename: {synced}"


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_file_follows_the_umask(compose_cfg, umask: int) -> None:
    previous = os.umask(umask)
    try:
        run_dir = pretrain(compose_cfg("train.checkpoint_every_steps=2"))
    finally:
        os.umask(previous)
    modes = {
        str(p.relative_to(run_dir)): stat.S_IMODE(p.stat().st_mode)
        for p in run_dir.rglob("*")
        if p.is_file()
    }
    assert {"run.json", "config.yaml", "metrics.jsonl", "checkpoints/last.pt"} <= set(modes)
    assert modes == dict.fromkeys(modes, 0o666 & ~umask)
