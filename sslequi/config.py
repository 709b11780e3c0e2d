"""The structured pretraining config: schemas, Hydra ConfigStore entries, typed resolution
and validation before any compute.

Hydra composes ``configs/pretrain.yaml`` on top of the ``pretrain_schema`` stored here.
The ``optim``, ``logger`` and ``train`` groups are typed in the schema itself, so a typo or
a wrong type in an override fails inside Hydra. The ``method``, ``dataset``, ``backbone``,
``augment`` and ``launcher`` nodes differ per choice; ``resolve_config`` converts each into
the dataclass registered under its ``name`` (``METHODS.entry(name).config`` …), which
fails clearly on unknown names, unknown keys and wrong types. ``validate`` then checks the
values (DESIGN.md "Validation happens at the edge"; issue 2 "Bad input").
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import math
import pkgutil
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sslequi.actions import ActionOptions
from sslequi.augment.config import AugmentConfig
from sslequi.data.base import DatasetConfig
from sslequi.methods.base import MethodConfig
from sslequi.registry import BACKBONES, DATASETS, METHODS, Registry, RegistryError

T = TypeVar("T")


class ConfigError(ValueError):
    """A config that cannot run: raised before any compute, naming the problem."""


# --------------------------------------------------------------------------- schemas


class OptimizerName(Enum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"
    lars = "lars"  # lightly.utils.lars.LARS


class LRScaling(Enum):
    none = "none"
    linear_per_256 = "linear_per_256"  # lr × global_batch / 256 (Goyal et al. 2017)


class Schedule(Enum):
    warmup_cosine = "warmup_cosine"
    constant = "constant"
    # linear warmup, then the peak rate to the end: what seq-JEPA's code runs (methods.md §9.5
    # item 2, register item 10); the same multipliers as ``constant`` with a warmup
    warmup_constant = "warmup_constant"
    multistep = "multistep"  # LR table: × lr_gamma at each of lr_milestones (RotNet, §12)


class LarsTrustRatio(Enum):
    lightly = "lightly"  # η‖p‖ / (‖g‖ + λ‖p‖ + ε): lightly's LARS
    update_norm = "update_norm"  # η‖p‖ / ‖g + λp‖: Barlow Twins / E-SSL ImageNet code


class ScheduleGranularity(Enum):
    step = "step"  # the cosine advances every optimizer step
    epoch = "epoch"  # the rate changes only at epoch starts (SimSiam / E-SimSiam ImageNet code)


class LoggerMode(Enum):
    offline = "offline"
    online = "online"
    disabled = "disabled"


class AmpDtype(Enum):
    bfloat16 = "bfloat16"
    float16 = "float16"


@dataclass
class OptimConfig:
    """Optimizer and learning-rate recipe (the ``optim`` group).

    ``lr`` is the base rate; with ``lr_scaling=linear_per_256`` the run uses
    ``lr × batch_size / 256`` where ``batch_size`` is the *global* batch (never the world
    size). ``exclude_bias_norm_from_wd`` puts 1-D parameters (biases, norm scales) in a
    group without weight decay — and, for LARS, without trust-ratio adaptation.
    """

    name: OptimizerName = OptimizerName.adam
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD / LARS
    nesterov: bool = False  # SGD / LARS
    beta1: float = 0.9  # Adam / AdamW
    beta2: float = 0.999
    eps: float = 1e-8
    trust_coefficient: float = 0.001  # LARS
    lars_trust_ratio: LarsTrustRatio = LarsTrustRatio.lightly  # sslequi/train/lars.py
    exclude_bias_norm_from_wd: bool = False
    lr_scaling: LRScaling = LRScaling.none
    schedule: Schedule = Schedule.warmup_cosine
    warmup_steps: int = 0
    warmup_epochs: float = 0.0  # converted with the steps per epoch; added to warmup_steps
    final_lr_ratio: float = 0.0  # cosine end value as a fraction of the peak lr
    # Warmup start: false = peak·(k+1)/W at step k (the first step already moves);
    # true = peak·k/W, the first step at rate 0 (E-SSL's adjust_learning_rate, methods.md §7.4)
    warmup_from_zero: bool = False
    schedule_granularity: ScheduleGranularity = ScheduleGranularity.step
    # schedule=multistep: the rate is multiplied by lr_gamma at each milestone, given as a
    # fraction of training (RotNet CIFAR-10: epochs 60/120/160 of 200 → 0.3, 0.6, 0.8).
    lr_milestones: list[float] = field(default_factory=list)
    lr_gamma: float = 0.1
    probe_lr: float = 1e-3  # online linear probe's own param group (constant rate)
    probe_weight_decay: float = 0.0


@dataclass
class LoggerConfig:
    """wandb run settings (the ``logger`` group). ``metrics.jsonl`` is always written.

    The run stays offline unless ``mode=online`` or the environment has
    ``WANDB_MODE=online``; a stored API key alone never turns it on.
    """

    project: str = "sslequi"
    entity: str | None = None
    group: str | None = None  # null: <experiment>/<sweep id or 'single'>
    tags: list[str] = field(default_factory=list)
    name: str | None = None  # wandb run name; null: the run slug
    mode: LoggerMode = LoggerMode.offline


@dataclass
class LauncherConfig:
    """Where a run executes (the ``launcher`` group). ``local`` runs in this process.

    Other launchers subclass this and register with ``register_launcher_config``.
    ``sweep_id`` names the submission (stable across requeues); null outside sweeps.
    """

    name: str = "local"
    sweep_id: str | None = None


@dataclass
class TrainConfig:
    """The training loop (the ``train`` group; set in ``pretrain.yaml``)."""

    batch_size: int = 256  # global batch over all ranks
    steps: int = 0  # 0: derive from epochs
    epochs: int = 1
    amp: bool = True  # CUDA only
    amp_dtype: AmpDtype = AmpDtype.bfloat16
    channels_last: bool = False
    grad_clip: float = 0.0  # max global grad norm; 0 = off
    log_every: int = 10
    online_probe_every: int = 10  # probe trained every step, its accuracy logged every N; 0 = off
    checkpoint_every_steps: int = 0  # 0 = off (a final checkpoint is always written)
    checkpoint_every_min: float = 0.0  # 0 = off
    keep_checkpoints: bool = False  # also keep checkpoints/step_<N>.pt at each periodic save
    resume: str = "auto"  # auto | never | <checkpoint file or run dir>
    stop_after: int = 0  # stop (status 'requeued') after this many steps in this process
    num_workers: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:<i>
    deterministic: bool = False  # torch.use_deterministic_algorithms
    progress: bool = True  # tqdm bar
    ddp_find_unused_parameters: bool = False


def _mutable_mirror(cls: type) -> type:
    """A non-frozen dataclass with ``cls``'s fields, usable as an OmegaConf schema."""
    hints = typing.get_type_hints(cls)
    specs = [(f.name, hints[f.name], field(default=f.default)) for f in dataclasses.fields(cls)]
    return dataclasses.make_dataclass(f"{cls.__name__}Schema", specs)


