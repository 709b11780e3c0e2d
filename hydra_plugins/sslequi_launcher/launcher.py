"""hydra-submitit-launcher, extended: save before requeue, non-blocking sweeps, DDP setup.

The upstream launcher only resubmits itself on submitit's signal (hydra#2042) and blocks
until every job ends (hydra#2479). This subclass:

- reads its options from the run config's typed ``launcher`` node (``sslequi.launcher.config``)
  and checks every sweep point before submitting (``sslequi.launcher.submit.plan_sweep``);
- submits the whole sweep as one SLURM array (``map_array``) and writes a sweep manifest;
  with ``launcher.wait=false`` it returns at once;
- runs each job once per task (one task per GPU); the task function joins the process
  group from submitit's task environment (``sslequi.launcher.ddp.init_distributed``);
- on submitit's USR2, ``checkpoint`` first asks the running trainer to save (which marks
  ``run.json`` requeued), then resubmits itself with ``train.resume=auto``. submitit stays the
  only owner of the signal (harness_lessons.md §7.3).

Imports of sslequi stay inside methods so Hydra's plugin discovery remains fast (except
``sslequi.threads``, a few lines, which must run before a job imports torch). No
``from __future__ import annotations`` here: Hydra executes plugin modules without
registering them in ``sys.modules``, which string annotations on a dataclass need.
"""

import logging
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import DictConfig

import sslequi.threads  # noqa: F401  (OpenMP defaults, before the job loads torch)

log = logging.getLogger(__name__)


@dataclass
class SslequiLauncherConf:
    """``hydra/launcher=sslequi``: every option lives in the run config's ``launcher`` node."""

    _target_: str = "hydra_plugins.sslequi_launcher.launcher.SslequiLauncher"


ConfigStore.instance().store(
    group="hydra/launcher", name="sslequi", node=SslequiLauncherConf, provider="sslequi"
)


