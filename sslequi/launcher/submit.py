"""Plan a sweep before anything is submitted: check every point, name it, place it.

``plan_sweep`` loads and resolves each point's config, runs the core's ``validate`` with the
launcher's world size, and adds the launcher's own checks (issue 7 "Bad input"): ``sbatch``
on PATH for SLURM, a time limit that leaves room for a checkpoint and the signal, one task
per GPU, no SyncBatchNorm on CPU, identical launcher options across the points of one
array, and no two points in one run directory. Only then is the sweep directory claimed.

Each point then receives extra overrides that pin where it runs, so a requeued job (same
overrides) lands in the same run directory and resumes: the sweep id (which places Hydra's
output directory = the run directory, ``pretrain.yaml``), the run slug, the wandb group
(= the sweep name) and a wandb tag naming the method.

A sweep over recipes (``-m experiment=sie_3diebench_cpu,vicreg_3diebench_cpu``) is one
sweep: its points would resolve to one ``<output_root>/<experiment>/`` folder each, so they
are all placed in ``<output_root>/sweeps/<sweep id>/`` (``hydra.sweep.dir`` pinned). Run
names in a sweep come from the overrides that differ between its points, the recipe
included (``experiment-sie_3diebench_cpu_seed-0``). A point whose config does not resolve fails with its
overrides named, before anything is submitted; sweeping ``method`` under one method's
recipe gets the recipes to sweep instead.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from sslequi.config import ConfigError, ResolvedConfig, resolve_config, validate
from sslequi.launcher import ddp
from sslequi.launcher.config import (
    LauncherConfigError,
    SlurmLauncherConfig,
    SubmitLauncherConfig,
    check_launcher_values,
)
from sslequi.launcher.naming import (
    check_unique_run_dirs,
    default_sweep_name,
    new_sweep_id,
    safe_name,
)
from sslequi.launcher.sweeps import MANIFEST_NAME, ManifestRun, SweepManifest, utc_now
from sslequi.train.rundir import SLUG_EXCLUDED_KEYS, run_slug

SUBMITIT_DIR = ".submitit"
MULTI_EXPERIMENT_DIR = "sweeps"  # <output_root>/sweeps/<sweep id>: a sweep over recipes


@dataclass(frozen=True)
class PlannedRun:
    """One sweep point: the user's overrides, the ones the job receives, and its run dir."""

    index: int
    user_overrides: list[str]
    job_overrides: list[str]
    run_slug: str
    run_dir: Path


@dataclass(frozen=True)
class SweepPlan:
    """A checked sweep with a claimed directory, ready for submission."""

    launcher: SubmitLauncherConfig
    sweep_name: str
    sweep_id: str
    sweep_dir: Path
    runs: list[PlannedRun]
    evaluate: list[str] = field(default_factory=list)  # sslequi-eval overrides per job

    @property
    def submitit_folder(self) -> Path:
        """submitit's pickles and logs: ``<sweep dir>/.submitit/<job id>``."""
        return self.sweep_dir / SUBMITIT_DIR / "%j"

    def manifest(self, job_ids: Sequence[str]) -> SweepManifest:
        """The manifest of this plan once the scheduler gave ``job_ids`` (one per run)."""
        array_id = None
        if isinstance(self.launcher, SlurmLauncherConfig) and job_ids:
            array_id = job_ids[0].split("_")[0]
        return SweepManifest(
            sweep_name=self.sweep_name,
            sweep_id=self.sweep_id,
            launcher=self.launcher.name,
            sweep_dir=str(self.sweep_dir),
            submitit_folder=str(self.submitit_folder),
            array_id=array_id,
            created=utc_now(),
            evaluate=list(self.evaluate),
            runs=[
                ManifestRun(
                    index=run.index,
                    overrides=run.user_overrides,
                    run_slug=run.run_slug,
                    run_dir=str(run.run_dir),
                    job_id=job_id,
                )
                for run, job_id in zip(self.runs, job_ids, strict=True)
            ],
        )


