"""Run a list of probes on one method and turn every score into a ``ResultRow``.

``evaluate_method`` works on a method and datasets built by the caller (tests, benchmarks);
``evaluate_run`` loads a run directory's checkpoint (``sslequi.train.checkpoint``), builds
the datasets from its config, evaluates, merges into results.json, pushes the wandb summary
and prints the run's table. Every probe's requirements are checked before any compute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sslequi.actions import ActionOptions
from sslequi.augment.config import AugmentConfig
from sslequi.data.base import DatasetConfig, ImageDataset, ObjectDataset
from sslequi.evaluation.features import (
    FeatureCache,
    FeatureKey,
    ViewFeatures,
    dataset_identity,
    get_features,
    method_fingerprint,
)
from sslequi.evaluation.live import ImageBank, LiveSource
from sslequi.evaluation.predictor import UnsupportedProbe
from sslequi.evaluation.probes import (
    PROBES,
    CachedSource,
    InputSource,
    ProbeOutcome,
    SplitData,
    TargetFn,
    load_probes,
)
from sslequi.evaluation.probes.regression import (
    QUATERNION_PROBES,
    REGRESSION_TARGETS,
    regression_scores,
)
from sslequi.evaluation.probes.training import head_text
from sslequi.evaluation.protocol import HeadTraining, ProbeSettings, Protocol
from sslequi.evaluation.results import ResultRow
from sslequi.methods.base import Method
from sslequi.types import STAGE_SOURCES


@dataclass
class CacheSettings:
    """On-disk feature cache."""

    enabled: bool = True
    dir: str | None = None  # null: <run dir>/eval_features (evaluate_run) or no cache
    float16: bool = False


@dataclass
class EvalConfig:
    """The ``configs/eval/evaluate.yaml`` schema (options of ``sslequi-eval``)."""

    run: str | None = None  # run directory
    checkpoint: str = "last"
    probes: list[str] = field(default_factory=lambda: ["linear", "knn", "rotation"])
    parts: list[str] = field(default_factory=lambda: ["auto"])  # auto: full + declared parts
    # Backbone stages probed as well (each stage's map, average-pooled): layer1..layer4 or
    # all; each row of a stage records best_layer (True on the best stage per number).
    layers: list[str] = field(default_factory=list)
    mode: str = "cached"  # cached | live (paper protocol: re-embed each epoch)
    # Probe protocol (protocol.py): auto = small_set below probe.small_set.max_objects train
    # objects with cached features, else paper.
    protocol: str = "auto"  # auto | small_set | paper
    bn_mode: str = "eval"  # eval | train (train implies live for trained probes)
    train_split: str = "train"
    eval_splits: list[str] = field(default_factory=lambda: ["val"])
    dataset: dict[str, Any] = field(default_factory=dict)  # overrides of the run's dataset
    augment: str | None = None  # aug_params recipe (configs/augment/<name>); null: the run's
    ood_dataset: dict[str, Any] | None = None  # e.g. {name: threedie_ood, root: ...}
    ood_split: str = "val"
    rotation_target: str = "raw"  # raw (scipy sign) | canonical (w ≥ 0)
    eval_draws_per_object: int = 1
    seed: int = 0
    device: str = "auto"
    batch_size: int = 64  # objects per extraction batch
    num_workers: int = 0
    live_preload_gb: float = 4.0
    cache: CacheSettings = field(default_factory=CacheSettings)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    wandb: bool = True
    progress: bool = True
    compare_out: str | None = None  # also write the run's table as <path>.md/.csv
    allow_failed: bool = False  # also evaluate a run whose run.json says 'failed' (diverged)


@dataclass
class RunIdentity:
    """Who is evaluated: recorded in every row."""

    run: str = "-"
    method: str = "-"
    checkpoint_step: int = -1
    dataset: str = "-"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_request(method: Method, datasets: dict[str, ImageDataset], cfg: EvalConfig) -> list[str]:
    """Validate probes, parts, modes and data before compute; returns the parts to use."""
    registry = load_probes()
    unknown = [p for p in cfg.probes if p not in registry]
    if unknown:
        raise ValueError(f"unknown probe(s) {unknown}; available: {registry.names()}")
    if not cfg.probes:
        raise ValueError("no probes requested")
    if cfg.mode not in ("cached", "live"):
        raise ValueError(f"mode must be 'cached' or 'live', got {cfg.mode!r}")
    if cfg.protocol not in ("auto", "small_set", "paper"):
        raise ValueError(f"protocol must be auto, small_set or paper, got {cfg.protocol!r}")
    if cfg.protocol == "small_set" and (cfg.mode == "live" or cfg.bn_mode == "train"):
        raise ValueError(
            "protocol=small_set standardises cached features; live mode and train-mode BN "
            "use protocol=paper"
        )
    if cfg.bn_mode not in ("eval", "train"):
        raise ValueError(f"bn_mode must be 'eval' or 'train', got {cfg.bn_mode!r}")
    if cfg.rotation_target not in ("raw", "canonical"):
        raise ValueError(f"rotation_target must be raw or canonical, got {cfg.rotation_target!r}")
    missing = [s for s in [cfg.train_split, *cfg.eval_splits] if s not in datasets]
    if missing:
        raise ValueError(f"split(s) {missing} were not built; have {sorted(datasets)}")
    for probe in cfg.probes:
        if probe in ProbeSettings.__dataclass_fields__ and isinstance(
            getattr(cfg.probe, probe), HeadTraining
        ):
            cfg.probe.training(probe).validate(probe)
    declared = method.representations()
    requested: list[str] = []
    for part in cfg.parts:
        if part == "auto":
            requested += [name for name, rep in declared.items() if rep.default]
        elif part in declared:
            requested.append(part)
        elif part in ("invariant", "equivariant"):
            raise ValueError(
                f"the method declares no {part} part (Method.parts() = {method.parts()}); "
                "use part=full"
            )
        else:
            raise ValueError(
                f"unknown representation {part!r}; {type(method).__name__} declares "
                f"{sorted(declared)}"
            )
    requested += requested_layers(method, cfg.layers)
    dim = int(method.feature_dim)
    for part in requested:
        columns = declared[part].columns
        if columns is not None and len(range(dim)[columns]) == 0:
            raise ValueError(f"the {part} part {columns} is empty for a {dim}-wide representation")
    return list(dict.fromkeys(requested))


def requested_layers(method: Method, layers: list[str]) -> list[str]:
    """The backbone stages ``layers`` names (``all``: every stage); fails clearly for
    unknown stages or a backbone without stages."""
    if not layers:
        return []
    stages = list(method.stages())
    if not stages:
        raise ValueError(
            f"layers={list(layers)}: backbone {type(method.backbone).__name__} exposes no "
            "stages (a ResNet's layer1..layer4); leave layers empty"
        )
    chosen: list[str] = []
    for layer in layers:
        if layer == "all":
            chosen += stages
        elif layer in stages:
            chosen.append(layer)
        else:
            raise ValueError(f"layers: unknown stage {layer!r}; the backbone has {stages} (or all)")
    return list(dict.fromkeys(chosen))


BEST_LAYER_SHOWN = ("top1", "accuracy", "r2_global", "r2_per_component")  # printed by evaluate_run


def higher_is_better(metric: str) -> bool:
    """False for the error-like metrics (PRE, rotation errors, orthogonality residuals)."""
    return not (metric == "pre" or "error" in metric or metric.startswith(("residual", "gram")))


def mark_best_layers(rows: list[ResultRow], stages: list[str]) -> list[ResultRow]:
    """Set ``best_layer`` on every row of a stage in ``stages``: True for the stage with the
    best value of its (probe, metric, split), False for the others. The rows marked True."""
    groups: dict[tuple[str, str, str], list[ResultRow]] = {}
    for row in rows:
        if row.protocol.part in stages:
            groups.setdefault((row.probe, row.metric, row.split), []).append(row)
    best_rows = []
    for (_, metric, _), group in groups.items():
        sign = 1.0 if higher_is_better(metric) else -1.0
        best = max(group, key=lambda r: sign * r.value)
        for row in group:
            row.best_layer = row is best
        best_rows.append(best)
    return best_rows


class Evaluation:
    """One evaluation of one method: features per split and representation, probes, rows.

    Probes (``sslequi.evaluation.probes``) read it through ``part_features``,
    ``split_data``, ``targets_for``, ``head_training``, ``protocol_for`` and ``add_row``.
    """

    def __init__(
        self,
        method: Method,
        datasets: dict[str, ImageDataset],
        cfg: EvalConfig,
        identity: RunIdentity,
        cache_dir: Path | None,
        augment: AugmentConfig | None = None,
        action_options: ActionOptions | None = None,
    ) -> None:
        self.method = method
        self.augment = augment
        self.action_options = action_options or ActionOptions()
        self.datasets = datasets
        self.cfg = cfg
        self.identity = identity
        self.device = resolve_device(cfg.device)
        self.parts = check_request(method, datasets, cfg)
        self.representations = method.representations()
        self.probes = {name: PROBES.get(name)() for name in cfg.probes}
        for probe in self.probes.values():
            probe.check(self)
        self.method.to(self.device)
        self.fingerprint = method_fingerprint(method)
        use_cache = cfg.cache.enabled and cache_dir is not None
        self.cache = FeatureCache(cache_dir) if use_cache and cache_dir else None
        self.dtype = "float16" if cfg.cache.float16 else "float32"
        self._features: dict[tuple[str, str, str], ViewFeatures] = {}
        self._banks: dict[str, ImageBank] = {}
        self.rows: list[ResultRow] = []
        self._image_size = self.image_size()
        self.protocol = self.resolve_protocol()

    # ----------------------------------------------------------------- data access

    @property
    def eval_splits(self) -> list[str]:
        return list(self.cfg.eval_splits) + (["ood"] if "ood" in self.datasets else [])

    def features(
        self, split: str, views: str = "all", representation: str = "backbone"
    ) -> ViewFeatures:
        """Cached features of every view of ``split``: the pooled backbone output, or a
        computed representation's output."""
        if (split, views, representation) not in self._features:
            dataset = self.datasets[split]
            first = dataset.views_of(0) if isinstance(dataset, ObjectDataset) else dataset[0]
            key = FeatureKey(
                checkpoint=self.fingerprint,
                dataset=dataset_identity(dataset),
                split=split,
                resolution=int(first.images.shape[-1]),
                views=views,  # type: ignore[arg-type]
                dtype=self.dtype,
                representation=representation,
            )
            computed = (
                None if representation == "backbone" else self.representations[representation]
            )
            self._features[(split, views, representation)] = get_features(
                self.method,
                dataset,
                key,
                self.cache,
                self.device,
                self.cfg.batch_size,
                self.cfg.num_workers,
                self.cfg.progress,
                computed,
            )
        return self._features[(split, views, representation)]

    def part_features(self, split: str, part: str, views: str = "all") -> Tensor:
        """[N, V, d] float32 features of one declared representation on ``split``."""
        rep = self.representations[part]
        if rep.columns is not None:
            return self.features(split, views).features[..., rep.columns].float()
        return self.features(split, views, representation=part).features.float()

    def columns(self, part: str, use: str) -> slice:
        """The backbone slice of ``part``; computed representations fail clearly for ``use``."""
        columns = self.representations[part].columns
        if columns is None:
            raise UnsupportedProbe(
                f"{use} reads slices of the backbone output; representation {part!r} is "
                "computed (use mode=cached, or another part)"
            )
        return columns

    def bank(self, split: str) -> ImageBank:
        if split not in self._banks:
            self._banks[split] = ImageBank(
                self.datasets[split],
                int(self.cfg.live_preload_gb * (1 << 30)),
                self.cfg.batch_size,
                self.cfg.num_workers,
            )
        return self._banks[split]

    def preload_images(self) -> None:
        """Load every split's images for the live path now (otherwise done on first use)."""
        for split in [self.cfg.train_split, *self.eval_splits]:
            self.bank(split)

    def image_size(self) -> int:
        """Side of the images the features are computed from."""
        dataset = self.datasets[self.cfg.train_split]
        first = dataset.views_of(0) if isinstance(dataset, ObjectDataset) else dataset[0]
        return int(first.images.shape[-1])

    def live_for(self, probe: str) -> bool:
        return self.cfg.mode == "live" or self.cfg.bn_mode == "train"

    def resolve_protocol(self) -> str:
        """small_set or paper: ``cfg.protocol``, or by the train split's size (auto)."""
        if self.cfg.protocol != "auto":
            return self.cfg.protocol
        live = self.cfg.mode == "live" or self.cfg.bn_mode == "train"
        small = len(self.datasets[self.cfg.train_split]) < self.cfg.probe.small_set.max_objects
        return "small_set" if small and not live else "paper"

    def head_training(self, probe: str, single_view: bool) -> HeadTraining:
        """The probe's settings under the resolved protocol."""
        training = self.cfg.probe.training(probe)
        if self.protocol == "small_set":
            return self.cfg.probe.small_set.apply(training, single_view)
        return training

    def split_data(
        self, split: str, part: str, targets: TargetFn, live: bool, train_mode_bn: bool
    ) -> SplitData:
        source: InputSource
        if live:
            dim = int(self.method.feature_dim)
            bank = self.bank(split)
            info = self.datasets[split].info
            bn = "train" if train_mode_bn else "eval"
            chosen = self.columns(part, "the live (paper-protocol) path")
            source = LiveSource(
                self.method, bank, chosen, bn, self.device, info.mean, info.std, dim
            )
            return SplitData(split, source, targets, bank.num_objects, bank.num_views)
        feats = self.part_features(split, part)
        source = CachedSource(feats, self.device)
        return SplitData(split, source, targets, int(feats.shape[0]), int(feats.shape[1]))

    def latents_labels(self, split: str, live: bool) -> tuple[Tensor | None, Tensor]:
        if live:
            bank = self.bank(split)
            return bank.latents, bank.labels
        feats = self.features(split)
        return feats.latents, feats.labels

    # ----------------------------------------------------------------- probes

    def run(self, probes: list[str] | None = None) -> list[ResultRow]:
        for name in probes or self.cfg.probes:
            probe = self.probes.get(name) or PROBES.get(name)()
            for part in self.parts if probe.per_part else self.parts[:1]:
                probe.run(self, part)
        stages = [p for p in self.parts if self.representations[p].source in STAGE_SOURCES]
        mark_best_layers(self.rows, stages)
        return self.rows

    def protocol_for(self, probe: str, part: str, definition: str, **values: Any) -> Protocol:
        """The ``Protocol`` of one number: the evaluation's fields plus the probe's."""
        return Protocol(
            probe=probe,
            part=part,
            metric_definition=definition,
            train_split=self.cfg.train_split,
            seed=self.cfg.seed,
            image_size=self._image_size,
            checkpoint_step=self.identity.checkpoint_step,
            checkpoint=self.fingerprint,
            dataset=self.identity.dataset,
            feature_dtype=self.dtype,
            **values,
        )

    def training_fields(self, training: HeadTraining, outcome: ProbeOutcome) -> dict[str, Any]:
        """Protocol fields of a trained head: optimiser, protocol knobs, steps run."""
        return dict(
            head=head_text(training),
            optimizer=training.optimizer + ("+cosine" if training.schedule == "cosine" else ""),
            lr=training.lr,
            weight_decay=training.weight_decay,
            batch_size=training.batch_size,
            selection=outcome.selection,
            holdout_fraction=training.holdout_fraction if training.early_stopping else 0.0,
            n_train=outcome.n_fit,
            protocol=self.protocol,
            standardize=training.standardize,
            pairs_per_object=training.draws_per_object,
            min_steps=training.min_steps,
            steps=outcome.steps,
            scored_on="all" if training.score_all_views else "draw",
            epochs=outcome.max_epochs,
        )

    def add_row(
        self, protocol: Protocol, metric: str, split: str, value: float, floor: float | None, n: int
    ) -> None:
        self.rows.append(
            ResultRow(
                run=self.identity.run,
                method=self.identity.method,
                probe=protocol.probe,
                metric=metric,
                split=split,
                value=float(value),
                floor=None if floor is None else float(floor),
                n=int(n),
                protocol=protocol,
            )
        )


