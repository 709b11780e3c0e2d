"""Evaluation as part of a sweep: each run evaluated when its pretraining completes.

Two ways in, one code path (``evaluate_run_dir``):

- ``launcher.eval_probes=[linear,rotation,color]`` (plus ``launcher.eval_overrides``):
  the same submitit job that pretrained a run evaluates it right after, on rank 0. This
  is a deliberate change to the launcher contract (docs/launcher.md): the launcher knew
  only the pretraining entry point and the run directory; it now also calls
  ``sslequi.evaluation.runner.evaluate_run`` on that run directory.
- ``sslequi-sweep evaluate SWEEP [sslequi-eval overrides]`` evaluates the runs a sweep
  already trained (skipping failed and unfinished ones, and ones already evaluated with
  the same probes at their last step unless ``--force``).

An evaluation is configured exactly as ``sslequi-eval`` (``configs/eval/evaluate.yaml``
composed with the same overrides), and checked before any compute. Its state is recorded
in ``<run dir>/eval_status.json`` (running | completed | failed, with the error), which
``sslequi-sweep status`` and the dashboard show; what it prints goes to ``<run dir>/eval.log``
(one line per run on the terminal, the sweep's table at the end).
"""

from __future__ import annotations

import contextlib
import json
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from sslequi.config import ConfigError

EVAL_STATUS_FILE = "eval_status.json"
EVAL_LOG_FILE = "eval.log"  # what the evaluation printed (its table, wandb notes)
EvalState = Literal["none", "running", "completed", "failed"]


class EvalRequestError(ConfigError):
    """An evaluation request that cannot work (unknown probe, bad override)."""


@dataclass
class EvalStatus:
    """The content of ``eval_status.json``."""

    state: EvalState
    overrides: list[str] = field(default_factory=list)
    step: int = -1  # the pretraining step that was evaluated
    rows: int = 0
    error: str = ""
    started: str = ""
    finished: str = ""


def _now() -> str:
    from sslequi.launcher.sweeps import utc_now

    return utc_now()


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(*groups: Sequence[str]) -> list[str]:
    """Overrides of several sources, one per key, later groups winning."""
    merged: dict[str, str] = {}
    for group in groups:
        for override in group:
            merged.pop(override_key(override), None)
            merged[override_key(override)] = override
    return list(merged.values())


def probes_override(probes: Sequence[str]) -> str:
    return "probes=[" + ",".join(probes) + "]"