def _quoted(value: str) -> str:
    """A Hydra override value quoted as a plain string."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def uses_cuda(launcher: SubmitLauncherConfig, resolved: ResolvedConfig) -> bool:
    """Whether the job's processes will train on GPUs."""
    if resolved.train.device == "cpu" or launcher.gpus_per_node == 0:
        return False
    if isinstance(launcher, SlurmLauncherConfig):
        return True  # the allocation has GPUs even if this login node has none
    import torch

    return torch.cuda.is_available()


def check_launcher(launcher: SubmitLauncherConfig, resolved: ResolvedConfig) -> None:
    """The launcher's own bad-input checks (before submission, issue 7)."""
    check_launcher_values(launcher)
    if isinstance(launcher, SlurmLauncherConfig):
        missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
        if missing:
            raise LauncherConfigError(
                f"launcher=slurm needs {' and '.join(missing)} on PATH, and this machine has "
                "none: submit from a SLURM login node, or use launcher=submitit_local to run "
                "the same jobs here"
            )
    elif launcher.gpus_per_node > 0 and resolved.train.device != "cpu":
        import torch

        if torch.cuda.device_count() < launcher.gpus_per_node:
            raise LauncherConfigError(
                f"launcher.gpus_per_node={launcher.gpus_per_node} but this machine has "
                f"{torch.cuda.device_count()} GPU(s)"
            )
    ddp.check_tasks_per_node(launcher)
    ddp.check_sync_batchnorm(launcher, uses_cuda(launcher, resolved))
    limit_s = launcher.timeout_min * 60
    needed_s = resolved.train.checkpoint_every_min * 60 + launcher.signal_delay_s
    if limit_s < needed_s:
        raise LauncherConfigError(
            f"launcher.timeout_min={launcher.timeout_min:g} ({limit_s:g} s) is shorter than "
            f"train.checkpoint_every_min={resolved.train.checkpoint_every_min:g} min plus "
            f"launcher.signal_delay_s={launcher.signal_delay_s} ({needed_s:g} s): the job "
            "would be signalled before its first periodic checkpoint. Raise the time limit "
            "or lower checkpoint_every_min / signal_delay_s."
        )


@contextlib.contextmanager
def _hydra_config_of(cfg: DictConfig) -> Iterator[None]:
    """Make ``cfg`` Hydra's current config, so ``${hydra:...}`` resolves as in its job."""
    instance = HydraConfig.instance()
    previous = instance.cfg
    instance.set_config(cfg)
    try:
        yield
    finally:
        instance.cfg = previous


def _load_point(
    load_config: Callable[[list[str]], DictConfig], overrides: list[str]
) -> tuple[ResolvedConfig, Path, Path]:
    """One point's typed config, run directory and Hydra sweep directory, resolved as its
    job will resolve them (``run_dir`` wins over Hydra's output directory, as in
    ``sslequi.train.run.locate_run_dir``)."""
    cfg = load_config(overrides)
    task_cfg = copy.deepcopy(cfg)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]  # as Hydra's run_job hands the task its config
    with _hydra_config_of(cfg):
        resolved = resolve_config(task_cfg)
        sweep_dir = Path(os.path.abspath(str(cfg.hydra.sweep.dir)))
        run_dir = sweep_dir / str(cfg.hydra.sweep.subdir)
    if resolved.run_dir:
        run_dir = Path(os.path.abspath(resolved.run_dir))
    return resolved, run_dir, sweep_dir


def _validate_for_job(resolved: ResolvedConfig, launcher: SubmitLauncherConfig) -> None:
    """The core's validation with the job's world size, as the job's machine sees it.

    A SLURM sweep is planned on a login node that may have no GPU; a ``train.device=cuda``
    there is checked against the allocation (``gpus_per_node``), not this machine.
    """
    if isinstance(launcher, SlurmLauncherConfig) and resolved.train.device.startswith("cuda"):
        if launcher.gpus_per_node == 0:
            raise LauncherConfigError(
                f"train.device={resolved.train.device} but launcher.gpus_per_node=0"
            )
        resolved = replace(resolved, train=replace(resolved.train, device="auto"))
    validate(resolved, world_size=launcher.world_size())


