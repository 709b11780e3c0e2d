"""The run directory: ``<output_root>/<experiment>/<sweep_id or 'single'>/<run_slug>/``.

It holds the resolved ``config.yaml``, ``metrics.jsonl``, ``checkpoints/`` and ``run.json``
(status running | requeued | completed | failed, times, code and package versions, wandb
id). ``run_slug`` derives from the command-line overrides, so a requeued job (same
overrides, same ``sweep_id``) finds its folder again (issue 2 "Run directory").

Every file the harness writes here follows one mode policy: the user's umask (``file_mode``).
Replacements are atomic (temporary file, fsync, rename, fsync of the directory). The
experiment name, the sweep id and the slug are single folder names: an explicit value that is
not (``../x``, ``a/b``) is refused (``check_path_component``), so no run leaves the output
root.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from sslequi.config import ConfigError

Status = Literal["running", "requeued", "completed", "failed"]

SWEEP_ID_ENV = "SSLEQUI_SWEEP_ID"
SINGLE = "single"
MAX_SLUG_LENGTH = 120

# Overrides that never change what a run computes are left out of its slug, so changing
# them (or the launcher) does not move the run to a new folder.
SLUG_EXCLUDED_KEYS = (
    "experiment",
    "launcher",
    "logger",
    "hydra",
    "output_root",
    "run_dir",
    "run_slug",
    "train.resume",
    "train.num_workers",
    "train.device",
    "train.progress",
    "train.log_every",
    "train.stop_after",
    "train.checkpoint_every_steps",
    "train.checkpoint_every_min",
    "train.keep_checkpoints",
    "train.online_probe_every",
    "dataset.root",
)

_PACKAGES = ("torch", "torchvision", "lightly", "hydra-core", "submitit", "wandb", "sslequi")


def _override_key(override: str) -> str:
    key = override.split("=", 1)[0]
    return key.lstrip("+~")


def check_path_component(value: str, key: str) -> str:
    """``value`` if it is one folder name (no ``/`` or ``\\``, not ``.`` or ``..``, no NUL),
    else a ``ConfigError`` naming ``key``: explicit slugs, sweep ids and experiment names
    must not lead out of ``output_root`` (derived slugs are already ``[A-Za-z0-9._-]``)."""
    if (
        not value
        or value in (".", "..")
        or any(c in value for c in "/\\\0")
        or len(value.encode()) > 255
    ):
        raise ConfigError(
            f"{key}={value!r} is not a single folder name: it must not contain '/' or '\\', "
            "be '.' or '..', or be empty, so the run stays inside output_root"
        )
    return value


def run_slug(overrides: Iterable[str], excluded: Sequence[str] = SLUG_EXCLUDED_KEYS) -> str:
    """A folder name from command-line overrides: ``method-sie_optim.lr-0.1`` (sorted).

    Keys in ``excluded`` (and their sub-keys) are dropped; no overrides gives ``default``.
    Characters outside ``[A-Za-z0-9._-]`` become ``-``; a name longer than 120 characters is
    cut and suffixed with a hash of the full text, so it stays unique.
    """
    kept = []
    for override in overrides:
        key = _override_key(override)
        if any(key == k or key.startswith(k + ".") or key.startswith(k + "/") for k in excluded):
            continue
        kept.append(override.lstrip("+~"))
    if not kept:
        return "default"
    parts = []
    for item in sorted(kept):
        key, _, value = item.partition("=")
        parts.append(f"{key}-{value}" if value else key)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts)).strip("-.") or "default"
    if len(slug) > MAX_SLUG_LENGTH:
        digest = hashlib.sha1("_".join(sorted(kept)).encode()).hexdigest()[:10]
        slug = f"{slug[: MAX_SLUG_LENGTH - 11]}-{digest}"
    return slug


_process_sweep_id: str | None = None


def sweep_id(explicit: str | None = None) -> str:
    """The submission's sweep id: ``explicit`` (the launcher's field), else ``$SSLEQUI_SWEEP_ID``,
    else one fresh id per process (``YYYYmmdd-HHMMSS-<hex>``).

    Launchers set the field or variable at submission time, so every requeue of a job
    sees the same id and concurrent sweeps never share one.
    """
    global _process_sweep_id
    if explicit:
        return check_path_component(explicit, "launcher.sweep_id")
    from_env = os.environ.get(SWEEP_ID_ENV)
    if from_env:
        return check_path_component(from_env, f"${SWEEP_ID_ENV}")
    if _process_sweep_id is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        _process_sweep_id = f"{stamp}-{os.urandom(3).hex()}"
    return _process_sweep_id


def run_dir_path(
    output_root: str | Path, experiment: str, slug: str, sweep: str | None = None
) -> Path:
    """``<output_root>/<experiment>/<sweep or 'single'>/<slug>`` (each a single folder name)."""
    return (
        Path(output_root)
        / check_path_component(experiment, "experiment")
        / check_path_component(sweep or SINGLE, "launcher.sweep_id")
        / check_path_component(slug, "run_slug")
    )


@dataclass
class RunInfo:
    """The content of ``run.json``."""

    status: Status
    reason: str = ""
    start_time: str = ""
    end_time: str | None = None
    updated: str = ""
    step: int = 0
    total_steps: int = 0
    attempts: int = 0
    wandb_id: str | None = None
    code_version: str = ""
    packages: dict[str, str] = field(default_factory=dict)
    python: str = ""
    host: str = ""
    experiment: str = ""
    sweep_id: str | None = None
    run_slug: str = ""
    data_fingerprint: dict[str, Any] | None = None  # what the run was trained on
    dataset_roots: list[str] = field(default_factory=list)  # every root it read that data from
    checkpoint_fallback: list[str] = field(default_factory=list)  # unreadable checkpoints set aside
    lock_takeovers: list[str] = field(default_factory=list)  # stale locks this run replaced


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def code_version() -> str:
    """``<git commit>[-dirty]`` of the source tree, or the package version outside git."""
    source = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=source, capture_output=True, text=True, timeout=5, check=True
        )
        return result.stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return f"{commit}-dirty" if dirty else commit
    except (OSError, subprocess.SubprocessError):
        return f"sslequi-{metadata.version('sslequi')}"


def current_umask() -> int:
    """This process's umask (read from ``/proc`` where possible: no race with threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def file_mode() -> int:
    """The mode of every file the harness writes: ``0o666`` less the user's umask."""
    return 0o666 & ~current_umask()


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class DiskFullError(OSError):
    """A write failed because the file system is full (or over quota)."""


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full_error(path: Path, error: OSError, written: int, needed: int | None) -> DiskFullError:
    """A ``DiskFullError`` that names the path, the bytes written and the free space."""
    try:
        free = f"{shutil.disk_usage(path.parent).free:,} bytes free"
    except OSError:
        free = "free space unknown"
    need = f" of about {needed:,}" if needed else ""
    what = "quota exceeded" if error.errno == errno.EDQUOT else "disk full"
    return DiskFullError(
        error.errno,
        f"{what} while writing {path}: {written:,} bytes written{need}, {free} on its file "
        f"system ({error.strerror or error})",
    )


