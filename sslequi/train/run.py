"""``pretrain(cfg) -> run directory``: the one entry point the CLI and launchers call.

Order: resolve and validate the config, locate and check the run directory, take its lock
(one writer per run: ``sslequi.train.lock``), decide on resume (``train.resume=auto``
continues from the newest usable checkpoint, falling back past unreadable ones, and refuses
one whose config differs in a key that changes the run), build the dataset, check it fits
the method and, on resume, that it is the data the checkpoint was trained on (its
fingerprint, not its path) — all before any compute — then mark the run ``running``, train,
and mark it ``completed``, ``requeued`` or ``failed`` (with the reason; a failed run is
never marked completed, hydra#1928).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
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
from sslequi.train.checkpoint import (
    find_checkpoint,
    load_latest,
    load_usable,
    set_aside,
)
from sslequi.train.fingerprint import check_same_data, data_fingerprint
from sslequi.train.lock import RunLock
from sslequi.train.logging import MetricsLogger
from sslequi.train.rundir import (
    SWEEP_ID_ENV,
    RunDir,
    check_path_component,
    run_dir_path,
    write_atomic,
)
from sslequi.train.trainer import REQUEUE_REASONS, DistInfo, Trainer, seed_everything

log = logging.getLogger(__name__)


def _sweep_of(cfg: ResolvedConfig) -> str | None:
    """The sweep id (``launcher.sweep_id`` or ``$SSLEQUI_SWEEP_ID``), checked to be one
    folder name."""
    if cfg.launcher.sweep_id:
        return check_path_component(cfg.launcher.sweep_id, "launcher.sweep_id")
    from_env = os.environ.get(SWEEP_ID_ENV)
    return check_path_component(from_env, f"${SWEEP_ID_ENV}") if from_env else None


def locate_run_dir(cfg: ResolvedConfig) -> Path:
    """``run_dir`` if set; inside a Hydra job, Hydra's output dir (set by ``pretrain.yaml``
    to the run directory); else ``<output_root>/<experiment>/<sweep or single>/<slug>``.

    An explicit ``run_slug`` or sweep id that is not one folder name is refused.
    """
    if cfg.run_slug:
        check_path_component(cfg.run_slug, "run_slug")
    sweep = _sweep_of(cfg)
    if cfg.run_dir:
        return Path(cfg.run_dir)
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return run_dir_path(cfg.output_root, cfg.experiment, cfg.run_slug or "default", sweep)


@dataclass
class ResumeSource:
    """The checkpoint a run continues from (already loaded and checked)."""

    path: Path
    state: dict[str, Any]
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # unusable newer ones


def resume_source(cfg: ResolvedConfig, run: RunDir) -> ResumeSource | None:
    """The checkpoint to continue from, or None to start fresh. Fails on a config change.

    ``auto`` (and a run directory given to ``train.resume``) takes the newest usable of
    ``last.pt``, ``prev.pt`` and ``step_<N>.pt``; a file given to ``train.resume`` is used
    as it is.
    """
    mode = cfg.train.resume
    if mode == "never":
        return None
    if mode == "auto" or Path(mode).is_dir():
        checkpoints = run.checkpoints if mode == "auto" else Path(mode) / "checkpoints"
        recovered = load_latest(checkpoints)
        if recovered is None:
            if mode == "auto":
                return None
            find_checkpoint(mode)  # raises: names what the directory holds
            return None
        source = ResumeSource(recovered.path, recovered.state, recovered.skipped)
    else:
        path = find_checkpoint(mode)
        source = ResumeSource(path, load_usable(path))
    differences = run_changing_differences(source.state["config"], cfg.container)
    if differences:
        listed = "\n  - ".join(differences)
        raise ConfigError(
            f"train.resume={mode}: the checkpoint {source.path} was written with a different "
            f"config in keys that change the run:\n  - {listed}\n"
            "Use the same settings to continue it, train.resume=never to start over in this "
            "directory, or another experiment/run_slug for a new run."
        )
    return source


def _fresh_start(run: RunDir) -> None:
    """``resume=never`` (or no checkpoint): forget a previous attempt's checkpoints, metrics,
    results, feature cache and wandb run."""
    if not run.writer:
        return
    run.remove_artifacts()
    info = run.read_info()
    if info is not None:
        info.wandb_id = None
        info.attempts = 0
        info.start_time = ""
        info.step = 0
        info.data_fingerprint = None
        info.dataset_roots = []
        info.checkpoint_fallback = []
        run.write_info(info)


def _note(message: str) -> None:
    log.warning(message)
    print(f"sslequi-pretrain: {message}", file=sys.stderr, flush=True)


def pretrain(cfg: DictConfig | Config | dict[str, Any] | ResolvedConfig) -> Path:
    """Pretrain as ``cfg`` says; return the run directory."""
    resolved = cfg if isinstance(cfg, ResolvedConfig) else resolve_config(_as_dictconfig(cfg))
    dist_info = DistInfo.current()
    validate(resolved, world_size=dist_info.world_size)
    run = RunDir(locate_run_dir(resolved), writer=dist_info.is_main)
    run.check_writable()
    lock = RunLock(run.path) if run.writer else None
    if lock is not None:
        lock.acquire()
    try:
        return _pretrain_locked(resolved, run, lock, dist_info)
    finally:
        if lock is not None:
            lock.release()


def _pretrain_locked(
    resolved: ResolvedConfig, run: RunDir, lock: RunLock | None, dist_info: DistInfo
) -> Path:
    if lock is not None and lock.taken_over_reason:
        holder = lock.taken_over.describe() if lock.taken_over else "an unreadable lock file"
        _note(
            f"took over the stale lock of {run.path} ({lock.taken_over_reason}; it was held "
            f"by {holder})"
        )
    if run.writer:
        for path in run.clean_temporaries():
            _note(f"removed {path}, left by an interrupted save")
    source = resume_source(resolved, run)

    seed_everything(resolved.seed + dist_info.rank)
    spec = method_spec_of(resolved)
    dataset = build_dataset(resolved.dataset, "train", spec.num_views)
    check_compatible(spec, dataset.info, resolved)
    fingerprint = data_fingerprint(dataset, resolved.dataset)
    root = resolved.dataset.root
    roots = [root]
    if source is not None:
        stored = source.state.get("data") or {}
        stored_root = str(source.state["config"].get("dataset", {}).get("root", ""))
        check_same_data(stored.get("fingerprint"), stored_root, fingerprint, root, source.path)
        roots = list(stored.get("roots") or [stored_root])
        if root not in roots:
            roots.append(root)
            _note(f"the same data as before is now read from {root} (first: {roots[0]})")

    # Everything is checked: only now does this process change the run directory.
    fallbacks: list[str] = []
    if source is None:
        _fresh_start(run)
    elif run.writer:
        for path, why in source.skipped:
            # Set aside only in this run's own directory (another run's is not ours to change).
            own = path.parent.resolve() == run.checkpoints.resolve() and path.exists()
            where = f"set aside as {set_aside(path).name}" if own else "left in place"
            fallbacks.append(f"{why} ({where}); resumed from {source.path.name}")
            _note(f"{why}; {where}, resuming from {source.path}")
    if run.writer and (source is None or not run.config_path.exists()):
        write_atomic(run.config_path, resolved.to_yaml().encode())
    sweep = _sweep_of(resolved)
    info = run.start(resolved.experiment, sweep, run.path.name, total_steps=0)
    info.data_fingerprint = fingerprint
    info.dataset_roots = roots
    info.checkpoint_fallback += fallbacks
    if lock is not None and lock.taken_over_reason:
        holder = lock.taken_over.describe() if lock.taken_over else "unreadable lock file"
        info.lock_takeovers.append(f"{lock.taken_over_reason}: {holder}")
    trainer: Trainer | None = None
    logger: MetricsLogger | None = None
    failed = True
    try:
        seed_everything(resolved.seed + dist_info.rank)
        method = build_method(resolved)
        trainer = Trainer(resolved, run, method, dataset, dist_info=dist_info)
        trainer.lock = lock
        trainer.data_record = {"fingerprint": fingerprint, "roots": roots}
        if source is not None:
            trainer.load_state_dict(source.state)
            dropped = run.truncate_metrics(trainer.step)
            if dropped:
                _note(f"dropped {dropped} metrics.jsonl line(s) after step {trainer.step}")
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
