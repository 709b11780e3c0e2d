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
from sslequi.evaluation import metrics
from sslequi.evaluation.augparams import AUG_GROUPS, PairFeatureSource, augmented_pairs
from sslequi.evaluation.features import (
    FeatureCache,
    FeatureKey,
    ViewFeatures,
    dataset_identity,
    declared_parts,
    get_features,
    method_fingerprint,
    part_slice,
)
from sslequi.evaluation.live import ImageBank, LiveSource, frozen_method
from sslequi.evaluation.predictor import UnsupportedProbe, check_predictor, predictor_metrics
from sslequi.evaluation.probes import (
    CachedSource,
    InputSource,
    ProbeOutcome,
    SplitData,
    TargetFn,
    absolute_rotation_targets,
    action_targets,
    fit_probe,
    label_targets,
)
from sslequi.evaluation.protocol import (
    ALL_PROBES,
    REGRESSION_PROBES,
    HeadTraining,
    ProbeSettings,
    Protocol,
)
from sslequi.evaluation.results import ResultRow
from sslequi.methods.base import Method

# Regression probes: (action encoding or "absolute", views per input, min latent width, target text)
REGRESSION_TARGETS: dict[str, tuple[str, int, int, str]] = {
    "rotation": ("rotation_quat", 2, 3, "quat(R1^T R2) xyzw"),
    "abs_rotation": ("absolute", 1, 3, "quat(R) xyzw"),
    "color": ("color_delta", 2, 7, "latent2[3,6]-latent1[3,6]"),
    "translation_object": ("translation_object", 2, 10, "t2-t1"),
    "translation_base": ("translation_base", 2, 10, "R2t2-R1t1"),
}
QUATERNION_PROBES = ("rotation", "abs_rotation")


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
    mode: str = "cached"  # cached | live (paper protocol: re-embed each epoch)
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
    unknown = [p for p in cfg.probes if p not in ALL_PROBES]
    if unknown:
        raise ValueError(f"unknown probe(s) {unknown}; available: {list(ALL_PROBES)}")
    if not cfg.probes:
        raise ValueError("no probes requested")
    if cfg.mode not in ("cached", "live"):
        raise ValueError(f"mode must be 'cached' or 'live', got {cfg.mode!r}")
    if cfg.bn_mode not in ("eval", "train"):
        raise ValueError(f"bn_mode must be 'eval' or 'train', got {cfg.bn_mode!r}")
    if cfg.rotation_target not in ("raw", "canonical"):
        raise ValueError(f"rotation_target must be raw or canonical, got {cfg.rotation_target!r}")
    missing = [s for s in [cfg.train_split, *cfg.eval_splits] if s not in datasets]
    if missing:
        raise ValueError(f"split(s) {missing} were not built; have {sorted(datasets)}")
    train = datasets[cfg.train_split]
    info = train.info
    for probe in cfg.probes:
        if probe == "mrr":
            check_predictor(method)
        if probe in ("mrr", *REGRESSION_PROBES):
            need = 3 if probe == "mrr" else REGRESSION_TARGETS[probe][2]
            if info.latent_dim is None or info.latent_dim < need:
                raise UnsupportedProbe(
                    f"probe {probe!r} needs dataset latents of width ≥ {need}, but dataset "
                    f"{type(train).__name__} has "
                    + ("none" if info.latent_dim is None else f"width {info.latent_dim}")
                )
            if not isinstance(train, ObjectDataset):
                raise UnsupportedProbe(
                    f"probe {probe!r} needs an object dataset with several views per object"
                )
        if probe in ProbeSettings.__dataclass_fields__ and isinstance(
            getattr(cfg.probe, probe), HeadTraining
        ):
            cfg.probe.training(probe).validate(probe)
    parts = method.parts()
    requested: list[str] = []
    for part in cfg.parts:
        requested += declared_parts(parts) if part == "auto" else [part]
    dim = int(method.feature_dim)
    for part in requested:
        part_slice(part, parts, dim)
    return list(dict.fromkeys(requested))


