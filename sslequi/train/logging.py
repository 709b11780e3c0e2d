"""Metric sinks: ``metrics.jsonl`` (always) and a wandb run (offline unless asked).

The wandb run id lives in ``run.json`` and is reused with ``resume="allow"``, so a resumed
or requeued run continues the same wandb run (harness_lessons.md §1.8, §9). The mode is
``online`` only when ``logger.mode=online`` or ``WANDB_MODE=online``; a stored API key
alone never sends anything.
"""

from __future__ import annotations

import os
from typing import Any

from sslequi.config import LoggerConfig, LoggerMode
from sslequi.train.rundir import RunDir, RunInfo


def wandb_mode(config: LoggerConfig) -> str:
    """``online`` | ``offline`` | ``disabled`` from the config and ``$WANDB_MODE``."""
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if config.mode is LoggerMode.disabled or env == "disabled":
        return "disabled"
    if config.mode is LoggerMode.online or env == "online":
        return "online"
    return "offline"


def new_wandb_id() -> str:
    return os.urandom(4).hex()


class MetricsLogger:
    """Writes one JSON object per logging step and mirrors it to wandb (rank 0 only)."""

    def __init__(
        self,
        run: RunDir,
        info: RunInfo,
        config: LoggerConfig,
        container: dict[str, Any],
        default_name: str,
        default_group: str,
    ) -> None:
        self.run = run
        self.mode = wandb_mode(config)
        self._wandb_run: Any = None
        if not run.writer or self.mode == "disabled":
            return
        import wandb

        if info.wandb_id is None:
            info.wandb_id = new_wandb_id()
            run.write_info(info)
        self._wandb_run = wandb.init(
            project=config.project,
            entity=config.entity,
            group=config.group or default_group,
            tags=list(config.tags),
            name=config.name or default_name,
            id=info.wandb_id,
            resume="allow",
            dir=str(run.path),
            mode=self.mode,
            config=container,
        )

    def log(self, step: int, record: dict[str, Any]) -> None:
        self.run.append_metrics({"step": step, **record})
        if self._wandb_run is not None:
            self._wandb_run.log(record, step=step)

    def close(self, failed: bool = False) -> None:
        if self._wandb_run is not None:
            self._wandb_run.finish(exit_code=1 if failed else 0)
            self._wandb_run = None
