"""Typed evaluation protocol: how each probe is trained, and what is recorded with each number.

Paper settings are the defaults (evaluation.md §2.1, §5): Adam lr 1e-3, wd 0, batch 256,
300 epochs, final epoch; SIE's ``--deep-end`` MLP (2d → 1024 → 1024 → out) for the
regressions; linear heads for classification. BatchNorm defaults to eval mode (§1).
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
AUGMENTATION_PROBES = ("aug_params",)
PREDICTOR_PROBES = ("mrr",)
ALL_PROBES = CLASSIFICATION_PROBES + REGRESSION_PROBES + AUGMENTATION_PROBES + PREDICTOR_PROBES


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
        if self.head == "mlp" and not self.hidden:
            raise ValueError(f"probe {probe!r}: an mlp head needs hidden widths")


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
    mrr: PredictorSettings = field(default_factory=PredictorSettings)
    aug_params: AugParamSettings = field(default_factory=AugParamSettings)

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

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def key(self) -> tuple[object, ...]:
        """Identity of the protocol for merging rows (everything above)."""
        return tuple(sorted(asdict(self).items()))
