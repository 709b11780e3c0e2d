"""``sslequi-data``: a registry of subcommands, one module ``sslequi/cli/data_<name>.py`` each.

A subcommand module registers a ``Subcommand`` with ``@register_subcommand``; this file
discovers them, so adding a subcommand never edits this file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass

import sslequi.cli
import sslequi.threads  # noqa: F401  (OpenMP defaults, before torch loads)
from sslequi.registry import Registry


@dataclass(frozen=True)
class Subcommand:
    """One ``sslequi-data`` subcommand."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


SUBCOMMANDS: Registry[Subcommand] = Registry("sslequi-data subcommand")


def register_subcommand(
    name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Decorator over a subcommand's ``run(args) -> exit code``."""

    def decorator(
        run: Callable[[argparse.Namespace], int],
    ) -> Callable[[argparse.Namespace], int]:
        SUBCOMMANDS.register(name)(Subcommand(help=help, add_arguments=add_arguments, run=run))
        return run

    return decorator


def _discover() -> None:
    for module in pkgutil.iter_modules(sslequi.cli.__path__):
        if module.name.startswith("data_"):
            importlib.import_module(f"sslequi.cli.{module.name}")


def build_parser() -> argparse.ArgumentParser:
    _discover()
    parser = argparse.ArgumentParser(prog="sslequi-data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for entry in SUBCOMMANDS:
        sub = commands.add_parser(entry.name, help=entry.obj.help)
        entry.obj.add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return SUBCOMMANDS.get(args.command).run(args)


if __name__ == "__main__":
    # ``python -m sslequi.cli.data`` runs this file as ``__main__``, a second copy of the
    # module; the subcommand modules register into ``sslequi.cli.data``, so run that one.
    from sslequi.cli.data import main as registered_main

    sys.exit(registered_main())
