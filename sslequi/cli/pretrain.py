"""``sslequi-pretrain``: the Hydra app over ``sslequi.train.run.pretrain``.

Composes ``configs/pretrain.yaml`` (the repository's ``configs/`` directory, or
``$SSLEQUI_CONFIGS``) on the schemas of ``sslequi.config``; every override is checked
before any compute. ``--multirun`` sweeps go through Hydra's launcher of choice.

    sslequi-pretrain method=simclr train.steps=200 optim.lr=3e-4
    sslequi-pretrain experiment=<name> train.resume=never
    sslequi-pretrain --multirun optim.lr=1e-3,3e-4

Hydra callbacks and logging factories from a config are refused unless the user passes
``--trust-config-code`` (or sets ``SSLEQUI_TRUST_CONFIG_CODE=1``): ``sslequi.cli.trust``.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

import sslequi.threads  # noqa: F401  (OpenMP defaults, before torch loads)
from sslequi.config import ConfigError, register_configs
from sslequi.data.check import DataError
from sslequi.train.rundir import SINGLE, SWEEP_ID_ENV, check_path_component, run_slug, sweep_id

CONFIGS_ENV = "SSLEQUI_CONFIGS"
CONFIG_NAME = "pretrain"


def configs_dir() -> Path:
    """The Hydra config directory: ``$SSLEQUI_CONFIGS`` or ``<repository>/configs``."""
    explicit = os.environ.get(CONFIGS_ENV)
    candidate = Path(explicit) if explicit else Path(__file__).resolve().parents[2] / "configs"
    if not (candidate / f"{CONFIG_NAME}.yaml").is_file():
        raise SystemExit(
            f"sslequi-pretrain: cannot find {CONFIG_NAME}.yaml in {candidate}. Install sslequi "
            f"editable from a checkout (pip install -e .) or set {CONFIGS_ENV} to the "
            "repository's configs/ directory."
        )
    return candidate


def _experiment_name(value: str | None, choice: str | None) -> str:
    """The ``experiment`` field if set, else the chosen ``experiment`` config, else default."""
    if value and value != "default":
        return _folder_name(value, "experiment")
    return choice or "default"


def _sweep_name(explicit: str | None, fallback: str) -> str:
    """Explicit sweep id, else ``$SSLEQUI_SWEEP_ID``, else ``single`` (runs) or a fresh id."""
    if explicit:
        return _folder_name(explicit, "launcher.sweep_id")
    if os.environ.get(SWEEP_ID_ENV):
        return _folder_name(os.environ[SWEEP_ID_ENV], f"${SWEEP_ID_ENV}")
    return SINGLE if fallback == SINGLE else sweep_id()


def _slug(explicit: str | None, overrides: Sequence[str] | None) -> str:
    if explicit:
        return _folder_name(explicit, "run_slug")
    return run_slug(list(overrides or []))


def _folder_name(value: str, key: str) -> str:
    """``value`` if it is one folder name, else exit 2 with the reason (these resolvers run
    while Hydra computes its output directory, before it creates anything: no ``../``)."""
    try:
        return check_path_component(value, key)
    except ConfigError as error:
        print(f"sslequi-pretrain: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def _first_set(explicit: str | None, default: str) -> str:
    return explicit or default


def register_resolvers() -> None:
    """Resolvers ``pretrain.yaml`` uses to point Hydra's run/sweep dirs into the run dir."""
    resolvers = {
        "sslequi_or": _first_set,
        "sslequi_experiment": _experiment_name,
        "sslequi_sweep": _sweep_name,
        "sslequi_slug": _slug,
    }
    for name, function in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The pretraining config as ``sslequi-pretrain <overrides>`` would compose it (for
    notebooks, scripts and tests; pass it to ``sslequi.train.run.pretrain``)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(configs_dir()), version_base="1.3"):
        cfg = compose(config_name=CONFIG_NAME, overrides=list(overrides), return_hydra_config=True)
    choice = cfg.hydra.runtime.choices.get("experiment")
    with open_dict(cfg):
        del cfg["hydra"]
    cfg.experiment = _experiment_name(cfg.experiment, choice)
    return cfg


def task(cfg: DictConfig) -> None:
    """Hydra's task function: one pretraining run."""
    from hydra.core.hydra_config import HydraConfig

    from sslequi.train.run import pretrain

    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get("experiment")
        cfg.experiment = _experiment_name(cfg.experiment, choice)
    distributed = _start_process_group()
    failure = ""
    try:
        run_dir = pretrain(cfg)
    except (ConfigError, DataError) as error:  # a data error mid-run: run.json says failed
        failure = f"sslequi-pretrain: {error}"
    finally:
        if distributed:
            from sslequi.launcher.ddp import shutdown_distributed

            shutdown_distributed()
    if failure:
        _stop_failed_run()
        print(failure, file=sys.stderr, flush=True)
        raise SystemExit(2)
    print(f"sslequi-pretrain: run directory {run_dir}", flush=True)


def _stop_failed_run() -> None:
    """Free what a failed run left behind, so the process can exit.

    The error's traceback held the trainer and its DataLoader: collecting them shuts the
    workers down. A worker still running after that is killed: workers inherit the signals
    the trainer holds back during a step (SIGTERM included), so the ``terminate`` that
    Python's exit sends them would go unheard and the exit would wait for them forever.
    """
    import multiprocessing

    gc.collect()
    for child in multiprocessing.active_children():
        child.kill()
        child.join(timeout=10)


def _start_process_group() -> bool:
    """Under ``torchrun`` or a multi-task submitit job, join the process group (DDP)."""
    from sslequi.launcher.ddp import init_distributed

    return init_distributed() is not None


# Hydra flags that print or complete instead of running (no directory is created).
_NO_RUN_FLAGS = frozenset(
    {"-c", "--cfg", "-i", "--info", "-h", "--help", "--hydra-help", "-sc", "--shell-completion"}
)


def check_output_dir(cfg: DictConfig, run_mode: object) -> None:
    """Before Hydra creates the run (or sweep) directory: it can be created and written."""
    from hydra.types import RunMode

    from sslequi.train.rundir import RunDir

    key = "hydra.sweep.dir" if run_mode == RunMode.MULTIRUN else "hydra.run.dir"
    try:
        path = OmegaConf.select(cfg, key)
    except Exception:  # Hydra reports its own interpolation errors
        return
    if path:
        RunDir(Path(str(path)), writer=False).check_writable()


def main() -> None:
    """Console entry point (``sslequi-pretrain``); ``--trust-config-code``: sslequi.cli.trust."""
    import hydra

    from sslequi.cli.trust import guarded_hydra

    register_configs()
    register_resolvers()
    app = hydra.main(config_path=str(configs_dir()), config_name=CONFIG_NAME, version_base="1.3")(
        task
    )
    runs = not _NO_RUN_FLAGS.intersection(sys.argv[1:])
    with guarded_hydra("sslequi-pretrain", check_output_dir if runs else None):
        app()


if __name__ == "__main__":
    main()
