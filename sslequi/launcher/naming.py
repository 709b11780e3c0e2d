"""Names of sweeps and their runs: default sweep names, unique sweep ids, collision checks.

Run names (slugs) come from the overrides through ``sslequi.train.rundir.run_slug``, the
same function a single run uses. The sweep id is the sweep name plus a UTC time stamp and
a random suffix, claimed by creating its directory, so run directories never collide, even
for concurrent sweeps in one output root.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser

from sslequi.config import ConfigError

# Overrides that choose where or how a run executes never name a sweep.
_NON_NAMING_ROOTS = ("hydra", "launcher", "logger")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class RunNameCollisionError(ConfigError):
    """Two points of one sweep would share a run directory."""


def safe_name(text: str) -> str:
    """``text`` with characters outside ``[A-Za-z0-9._-]`` replaced by ``-`` (never empty)."""
    return _UNSAFE.sub("-", text).strip("-.") or "sweep"


def swept_keys(task_overrides: Sequence[str]) -> list[str]:
    """Keys a multirun sweeps (``seed=0,1``, ``method=glob(*)``, ``lr=range(...)``), in order.

    Parsed with Hydra's own override grammar; keys under ``hydra``, ``launcher`` and
    ``logger`` never name a sweep.
    """
    parsed = OverridesParser.create().parse_overrides(list(task_overrides))
    return [
        item.key_or_group
        for item in parsed
        if item.is_sweep_override()
        and item.key_or_group.split("/")[0].split(".")[0] not in _NON_NAMING_ROOTS
    ]


def default_sweep_name(task_overrides: Sequence[str]) -> str:
    """``<swept keys joined by '-'>`` (``sweep`` when nothing is swept)."""
    keys = swept_keys(task_overrides)
    return safe_name("-".join(keys))[:60] if keys else "sweep"


def check_unique_run_dirs(run_dirs: Sequence[Path], job_overrides: Sequence[Sequence[str]]) -> None:
    """Reject a sweep whose points share a run directory (their overrides name them alike)."""
    first_index: dict[Path, int] = {}
    for index, run_dir in enumerate(run_dirs):
        if run_dir in first_index:
            first = first_index[run_dir]
            raise RunNameCollisionError(
                f"sweep points #{first} ({' '.join(job_overrides[first])}) and #{index} "
                f"({' '.join(job_overrides[index])}) would both run in {run_dir} (run name "
                f"{run_dir.name!r}); make their overrides differ (a value listed twice, or "
                "values equal once reduced to [A-Za-z0-9._-]?)"
            )
        first_index[run_dir] = index


def new_sweep_id(sweep_name: str) -> str:
    """``<sweep name>-<UTC YYYYmmdd-HHMMSS>-<6 random hex>``.

    The launcher claims it by creating the sweep directory (``mkdir`` fails if it exists),
    so two concurrent sweeps, even with one name in the same second, never share one.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{safe_name(sweep_name)}-{stamp}-{secrets.token_hex(3)}"
