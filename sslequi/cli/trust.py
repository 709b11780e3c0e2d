"""What a composed Hydra config may run: checked before Hydra acts on it.

A shared experiment YAML is data, but two Hydra nodes turn data into calls:
``hydra.callbacks.<name>._target_`` (instantiated before the run starts) and
``hydra.job_logging`` / ``hydra.hydra_logging`` (given to ``logging.config.dictConfig``,
whose ``()`` factories, handler and formatter ``class`` entries and ``ext://`` references
import and call any importable name). Hydra itself blocks only a short list of targets
(``exec``, ``eval``, …); a file copy or ``torch.load(weights_only=False)`` went through.

The CLIs (``sslequi-pretrain``, ``sslequi-eval``) check every config Hydra composes (the
main one, and each sweep point's before any job is launched) and refuse, naming the key:

- a ``hydra.callbacks`` entry whose ``_target_`` is not one of the project's own callback
  classes (a subclass of ``hydra.experimental.callback.Callback`` in the ``sslequi``
  package), or that nests another ``_target_``;
- in the logging nodes: any ``()`` factory or ``.`` property block, a handler ``class``
  outside the standard library's stream/file handlers, a formatter ``class`` other than
  ``logging.Formatter``, an ``ext://`` reference other than ``sys.stdout``/``sys.stderr``;
- a ``_target_`` anywhere else under ``hydra``, except the launcher's and sweeper's own,
  which must name a Hydra plugin (``hydra._internal.core_plugins.*``, ``hydra_plugins.*``:
  the ``basic`` launcher and sweeper, ``submitit_local``/``slurm``, the ``sslequi`` launcher);
- ``hydra.job.env_set`` entries that make later processes load code (``LD_PRELOAD``,
  ``PYTHONPATH``, ``PYTHONSTARTUP``, ``BASH_ENV`` …).

The opt-in is the command-line flag ``--trust-config-code`` or the environment variable
``SSLEQUI_TRUST_CONFIG_CODE=1``, never a config key (a config cannot vouch for itself).
The run config's own ``_target_`` keys are inert: the project never instantiates them.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig

from sslequi.config import ConfigError

TRUST_ENV = "SSLEQUI_TRUST_CONFIG_CODE"
TRUST_FLAG = "--trust-config-code"

HANDLER_CLASSES = frozenset(
    {
        "logging.StreamHandler",
        "logging.FileHandler",
        "logging.NullHandler",
        "logging.handlers.RotatingFileHandler",
        "logging.handlers.TimedRotatingFileHandler",
        "logging.handlers.WatchedFileHandler",
    }
)
FORMATTER_CLASSES = frozenset({"logging.Formatter"})
STREAMS = frozenset({"ext://sys.stdout", "ext://sys.stderr"})
PLUGIN_PREFIXES = ("hydra._internal.core_plugins.", "hydra_plugins.")
PROJECT_PACKAGE = "sslequi"
# Variables that make a later process (wandb's service, a submitit job) load code.
CODE_LOADING_ENV = frozenset(
    {"BASH_ENV", "ENV", "PERL5OPT", "NODE_OPTIONS", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME"}
)
CODE_LOADING_ENV_PREFIXES = ("LD_", "DYLD_", "PYTHONBREAKPOINT", "PYTHONUSERBASE")


class UntrustedConfigError(ConfigError):
    """A config asking Hydra to run code the user did not opt in to."""


class _Unresolvable:
    def __repr__(self) -> str:
        return "<unresolvable>"


UNRESOLVABLE = _Unresolvable()


def trusted(argv: list[str] | None = None) -> bool:
    """Whether the user opted in; removes ``--trust-config-code`` from ``argv`` (default
    ``sys.argv``) so Hydra never sees it, and exports the variable to child processes."""
    argv = sys.argv if argv is None else argv
    flag = TRUST_FLAG in argv
    while TRUST_FLAG in argv:
        argv.remove(TRUST_FLAG)
    if flag:
        os.environ[TRUST_ENV] = "1"
    return flag or os.environ.get(TRUST_ENV, "") not in ("", "0", "false", "no")


def _get(node: DictConfig | ListConfig, key: Any) -> Any:
    """``node[key]`` resolved, or ``UNRESOLVABLE`` (a missing value, a runtime-only one)."""
    try:
        return node[key]
    except Exception:
        return UNRESOLVABLE


def _raw(node: DictConfig | ListConfig, key: Any) -> str:
    try:
        return str(node._get_node(key)._value())  # type: ignore[union-attr]
    except Exception:
        return ""


def _children(node: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(node, DictConfig):
        for key in node.keys():
            yield key, _get(node, key)
    elif isinstance(node, ListConfig):
        for index in range(len(node)):
            yield index, _get(node, index)


def is_project_callback(target: Any) -> bool:
    """``target`` names a ``hydra.experimental.callback.Callback`` subclass in ``sslequi``.

    Only modules of the project are imported to find out."""
    if not isinstance(target, str) or not target.startswith(PROJECT_PACKAGE + "."):
        return False
    module_name, _, attribute = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        return False
    from hydra.experimental.callback import Callback

    return isinstance(obj, type) and issubclass(obj, Callback)


def _nested_targets(node: Any, where: str) -> Iterator[str]:
    for key, child in _children(node):
        if key == "_target_":
            yield f"{where}._target_ = {child!r}: a nested target would be instantiated too"
        else:
            yield from _nested_targets(child, f"{where}.{key}")


def _callback_problems(callbacks: Any) -> Iterator[str]:
    for name, entry in _children(callbacks):
        where = f"hydra.callbacks.{name}"
        if not isinstance(entry, DictConfig):
            yield f"{where}: {entry!r} is not a callback entry"
            continue
        target = _get(entry, "_target_")
        if not is_project_callback(target):
            yield (
                f"{where}._target_ = {target!r}: only the project's own callback classes "
                f"(subclasses of hydra.experimental.callback.Callback in {PROJECT_PACKAGE}) run"
            )
        for key, child in _children(entry):
            if key != "_target_":
                yield from _nested_targets(child, f"{where}.{key}")


def _logging_problems(node: Any, where: str, section: str | None = None) -> Iterator[str]:
    """``section``: the dictConfig section (handlers, formatters, …) ``node`` sits in."""
    for key, value in _children(node):
        here = f"{where}.{key}"
        if key == "()":
            yield f"{here} = {value!r}: logging factories call any importable name"
        elif key == ".":
            yield f"{here}: logging property blocks set attributes on created objects"
        elif key == "class" and section in ("handlers", "formatters"):
            allowed = HANDLER_CLASSES if section == "handlers" else FORMATTER_CLASSES
            if value not in allowed:
                yield f"{here} = {value!r}: allowed {section[:-1]} classes are {sorted(allowed)}"
        elif key == "class":
            yield f"{here} = {value!r}: a logging class outside handlers/formatters"
        elif value is UNRESOLVABLE and "://" in _raw(node, key):
            yield f"{here}: a reference that cannot be checked before the run"
        elif isinstance(value, str) and value.startswith("ext://") and value not in STREAMS:
            yield f"{here} = {value!r}: ext:// imports a module; allowed: {sorted(STREAMS)}"
        elif isinstance(value, DictConfig | ListConfig):
            yield from _logging_problems(value, here, str(key) if section is None else section)


def _plugin_problems(node: Any, where: str) -> Iterator[str]:
    if not isinstance(node, DictConfig):
        return
    target = _get(node, "_target_")
    if target is not None and not (isinstance(target, str) and target.startswith(PLUGIN_PREFIXES)):
        yield f"{where}._target_ = {target!r}: not a Hydra plugin ({', '.join(PLUGIN_PREFIXES)}*)"
    for key, child in _children(node):
        if key != "_target_":
            yield from _nested_targets(child, f"{where}.{key}")


def _env_problems(env_set: Any) -> Iterator[str]:
    for name, _ in _children(env_set):
        text = str(name)
        if text in CODE_LOADING_ENV or text.startswith(CODE_LOADING_ENV_PREFIXES):
            yield f"hydra.job.env_set.{text}: makes later processes load code"


def untrusted_entries(cfg: DictConfig) -> list[str]:
    """Every entry of ``cfg.hydra`` that would run code (module docstring); [] if none."""
    hydra = _get(cfg, "hydra") if "hydra" in cfg else None
    if not isinstance(hydra, DictConfig):
        return []
    problems: list[str] = []
    for key, value in _children(hydra):
        where = f"hydra.{key}"
        if key == "callbacks":
            problems += _callback_problems(value)
        elif key in ("job_logging", "hydra_logging"):
            problems += _logging_problems(value, where)
        elif key in ("launcher", "sweeper"):
            problems += _plugin_problems(value, where)
        else:
            problems += _nested_targets(value, where)
            if key == "job" and isinstance(value, DictConfig):
                problems += _env_problems(_get(value, "env_set"))
    return problems


def check_trusted(cfg: DictConfig) -> None:
    """Raise ``UntrustedConfigError`` listing what ``cfg`` would run, if anything."""
    problems = untrusted_entries(cfg)
    if problems:
        listed = "\n  - ".join(problems)
        raise UntrustedConfigError(
            f"refused: the config asks Hydra to run code:\n  - {listed}\n"
            f"Remove these entries, or, if you trust every config file involved, pass "
            f"{TRUST_FLAG} or set {TRUST_ENV}=1."
        )


Preflight = Callable[[DictConfig, Any], None]
_state = threading.local()


@contextlib.contextmanager
def guarded_hydra(prog: str, preflight: Preflight | None = None) -> Iterator[None]:
    """While the block runs, every config Hydra's loader composes is checked before Hydra
    uses it: ``check_trusted`` (unless the user opted in), then ``preflight(cfg, run_mode)``
    for the app's own main config (not for each sweep point, nor the mode probe).

    A refusal prints ``<prog>: <reason>`` and exits with status 2: nothing was created,
    instantiated or configured. The loader is restored when the block ends.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    opted_in = trusted()
    load, load_sweep = ConfigLoaderImpl.load_configuration, ConfigLoaderImpl.load_sweep_config

    def load_configuration(self: Any, *args: Any, **kwargs: Any) -> DictConfig:
        cfg = load(self, *args, **kwargs)
        try:
            if not opted_in:
                check_trusted(cfg)
            main_config = kwargs.get("validate_sweep_overrides", True)
            if preflight is not None and main_config and not getattr(_state, "sweep", False):
                run_mode = kwargs.get("run_mode", args[2] if len(args) > 2 else None)
                preflight(cfg, run_mode)
        except ConfigError as error:
            print(f"{prog}: {error}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        return cfg

    def load_sweep_config(self: Any, *args: Any, **kwargs: Any) -> DictConfig:
        _state.sweep = True
        try:
            return load_sweep(self, *args, **kwargs)
        finally:
            _state.sweep = False

    ConfigLoaderImpl.load_configuration = load_configuration  # type: ignore[method-assign]
    ConfigLoaderImpl.load_sweep_config = load_sweep_config  # type: ignore[method-assign]
    try:
        yield
    finally:
        ConfigLoaderImpl.load_configuration = load  # type: ignore[method-assign]
        ConfigLoaderImpl.load_sweep_config = load_sweep  # type: ignore[method-assign]
