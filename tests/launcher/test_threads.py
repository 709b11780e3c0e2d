"""Every entry point sets OpenMP's wait policy before torch loads, and keeps a user's value.

libgomp reads ``OMP_WAIT_POLICY`` once, when torch loads it, so the check records the
variable at the moment ``torch`` is first imported (an import hook in a fresh interpreter),
for each entry point module: the console scripts, ``python -m``, the thin scripts, and
the launcher plugin that a submitit job unpickles first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sslequi.threads import DEFAULTS, threads_per_job, use_default_threads

REPO = Path(__file__).resolve().parents[2]

# (how to load it, what): modules are imported, scripts are run with a non-main name.
ENTRY_POINTS = [
    ("module", "sslequi.cli.pretrain"),
    ("module", "sslequi.cli.evaluate"),
    ("module", "sslequi.cli.data"),
    ("module", "sslequi.cli.sweep"),
    ("module", "sslequi.dashboard.cli"),
    ("module", "hydra_plugins.sslequi_launcher.launcher"),
    ("script", "launch/demo.py"),
    ("script", "launch/pretrain.py"),
    ("script", "eval/evaluate.py"),
    ("script", "eval/compare.py"),
]

PROBE = r"""
import importlib.abc, json, os, runpy, sys

seen = {}

class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "at_torch" not in seen:
            seen["at_torch"] = os.environ.get("OMP_WAIT_POLICY")
        return None

sys.meta_path.insert(0, Watch())
kind, target = sys.argv[1], sys.argv[2]
if kind == "module":
    __import__(target)
else:
    runpy.run_path(target, run_name="not_main")
final = os.environ.get("OMP_WAIT_POLICY")
# Not loaded while importing the entry point: torch loads later, under the final value.
print(json.dumps({"at_torch": seen.get("at_torch", final), "final": final}))
"""


def _probe(kind: str, target: str, env_value: str | None) -> dict[str, str | None]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_value is not None:
        env["OMP_WAIT_POLICY"] = env_value
    output = subprocess.run(
        [sys.executable, "-c", PROBE, kind, target],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


@pytest.mark.parametrize(("kind", "target"), ENTRY_POINTS, ids=[t for _, t in ENTRY_POINTS])
def test_entry_point_sets_the_wait_policy_before_torch_loads(kind: str, target: str) -> None:
    seen = _probe(kind, target, None)
    assert seen == {"at_torch": "PASSIVE", "final": "PASSIVE"}


def test_a_value_the_user_sets_is_kept() -> None:
    seen = _probe("module", "sslequi.cli.pretrain", "ACTIVE")
    assert seen == {"at_torch": "ACTIVE", "final": "ACTIVE"}


def test_defaults_fill_only_unset_or_empty_variables() -> None:
    env = {"OMP_WAIT_POLICY": ""}
    assert use_default_threads(env) == dict(DEFAULTS)
    assert env == dict(DEFAULTS)
    env = {"OMP_WAIT_POLICY": "active"}
    assert use_default_threads(env) == {}
    assert env == {"OMP_WAIT_POLICY": "active"}


def test_threads_per_job_respects_the_user_then_shares_the_cores() -> None:
    cores = os.cpu_count() or 1
    assert threads_per_job(2, requested=3, environ={"OMP_NUM_THREADS": "5"}) == 3
    assert threads_per_job(2, environ={"OMP_NUM_THREADS": "5"}) == 5
    assert threads_per_job(1, environ={}) == cores
    assert threads_per_job(cores * 4, environ={}) == 1  # never zero