def sweep_identity(config: DictConfig) -> tuple[str, str]:
    """(sweep name, fresh sweep id) of a multirun's master config.

    The name is ``launcher.sweep_name`` or the swept keys of the command line; the id adds
    a UTC time stamp and a random suffix (``naming.new_sweep_id``).
    """
    explicit = OmegaConf.select(config, "launcher.sweep_name", default="") or ""
    task = list(OmegaConf.select(config, "hydra.overrides.task", default=[]) or [])
    name = safe_name(explicit) if explicit else default_sweep_name(task)
    return name, new_sweep_id(name)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _value(job: Sequence[str], key: str) -> str | None:
    """The value ``job`` gives ``key`` (the last override of it), or None."""
    values = [o.split("=", 1)[1] for o in job if "=" in o and _key(o) == key]
    return values[-1] if values else None


def varying_keys(jobs: Sequence[Sequence[str]]) -> set[str]:
    """The override keys whose value differs between the points of a sweep."""
    keys = {_key(o) for job in jobs for o in job}
    return {key for key in keys if len({_value(job, key) for job in jobs}) > 1}


def sweep_run_slug(job: Sequence[str], varying: set[str]) -> str:
    """A sweep point's run name: its overrides of the ``varying`` keys (``experiment``
    included), e.g. ``experiment-sie_3diebench_cpu_seed-0``; all its overrides when
    nothing varies (a one-point sweep, named like a single run)."""
    chosen = [o for o in job if _key(o) in varying]
    slug = run_slug(chosen, excluded=[k for k in SLUG_EXCLUDED_KEYS if k != "experiment"])
    return run_slug(job) if slug == "default" else slug  # only run-invariant keys vary


def _pinning_overrides(
    job: Sequence[str], sweep_name: str, sweep_id: str, varying: set[str] | None = None
) -> list[str]:
    """What a point's job receives beyond the user's overrides (see the module docstring).

    ``varying``: the keys that differ between the sweep's points, which name its runs.
    """
    keys = {_key(o) for o in job}
    extra = [f"launcher.sweep_id={_quoted(sweep_id)}"]
    if "run_slug" not in keys:
        extra.append(f"run_slug={_quoted(sweep_run_slug(job, varying or set()))}")
    if "logger.group" not in keys:
        extra.append(f"logger.group={_quoted(sweep_name)}")
    return extra


def _tag_overrides(overrides: list[str], resolved: ResolvedConfig) -> list[str]:
    """``overrides`` with the method's name added to ``logger.tags`` (wandb: tagged by method)."""
    tags = list(resolved.logger.tags)
    method = str(resolved.method.name)
    if method in tags:
        return overrides
    kept = [o for o in overrides if _key(o) != "logger.tags"]
    listed = ",".join(_quoted(str(tag)) for tag in [*tags, method])
    return [*kept, f"logger.tags=[{listed}]"]


def _point_error(
    index: int, jobs: Sequence[Sequence[str]], error: ConfigError
) -> LauncherConfigError:
    """A point's config error with its overrides named and, for a method swept under one
    method's recipe, the recipes to sweep instead."""
    job = jobs[index]
    message = f"sweep point #{index} ({' '.join(job)}): {error}"
    methods = list(dict.fromkeys(v for j in jobs if (v := _value(j, "method")) is not None))
    experiment = _value(job, "experiment")
    if len(methods) > 1 and experiment and "method" in str(error):
        message += (
            f"\nexperiment={experiment} is a recipe for one method; its method options do not "
            f"fit method={_value(job, 'method')}. To compare methods, sweep their recipes: "
            + _recipe_sweep(experiment, methods)
        )
    return LauncherConfigError(message)


def _recipe_sweep(experiment: str, methods: Sequence[str]) -> str:
    """``-m experiment=<recipe of each method>`` when those recipes exist, else a pattern."""
    from sslequi.cli.pretrain import configs_dir

    for method in sorted(methods, key=len, reverse=True):
        if experiment.startswith(method + "_"):
            suffix = experiment[len(method) :]
            recipes = [f"{m}{suffix}" for m in methods]
            folder = configs_dir() / "experiment"
            if all((folder / f"{recipe}.yaml").is_file() for recipe in recipes):
                return f"-m experiment={','.join(recipes)}"
    return "-m experiment=<recipe of method A>,<recipe of method B> (configs/experiment/)"