def evaluate_method(
    method: Method,
    datasets: dict[str, ImageDataset],
    cfg: EvalConfig,
    identity: RunIdentity | None = None,
    cache_dir: Path | None = None,
    augment: AugmentConfig | None = None,
    action_options: ActionOptions | None = None,
) -> list[ResultRow]:
    """Evaluate an in-memory method on built datasets (``datasets`` keyed by split)."""
    if cfg.augment is not None:
        from sslequi.augment.config import load_augment_config

        augment = load_augment_config(cfg.augment)
    evaluation = Evaluation(
        method, datasets, cfg, identity or RunIdentity(), cache_dir, augment, action_options
    )
    return evaluation.run()


# ----------------------------------------------------------------------------- run dirs


def _load_run(run_dir: Path, which: str, device: torch.device) -> Any:
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    checkpoints = run_dir / "checkpoints"
    if not checkpoints.is_dir() or not any(checkpoints.glob("*.pt")):
        raise FileNotFoundError(
            f"run directory {run_dir} has no checkpoint (expected {checkpoints}/{which}.pt)"
        )
    from sslequi.train.checkpoint import load_method

    return load_method(run_dir, which=which, map_location=device)


def dataset_config_with(base: DatasetConfig, overrides: dict[str, Any]) -> DatasetConfig:
    """``base`` with ``overrides`` merged; a different ``name`` starts from that dataset's schema."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from sslequi.config import import_components
    from sslequi.registry import DATASETS

    if not overrides:
        return base
    import_components()
    name = str(overrides.get("name", base.name))
    schema = DATASETS.entry(name).config or type(base)
    try:
        start = OmegaConf.structured(base if name == base.name else schema)
        return OmegaConf.to_object(OmegaConf.merge(start, overrides))  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        raise ValueError(f"eval dataset override {overrides}: {error}") from None


def evaluate_run(cfg: EvalConfig, progress_print: Callable[[str], None] = print) -> list[ResultRow]:
    """Load ``cfg.run``, evaluate, merge into results.json, push wandb; returns new rows."""
    from sslequi.build import build_dataset
    from sslequi.evaluation.results import append_results, compare, push_wandb_summary

    if not cfg.run:
        raise ValueError("sslequi-eval needs run=<run directory>")
    run_dir = Path(cfg.run)
    run_status, run_reason = _run_status(run_dir)
    if run_status == "failed" and not cfg.allow_failed:
        raise ValueError(
            f"run {run_dir} failed ({run_reason or 'no reason recorded'}): its numbers would "
            "describe a broken or diverged model. Pass allow_failed=true to evaluate it anyway "
            "(every row then records run_status 'failed')."
        )
    loaded = _load_run(run_dir, cfg.checkpoint, resolve_device(cfg.device))
    method: Method = loaded.method
    dataset_cfg = dataset_config_with(loaded.config.dataset, dict(cfg.dataset))
    views = max(2, method.spec().num_views)
    splits = list(dict.fromkeys([cfg.train_split, *cfg.eval_splits]))
    datasets = {split: build_dataset(dataset_cfg, split, views) for split in splits}
    if cfg.ood_dataset is not None:
        ood_cfg = dataset_config_with(loaded.config.dataset, dict(cfg.ood_dataset))
        datasets["ood"] = build_dataset(ood_cfg, cfg.ood_split, views)
    identity = RunIdentity(
        run=run_dir.name,
        method=getattr(method.config, "name", type(method).__name__),
        checkpoint_step=int(getattr(loaded, "step", -1)),
        dataset=f"{dataset_cfg.name}@{dataset_cfg.resolution}",
    )
    cache_dir = Path(cfg.cache.dir) if cfg.cache.dir else run_dir / "eval_features"
    rows = evaluate_method(
        method,
        datasets,
        cfg,
        identity,
        cache_dir,
        augment=loaded.config.augment,
        action_options=getattr(loaded.config, "actions", None),
    )
    for row in rows:
        row.run_status = run_status
        scored = row.split in cfg.eval_splits or row.split == "ood"  # not train / holdout
        if row.best_layer and row.metric in BEST_LAYER_SHOWN and scored:
            progress_print(
                f"best stage for {row.probe} {row.metric} on {row.split}: "
                f"{row.protocol.part} ({row.value:.4f})"
            )
    append_results(run_dir, rows)
    if cfg.wandb and push_wandb_summary(run_dir, rows):
        progress_print(f"wrote {len(rows)} numbers to the wandb summary")
    compare([run_dir], out=cfg.compare_out)
    return rows


def _run_status(run_dir: Path) -> tuple[str | None, str]:
    """(status, reason) from the run's ``run.json``; (None, "") when it has none."""
    import json

    path = run_dir / "run.json"
    if not path.is_file():
        return None, ""
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is unreadable ({error}); cannot tell the run's status") from None
    return info.get("status"), str(info.get("reason") or "")


def eval_config_from_dict(data: dict[str, Any]) -> EvalConfig:
    """Typed ``EvalConfig`` from a plain mapping (unknown keys or wrong types fail)."""
    from omegaconf import OmegaConf

    merged = OmegaConf.merge(OmegaConf.structured(EvalConfig), data)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


__all__ = [
    "CacheSettings",
    "EvalConfig",
    "Evaluation",
    "RunIdentity",
    "evaluate_method",
    "evaluate_run",
    "eval_config_from_dict",
    "QUATERNION_PROBES",
    "REGRESSION_TARGETS",
    "regression_scores",
]