class Evaluation:
    """One evaluation of one method: features per split, probes, rows."""

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
        if "aug_params" in cfg.probes and (augment is None or not augment.views):
            raise UnsupportedProbe(
                "probe 'aug_params' needs an augmentation recipe that records parameters "
                f"(augment={None if augment is None else augment.name!r}); set augment=<recipe>"
            )
        self.method.to(self.device)
        self.fingerprint = method_fingerprint(method)
        use_cache = cfg.cache.enabled and cache_dir is not None
        self.cache = FeatureCache(cache_dir) if use_cache and cache_dir else None
        self.dtype = "float16" if cfg.cache.float16 else "float32"
        self._features: dict[tuple[str, str], ViewFeatures] = {}
        self._banks: dict[str, ImageBank] = {}
        self.rows: list[ResultRow] = []
        self._image_size = self.image_size()

    # ----------------------------------------------------------------- data access

    @property
    def eval_splits(self) -> list[str]:
        return list(self.cfg.eval_splits) + (["ood"] if "ood" in self.datasets else [])

    def features(self, split: str, views: str = "all") -> ViewFeatures:
        if (split, views) not in self._features:
            dataset = self.datasets[split]
            first = dataset.views_of(0) if isinstance(dataset, ObjectDataset) else dataset[0]
            key = FeatureKey(
                checkpoint=self.fingerprint,
                dataset=dataset_identity(dataset),
                split=split,
                resolution=int(first.images.shape[-1]),
                views=views,  # type: ignore[arg-type]
                dtype=self.dtype,
            )
            self._features[(split, views)] = get_features(
                self.method,
                dataset,
                key,
                self.cache,
                self.device,
                self.cfg.batch_size,
                self.cfg.num_workers,
                self.cfg.progress,
            )
        return self._features[(split, views)]

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

    # ----------------------------------------------------------------- probes

    def run(self, probes: list[str] | None = None) -> list[ResultRow]:
        for probe in probes or self.cfg.probes:
            for part in self.parts:
                if probe == "mrr":
                    if part == self.parts[0]:  # predictor metrics use the equivariant part
                        self._predictor()
                elif probe == "knn":
                    self._knn(part)
                elif probe == "linear":
                    self._trained(probe, part)
                elif probe == "rot90":
                    self._rot90(part)
                elif probe == "aug_params":
                    self._aug_params(part)
                else:
                    self._trained(probe, part)
        return self.rows

    def _protocol(self, probe: str, part: str, definition: str, **values: Any) -> Protocol:
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

    def _row(
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

    def _split_data(
        self, split: str, part: str, targets: TargetFn, live: bool, train_mode_bn: bool
    ) -> SplitData:
        dim = int(self.method.feature_dim)
        chosen = part_slice(part, self.method.parts(), dim)
        source: InputSource
        if live:
            bank = self.bank(split)
            info = self.datasets[split].info
            bn = "train" if train_mode_bn else "eval"
            source = LiveSource(
                self.method, bank, chosen, bn, self.device, info.mean, info.std, dim
            )
            return SplitData(split, source, targets, bank.num_objects, bank.num_views)
        feats = self.features(split)
        source = CachedSource(feats.select(part, self.method.parts()), self.device)
        return SplitData(split, source, targets, feats.num_objects, feats.num_views)

    def _latents_labels(self, split: str, live: bool) -> tuple[Tensor | None, Tensor]:
        if live:
            bank = self.bank(split)
            return bank.latents, bank.labels
        feats = self.features(split)
        return feats.latents, feats.labels

    def _targets_for(self, probe: str, split: str, live: bool) -> TargetFn:
        latents, labels = self._latents_labels(split, live)
        if probe == "linear":
            return label_targets(labels)
        if latents is None:
            raise UnsupportedProbe(f"probe {probe!r}: split {split!r} has no latents")
        options = ActionOptions(canonicalize_quaternion=self.cfg.rotation_target == "canonical")
        action = REGRESSION_TARGETS[probe][0]
        if action == "absolute":
            return absolute_rotation_targets(latents, options)
        return action_targets(latents, action, options)

    def _trained(self, probe: str, part: str) -> None:
        training = self.cfg.probe.training(probe)
        live = self.live_for(probe)
        train = self._split_data(
            self.cfg.train_split,
            part,
            self._targets_for(probe, self.cfg.train_split, live),
            live,
            train_mode_bn=self.cfg.bn_mode == "train",
        )
        # Evaluation splits are embedded in eval mode (with any drifted BN statistics, §11.5).
        evals = [
            self._split_data(s, part, self._targets_for(probe, s, live), live, train_mode_bn=False)
            for s in self.eval_splits
        ]
        classification = probe == "linear"
        if classification:
            out_dim = int(self.datasets[self.cfg.train_split].info.num_classes)
            views_in = 1
        else:
            _, views_in, _, _ = REGRESSION_TARGETS[probe]
            sample = train.targets(
                torch.zeros(1, dtype=torch.long), torch.arange(views_in).unsqueeze(0)
            )
            out_dim = int(sample.shape[-1])
        label = f"{probe}/{part}"
        with frozen_method(self.method):
            outcome = fit_probe(
                train,
                evals,
                "classification" if classification else "regression",
                out_dim,
                views_in,
                training,
                self.cfg.seed,
                self.device,
                self.cfg.eval_draws_per_object,
                self.cfg.progress,
                label,
            )
        target_text = "label" if classification else REGRESSION_TARGETS[probe][3]
        if probe in QUATERNION_PROBES and self.cfg.rotation_target == "canonical":
            target_text += " w>=0"
        common = dict(
            head=_head_text(training),
            optimizer=training.optimizer + ("+cosine" if training.schedule == "cosine" else ""),
            lr=training.lr,
            weight_decay=training.weight_decay,
            epochs=training.epochs,
            batch_size=training.batch_size,
            selection=outcome.selection,
            holdout_fraction=training.holdout_fraction if training.early_stopping else 0.0,
            bn_mode=self.cfg.bn_mode if live else "eval",
            feature_mode="live" if live else "cached",
            target=target_text,
            n_train=outcome.n_fit,
            extra=f"epochs_run={outcome.epochs_run};best_epoch={outcome.best_epoch};"
            f"eval_draws={self.cfg.eval_draws_per_object}",
        )
        if classification:
            self._classification_rows(probe, part, outcome, common)
        else:
            self._regression_rows(probe, part, outcome, common)

    def _classification_rows(
        self, probe: str, part: str, outcome: ProbeOutcome, common: dict[str, Any]
    ) -> None:
        for split, logits in outcome.predictions.items():
            labels = outcome.targets[split]
            majority = float(torch.bincount(labels).max()) / len(labels)
            for k in (1, 5):
                if k > logits.shape[1]:
                    continue
                protocol = self._protocol(probe, part, f"top{k}", **common)
                value = metrics.topk_accuracy(logits, labels, k)
                self._row(
                    protocol, f"top{k}", split, value, majority if k == 1 else None, len(labels)
                )

    def _regression_rows(
        self, probe: str, part: str, outcome: ProbeOutcome, common: dict[str, Any]
    ) -> None:
        for split, predictions in outcome.predictions.items():
            targets = outcome.targets[split]
            n = len(targets)
            scores = regression_scores(targets, predictions, quaternion=probe in QUATERNION_PROBES)
            for metric, (value, floor) in scores.items():
                protocol = self._protocol(probe, part, metric, **common)
                self._row(protocol, metric, split, value, floor, n)

    def _knn(self, part: str) -> None:
        settings = self.cfg.probe.knn
        train = self.features(self.cfg.train_split)
        bank = train.select(part, self.method.parts())[:, 0].to(self.device)
        num_classes = int(self.datasets[self.cfg.train_split].info.num_classes)
        for split in self.eval_splits:
            feats = self.features(split)
            queries = feats.select(part, self.method.parts())[:, 0].to(self.device)
            scores = metrics.knn_class_scores(
                bank,
                train.labels.to(self.device),
                queries,
                num_classes,
                settings.k,
                settings.temperature,
            ).cpu()
            majority = float(torch.bincount(feats.labels).max()) / len(feats.labels)
            for k in (1, 5):
                if k > num_classes:
                    continue
                protocol = self._protocol(
                    "knn",
                    part,
                    f"top{k}",
                    head=f"knn k={settings.k} T={settings.temperature}",
                    n_train=train.num_objects,
                    extra="cosine;bank=un-augmented train view 0;query=view 0",
                )
                value = metrics.topk_accuracy(scores, feats.labels, k)
                self._row(
                    protocol, f"top{k}", split, value, majority if k == 1 else None, len(scores)
                )

    def _rot90(self, part: str) -> None:
        """4-fold rotation accuracy (§8): each image in 4 rotations, linear head, CE."""
        training = self.cfg.probe.training("rot90")

        def flat(split: str) -> SplitData:
            feats = self.features(split, "rot90").select(part, self.method.parts())
            n = feats.shape[0] * 4
            source = CachedSource(feats.reshape(n, 1, -1), self.device)
            return SplitData(split, source, lambda o, v: o.cpu() % 4, n, 1)

        outcome = fit_probe(
            flat(self.cfg.train_split),
            [flat(s) for s in self.eval_splits],
            "classification",
            4,
            1,
            training,
            self.cfg.seed,
            self.device,
            1,
            self.cfg.progress,
            f"rot90/{part}",
        )
        common = dict(
            head=_head_text(training),
            optimizer=training.optimizer,
            lr=training.lr,
            weight_decay=training.weight_decay,
            epochs=training.epochs,
            batch_size=training.batch_size,
            selection=outcome.selection,
            target="k of rot90(k) CCW",
            n_train=outcome.n_fit,
            extra="view 0 of each object; 4 rotations each",
        )
        for split, logits in outcome.predictions.items():
            labels = outcome.targets[split]
            protocol = self._protocol("rot90", part, "accuracy", **common)
            value = metrics.topk_accuracy(logits, labels, 1)
            self._row(protocol, "accuracy", split, value, 0.25, len(labels))
            predicted = logits.argmax(1)
            for k in range(4):
                mask = labels == k
                per_k = float((predicted[mask] == k).double().mean())
                self._row(protocol, f"accuracy_k{k}", split, per_k, 0.25, int(mask.sum()))

    def _aug_params(self, part: str) -> None:
        """Augmentation-parameter R² per group (§9); see ``augparams``."""
        settings = self.cfg.probe.aug_params
        chosen = part_slice(part, self.method.parts(), int(self.method.feature_dim))
        assert self.augment is not None
        pairs = {}
        for index, split in enumerate([self.cfg.train_split, *self.eval_splits]):
            draws = settings.draws if split == self.cfg.train_split else 1
            pairs[split] = augmented_pairs(
                self.method,
                self.datasets[split],
                self.augment,
                chosen,
                draws,
                self.cfg.seed + 7717 * index,
                self.device,
                self.cfg.batch_size,
                self.cfg.progress,
                self.action_options,
            )
        for group, (columns, head) in AUG_GROUPS.items():
            training = HeadTraining(
                head=head,
                hidden=list(settings.hidden),
                lr=settings.lr,
                epochs=settings.epochs,
                batch_size=settings.batch_size,
            )

            def split_data(split: str, cols: slice = columns) -> SplitData:
                feats, actions = pairs[split]
                targets = actions[:, cols]
                return SplitData(
                    split,
                    PairFeatureSource(feats, self.device),
                    lambda objects, views: targets[objects.cpu()],
                    int(feats.shape[0]),
                    1,
                )

            outcome = fit_probe(
                split_data(self.cfg.train_split),
                [split_data(s) for s in self.eval_splits],
                "regression",
                columns.stop - columns.start,
                1,
                training,
                self.cfg.seed,
                self.device,
                1,
                self.cfg.progress,
                f"aug_params/{group}/{part}",
            )
            common = dict(
                head=_head_text(training),
                optimizer="adam",
                lr=settings.lr,
                epochs=settings.epochs,
                batch_size=settings.batch_size,
                selection=outcome.selection,
                target=f"aug_params_9d[{columns.start}:{columns.stop}] {group}",
                n_train=outcome.n_fit,
                extra=f"augment={self.augment.name};fixed draws={settings.draws}",
            )
            for split, predictions in outcome.predictions.items():
                scores = regression_scores(outcome.targets[split], predictions, quaternion=False)
                for metric, (value, floor) in scores.items():
                    name = f"{group}_{metric}"
                    protocol = self._protocol("aug_params", part, name, **common)
                    self._row(protocol, name, split, value, floor, len(predictions))

    def _predictor(self) -> None:
        settings = self.cfg.probe.mrr
        if settings.mode == "train-train":
            query, extra, split = self.features(self.cfg.train_split), None, self.cfg.train_split
        else:
            query, split = self.features(self.eval_splits[0]), self.eval_splits[0]
            extra = self.features(self.cfg.train_split) if settings.mode == "val-all" else None
        scores = predictor_metrics(self.method, query, settings, self.device, extra)
        protocol_extra = (
            f"mode={settings.mode};normalize={settings.normalize};"
            f"source_view={settings.source_view};candidates={scores.num_candidates};"
            f"pre_bank={scores.bank_size}"
        )
        parts = self.method.parts()
        part = "equivariant" if parts.equivariant is not None else "full"
        protocol = self._protocol(
            "mrr",
            part,
            "mrr/hit@k/pre",
            head=f"predictor({self.method.predictor_action})",
            target=str(self.method.predictor_action),
            extra=protocol_extra,
        )
        chance = scores.values.pop("mrr_chance")
        for metric, value in scores.values.items():
            floor = chance if metric == "mrr" else None
            if metric.startswith("hit@"):
                floor = min(1.0, int(metric[4:]) / scores.num_candidates)
            self._row(protocol, metric, split, value, floor, scores.num_queries)


def _head_text(training: HeadTraining) -> str:
    if training.head == "linear":
        return "linear"
    return "mlp(" + "-".join(str(h) for h in training.hidden) + ")"


def regression_scores(
    targets: Tensor, predictions: Tensor, quaternion: bool
) -> dict[str, tuple[float, float | None]]:
    """Both R² definitions with their constant-predictor floors on the same split (§4).

    Quaternion targets add R² on w ≥ 0-canonicalised targets and predictions and the
    sign-invariant error 1 − ⟨q, q̂/‖q̂‖⟩² (floor: the mean target as a constant prediction).
    """
    scores: dict[str, tuple[float, float | None]] = {
        "r2_global": (
            metrics.r2_global(targets, predictions),
            metrics.constant_floor_global(targets),
        ),
        "r2_per_component": (
            metrics.r2_per_component(targets, predictions),
            metrics.constant_floor_per_component(targets),
        ),
    }
    if quaternion:
        canon_t = metrics.canonicalize_quaternion(targets)
        canon_p = metrics.canonicalize_quaternion(predictions)
        scores["r2_global_canonical"] = (
            metrics.r2_global(canon_t, canon_p),
            metrics.constant_floor_global(canon_t),
        )
        scores["r2_per_component_canonical"] = (
            metrics.r2_per_component(canon_t, canon_p),
            metrics.constant_floor_per_component(canon_t),
        )
        mean_prediction = targets.mean(0, keepdim=True).expand_as(targets)
        scores["sign_invariant_error"] = (
            metrics.sign_invariant_error(targets, predictions),
            metrics.sign_invariant_error(targets, mean_prediction),
        )
    return scores


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
    append_results(run_dir, rows)
    if cfg.wandb and push_wandb_summary(run_dir, rows):
        progress_print(f"wrote {len(rows)} numbers to the wandb summary")
    compare([run_dir], out=cfg.compare_out)
    return rows


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
    "regression_scores",
]