def plan_sweep(
    job_overrides: Sequence[Sequence[str]],
    load_config: Callable[[list[str]], DictConfig],
    sweep_name: str,
    sweep_id: str,
) -> SweepPlan:
    """Check every point of a sweep, then claim its directory (see the module docstring).

    ``load_config(overrides)`` composes one point's config with its ``hydra`` node
    (Hydra's ``load_sweep_config``). A point's run directory is Hydra's output directory
    of its job (``pretrain.yaml``: ``<output_root>/<experiment>/<sweep id>/<slug>``) or its
    explicit ``run_dir``. The sweep directory is claimed by creating its manifest file
    exclusively, so two sweeps never share one.
    """
    if not job_overrides:
        raise ConfigError("a sweep needs at least one point")
    jobs = [list(job) for job in job_overrides]
    varying = varying_keys(jobs)
    pinned = [[*job, *_pinning_overrides(job, sweep_name, sweep_id, varying)] for job in jobs]
    points = []
    for index, overrides in enumerate(pinned):
        try:
            points.append(_load_point(load_config, overrides))
        except LauncherConfigError:
            raise
        except ConfigError as error:
            raise _point_error(index, jobs, error) from None
    first, _, sweep_dir = points[0]
    if len({point_sweep_dir for _, _, point_sweep_dir in points}) > 1:
        # Points of several experiments: one sweep folder for all (module docstring).
        sweep_dir = Path(os.path.abspath(first.output_root)) / MULTI_EXPERIMENT_DIR / sweep_id
        points = [
            (resolved, run_dir if resolved.run_dir else sweep_dir / run_dir.name, sweep_dir)
            for resolved, run_dir, _ in points
        ]
        pinned = [[*p, f"hydra.sweep.dir={_quoted(str(sweep_dir))}"] for p in pinned]
    pinned = [
        _tag_overrides(overrides, resolved)
        for overrides, (resolved, _, _) in zip(pinned, points, strict=True)
    ]
    launcher = first.launcher
    if not isinstance(launcher, SubmitLauncherConfig):
        raise LauncherConfigError(
            f"launcher={launcher.name} runs in-process; the submitit launcher needs "
            "launcher=submitit_local or launcher=slurm"
        )
    check_launcher(launcher, first)
    evaluate: list[str] = []
    if launcher.eval_probes:
        from sslequi.launcher.sweep_eval import check_eval_request, probes_override

        evaluate = [probes_override(launcher.eval_probes), *launcher.eval_overrides]
        check_eval_request(evaluate)
    for index, (resolved, _, _) in enumerate(points):
        if resolved.launcher != launcher:
            raise LauncherConfigError(
                f"sweep point #{index} ({' '.join(jobs[index])}) changes launcher options: "
                "all points of a sweep share one job array, so sweep the launcher in "
                "separate commands"
            )
        try:
            _validate_for_job(resolved, launcher)
        except LauncherConfigError:
            raise
        except ConfigError as error:
            raise _point_error(index, jobs, error) from None
    runs = [
        PlannedRun(
            index=index,
            user_overrides=job,
            job_overrides=overrides,
            run_slug=run_dir.name,
            run_dir=run_dir,
        )
        for index, (job, overrides, (_, run_dir, _)) in enumerate(
            zip(jobs, pinned, points, strict=True)
        )
    ]
    check_unique_run_dirs([run.run_dir for run in runs], jobs)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(sweep_dir / MANIFEST_NAME, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        raise LauncherConfigError(
            f"{sweep_dir} already holds a sweep ({MANIFEST_NAME}); sweep ids must be unique"
        ) from None
    return SweepPlan(
        launcher=launcher,
        sweep_name=sweep_name,
        sweep_id=sweep_id,
        sweep_dir=sweep_dir,
        runs=runs,
        evaluate=evaluate,
    )


def resume_overrides(overrides: Sequence[str]) -> list[str]:
    """The overrides of a requeued job: the same, with ``train.resume=auto``.

    The first attempt honours the user's ``train.resume``; every requeue continues from
    the run directory's ``last.pt``.
    """
    kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "train.resume"]
    return [*kept, "train.resume=auto"]
