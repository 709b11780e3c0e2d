"""Checkpoints: atomic save, strict load, RNG capture, and ``load_method`` for evaluation.

``checkpoints/last.pt`` holds the model, the online probe, optimizer, grad scaler and
scheduler states, every RNG state (Python, NumPy, torch CPU, every CUDA device), the data
position (epoch + batches consumed in it), the step and the resolved config. It is written
to a temporary file and renamed over the old one, so a kill mid-save never leaves a
truncated checkpoint (issue 2 "Trainer"). Every value is a tensor or plain Python data, so
it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from sslequi.config import ConfigError, ResolvedConfig, resolve_config
from sslequi.methods.base import Method

FORMAT_VERSION = 1
LAST = "last"
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


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` into a temporary file beside ``path``, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(state, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # a truncated or foreign file
        raise ConfigError(f"cannot read checkpoint {path}: {error}") from None
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        raise ConfigError(
            f"{path} is not an sslequi checkpoint (missing keys "
            f"{[k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]})"
        )
    if state["format_version"] != FORMAT_VERSION:
        raise ConfigError(
            f"checkpoint {path} has format {state['format_version']}, this code reads "
            f"{FORMAT_VERSION}"
        )
    return state


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
    state = load_checkpoint(path, map_location)
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
