"""The run directory: ``<output_root>/<experiment>/<sweep_id or 'single'>/<run_slug>/``.

It holds the resolved ``config.yaml``, ``metrics.jsonl``, ``checkpoints/`` and ``run.json``
(status running | requeued | completed | failed, times, code and package versions, wandb
id). ``run_slug`` derives from the command-line overrides, so a requeued job (same
overrides, same ``sweep_id``) finds its folder again (issue 2 "Run directory").
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import socket
import subprocess
import tempfile
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
        return explicit
    from_env = os.environ.get(SWEEP_ID_ENV)
    if from_env:
        return from_env
    if _process_sweep_id is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        _process_sweep_id = f"{stamp}-{os.urandom(3).hex()}"
    return _process_sweep_id


def run_dir_path(
    output_root: str | Path, experiment: str, slug: str, sweep: str | None = None
) -> Path:
    """``<output_root>/<experiment>/<sweep or 'single'>/<slug>``."""
    return Path(output_root) / experiment / (sweep or SINGLE) / slug


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


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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
        if not self.writer:
            return
        info.updated = _now()
        write_atomic(self.run_json, (json.dumps(asdict(info), indent=2) + "\n").encode())

    def start(self, experiment: str, sweep: str | None, slug: str, total_steps: int) -> RunInfo:
        """Mark the run ``running`` (keeping the wandb id and start time of earlier attempts)."""
        previous = self.read_info()
        info = RunInfo(
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
        """Record a final (or requeue) status; ``completed`` never overwrites ``failed``."""
        info.status = status
        info.reason = reason
        info.end_time = _now() if status != "requeued" else None
        self.write_info(info)

    def append_metrics(self, record: dict[str, Any]) -> None:
        if not self.writer:
            return
        with self.metrics_path.open("a") as stream:
            stream.write(json.dumps(record, default=float) + "\n")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a run's ``metrics.jsonl`` (``path`` is the run dir or the file)."""
    file = Path(path)
    if file.is_dir():
        file = file / "metrics.jsonl"
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
