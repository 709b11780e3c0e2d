"""Threading defaults for every entry point: idle OpenMP threads sleep instead of spinning.

torch's CPU kernels run on GNU OpenMP (``libgomp``), whose idle worker threads spin for a
while before sleeping unless ``OMP_WAIT_POLICY=PASSIVE``. Beside any other CPU-bound
process (a second job, a benchmark, a data loader) the spinning threads take the cores the
working ones need: the same recipe ran 2.5–18× slower from ``sslequi-pretrain`` than from
the demo, which alone set the policy (issue 15). libgomp reads the variable once, when
torch loads it, so ``use_default_threads`` must run before ``import torch``: each entry point
imports this module first (``import sslequi.threads``), and the import applies the
defaults.

A value already in the environment is kept: ``OMP_WAIT_POLICY=ACTIVE sslequi-pretrain …``
spins as asked. Child processes (submitit jobs, DataLoader workers, ``torchrun`` ranks)
inherit the environment, so launcher jobs get the same defaults; the job side imports
this module too, for jobs started from a process that did not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

# Variable → default. Only OpenMP's wait policy: the thread *count* stays torch's own
# default (the cores this process may use), which a user sets with OMP_NUM_THREADS.
DEFAULTS: Mapping[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}


def use_default_threads(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set each of ``DEFAULTS`` that ``environ`` (default: ``os.environ``) leaves unset
    or empty.

    Returns what was set. Called when this module is first imported; in a process where
    torch is already loaded it still reaches the child processes.
    """
    env = os.environ if environ is None else environ
    applied = {name: value for name, value in DEFAULTS.items() if not env.get(name)}
    env.update(applied)
    return applied


def threads_per_job(
    jobs: int, requested: int | None = None, environ: Mapping[str, str] | None = None
) -> int:
    """torch threads for each of ``jobs`` runs side by side: ``requested`` if given, else
    ``$OMP_NUM_THREADS`` if the user set it, else this machine's cores shared out."""
    if requested is not None:
        return requested
    env = os.environ if environ is None else environ
    if env.get("OMP_NUM_THREADS"):
        return int(env["OMP_NUM_THREADS"])
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


use_default_threads()
