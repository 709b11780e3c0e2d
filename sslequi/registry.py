"""Name → object registries for methods, datasets, backbones and CLI subcommands.

Registration is by decorator. A duplicate name fails at import time, and an unknown
name fails with an error that lists the registered alternatives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """An unknown or duplicate registry name."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0])


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object and the typed config dataclass it is built from (if any)."""

    name: str
    obj: T
    config: type | None = None


class Registry(Generic[T]):
    """A typed name → object mapping with duplicate checks and helpful lookups."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, config: type | None = None) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name`` (optionally with its config class)."""

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise RegistryError(
                    f"duplicate {self.kind} name {name!r}: already registered by "
                    f"{_describe(self._entries[name].obj)}"
                )
            self._entries[name] = Entry(name=name, obj=obj, config=config)
            return obj

        return decorator

    def entry(self, name: str) -> Entry[T]:
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "(none registered)"
            raise RegistryError(f"unknown {self.kind} {name!r}; available: {known}")
        return self._entries[name]

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())


def _describe(obj: object) -> str:
    module = getattr(obj, "__module__", "?")
    qualname = getattr(obj, "__qualname__", repr(obj))
    return f"{module}.{qualname}"


METHODS: Registry[type] = Registry("method")
DATASETS: Registry[type] = Registry("dataset")
BACKBONES: Registry[Callable[..., object]] = Registry("backbone")

register_method = METHODS.register
register_dataset = DATASETS.register
register_backbone = BACKBONES.register
