"""Probes as registered units: one file per probe (or probe family), registered by name.

A probe subclasses ``Probe`` and registers with ``@register_probe("name")``; ``sslequi-eval
probes=[name, …]`` finds it here. It reads representations through the ``Evaluation`` it is
given (cached features of a declared representation, targets from the actions module) and
adds ``ResultRow``s with their ``Protocol``. ``training`` holds the shared head-training
loop; its public names are re-exported so ``sslequi.evaluation.probes.fit_probe`` keeps
working.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from sslequi.evaluation.probes.training import (
    CachedSource,
    InputSource,
    ProbeOutcome,
    SplitData,
    Standardized,
    TargetFn,
    TaskKind,
    absolute_rotation_targets,
    action_targets,
    all_view_tuples,
    build_head,
    build_optimizer,
    draw_views,
    draws_per_object,
    epoch_draws,
    epoch_generator,
    fit_probe,
    label_targets,
    standardize_splits,
    view_index_targets,
)
from sslequi.registry import Registry

if TYPE_CHECKING:
    from sslequi.evaluation.runner import Evaluation


class Probe(ABC):
    """One registered evaluator. ``check`` runs before any compute; ``run`` scores one part."""

    name: ClassVar[str] = "?"
    per_part: ClassVar[bool] = True  # False: runs once per evaluation (e.g. predictor metrics)

    def check(self, evaluation: Evaluation) -> None:  # noqa: B027
        """Raise a clear error if the method, data or settings cannot support this probe."""

    @abstractmethod
    def run(self, evaluation: Evaluation, part: str) -> None:
        """Score ``part`` (a declared representation) and add rows to ``evaluation``."""


PROBES: Registry[type[Probe]] = Registry("probe")


def register_probe(name: str):  # type: ignore[no-untyped-def]
    """Class decorator: register a ``Probe`` subclass under ``name`` (sets ``cls.name``)."""

    def decorator(cls: type[Probe]) -> type[Probe]:
        cls.name = name
        return PROBES.register(name)(cls)

    return decorator


_loaded = False


def load_probes() -> Registry[type[Probe]]:
    """Import every probe module of this package (their registrations run); the registry."""
    global _loaded
    if not _loaded:
        for info in pkgutil.iter_modules(__path__):
            if info.name != "training" and not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True
    return PROBES


__all__ = [
    "PROBES",
    "CachedSource",
    "InputSource",
    "Probe",
    "ProbeOutcome",
    "SplitData",
    "Standardized",
    "TargetFn",
    "TaskKind",
    "absolute_rotation_targets",
    "action_targets",
    "all_view_tuples",
    "build_head",
    "build_optimizer",
    "draw_views",
    "draws_per_object",
    "epoch_draws",
    "epoch_generator",
    "fit_probe",
    "label_targets",
    "load_probes",
    "register_probe",
    "standardize_splits",
    "view_index_targets",
]
