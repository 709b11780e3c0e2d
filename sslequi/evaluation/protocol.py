"""Typed evaluation protocol: how each probe is trained, and what is recorded with each number.

Two protocols, chosen by the size of the training split (``EvalConfig.protocol``):

- **paper** (≥ ``SmallSetSettings.max_objects`` train objects, e.g. 3DIEBench's 41,920):
  the official scripts' settings (evaluation.md §2.1, §5): Adam lr 1e-3, wd 0, batch 256,
  300 epochs, final epoch; one random view (linear) or one random view pair (regressions)
  per object per epoch; SIE's ``--deep-end`` MLP (2d → 1024 → 1024 → out) for the
  regressions; scored on one seeded draw per val object.
- **small_set** (fewer train objects, e.g. the built-in benchmark's 384): one pair per
  object per epoch would give a few optimiser steps an epoch and a val score from ~100
  pairs. Features are standardised with train-split statistics; the linear head trains
  and is scored on every view; regression heads see ``pairs_per_object`` pairs per fit
  object per epoch and at least ``min_steps`` optimiser steps; early stopping on
  ``holdout_fraction`` of the train objects with all their view pairs; scoring on all
  ordered view pairs of every val object.

BatchNorm defaults to eval mode (§1). Every setting is stored with each number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

REGRESSION_PROBES = (
    "rotation",
    "abs_rotation",
    "color",
    "translation_object",
    "translation_base",
)
CLASSIFICATION_PROBES = ("linear", "knn", "rot90")
AUGMENTATION_PROBES = ("aug_params", "orthogonality")
PREDICTOR_PROBES = ("mrr",)
SEQUENCE_PROBES = ("agg_linear", "fixation")  # seq-JEPA: z_AGG top-1, PLS fixation offsets
ALL_PROBES = (
    CLASSIFICATION_PROBES
    + REGRESSION_PROBES
    + AUGMENTATION_PROBES
    + PREDICTOR_PROBES
    + SEQUENCE_PROBES
)


@dataclass
class HeadTraining:
    """How one probe head is built and trained (defaults: SIE's eval scripts)."""

    head: str = "mlp"  # linear | mlp
    hidden: list[int] = field(default_factory=lambda: [1024, 1024])
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    schedule: str = "constant"  # constant | cosine
    epochs: int = 300
    batch_size: int = 256
    # Early stopping on a held-out slice of the *training* objects (never the val split).
    early_stopping: bool = False
    holdout_fraction: float = 0.1
    patience: int = 20
    # Small-set protocol knobs (defaults: the paper protocol's one draw per object).
    draws_per_object: int = 1  # view draws (pairs for regressions) per fit object per epoch
    all_views: bool = False  # single-view probes train on every view of each fit object
    min_steps: int = 0  # at least this many optimiser steps (raises the epoch count)
    standardize: bool = False  # features standardised with train-split statistics
    score_all_views: bool = False  # holdout/val scored on every view (pair) of each object
    init_at_mean: bool = False  # regression heads start as the constant train-mean predictor

    def validate(self, probe: str) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"probe {probe!r}: epochs, batch_size and lr must be positive")
        if self.early_stopping and not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(f"probe {probe!r}: holdout_fraction must lie in (0, 1)")
        for name, value, allowed in (
            ("head", self.head, ("linear", "mlp")),
            ("optimizer", self.optimizer, ("adam", "adamw", "sgd")),
            ("schedule", self.schedule, ("constant", "cosine")),
        ):
            if value not in allowed:
                raise ValueError(f"probe {probe!r}: {name} must be one of {allowed}, got {value!r}")
        if self.draws_per_object < 1 or self.min_steps < 0:
            raise ValueError(f"probe {probe!r}: draws_per_object ≥ 1 and min_steps ≥ 0")
        if self.head == "mlp" and not self.hidden:
            raise ValueError(f"probe {probe!r}: an mlp head needs hidden widths")


@dataclass
class SmallSetSettings:
    """The small-set protocol (module docstring), applied over each probe's own settings."""

    max_objects: int = 5000  # protocol=auto: small_set below this many train objects
    pairs_per_object: int = 16  # k: regression pairs per fit object per epoch
    min_steps: int = 600  # S: optimiser steps at least, per regression head
    linear_min_steps: int = 600  # the same for the linear head (all views each epoch)
    holdout_fraction: float = 0.15  # early stopping on 15 % of the train objects
    patience: int = 10
    standardize: bool = True
    regression_hidden: list[int] = field(default_factory=lambda: [512, 512])

    def apply(self, training: HeadTraining, single_view: bool) -> HeadTraining:
        """``training`` under the small-set protocol (a copy)."""
        from dataclasses import replace

        return replace(
            training,
            hidden=list(self.regression_hidden) if training.head == "mlp" else training.hidden,
            early_stopping=True,
            holdout_fraction=self.holdout_fraction,
            patience=self.patience,
            draws_per_object=1 if single_view else self.pairs_per_object,
            all_views=single_view,
            min_steps=self.linear_min_steps if single_view else self.min_steps,
            standardize=self.standardize,
            score_all_views=True,
            init_at_mean=True,
        )

    def describe(self) -> str:
        return (
            f"small_set(N<{self.max_objects};k={self.pairs_per_object};S={self.min_steps};"
            f"holdout={self.holdout_fraction};standardize={self.standardize})"
        )


