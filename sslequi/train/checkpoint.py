"""Checkpoints: atomic save, strict load, RNG capture, and ``load_method`` for evaluation.

``checkpoints/last.pt`` holds the model, the online probe, optimizer, grad scaler and
scheduler states, every RNG state (Python, NumPy, torch CPU, every CUDA device), the data
position (epoch + batches consumed in it), the step and the resolved config. It is written
to a temporary file and renamed over the old one, so a kill mid-save never leaves a
truncated checkpoint (issue 2 "Trainer"). Every value is a tensor or plain Python data, so
it loads with ``torch.load(weights_only=True)``.

Each save first renames the current ``last.pt`` to ``prev.pt`` (no second serialisation),
so a run always has a previous checkpoint. ``load_latest`` falls back to the newest readable
of ``last.pt``, ``prev.pt`` and ``step_<N>.pt`` when the newest is unreadable or holds
non-finite weights. A full disk raises ``DiskFullError`` naming the path and the bytes;
the checkpoints already on disk are untouched.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from sslequi.config import ConfigError, ResolvedConfig, resolve_config
from sslequi.methods.base import Method
from sslequi.train.rundir import write_atomic

FORMAT_VERSION = 1
LAST = "last"
PREV = "prev"
REQUIRED_KEYS = ("format_version", "step", "method", "config")


@dataclass(frozen=True)
class DataPosition:
    """Where the data stream stands: ``batch`` batches of ``epoch`` have been consumed."""

    epoch: int = 0
    batch: int = 0


def capture_rng() -> dict[str, Any]:
    """Every RNG state of this process as tensors and plain data."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": _to_plain(random.getstate()),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng``."""
    random.setstate(_to_tuple(state["python"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        cuda_states = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda_states)


def _to_plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


def _to_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_to_tuple(v) for v in value)
    return value


class CheckpointError(ConfigError):
    """A checkpoint file that cannot be used (unreadable, foreign, or non-finite weights)."""


def state_nbytes(state: Any) -> int:
    """The bytes of every tensor in ``state`` (about the size of the saved file)."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, Mapping):
        return sum(state_nbytes(v) for v in state.values())
    if isinstance(state, list | tuple):
        return sum(state_nbytes(v) for v in state)
    return 0


def save_atomic(state: dict[str, Any], path: Path, previous: Path | None = None) -> None:
    """``torch.save`` into a temporary file beside ``path``, fsync, rename over it, fsync the
    directory (``rundir.write_atomic``). With ``previous``, the old ``path`` becomes it.

    A full disk raises ``DiskFullError`` (path, bytes written, free space); ``path`` and
    ``previous`` are then as they were.
    """
    write_atomic(
        path,
        writer=lambda stream: torch.save(state, stream),
        previous=previous,
        expected_size=state_nbytes(state),
    )