def compose_eval_config(run_dir: str | Path, overrides: Sequence[str]) -> Any:
    """The ``EvalConfig`` that ``sslequi-eval run=<run_dir> <overrides>`` would use.

    Composed with Hydra's compose API; a Hydra app already running in this process (a
    submitit job) keeps its global state.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.config_store import ConfigStore
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from sslequi.cli.evaluate import CONFIG_NAME, SCHEMA_NAME, eval_configs_dir, to_eval_config
    from sslequi.evaluation.runner import EvalConfig

    ConfigStore.instance().store(name=SCHEMA_NAME, node=EvalConfig)
    saved = GlobalHydra.instance().hydra
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(eval_configs_dir()), version_base="1.3"):
            cfg = compose(
                config_name=CONFIG_NAME,
                overrides=[*merge_overrides(overrides), f"run={_quoted(str(run_dir))}"],
            )
        return to_eval_config(cfg)
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise EvalRequestError(
            f"evaluation overrides {list(overrides)}: {message} (the options of sslequi-eval, "
            "configs/eval/evaluate.yaml)"
        ) from None
    finally:  # initialize_config_dir put a copy of the singleton back: restore on that one
        GlobalHydra.instance().hydra = saved


def check_eval_request(overrides: Sequence[str]) -> Any:
    """Compose and check an evaluation request before anything runs; returns its config."""
    from sslequi.evaluation.probes import load_probes

    cfg = compose_eval_config("<each run>", overrides)
    registry = load_probes()  # the probes sslequi-eval runs, including any added by a file
    unknown = [probe for probe in cfg.probes if probe not in registry]
    if unknown or not cfg.probes:
        raise EvalRequestError(
            f"evaluation probes {list(cfg.probes)}: "
            + (f"unknown {unknown}; " if unknown else "none given; ")
            + f"available: {registry.names()}"
        )
    return cfg


def read_eval_status(run_dir: str | Path) -> EvalStatus | None:
    path = Path(run_dir) / EVAL_STATUS_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        return EvalStatus(**{k: v for k, v in data.items() if k in EvalStatus.__dataclass_fields__})
    except (OSError, json.JSONDecodeError, TypeError):
        return None


def _write_eval_status(run_dir: Path, status: EvalStatus) -> None:
    from sslequi.train.rundir import write_atomic

    write_atomic(run_dir / EVAL_STATUS_FILE, (json.dumps(asdict(status), indent=2) + "\n").encode())


def eval_state(run_dir: str | Path) -> str:
    """``-`` (never evaluated), ``running``, ``failed``, or ``<rows> rows``."""
    from sslequi.evaluation.results import RESULTS_FILE

    status = read_eval_status(run_dir)
    if status is not None and status.state in ("running", "failed"):
        return status.state
    path = Path(run_dir) / RESULTS_FILE
    if not path.exists():
        return "-"
    try:
        rows = len(json.loads(path.read_text()).get("rows", []))
    except (OSError, json.JSONDecodeError):
        return "unreadable"
    return f"{rows} rows"


def already_evaluated(run_dir: Path, probes: Sequence[str], step: int) -> bool:
    """Whether results.json has rows of every probe in ``probes`` at checkpoint ``step``."""
    from sslequi.evaluation.results import load_results

    try:
        rows = load_results(run_dir)
    except (OSError, ValueError):
        return False
    done = {row.probe for row in rows if row.protocol.checkpoint_step == step}
    return set(probes) <= done


@dataclass(frozen=True)
class EvalOutcome:
    """What happened to one run."""

    run_dir: Path
    state: Literal["evaluated", "skipped", "failed"]
    detail: str
    seconds: float = 0.0


def evaluate_run_dir(
    run_dir: str | Path, overrides: Sequence[str], force: bool = False
) -> EvalOutcome:
    """Evaluate one completed run as ``sslequi-eval run=<run_dir> <overrides>`` does.

    Never raises for a failed evaluation: the error is printed, recorded in
    ``eval_status.json`` and returned, so one failing run does not stop a sweep.
    """
    from sslequi.evaluation.runner import evaluate_run
    from sslequi.train.rundir import RunDir

    run_dir = Path(run_dir)
    info = RunDir(run_dir, writer=False).read_info()
    if info is None or info.status != "completed":
        state = "not started" if info is None else info.status
        return EvalOutcome(run_dir, "skipped", f"pretraining {state}")
    cfg = compose_eval_config(run_dir, overrides)
    if not force and already_evaluated(run_dir, cfg.probes, info.step):
        return EvalOutcome(run_dir, "skipped", f"already evaluated at step {info.step}")
    status = EvalStatus("running", list(overrides), info.step, started=_now())
    _write_eval_status(run_dir, status)
    start = time.perf_counter()
    log = run_dir / EVAL_LOG_FILE
    try:
        with log.open("w") as stream, contextlib.redirect_stdout(stream):
            rows = evaluate_run(cfg)
    except Exception as error:  # recorded and reported; the sweep goes on
        status.state, status.finished = "failed", _now()
        status.error = f"{type(error).__name__}: {error}"
        _write_eval_status(run_dir, status)
        with log.open("a") as stream:
            traceback.print_exc(file=stream)
        detail = f"{status.error}; log: {log}"
        return EvalOutcome(run_dir, "failed", detail, time.perf_counter() - start)
    status.state, status.finished, status.rows = "completed", _now(), len(rows)
    _write_eval_status(run_dir, status)
    seconds = time.perf_counter() - start
    return EvalOutcome(run_dir, "evaluated", f"{len(rows)} numbers; log: {log}", seconds)


def evaluate_after_pretraining(result: Any, master_config: Any) -> EvalOutcome | None:
    """The job side of ``launcher.eval_probes``: evaluate the run a job just pretrained.

    ``result`` is the job's Hydra ``JobReturn``; nothing happens when the launcher asks for
    no evaluation, when the task failed, or on ranks other than 0.
    """
    from hydra.core.utils import JobStatus
    from omegaconf import OmegaConf

    probes = list(OmegaConf.select(master_config, "launcher.eval_probes", default=[]) or [])
    if not probes or result.status != JobStatus.COMPLETED:
        return None
    try:
        import submitit

        if submitit.JobEnvironment().global_rank != 0:
            return None
    except RuntimeError:  # not inside a submitit job
        pass
    extra = list(OmegaConf.select(master_config, "launcher.eval_overrides", default=[]) or [])
    explicit = OmegaConf.select(result.cfg, "run_dir", default=None)
    run_dir = Path(explicit or result.hydra_cfg.hydra.runtime.output_dir).absolute()
    outcome = evaluate_run_dir(run_dir, [probes_override(probes), *extra])
    print(f"sslequi: evaluation of {run_dir}: {outcome.state} ({outcome.detail})", flush=True)
    return outcome