ActionsConfig = _mutable_mirror(ActionOptions)


@dataclass
class Config:
    """The pretraining schema stored as ``pretrain_schema`` in Hydra's ConfigStore.

    ``method``/``dataset``/``backbone``/``augment``/``launcher`` are converted by
    ``resolve_config`` into the dataclass registered under their ``name``.
    The run directory is ``<output_root>/<experiment>/<sweep id or 'single'>/<run slug>``.
    """

    method: Any = MISSING
    dataset: Any = MISSING
    backbone: Any = MISSING
    augment: Any = MISSING
    launcher: Any = MISSING
    optim: OptimConfig = field(default_factory=OptimConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    actions: ActionsConfig = field(default_factory=ActionsConfig)  # type: ignore[valid-type]
    experiment: str = "default"
    seed: int = 0
    output_root: str = "runs"
    run_slug: str | None = None  # null: derived from the command-line overrides
    run_dir: str | None = None  # explicit run directory (overrides the layout above)


@dataclass
class ResolvedConfig:
    """Every node as its typed dataclass; what the builders and trainer read."""

    method: MethodConfig
    dataset: DatasetConfig
    backbone: Any  # the dataclass registered with the backbone
    augment: AugmentConfig
    launcher: LauncherConfig
    optim: OptimConfig
    logger: LoggerConfig
    train: TrainConfig
    actions: ActionOptions
    experiment: str
    seed: int
    output_root: str
    run_slug: str | None
    run_dir: str | None
    container: dict[str, Any]  # the same config as plain data (config.yaml, checkpoints)

    def to_yaml(self) -> str:
        return OmegaConf.to_yaml(OmegaConf.create(self.container))


# --------------------------------------------------------------------------- registries

LAUNCHER_CONFIGS: Registry[type] = Registry("launcher")
LAUNCHER_CONFIGS.register("local", config=LauncherConfig)(LauncherConfig)


def register_launcher_config(name: str) -> Callable[[type[T]], type[T]]:
    """Register the schema of launcher ``name`` (a ``LauncherConfig`` subclass)."""

    def decorator(cls: type[T]) -> type[T]:
        if not (isinstance(cls, type) and issubclass(cls, LauncherConfig)):
            raise TypeError(f"launcher config {cls!r} must subclass LauncherConfig")
        LAUNCHER_CONFIGS.register(name, config=cls)(cls)
        return cls

    return decorator


_COMPONENT_PACKAGES = ("sslequi.models", "sslequi.data", "sslequi.methods")
_LAUNCHER_SCHEMA_MODULE = "sslequi.launcher.config"
_imported = False


def import_components() -> None:
    """Import every module of the models/data/methods packages so their registrations run.

    New methods, datasets and backbones are picked up by adding a file; no list to edit.
    """
    global _imported
    if _imported:
        return
    for package_name in _COMPONENT_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package_name}.{info.name}")
    try:
        importlib.import_module(_LAUNCHER_SCHEMA_MODULE)
    except ModuleNotFoundError as error:
        if error.name != _LAUNCHER_SCHEMA_MODULE:
            raise
    _imported = True


