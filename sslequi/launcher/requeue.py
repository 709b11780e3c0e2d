"""What a job does on submitit's preemption/time-out signal before it is requeued.

submitit's handler (the only one installed for USR2, harness_lessons.md §7.3) calls the
launcher's ``checkpoint``, which calls ``save_before_requeue``. The trainer blocks the
signal during each step, so this runs between steps: the checkpoint holds the state as
of the last completed step, and the requeued job (``train.resume=auto``, same run
directory, same wandb id from ``run.json``) continues exactly there.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sslequi.train.trainer import REQUEUE_REASONS, current_trainer

log = logging.getLogger(__name__)

# A reason the trainer treats as "stopping to be requeued": it marks run.json 'requeued',
# and pretrain() keeps that status (never 'failed') when the job then exits.
REQUEUE_REASON = "requeue"
if REQUEUE_REASON not in REQUEUE_REASONS:
    raise ImportError(f"the trainer no longer treats {REQUEUE_REASON!r} as a requeue reason")


def save_before_requeue() -> Path | None:
    """Ask the running trainer (if any) to checkpoint; return the checkpoint path.

    Without a running trainer (signal before training started or after it ended) there is
    nothing new to save: the requeued job resumes from the last checkpoint on disk.
    """
    trainer = current_trainer()
    if trainer is None:
        log.warning("requeue signal outside training: nothing to save")
        return None
    path = trainer.save_checkpoint(REQUEUE_REASON)
    log.warning(f"requeue: saved step {trainer.step} to {path}")
    return path
