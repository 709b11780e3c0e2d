"""Typed schemas of the ``submitit_local`` and ``slurm`` launchers (the ``launcher`` group).

They subclass ``sslequi.config.LauncherConfig`` (``local``: in-process, owned by the core)
and register in ``LAUNCHER_CONFIGS`` (as schema), so ``resolve_config`` types them. The
``launcher`` node of the run config is the single source of truth for where and how a run
executes (harness_lessons.md §7.1): ``hydra.launcher`` only selects our Hydra plugin
(``hydra_plugins/sslequi_launcher``), which reads this node.

Field names follow hydra-submitit-launcher (``timeout_min``, ``mem_gb``, ``gpus_per_node``,
``signal_delay_s``, ``max_num_timeout``, ``array_parallelism``, ``setup``) so that its users
recognise them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sslequi.config import LAUNCHER_CONFIGS, ConfigError, LauncherConfig


class LauncherConfigError(ConfigError):
    """A launcher option that cannot work, found before anything is submitted."""


@dataclass
class SubmitLauncherConfig(LauncherConfig):
    """Fields shared by the two submitit launchers (local processes and SLURM).

    ``sweep_name`` names a sweep: its wandb group and the prefix of its sweep id (empty →
    derived from the swept keys); ``sweep_id`` (inherited) is set by the launcher for each
    submission and stays the same across requeues. ``sync_batchnorm`` converts BatchNorm
    layers to ``torch.nn.SyncBatchNorm`` under DDP (GPU only; refused on CPU at config time).

    ``wait=False`` submits, writes the sweep manifest and returns at once
    (``sslequi-sweep status|collect MANIFEST`` follow the sweep). ``tasks_per_node`` left
    empty (``null``) means one task per GPU (harness_lessons.md §7.4), or one task on a
    CPU-only allocation. ``max_num_timeout`` bounds requeues after a time-out (preemptions
    requeue without limit, §7.3). ``signal_delay_s`` is how long before the time limit
    submitit's USR2 arrives.

    ``eval_probes`` non-empty: each job evaluates its run right after pretraining
    completes (``sslequi.launcher.sweep_eval``), as ``sslequi-eval run=<run dir>
    probes=[...] <eval_overrides>`` would.
    """

    name: str = "submitit_local"
    sweep_name: str = ""
    sync_batchnorm: bool = False
    wait: bool = True
    timeout_min: float = 60.0
    gpus_per_node: int = 0
    tasks_per_node: int | None = None
    cpus_per_task: int | None = None
    signal_delay_s: int = 120
    max_num_timeout: int = 3
    setup: list[str] = field(default_factory=list)
    eval_probes: list[str] = field(default_factory=list)
    eval_overrides: list[str] = field(default_factory=list)

    def effective_tasks_per_node(self) -> int:
        """One task per GPU unless overridden; one task on a CPU-only allocation."""
        if self.tasks_per_node is not None:
            return self.tasks_per_node
        return max(1, self.gpus_per_node)

    def world_size(self) -> int:
        """Number of processes of one job (one DDP process per task)."""
        return self.nodes_count() * self.effective_tasks_per_node()

    def nodes_count(self) -> int:
        return 1


@dataclass
class SubmititLocalLauncherConfig(SubmitLauncherConfig):
    """Processes on this machine through submitit's ``LocalExecutor`` (harness_lessons.md §7.7).

    Runs the same pickling, signal and requeue path as SLURM; all sweep points start at
    once (the local executor has no array throttle).
    """

    name: str = "submitit_local"


@dataclass
class SlurmLauncherConfig(SubmitLauncherConfig):
    """SLURM through submitit's ``SlurmExecutor``; a sweep becomes one array job (§7.2).

    ``wait`` defaults to False here: a cluster sweep returns once it is queued.
    ``additional_parameters`` forces raw ``#SBATCH`` flags (e.g. ``{"mail-type": "END"}``).
    """

    name: str = "slurm"
    wait: bool = False
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    nodes: int = 1
    gpus_per_node: int = 1
    cpus_per_task: int | None = 10
    mem_gb: float | None = None
    timeout_min: float = 24 * 60
    array_parallelism: int = 256
    additional_parameters: dict[str, str] = field(default_factory=dict)

    def nodes_count(self) -> int:
        return self.nodes


# Registered with ``config=`` so that ``resolve_config`` merges the node onto the schema.
for _name, _schema in (
    ("submitit_local", SubmititLocalLauncherConfig),
    ("slurm", SlurmLauncherConfig),
):
    LAUNCHER_CONFIGS.register(_name, config=_schema)(_schema)


def check_launcher_values(config: SubmitLauncherConfig) -> None:
    """Range checks that the schema types cannot express."""
    if config.timeout_min <= 0:
        raise LauncherConfigError(f"launcher.timeout_min must be > 0, got {config.timeout_min}")
    if config.gpus_per_node < 0:
        raise LauncherConfigError(
            f"launcher.gpus_per_node must be >= 0, got {config.gpus_per_node}"
        )
    if config.tasks_per_node is not None and config.tasks_per_node < 1:
        raise LauncherConfigError(
            f"launcher.tasks_per_node must be >= 1 or empty, got {config.tasks_per_node}"
        )
    if config.max_num_timeout < 0:
        raise LauncherConfigError(
            f"launcher.max_num_timeout must be >= 0, got {config.max_num_timeout}"
        )
    if config.signal_delay_s < 0:
        raise LauncherConfigError(
            f"launcher.signal_delay_s must be >= 0, got {config.signal_delay_s}"
        )
    if isinstance(config, SlurmLauncherConfig):
        if config.nodes < 1:
            raise LauncherConfigError(f"launcher.nodes must be >= 1, got {config.nodes}")
        if config.array_parallelism < 1:
            raise LauncherConfigError(
                f"launcher.array_parallelism must be >= 1, got {config.array_parallelism}"
            )