class _Sink:
    """A binary stream over a file descriptor that records the OS error of a failed write.

    ``torch.save`` turns an exception raised by ``write`` into an opaque
    ``enforce fail … unexpected pos``; the recorded error lets the caller say what happened.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.written = 0
        self.error: OSError | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        total = len(view)
        while view:
            try:
                count = _os_write(self.fd, view)
            except OSError as error:
                self.error = error
                raise
            view = view[count:]
            self.written += count
        return total

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True


# The one place bytes reach the disk (fault-injection tests replace it).
_os_write = os.write


def write_atomic(
    path: Path,
    data: bytes | None = None,
    *,
    writer: Any = None,
    previous: Path | None = None,
    expected_size: int | None = None,
) -> None:
    """Replace ``path`` atomically with ``data`` (or what ``writer(stream)`` writes).

    The bytes go to a temporary file ``.<name>.<random>.tmp`` beside ``path`` (mode
    ``file_mode()``), are fsynced, and the file is renamed over ``path``; the directory is
    fsynced after the rename. With ``previous``, the old ``path`` is first renamed to
    ``previous`` (no second write). A full disk raises ``DiskFullError`` naming the path,
    the bytes written and the free space; ``path`` (and ``previous``) are then untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    sink = _Sink(handle)
    try:
        try:
            try:
                os.fchmod(handle, file_mode())
            except OSError:  # a file system without modes keeps its own
                pass
            if writer is not None:
                writer(sink)
            else:
                sink.write(data or b"")
            os.fsync(handle)
        except Exception as error:
            cause = sink.error if sink.error is not None else error
            if isinstance(cause, OSError) and cause.errno in DISK_FULL_ERRNOS:
                raise disk_full_error(path, cause, sink.written, expected_size) from error
            raise
        finally:
            os.close(handle)
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def stale_temporaries(directory: Path) -> list[Path]:
    """Half-written ``.<name>.<random>.tmp`` files of interrupted atomic writes."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob(".*.tmp") if p.is_file())


# What a run leaves in its directory besides config.yaml and run.json: ``train.resume=never``
# removes all of it, so a fresh run never sits beside another run's numbers.
RUN_ARTIFACTS = ("checkpoints", "metrics.jsonl", "results.json", "eval_features")
# Files the trainer replaces atomically in the run directory (their temporaries are its own).
_OWNED_FILES = ("run.json", "config.yaml", "metrics.jsonl")


class RunDir:
    """Paths and status of one run directory. Only rank 0 writes."""

    def __init__(self, path: str | Path, writer: bool = True) -> None:
        self.path = Path(path)
        self.writer = writer

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    def check_writable(self) -> None:
        """Fail before compute when the directory cannot be created or written."""
        existing = self.path
        while not existing.exists():
            if existing.parent == existing:
                break
            existing = existing.parent
        if existing.exists() and not existing.is_dir():
            raise ConfigError(f"output directory {self.path}: {existing} exists and is a file")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"output directory {self.path} is not writable ({existing})")
        if not self.writer:
            return
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write_test_{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise ConfigError(f"output directory {self.path} is not writable: {error}") from None

    def read_info(self) -> RunInfo | None:
        if not self.run_json.exists():
            return None
        data = json.loads(self.run_json.read_text())
        known = set(RunInfo.__dataclass_fields__)
        return RunInfo(**{k: v for k, v in data.items() if k in known})

    def write_info(self, info: RunInfo) -> None:
        """Replace run.json atomically; on a full disk, overwrite it in place (no new blocks
        are needed for a file of about the same size), so a failure can still be recorded."""
        if not self.writer:
            return
        info.updated = _now()
        data = (json.dumps(asdict(info), indent=2) + "\n").encode()
        try:
            write_atomic(self.run_json, data)
        except DiskFullError:
            if not self.run_json.exists():
                raise
            with self.run_json.open("r+b") as stream:
                stream.write(data)
                stream.truncate()
                stream.flush()
                os.fsync(stream.fileno())

    def start(self, experiment: str, sweep: str | None, slug: str, total_steps: int) -> RunInfo:
        """Mark the run ``running`` (keeping the wandb id and start time of earlier attempts)."""
        previous = self.read_info()
        info = RunInfo(
            data_fingerprint=previous.data_fingerprint if previous else None,
            dataset_roots=list(previous.dataset_roots) if previous else [],
            checkpoint_fallback=list(previous.checkpoint_fallback) if previous else [],
            lock_takeovers=list(previous.lock_takeovers) if previous else [],
            status="running",
            start_time=previous.start_time if previous else _now(),
            total_steps=total_steps,
            step=previous.step if previous else 0,
            attempts=(previous.attempts if previous else 0) + 1,
            wandb_id=previous.wandb_id if previous else None,
            code_version=code_version(),
            packages=_package_versions(),
            python=platform.python_version(),
            host=socket.gethostname(),
            experiment=experiment,
            sweep_id=sweep,
            run_slug=slug,
        )
        self.write_info(info)
        return info

    def finish(self, info: RunInfo, status: Status, reason: str = "") -> None:
        """Record a final (or requeue) status; ``completed`` never overwrites ``failed``.

        Never raises for an I/O error (it runs while another error propagates): a status
        that cannot be written is printed to stderr instead.
        """
        info.status = status
        info.reason = reason
        info.end_time = _now() if status != "requeued" else None
        try:
            self.write_info(info)
        except OSError as error:
            print(
                f"sslequi: cannot record status {status!r} in {self.run_json} ({error}); "
                f"reason: {reason}",
                file=sys.stderr,
                flush=True,
            )

    def append_metrics(self, record: dict[str, Any]) -> None:
        if not self.writer:
            return
        with self.metrics_path.open("a") as stream:
            stream.write(json.dumps(record, default=float) + "\n")

    def truncate_metrics(self, step: int) -> int:
        """Keep only the records of ``metrics.jsonl`` up to ``step`` (the checkpoint a run
        resumes from); a line cut by a kill is dropped too. Returns the lines removed."""
        if not self.writer or not self.metrics_path.exists():
            return 0
        lines = self.metrics_path.read_bytes().decode(errors="replace").splitlines()
        kept: list[str] = []
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and int(record.get("step", 0)) <= step:
                kept.append(line)
        removed = len([line for line in lines if line.strip()]) - len(kept)
        if removed:
            write_atomic(self.metrics_path, "".join(f"{line}\n" for line in kept).encode())
        return removed

    def clean_temporaries(self) -> list[Path]:
        """Remove half-written temporaries of interrupted saves (call with the lock held)."""
        stale = stale_temporaries(self.checkpoints)
        stale += [
            p
            for p in stale_temporaries(self.path)
            if any(p.name.startswith(f".{name}.") for name in _OWNED_FILES)
        ]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def remove_artifacts(self) -> list[Path]:
        """Delete every ``RUN_ARTIFACTS`` entry (``train.resume=never``; lock held)."""
        removed = []
        for name in RUN_ARTIFACTS:
            path = self.path / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            else:
                continue
            removed.append(path)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        return removed


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a run's ``metrics.jsonl`` (``path`` is the run dir or the file)."""
    file = Path(path)
    if file.is_dir():
        file = file / "metrics.jsonl"
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