@dataclass
class KNNSettings:
    """Weighted cosine kNN over an un-augmented train bank (§3; harness default k = 20)."""

    k: int = 20
    temperature: float = 0.1


@dataclass
class PredictorSettings:
    """MRR / H@k / PRE options (§6–7)."""

    mode: str = "val-val"  # val-val | train-train | val-all
    normalize: bool = True
    ks: list[int] = field(default_factory=lambda: [1, 2, 5, 10])
    source_view: int = 0


@dataclass
class AugParamSettings:
    """Augmentation-parameter R² (§9): heads per group, seq-JEPA's regressors."""

    draws: int = 4  # fixed augmented pairs per training image (embedded once)
    epochs: int = 100
    lr: float = 1e-3
    batch_size: int = 256
    hidden: list[int] = field(default_factory=lambda: [1024, 1024])


@dataclass
class AggregateSettings(HeadTraining):
    """seq-JEPA's linear probe on z_AGG (methods.md §9.7, evaluation.md §2.1): the aggregate
    of ``views`` (M_val) observed views of an object and their relative actions; ``draws``
    fixed view sequences per training object (one per val object), aggregated once."""

    head: str = "linear"
    views: int = 3  # M_val (Table 1: 1, 3 or 5); more than an object has fails clearly
    draws: int = 4


@dataclass
class OrthogonalitySettings:
    """Orthogonal-equivariance probe (``sslequi.evaluation.orthogonality``): Procrustes
    residual and Gram mismatch of r(t₁X) vs r(t₂X) for pairs shared by n held-out images."""

    recipe: str = "care"  # augment recipe whose view defines the families; "run": the run's
    families: list[str] = field(default_factory=list)  # [] = every op of that view + all
    draws: int = 20  # shared (t₁, t₂) draws per family (each with fresh images), ≥ 20
    images: int = 0  # n per draw; 0 = 2d (d = the representation's width); must be ≥ 2d
    pool: int = 4096  # held-out images loaded; each draw picks n of them
    parts: list[str] = field(default_factory=lambda: ["full", "projector"])  # if declared

    def validate(self) -> None:
        if self.draws < 20:
            raise ValueError(f"probe.orthogonality.draws must be ≥ 20, got {self.draws}")
        if self.images < 0 or self.pool < 2:
            raise ValueError("probe.orthogonality.images must be ≥ 0 and pool ≥ 2")


@dataclass
class ProbeSettings:
    """Per-probe training settings; each probe's defaults follow its paper script."""

    linear: HeadTraining = field(default_factory=lambda: HeadTraining(head="linear"))
    rot90: HeadTraining = field(default_factory=lambda: HeadTraining(head="linear", epochs=100))
    rotation: HeadTraining = field(default_factory=HeadTraining)
    abs_rotation: HeadTraining = field(default_factory=HeadTraining)
    color: HeadTraining = field(default_factory=HeadTraining)  # SIE README: deep-end, 300
    translation_object: HeadTraining = field(default_factory=HeadTraining)
    translation_base: HeadTraining = field(default_factory=HeadTraining)
    knn: KNNSettings = field(default_factory=KNNSettings)
    small_set: SmallSetSettings = field(default_factory=SmallSetSettings)
    mrr: PredictorSettings = field(default_factory=PredictorSettings)
    aug_params: AugParamSettings = field(default_factory=AugParamSettings)
    orthogonality: OrthogonalitySettings = field(default_factory=OrthogonalitySettings)
    agg_linear: AggregateSettings = field(default_factory=AggregateSettings)
    # STL-10 PLS fixation offsets (evaluation.md §9): Linear(2D → 2), Adam 1e-3, wd 0
    fixation: HeadTraining = field(default_factory=lambda: HeadTraining(head="linear"))

    def training(self, probe: str) -> HeadTraining:
        value = getattr(self, probe)
        if not isinstance(value, HeadTraining):
            raise TypeError(f"probe {probe!r} has no head training settings")
        return value


@dataclass(frozen=True)
class Protocol:
    """Everything that defines one number: stored next to it in results.json (§13)."""

    probe: str
    part: str
    metric_definition: str  # e.g. "r2_global", "r2_per_component", "top1", "mrr"
    head: str = "-"
    optimizer: str = "-"
    lr: float = 0.0
    weight_decay: float = 0.0
    epochs: int = 0
    batch_size: int = 0
    selection: str = "last"  # last | best_holdout
    holdout_fraction: float = 0.0
    bn_mode: str = "eval"
    feature_mode: str = "cached"  # cached | live (paper protocol)
    feature_dtype: str = "float32"
    target: str = "-"  # target encoding, e.g. quat(R1ᵀR2) raw sign
    train_split: str = "train"
    n_train: int = 0
    seed: int = 0
    image_size: int = 0
    checkpoint_step: int = -1
    checkpoint: str = "-"  # fingerprint of the evaluated weights
    dataset: str = "-"
    extra: str = "-"  # probe-specific settings (k, T, normalisation, …)
    protocol: str = "paper"  # paper | small_set (module docstring)
    standardize: bool = False  # features standardised with train-split statistics
    pairs_per_object: int = 1  # k: view draws per fit object per epoch
    min_steps: int = 0  # S: optimiser steps at least
    steps: int = 0  # optimiser steps run
    scored_on: str = "draw"  # draw (seeded, per object) | all (every view / ordered pair)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def key(self) -> tuple[object, ...]:
        """Identity of the protocol for merging rows (everything above)."""
        return tuple(sorted(asdict(self).items()))
