"""The base class every method derives from."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, cast, runtime_checkable

from torch import Tensor, nn

from sslequi.types import (
    Batch,
    MethodSpec,
    Parts,
    Representation,
    RepresentationSource,
    StepOutput,
)


@dataclass(frozen=True)
class LRGroup:
    """Parameters with their own learning-rate policy: the submodules named in ``modules``
    (dotted names relative to the method, e.g. ``"predictor"``). ``fixed``: the group keeps
    the peak rate throughout, with neither warmup nor schedule (SimSiam's ``--fix-pred-lr``,
    E-SSL CIFAR's separately optimised predictor; methods.md §7.4)."""

    name: str
    modules: tuple[str, ...] = field(default_factory=tuple)
    fixed: bool = True


def global_average_pool(feature_map: Tensor) -> Tensor:
    """[B, C, h, w] → [B, C]: the mean over positions (a ResNet's ``avgpool`` + flatten)."""
    return feature_map.mean(dim=(-2, -1))


@dataclass
class MethodConfig:
    """Fields shared by every method's typed config (each method subclasses this)."""

    name: str = "???"


@runtime_checkable
class ProjectsFeatures(Protocol):
    """A method with a contrastive projector: it declares the ``projector`` representation."""

    def project(self, y: Tensor) -> Tensor:
        """The unit projector output ẑ = g(y)/‖g(y)‖ of backbone features ``y``."""
        ...


class Method(nn.Module, ABC):
    """A self-supervised method: a backbone, its heads, and one loss.

    Subclasses set ``config_class`` and implement ``spec`` and ``forward``. Methods with a
    transformation-conditioned predictor also override ``embed_equivariant``, ``predict``
    and set ``predictor_action`` (the ``ACTION_DIMS`` encoding the predictor takes).
    """

    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    predictor_action: ClassVar[str | None] = None

    def __init__(self, config: MethodConfig, backbone: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.feature_dim = feature_dim

    @abstractmethod
    def spec(self) -> MethodSpec:
        """Views, actions and extras this method consumes."""

    @abstractmethod
    def forward(self, batch: Batch) -> StepOutput:
        """One training step's loss and logged terms."""

    def encode(self, images: Tensor) -> Tensor:
        """Backbone features y ∈ ℝ^[B, D] (what the probes read)."""
        return self.backbone(images)

    def parts(self) -> Parts:
        """How ``encode``'s output splits into invariant and equivariant slices."""
        return Parts()

    def feature_map(self, images: Tensor) -> Tensor:
        """The backbone's pre-pool map [B, C, h, w] (for ``feature_map`` representations)."""
        backbone_map = getattr(self.backbone, "feature_map", None)
        if backbone_map is None:
            raise TypeError(f"backbone {type(self.backbone).__name__} exposes no pre-pool map")
        return backbone_map(images)

    def stage_map(self, images: Tensor, stage: str) -> Tensor:
        """The map [B, C, h, w] of backbone stage ``stage`` (``layer1`` … ``layer4``)."""
        if stage not in self.stages():
            raise TypeError(
                f"backbone {type(self.backbone).__name__} has no stage {stage!r} "
                f"(stages: {list(self.stages())})"
            )
        return self.backbone.feature_map(images, layer=stage)  # type: ignore[operator]

    def stages(self) -> tuple[str, ...]:
        """The backbone stages probes may read (a ResNet's ``layer1`` … ``layer4``)."""
        return tuple(getattr(self.backbone, "stages", ()))

    def representations(self) -> dict[str, Representation]:
        """What probes can read: ``full`` and the declared parts (slices of ``encode``); a
        method adds computed ones (a projector output, a capsule head, an aggregator).
        Every backbone stage is one too (its map average-pooled; not probed by default), and
        a method with ``project`` (``ProjectsFeatures``) gets ``projector`` (read by the
        orthogonality probe; not probed by default)."""
        parts = self.parts()
        found = {"full": Representation("full", columns=slice(0, int(self.feature_dim)))}
        for name in ("invariant", "equivariant"):
            chosen = getattr(parts, name)
            if chosen is not None:
                found[name] = Representation(name, columns=chosen)
        if isinstance(self, ProjectsFeatures):
            found["projector"] = Representation("projector", compute=self.project, default=False)
        for stage in self.stages():
            source = cast(RepresentationSource, stage)
            found[stage] = Representation(
                stage, compute=global_average_pool, source=source, default=False
            )
        return found

    @property
    def has_predictor(self) -> bool:
        return self.predictor_action is not None

    def embed_equivariant(self, y_equi: Tensor) -> Tensor:
        """The equivariant projector: y_equi → z_equi."""
        raise TypeError(f"{type(self).__name__} has no equivariant predictor")

    def predict(self, z_equi: Tensor, action: Tensor) -> Tensor:
        """The predictor: (z_equi, action) → ẑ of the transformed view."""
        raise TypeError(f"{type(self).__name__} has no equivariant predictor")

    def lr_groups(self) -> list[LRGroup]:
        """Parameter groups with their own LR policy; everything else follows the schedule."""
        return []

    def on_train_start(self, steps_per_epoch: int, total_steps: int) -> None:  # noqa: B027
        """Hook before training starts or resumes (per-epoch schedules, e.g. seq-JEPA's EMA)."""

    def on_step_end(self, step: int, total_steps: int) -> None:  # noqa: B027
        """Hook after each optimizer step (EMA target updates)."""
