"""``pretrain(cfg) -> run directory``: the one entry point the CLI and launchers call.

Order: resolve and validate the config, locate and check the run directory, decide on
resume (``train.resume=auto`` refuses a checkpoint whose config differs in a key that
changes the run), build the dataset and check it fits the method — all before any
compute — then mark the run ``running``, train, and mark it ``completed``, ``requeued``
or ``failed`` (with the reason; a failed run is never marked completed, hydra#1928).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sslequi.build import build_dataset, build_method, check_compatible, method_spec_of
from sslequi.config import (
    Config,
    ConfigError,
    ResolvedConfig,
    resolve_config,
    run_changing_differences,
    validate,
)
from sslequi.train.checkpoint import find_checkpoint, load_checkpoint
from sslequi.train.logging import MetricsLogger
from sslequi.train.rundir import SWEEP_ID_ENV, RunDir, run_dir_path
from sslequi.train.trainer import REQUEUE_REASONS, DistInfo, Trainer, seed_everything


def locate_run_dir(cfg: ResolvedConfig) -> Path:
    """``run_dir`` if set; inside a Hydra job, Hydra's output dir (set by ``pretrain.yaml``
    to the run directory); else ``<output_root>/<experiment>/<sweep or single>/<slug>``."""
    if cfg.run_dir:
        return Path(cfg.run_dir)
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    sweep = cfg.launcher.sweep_id or os.environ.get(SWEEP_ID_ENV) or None
    return run_dir_path(cfg.output_root, cfg.experiment, cfg.run_slug or "default", sweep)


def resume_source(cfg: ResolvedConfig, run: RunDir) -> Path | None:
    """The checkpoint to continue from, or None to start fresh. Fails on a config change."""
    mode = cfg.train.resume
    if mode == "never":
        return None
    if mode == "auto":
        path = run.checkpoints / "last.pt"
        if not path.exists():
            return None
    else:
        path = find_checkpoint(mode)
    state = load_checkpoint(path)
    differences = run_changing_differences(state["config"], cfg.container)
    if differences:
        listed = "\n  - ".join(differences)
        raise ConfigError(
            f"train.resume={mode}: the checkpoint {path} was written with a different config "
            f"in keys that change the run:\n  - {listed}\n"
            "Use the same settings to continue it, train.resume=never to start over in this "
            "directory, or another experiment/run_slug for a new run."
        )
    return path


def _fresh_start(run: RunDir) -> None:
    """``resume=never`` (or no checkpoint): forget a previous attempt's metrics and wandb run."""
    if not run.writer:
        return
    run.metrics_path.unlink(missing_ok=True)
    (run.checkpoints / "last.pt").unlink(missing_ok=True)
    info = run.read_info()
    if info is not None:
        info.wandb_id = None
        info.attempts = 0
        info.start_time = ""
        run.write_info(info)


def pretrain(cfg: DictConfig | Config | dict[str, Any] | ResolvedConfig) -> Path:
    """Pretrain as ``cfg`` says; return the run directory."""
    resolved = cfg if isinstance(cfg, ResolvedConfig) else resolve_config(_as_dictconfig(cfg))
    dist_info = DistInfo.current()
    validate(resolved, world_size=dist_info.world_size)
    run = RunDir(locate_run_dir(resolved), writer=dist_info.is_main)
    run.check_writable()
    source = resume_source(resolved, run)
    if source is None:
        _fresh_start(run)

    seed_everything(resolved.seed + dist_info.rank)
    spec = method_spec_of(resolved)
    dataset = build_dataset(resolved.dataset, "train", spec.num_views)
    check_compatible(spec, dataset.info, resolved)

    if run.writer:
        run.config_path.write_text(resolved.to_yaml())
    sweep = resolved.launcher.sweep_id or os.environ.get(SWEEP_ID_ENV) or None
    info = run.start(resolved.experiment, sweep, run.path.name, total_steps=0)
    trainer: Trainer | None = None
    logger: MetricsLogger | None = None
    failed = True
    try:
        seed_everything(resolved.seed + dist_info.rank)
        method = build_method(resolved)
        trainer = Trainer(resolved, run, method, dataset, dist_info=dist_info)
        if source is not None:
            trainer.load_state_dict(load_checkpoint(source))
        info.total_steps, info.step = trainer.total_steps, trainer.step
        run.write_info(info)
        logger = MetricsLogger(
            run,
            info,
            resolved.logger,
            resolved.container,
            default_name=run.path.name,
            default_group=f"{resolved.experiment}/{sweep or 'single'}",
        )
        trainer.logger = logger
        result = trainer.fit()
        failed = False
    except BaseException as error:
        info = run.read_info() or info
        if trainer is not None and trainer.last_checkpoint_reason in REQUEUE_REASONS:
            run.finish(info, "requeued", f"stopped for {trainer.last_checkpoint_reason}")
        else:
            run.finish(info, "failed", f"{type(error).__name__}: {error}")
        raise
    finally:
        if logger is not None:
            logger.close(failed=failed)

    info = run.read_info() or info
    info.step = result.step
    if result.completed:
        run.finish(info, "completed")
    else:
        run.finish(info, "requeued", f"stopped after train.stop_after={resolved.train.stop_after}")
    return run.path


def _as_dictconfig(cfg: DictConfig | Config | dict[str, Any]) -> DictConfig:
    if isinstance(cfg, DictConfig):
        return cfg
    if isinstance(cfg, Config):
        return OmegaConf.structured(cfg)
    return OmegaConf.create(cfg)
