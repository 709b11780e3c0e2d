"""``sslequi-eval``: the Hydra app over ``sslequi.evaluation.runner.evaluate_run``.

Composes ``configs/eval/evaluate.yaml`` (the repository's ``configs/`` directory, or
``$SSLEQUI_CONFIGS``) on the ``EvalConfig`` schema, so a typo or a wrong type in an override
fails before anything loads. Evaluates a run directory, merges the numbers into its
results.json (and wandb summary) and prints the run's table.

    sslequi-eval run=runs/x/single/y probes=[linear,rotation,color,mrr]
    sslequi-eval run=runs/x/single/y probes=[rotation] mode=live bn_mode=train
    sslequi-eval run=... probes=[rotation] probe.rotation.early_stopping=true parts=[equivariant]
    sslequi-eval run=... dataset={root: /data/3DIEBench}   # the run's dataset, elsewhere

Hydra writes nothing (no ``outputs/``; the working directory may be read-only): the numbers
and their protocol go to the run's ``results.json``. Hydra callbacks and logging factories
from a config are refused unless ``--trust-config-code`` is passed (``sslequi.cli.trust``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

import sslequi.threads  # noqa: F401  (OpenMP defaults, before torch loads)
from sslequi.evaluation.runner import EvalConfig, evaluate_run

CONFIGS_ENV = "SSLEQUI_CONFIGS"
CONFIG_NAME = "evaluate"
SCHEMA_NAME = "eval_schema"


def eval_configs_dir() -> Path:
    """``$SSLEQUI_CONFIGS/eval`` or ``<repository>/configs/eval``."""
    explicit = os.environ.get(CONFIGS_ENV)
    root = Path(explicit) if explicit else Path(__file__).resolve().parents[2] / "configs"
    candidate = root / "eval"
    if not (candidate / f"{CONFIG_NAME}.yaml").is_file():
        raise SystemExit(
            f"sslequi-eval: cannot find {CONFIG_NAME}.yaml in {candidate}. Install sslequi "
            f"editable from a checkout or set {CONFIGS_ENV} to the repository's configs/."
        )
    return candidate


def eval_schema() -> DictConfig:
    """``EvalConfig`` as Hydra's schema, with ``dataset`` and ``ood_dataset`` open mappings:
    ``dataset={root: /data/3DIEBench}`` merges new keys into them (a struct node refuses
    them), and ``ood_dataset`` starts as ``{}`` (= none: OmegaConf cannot merge a mapping
    into a null node)."""
    node = OmegaConf.structured(EvalConfig)
    node.ood_dataset = {}
    for key in ("dataset", "ood_dataset"):
        OmegaConf.set_struct(node[key], False)
    return node


def to_eval_config(cfg: DictConfig) -> EvalConfig:
    """The typed ``EvalConfig`` of a composed config (the ``hydra`` node dropped)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    container.pop("hydra", None)
    if container.get("ood_dataset") == {}:
        container["ood_dataset"] = None
    merged = OmegaConf.merge(OmegaConf.structured(EvalConfig), container)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def main() -> None:
    """Console entry point (``sslequi-eval``)."""
    import hydra

    from sslequi.cli.trust import guarded_hydra

    ConfigStore.instance().store(name=SCHEMA_NAME, node=eval_schema())

    @hydra.main(version_base="1.3", config_path=str(eval_configs_dir()), config_name=CONFIG_NAME)
    def app(cfg: DictConfig) -> None:
        try:
            evaluate_run(to_eval_config(cfg))
        except (FileNotFoundError, ValueError, TypeError) as error:
            print(f"sslequi-eval: {error}", file=sys.stderr)
            sys.exit(2)

    with guarded_hydra("sslequi-eval"):
        app()


if __name__ == "__main__":
    main()