# --------------------------------------------------------------------------- Hydra store


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    store.store(name="pretrain_schema", node=Config)
    store.store(group="optim", name="optim_schema", node=OptimConfig)
    store.store(group="logger", name="logger_schema", node=LoggerConfig)


# --------------------------------------------------------------------------- resolution


def _typed_node(schema: type, node: Any, where: str) -> tuple[Any, dict[str, Any]]:
    """Merge ``node`` onto ``schema`` and instantiate it, or fail naming the key.

    OmegaConf checks keys and types against a mirror of ``schema`` whose annotations it
    understands (``Literal`` → its base type); ``_construct`` then checks the ``Literal``
    choices and builds the real dataclass (running its ``__post_init__`` checks).
    """
    try:
        base = OmegaConf.structured(_omegaconf_schema(schema))
        OmegaConf.set_readonly(base, False)
        merged = OmegaConf.merge(base, node)
        container = OmegaConf.to_container(merged, resolve=True, enum_to_str=True)
        values = OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        message = getattr(error, "msg", str(error)).splitlines()[0].replace("Schema'", "'")
        prefix = f"{where}.{key}" if key else where
        raise ConfigError(f"config {prefix}: {message} (schema {schema.__name__})") from None
    try:
        return _construct(schema, values, where), container  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"config {where}: {error}") from None


_SCHEMAS: dict[type, type] = {}


def _omegaconf_annotation(annotation: Any) -> Any:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        kinds = {type(a) for a in args}
        return kinds.pop() if len(kinds) == 1 else Any
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            inner = _omegaconf_annotation(rest[0])
            return inner if len(rest) == len(args) else typing.Optional[inner]  # noqa: UP045
        return Any
    if origin in (list, tuple):
        items = [a for a in args if a is not Ellipsis]
        inner = _omegaconf_annotation(items[0]) if len(set(items)) == 1 else Any
        return list[inner]  # type: ignore[valid-type]
    if origin is dict:
        return dict[args[0], _omegaconf_annotation(args[1])]  # type: ignore[valid-type]
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return _omegaconf_schema(annotation)
    return annotation