class SslequiLauncher(BaseSubmititLauncher):
    """Submits Hydra sweeps through submitit as configured by ``launcher=submitit_local|slurm``."""

    _EXECUTOR = "sslequi"
    sweep_name: str = ""
    sweep_id: str = ""

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        """Name the sweep before Hydra's sweeper resolves ``hydra.sweep.dir``.

        ``$SSLEQUI_SWEEP_ID`` is what ``pretrain.yaml`` reads for an unset
        ``launcher.sweep_id``, so Hydra's sweep directory (with ``multirun.yaml``) is this
        sweep's directory, beside its manifest and run directories.
        """
        from sslequi.launcher.submit import sweep_identity
        from sslequi.train.rundir import SWEEP_ID_ENV

        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.sweep_name, self.sweep_id = sweep_identity(config)
        os.environ[SWEEP_ID_ENV] = self.sweep_id

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from sslequi.config import ConfigError
        from sslequi.launcher.slurm import make_executor
        from sslequi.launcher.submit import plan_sweep

        assert self.config is not None and self.hydra_context is not None
        loader = self.hydra_context.config_loader
        hydra_sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        try:
            plan = plan_sweep(
                job_overrides,
                lambda overrides: loader.load_sweep_config(self.config, overrides),
                sweep_name=self.sweep_name,
                sweep_id=self.sweep_id,
            )
        except ConfigError as error:
            # A short error naming the point, not a traceback; no empty sweep folder left.
            _remove_if_only_multirun(hydra_sweep_dir)
            print(f"sslequi-pretrain: {error}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        if plan.sweep_dir != hydra_sweep_dir:  # a sweep over experiments (plan_sweep)
            _move_multirun(hydra_sweep_dir, plan.sweep_dir)
        executor = make_executor(plan.launcher, plan.submitit_folder, plan.sweep_name)
        arguments = [
            (
                run.job_overrides,
                "hydra.sweep.dir",
                initial_job_idx + run.index,
                f"job_id_for_{initial_job_idx + run.index}",
                Singleton.get_state(),
            )
            for run in plan.runs
        ]
        jobs = executor.map_array(self, *zip(*arguments, strict=True))
        manifest_path = plan.manifest([job.job_id for job in jobs]).write()
        log.info(f"sslequi sweep {plan.sweep_id}: {len(jobs)} job(s) on {plan.launcher.name}")
        for run, job in zip(plan.runs, jobs, strict=True):
            log.info(f"\t#{run.index} job {job.job_id}: {' '.join(run.user_overrides)}")
        print(f"sweep manifest: {manifest_path}", flush=True)
        if not plan.launcher.wait:
            print(
                f"submitted without waiting; follow with: sslequi-sweep status {plan.sweep_dir}",
                flush=True,
            )
            return [
                JobReturn(
                    overrides=run.user_overrides,
                    working_dir=str(run.run_dir),
                    task_name=plan.sweep_name,
                    status=JobStatus.COMPLETED,
                    _return_value=run.run_dir,
                )
                for run in plan.runs
            ]
        return self._wait_and_report(jobs, plan, manifest_path)

    def _wait_and_report(self, jobs: Sequence[Any], plan: Any, manifest_path: Path) -> Any:
        """Wait for every job, print the sweep's status table and what to run next; a
        failed run makes the command exit 1 with that table, not a traceback."""
        from sslequi.launcher.sweeps import SweepManifest, format_status, sweep_status

        returns = []
        for run, job in zip(plan.runs, jobs, strict=True):
            try:
                returns.append(job.results()[0])
            except Exception as error:  # the job itself failed; its run.json says why
                returns.append(
                    JobReturn(
                        overrides=run.user_overrides,
                        working_dir=str(run.run_dir),
                        task_name=plan.sweep_name,
                        status=JobStatus.FAILED,
                        _return_value=error,
                    )
                )
        manifest = SweepManifest.read(manifest_path)
        statuses = sweep_status(manifest)
        print(format_status(manifest, statuses), flush=True)
        failed = [s for s in statuses if s.state != "completed"]
        if failed:
            logs = Path(manifest.submitit_folder).parent
            print(
                f"sslequi-pretrain: {len(failed)} of {len(statuses)} run(s) did not complete; "
                f"job logs: {logs}",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(1)
        evaluate = "" if manifest.evaluate else f"sslequi-sweep evaluate {plan.sweep_dir}; "
        print(f"next: {evaluate}sslequi-dashboard {plan.sweep_dir}", flush=True)
        return [
            r if r.status == JobStatus.COMPLETED else replace(r, status=JobStatus.COMPLETED)
            for r in returns
        ]

    def __call__(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[type, Singleton],
    ) -> JobReturn:
        """The job: pretrain (Hydra's task), then evaluate the run if the launcher asks."""
        from sslequi.launcher.sweep_eval import evaluate_after_pretraining

        result = super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)
        evaluate_after_pretraining(result, self.config)
        return result

    def checkpoint(self, sweep_overrides: list[str], *args: Any, **kwargs: Any) -> Any:
        """Save the running trainer's state, then resubmit this job to resume from it."""
        import submitit

        from sslequi.launcher.requeue import save_before_requeue
        from sslequi.launcher.submit import resume_overrides

        save_before_requeue()
        return submitit.helpers.DelayedSubmission(
            self, resume_overrides(sweep_overrides), *args, **kwargs
        )


def _remove_if_only_multirun(sweep_dir: Path) -> None:
    """Remove Hydra's sweep folder (and its empty parent) if it holds only multirun.yaml."""
    if not sweep_dir.is_dir() or {p.name for p in sweep_dir.iterdir()} - {"multirun.yaml"}:
        return
    shutil.rmtree(sweep_dir)
    try:
        sweep_dir.parent.rmdir()  # <output_root>/<experiment>, if now empty
    except OSError:
        pass


def _move_multirun(hydra_sweep_dir: Path, sweep_dir: Path) -> None:
    """Hydra wrote multirun.yaml where the master config points; move it to the sweep."""
    source = hydra_sweep_dir / "multirun.yaml"
    if source.exists():
        sweep_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), sweep_dir / "multirun.yaml")
    _remove_if_only_multirun(hydra_sweep_dir)
