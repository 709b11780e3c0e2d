"""Names of sweeps and runs: run names from the swept overrides, unique sweep ids.

A sweep's run names are the ``key=value`` pairs that differ between its points, joined
as Hydra's ``override_dirname`` joins them (``method=sie,seed=0``). The sweep id adds a UTC
time stamp and a random suffix to the sweep name and is claimed by creating its directory,
so run directories never collide, even for concurrent sweeps in one output root.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser

# Overrides that choose where or how a run executes never name it.
_NON_NAMING_PREFIXES = ("hydra", "launcher")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")
MAX_NAME_LENGTH = 120


class RunNameCollisionError(ValueError):
    """Two points of one sweep would share a run name (and so a run directory)."""


@dataclass(frozen=True)
class ParsedOverride:
    """One ``key=value`` command-line override, with Hydra's ``+``/``++``/``~`` prefix removed."""

    key: str
    value: str


def parse_overrides(overrides: Sequence[str]) -> list[ParsedOverride]:
    """Parse overrides with Hydra's own grammar (quoting, ``+key``, ``group/option``)."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [
        ParsedOverride(key=item.key_or_group, value=item.get_value_element_as_str())
        for item in parsed
        if not item.is_delete()
    ]


def _names_run(key: str) -> bool:
    root = key.split("/")[0].split(".")[0]
    return root not in _NON_NAMING_PREFIXES


def swept_keys(job_overrides: Sequence[Sequence[str]]) -> list[str]:
    """Keys whose value differs between the points of a sweep, in first-seen order."""
    values: dict[str, set[str | None]] = {}
    parsed_jobs = [{item.key: item.value for item in parse_overrides(job)} for job in job_overrides]
    for job in parsed_jobs:
        for key in job:
            values.setdefault(key, set())
    for key in values:
        values[key] = {job.get(key) for job in parsed_jobs}
    return [key for key, seen in values.items() if len(seen) > 1 and _names_run(key)]


def run_name(overrides: Sequence[str], keys: Sequence[str] | None = None) -> str:
    """The run name of one point: its ``key=value`` overrides for ``keys`` (all if None).

    Characters outside ``[A-Za-z0-9._=,+-]`` become ``_``; a name longer than
    ``MAX_NAME_LENGTH`` is cut and suffixed with a hash of the full name. No override → ``run``.
    """
    pairs = [
        f"{item.key}={item.value}"
        for item in parse_overrides(overrides)
        if _names_run(item.key) and (keys is None or item.key in keys)
    ]
    if not pairs:
        return "run"
    full = ",".join(pairs)
    safe = _UNSAFE.sub("_", full.replace("/", "."))
    if len(safe) > MAX_NAME_LENGTH:
        digest = hashlib.sha1(full.encode()).hexdigest()[:8]
        safe = f"{safe[: MAX_NAME_LENGTH - 9]}-{digest}"
    return safe


def sweep_run_names(job_overrides: Sequence[Sequence[str]]) -> list[str]:
    """One run name per sweep point; colliding names are rejected before any submission."""
    keys = swept_keys(job_overrides)
    if len(job_overrides) == 1:
        names = [run_name(job_overrides[0])]
    else:
        names = [run_name(job, keys) for job in job_overrides]
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            first = seen[name]
            raise RunNameCollisionError(
                f"sweep points #{first} ({' '.join(job_overrides[first])}) and #{index} "
                f"({' '.join(job_overrides[index])}) both get run name {name!r}; "
                "make their overrides differ (duplicate values in a sweep list?)"
            )
        seen[name] = index
    return names


def default_sweep_name(job_overrides: Sequence[Sequence[str]]) -> str:
    """``sweep-<swept keys>`` (or ``sweep`` for a one-point multirun)."""
    keys = swept_keys(job_overrides)
    if not keys:
        return "sweep"
    return _UNSAFE.sub("_", "sweep-" + "-".join(key.replace("/", ".") for key in keys))[:80]


def claim_sweep_dir(parent: Path, sweep_name: str) -> tuple[str, Path]:
    """Create ``parent/<sweep_name>-<UTC stamp>-<random>`` atomically; return (sweep id, dir).

    ``mkdir(exist_ok=False)`` makes the claim atomic, so two concurrent sweeps (even with
    the same name in the same second) never share a directory.
    """
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        sweep_id = f"{sweep_name}-{stamp}-{secrets.token_hex(3)}"
        directory = parent / sweep_id
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        return sweep_id, directory
    raise RuntimeError(f"could not claim a fresh sweep directory under {parent}")