def _omegaconf_schema(cls: type) -> type:
    """A mutable mirror of dataclass ``cls`` with annotations OmegaConf accepts."""
    if cls not in _SCHEMAS:
        hints = typing.get_type_hints(cls)
        specs = []
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            default: Any = field(default=_plain(f.default))
            if f.default_factory is not dataclasses.MISSING:
                factory = f.default_factory
                default = field(default_factory=lambda factory=factory: _plain(factory()))
            elif f.default is dataclasses.MISSING:
                default = field(default=MISSING)
            specs.append((f.name, _omegaconf_annotation(hints[f.name]), default))
        _SCHEMAS[cls] = dataclasses.make_dataclass(f"{cls.__name__}Schema", specs)
    return _SCHEMAS[cls]


def _plain(value: Any) -> Any:
    """A default as OmegaConf accepts it: dataclass instances as their mirror, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        mirror = _omegaconf_schema(type(value))
        return mirror(
            **{f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        )
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _construct(cls: type, values: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {
        f.name: _coerce(hints[f.name], values[f.name], f"{where}.{f.name}")
        for f in dataclasses.fields(cls)
        if f.init and f.name in values
    }
    return cls(**kwargs)


def _coerce(annotation: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"config {where}: {value!r} is not one of {choices}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        rest = [a for a in args if a is not type(None)]
        return _coerce(rest[0], value, where) if len(rest) == 1 else value
    if origin is tuple and isinstance(value, list):
        items = [a for a in args if a is not Ellipsis] or [Any]
        return tuple(_coerce(items[min(i, len(items) - 1)], v, where) for i, v in enumerate(value))
    if origin is list and isinstance(value, list) and args:
        return [_coerce(args[0], v, where) for v in value]
    if dataclasses.is_dataclass(annotation) and isinstance(value, Mapping):
        return _construct(annotation, value, where)  # type: ignore[arg-type]
    return value


def _registered_node(
    registry: Registry[Any], node: Any, where: str, default: type | None
) -> tuple[Any, dict[str, Any]]:
    name = _name_of(node, where)
    try:
        entry = registry.entry(name)
    except RegistryError as error:
        raise ConfigError(f"config {where}.name: {error}") from None
    schema = entry.config or default
    if schema is None:
        raise ConfigError(f"{registry.kind} {name!r} was registered without a config dataclass")
    return _typed_node(schema, node, where)


def _name_of(node: Any, where: str) -> str:
    if node is None or (isinstance(node, str) and node == MISSING):
        raise ConfigError(f"config {where}: missing (choose one with {where}=<name>)")
    if not isinstance(node, Mapping | DictConfig):
        raise ConfigError(f"config {where}: expected a mapping with a 'name', got {node!r}")
    name = node.get("name")
    if not isinstance(name, str) or not name or name == MISSING:
        raise ConfigError(f"config {where}.name: missing")
    return name


def resolve_config(cfg: DictConfig | Mapping[str, Any] | Config) -> ResolvedConfig:
    """Convert a composed config into typed objects, failing clearly on any bad node."""
    import_components()
    raw = cfg if isinstance(cfg, DictConfig) else OmegaConf.structured(cfg)
    raw = OmegaConf.create(OmegaConf.to_container(raw, resolve=True))  # drop the 'hydra' node
    if "hydra" in raw:
        del raw["hydra"]
    top, top_container = _typed_node(Config, raw, "<root>")
    method, method_c = _registered_node(METHODS, raw.get("method"), "method", MethodConfig)
    dataset, dataset_c = _registered_node(DATASETS, raw.get("dataset"), "dataset", DatasetConfig)
    backbone, backbone_c = _registered_node(BACKBONES, raw.get("backbone"), "backbone", None)
    launcher, launcher_c = _registered_node(
        LAUNCHER_CONFIGS, raw.get("launcher"), "launcher", LauncherConfig
    )
    augment, augment_c = _typed_node(AugmentConfig, raw.get("augment") or {}, "augment")
    actions_schema, actions_c = _typed_node(ActionsConfig, raw.get("actions") or {}, "actions")
    actions = ActionOptions(**dataclasses.asdict(actions_schema))
    container = {
        **top_container,
        "method": method_c,
        "dataset": dataset_c,
        "backbone": backbone_c,
        "augment": augment_c,
        "launcher": launcher_c,
        "actions": actions_c,
    }
    return ResolvedConfig(
        method=method,
        dataset=dataset,
        backbone=backbone,
        augment=augment,
        launcher=launcher,
        optim=top.optim,
        logger=top.logger,
        train=top.train,
        actions=actions,
        experiment=top.experiment,
        seed=top.seed,
        output_root=top.output_root,
        run_slug=top.run_slug,
        run_dir=top.run_dir,
        container=container,
    )


# --------------------------------------------------------------------------- validation

_DEVICE_NAMES = ("auto", "cpu", "cuda")
# The largest base learning rate accepted: LARS recipes use a few units (SimCLR 4.8 at
# batch 4096); float32 overflows near 3e38 and any rate above ~100 diverges at once.
MAX_LR = 100.0


def validate(resolved: ResolvedConfig, world_size: int = 1) -> int:
    """Check values before any compute; return the backbone's feature dimension.

    Builds the backbone and method on the ``meta`` device (no memory, no compute) to learn
    the feature dimension and to call the method config's ``validate(feature_dim)`` hook.
    """
    optim, train = resolved.optim, resolved.train
    problems: list[str] = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    for group, node in (("optim", optim), ("train", train)):
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"{group}.{f.name} must be a finite number, got {value}")
    need(optim.lr > 0, f"optim.lr must be > 0, got {optim.lr}")
    need(
        optim.lr <= MAX_LR and optim.probe_lr <= MAX_LR,
        f"optim.lr and optim.probe_lr must be ≤ {MAX_LR:g} (got {optim.lr:g} and "
        f"{optim.probe_lr:g}): a rate this large is a typo and overflows the optimizer",
    )
    need(optim.weight_decay >= 0, f"optim.weight_decay must be ≥ 0, got {optim.weight_decay}")
    need(0 <= optim.momentum < 1, f"optim.momentum must lie in [0, 1), got {optim.momentum}")
    need(optim.eps > 0, f"optim.eps must be > 0, got {optim.eps}")
    need(0 <= optim.beta1 < 1 and 0 <= optim.beta2 < 1, "optim.beta1/beta2 must lie in [0, 1)")
    need(optim.warmup_steps >= 0, f"optim.warmup_steps must be ≥ 0, got {optim.warmup_steps}")
    need(optim.warmup_epochs >= 0, f"optim.warmup_epochs must be ≥ 0, got {optim.warmup_epochs}")
    need(
        0 <= optim.final_lr_ratio <= 1,
        f"optim.final_lr_ratio must lie in [0, 1], got {optim.final_lr_ratio}",
    )
    need(optim.probe_lr > 0, f"optim.probe_lr must be > 0, got {optim.probe_lr}")
    need(
        optim.lars_trust_ratio is LarsTrustRatio.lightly or not optim.nesterov,
        "optim.lars_trust_ratio=update_norm (the Barlow Twins / E-SSL LARS) has no Nesterov "
        "variant; set optim.nesterov=false",
    )
    milestones = list(optim.lr_milestones)
    need(
        all(0 < m < 1 for m in milestones) and milestones == sorted(set(milestones)),
        f"optim.lr_milestones must be increasing fractions of training in (0, 1), got {milestones}",
    )
    need(0 < optim.lr_gamma <= 1, f"optim.lr_gamma must lie in (0, 1], got {optim.lr_gamma}")
    need(
        optim.schedule is not Schedule.multistep or bool(milestones),
        "optim.schedule=multistep needs optim.lr_milestones (fractions of training)",
    )
    if optim.name is OptimizerName.lars:
        need(
            importlib.util.find_spec("lightly.utils.lars") is not None,
            "optim.name=lars needs lightly.utils.lars (install lightly ≥ 1.5)",
        )
    need(train.batch_size >= 2, f"train.batch_size must be ≥ 2, got {train.batch_size}")
    need(train.steps >= 0, f"train.steps must be ≥ 0, got {train.steps}")
    need(train.steps > 0 or train.epochs >= 1, "train.epochs must be ≥ 1 when train.steps=0")
    need(train.log_every >= 1, f"train.log_every must be ≥ 1, got {train.log_every}")
    need(train.online_probe_every >= 0, "train.online_probe_every must be ≥ 0")
    need(train.checkpoint_every_steps >= 0, "train.checkpoint_every_steps must be ≥ 0")
    need(train.checkpoint_every_min >= 0, "train.checkpoint_every_min must be ≥ 0")
    need(train.grad_clip >= 0, f"train.grad_clip must be ≥ 0, got {train.grad_clip}")
    need(train.num_workers >= 0, f"train.num_workers must be ≥ 0, got {train.num_workers}")
    need(train.stop_after >= 0, f"train.stop_after must be ≥ 0, got {train.stop_after}")
    need(
        train.batch_size % world_size == 0,
        f"train.batch_size={train.batch_size} (the global batch) is not divisible by the "
        f"world size {world_size}",
    )
    need(
        train.batch_size // world_size >= 2 or train.batch_size < 2,
        f"train.batch_size={train.batch_size} leaves fewer than 2 samples per rank "
        f"(world size {world_size})",
    )
    if train.resume not in ("auto", "never") and not Path(train.resume).exists():
        problems.append(
            f"train.resume must be 'auto', 'never' or an existing checkpoint/run directory; "
            f"{train.resume!r} does not exist"
        )
    device_kind = train.device.split(":")[0]
    if device_kind not in _DEVICE_NAMES:
        problems.append(f"train.device must be auto, cpu, cuda or cuda:<i>, got {train.device!r}")
    elif device_kind == "cuda":
        import torch

        need(torch.cuda.is_available(), f"train.device={train.device} but CUDA is not available")
    need(bool(resolved.experiment), "experiment must be a non-empty name")
    if problems:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))

    from sslequi.build import feature_dim_of

    feature_dim = feature_dim_of(resolved)
    hook = getattr(resolved.method, "validate", None)
    if callable(hook):
        try:
            hook(feature_dim)
        except (ValueError, TypeError) as error:
            raise ConfigError(
                f"config method ({resolved.method.name}) does not fit backbone "
                f"{resolved.backbone.name} (feature dim {feature_dim}): {error}"
            ) from None
    return feature_dim


# Keys whose change does not change what a run computes; everything else must match for
# ``train.resume=auto`` to continue a run.
RUN_INVARIANT_KEYS: tuple[str, ...] = (
    "train.resume",
    "train.num_workers",
    "train.log_every",
    "train.online_probe_every",
    "train.checkpoint_every_steps",
    "train.checkpoint_every_min",
    "train.keep_checkpoints",
    "train.stop_after",
    "train.device",
    "train.progress",
    "dataset.root",
    "logger",
    "launcher",
    "output_root",
    "run_dir",
    "run_slug",
)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def run_changing_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old → new`` for every differing key that changes the run."""

    def invariant(key: str) -> bool:
        return any(key == k or key.startswith(k + ".") for k in RUN_INVARIANT_KEYS)

    flat_old, flat_new = _flatten(old), _flatten(new)
    differences = []
    for key in sorted(set(flat_old) | set(flat_new)):
        if invariant(key):
            continue
        before, after = flat_old.get(key, "<absent>"), flat_new.get(key, "<absent>")
        if before != after:
            differences.append(f"{key}: {before!r} → {after!r}")
    return differences
