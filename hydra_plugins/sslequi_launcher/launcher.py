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

Imports of sslequi stay inside methods so Hydra's plugin discovery remains fast. No
``from __future__ import annotations`` here: Hydra executes plugin modules without
registering them in ``sys.modules``, which string annotations on a dataclass need.
"""

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import DictConfig

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
        from sslequi.launcher.slurm import make_executor
        from sslequi.launcher.submit import plan_sweep

        assert self.config is not None and self.hydra_context is not None
        loader = self.hydra_context.config_loader
        plan = plan_sweep(
            job_overrides,
            lambda overrides: loader.load_sweep_config(self.config, overrides),
            sweep_name=self.sweep_name,
            sweep_id=self.sweep_id,
        )
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
                f"submitted without waiting; follow with: sslequi-sweep status {manifest_path}",
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
        return [job.results()[0] for job in jobs]

    def checkpoint(self, sweep_overrides: list[str], *args: Any, **kwargs: Any) -> Any:
        """Save the running trainer's state, then resubmit this job to resume from it."""
        import submitit

        from sslequi.launcher.requeue import save_before_requeue
        from sslequi.launcher.submit import resume_overrides

        save_before_requeue()
        return submitit.helpers.DelayedSubmission(
            self, resume_overrides(sweep_overrides), *args, **kwargs
        )