def nonfinite(named: Iterable[tuple[str, torch.Tensor]]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity (one host sync)."""
    tensors = [(n, t) for n, t in named if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if not tensors:
        return []
    flags = torch.stack([torch.isfinite(t).all() for _, t in tensors])
    if bool(flags.all()):
        return []
    return [name for (name, _), ok in zip(tensors, flags.tolist(), strict=True) if not ok]


def find_checkpoint(location: str | Path, which: str = LAST) -> Path:
    """The checkpoint file for a run directory (``which``: last | step_<N>) or a file path."""
    path = Path(location)
    if path.is_file():
        return path
    if not path.exists():
        raise FileNotFoundError(f"no run directory or checkpoint at {path}")
    candidate = path / "checkpoints" / f"{which}.pt"
    if not candidate.exists():
        available = sorted(p.stem for p in (path / "checkpoints").glob("*.pt"))
        raise FileNotFoundError(
            f"no checkpoint {which!r} in {path}/checkpoints; available: {available or 'none'}"
        )
    return candidate


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint file; fail clearly when it is not one of ours."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from None
    if size == 0:
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is empty (0 bytes; a save was cut "
            "short, e.g. by a full disk or a copy that failed)"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # a truncated or foreign file
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckpointError(
            f"cannot read checkpoint {path} ({size:,} bytes): {type(error).__name__}"
            + (f": {detail}" if detail else " (truncated or not a torch file)")
        ) from None
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        raise CheckpointError(
            f"{path} is not an sslequi checkpoint (missing keys "
            f"{[k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]})"
        )
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format {state['format_version']}, this code reads "
            f"{FORMAT_VERSION}"
        )
    return state


def _step_number(path: Path) -> int:
    try:
        return int(path.stem.split("_", 1)[1])
    except (IndexError, ValueError):
        return -1


def step_checkpoints(checkpoints: Path) -> list[Path]:
    """``step_<N>.pt`` files, newest (largest N) first."""
    found = [p for p in checkpoints.glob("step_*.pt") if _step_number(p) >= 0]
    return sorted(found, key=_step_number, reverse=True)


@dataclass
class Recovered:
    """The checkpoint a run continues from, and the newer ones that could not be used."""

    path: Path
    state: dict[str, Any]
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, why), newest first


def load_usable(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """``load_checkpoint`` that also refuses non-finite method weights."""
    state = load_checkpoint(path, map_location)
    bad = nonfinite(state["method"].items()) if isinstance(state["method"], Mapping) else []
    if bad:
        raise CheckpointError(
            f"checkpoint {path} holds non-finite weights in {len(bad)} tensor(s): {bad[:5]}"
        )
    return state


def load_latest(checkpoints: Path, map_location: str | torch.device = "cpu") -> Recovered | None:
    """The newest usable checkpoint among ``last.pt``, ``prev.pt`` and ``step_<N>.pt``.

    None when the directory holds none of them; ``CheckpointError`` listing every file and
    its problem when none of them is usable (never a silent fresh start).
    """
    skipped: list[tuple[Path, str]] = []

    def attempt(path: Path) -> dict[str, Any] | None:
        try:
            return load_usable(path, map_location)
        except CheckpointError as error:
            skipped.append((path, str(error)))
            return None

    last, prev = checkpoints / f"{LAST}.pt", checkpoints / f"{PREV}.pt"
    if last.exists() and (state := attempt(last)) is not None:
        return Recovered(last, state, skipped)
    prev_state = attempt(prev) if prev.exists() else None
    prev_step = int(prev_state["step"]) if prev_state is not None else -1
    for path in step_checkpoints(checkpoints):
        if prev_state is not None and _step_number(path) <= prev_step:
            break
        if (state := attempt(path)) is not None:
            return Recovered(path, state, skipped)
    if prev_state is not None:
        return Recovered(prev, prev_state, skipped)
    if skipped:
        listed = "\n  - ".join(why for _, why in skipped)
        raise CheckpointError(
            f"no usable checkpoint in {checkpoints}:\n  - {listed}\n"
            "Use train.resume=never to start this run over."
        )
    return None


def set_aside(path: Path) -> Path:
    """Rename an unusable checkpoint to ``<name>.corrupt-<UTC time>`` (kept for inspection,
    never loaded again, never overwritten by the next save)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    path.rename(target)
    return target


@dataclass
class LoadedRun:
    """A pretrained method ready for evaluation (``eval()`` mode, on ``map_location``)."""

    method: Method
    config: ResolvedConfig
    step: int
    path: Path


def load_method(
    run_dir: str | Path, which: str = LAST, map_location: str | torch.device = "cpu"
) -> LoadedRun:
    """Rebuild the method from the checkpoint's own config and load its weights strictly."""
    from sslequi.build import build_method

    path = find_checkpoint(run_dir, which)
    try:
        state = load_checkpoint(path, map_location)
    except CheckpointError as error:
        others = sorted(p.name for p in path.parent.glob("*.pt") if p != path)
        hint = f"; other checkpoints here: {others}" if others else ""
        raise CheckpointError(f"{error}{hint}") from None
    config = resolve_config(OmegaConf.create(state["config"]))
    method = build_method(config)
    missing, unexpected = method.load_state_dict(state["method"], strict=False)
    if missing or unexpected:
        raise ConfigError(
            f"checkpoint {path} does not match method {config.method.name!r}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    method.to(map_location)
    method.eval()
    return LoadedRun(method=method, config=config, step=int(state["step"]), path=path)
