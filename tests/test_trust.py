"""Issue 16, items 12, 13 and 16: nothing runs from a config without the user's opt-in,
bad command-line inputs fail before Hydra creates anything, and the small CLI defects.

The hostile configs are experiment YAMLs in a ``--config-dir`` (a "shared experiment").
Refusals run ``main()`` in this process (fast); the sweeps that must keep working run the
console script in a subprocess, as a user would.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sslequi.cli import evaluate as eval_cli
from sslequi.cli import pretrain as pretrain_cli
from sslequi.cli.trust import TRUST_ENV, TRUST_FLAG, untrusted_entries
from sslequi.evaluation.features import FeatureCacheMismatch, FeatureKey, load_features

TINY = [
    "backbone=resnet18_tiny",
    "dataset.resolution=16",
    "dataset.n_objects=16",
    "dataset.n_val_objects=8",
    "train.batch_size=8",
    "train.steps=1",
    "train.progress=false",
    "train.checkpoint_every_min=0",
    "logger.mode=disabled",
    "method.projector=16-16",
]


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for name in (TRUST_ENV, "SSLEQUI_SWEEP_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.chdir(tmp_path)
    yield
    torch.set_num_threads(threads)
    os.environ.pop(TRUST_ENV, None)  # ``--trust-config-code`` exports it for child processes
    GlobalHydra.instance().clear()


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("credentials")
    return path


def _experiment(tmp_path: Path, name: str, body: str) -> Path:
    """A shared experiment YAML in a config dir given with ``--config-dir``."""
    folder = tmp_path / "shared" / "experiment"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text("# @package _global_\n" + body)
    return tmp_path / "shared"


def _main(main: Callable[[], None], monkeypatch: pytest.MonkeyPatch, prog: str, *argv: str) -> int:
    """Run a console entry point in this process; its exit status (0 if it returned)."""
    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", [prog, *argv])
    try:
        main()
    except SystemExit as exit_info:
        return int(exit_info.code or 0)
    return 0


def _pretrain(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    return _main(pretrain_cli.main, monkeypatch, "sslequi-pretrain", *argv)


CALLBACK = """hydra:
  callbacks:
    evil:
      _target_: shutil.copyfile
      src: {src}
      dst: {dst}
"""
FACTORY_HANDLER = """hydra:
  job_logging:
    handlers:
      evil:
        (): shutil.copyfile
        src: {src}
        dst: {dst}
    root:
      handlers: [evil]
"""
CLASS_HANDLER = FACTORY_HANDLER.replace("(): shutil", "class: shutil")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (CALLBACK, "hydra.callbacks.evil._target_ = 'shutil.copyfile'"),
        (FACTORY_HANDLER, "hydra.job_logging.handlers.evil.() = 'shutil.copyfile'"),
        (CLASS_HANDLER, "hydra.job_logging.handlers.evil.class = 'shutil.copyfile'"),
    ],
    ids=["callback", "logging_factory", "logging_class"],
)
def test_copyfile_from_a_shared_config_is_refused(
    body: str, named: str, secret: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    stolen = tmp_path / "stolen.txt"
    shared = _experiment(tmp_path, "shared", body.format(src=secret, dst=stolen))
    code = _pretrain(monkeypatch, "--config-dir", str(shared), "experiment=shared", *TINY)
    err = capsys.readouterr().err
    assert code == 2, err
    assert named in err and TRUST_FLAG in err and "Traceback" not in err
    assert not stolen.exists()
    assert not (tmp_path / "runs").exists()  # refused before Hydra created anything


def test_the_opt_in_is_the_flag_or_the_environment_never_a_config_key(
    secret: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    stolen = tmp_path / "stolen.txt"
    body = CALLBACK.format(src=secret, dst=stolen) + "  job:\n    env_set:\n"
    body += f"      {TRUST_ENV}: '1'\n"  # a config vouching for itself
    shared = _experiment(tmp_path, "shared", body)
    args = ["--config-dir", str(shared), "experiment=shared", *TINY, "optim.lr=-1"]
    assert _pretrain(monkeypatch, *args) == 2
    assert "refused" in capsys.readouterr().err and not stolen.exists()
    # The user's flag: the callback runs (then the bad lr stops the run before compute).
    assert _pretrain(monkeypatch, TRUST_FLAG, *args) == 2
    assert "optim.lr must be > 0" in capsys.readouterr().err
    assert stolen.read_text() == "credentials"
    stolen.unlink()
    os.environ.pop(TRUST_ENV)  # the flag exported it for child processes
    monkeypatch.setenv(TRUST_ENV, "1")
    assert _pretrain(monkeypatch, *args) == 2
    assert stolen.exists()


class MarkerCallback(Callback):
    """A project callback (installed below as ``sslequi.test_callbacks.Marker``)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_run_start(self, config: DictConfig, **kwargs: object) -> None:
        Path(self.path).write_text("ran")


def test_the_projects_own_callbacks_still_run(tmp_path: Path, monkeypatch, capsys) -> None:
    module = types.ModuleType("sslequi.test_callbacks")
    module.Marker = MarkerCallback  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sslequi.test_callbacks", module)
    marker = tmp_path / "marker.txt"
    body = "hydra:\n  callbacks:\n    mark:\n      _target_: sslequi.test_callbacks.Marker\n"
    body += f"      path: {marker}\n"
    shared = _experiment(tmp_path, "mark", body)
    args = ["--config-dir", str(shared), "experiment=mark", *TINY, "optim.lr=-1"]
    assert _pretrain(monkeypatch, *args) == 2
    assert "optim.lr must be > 0" in capsys.readouterr().err
    assert marker.read_text() == "ran"
    # ... but not with a nested target in its arguments
    nested = body + "      extra:\n        _target_: shutil.copyfile\n"
    shared = _experiment(tmp_path, "nested", nested)
    args = ["--config-dir", str(shared), "experiment=nested", *TINY]
    assert _pretrain(monkeypatch, *args) == 2
    assert "hydra.callbacks.mark.extra._target_" in capsys.readouterr().err


def test_eval_refuses_callbacks_too(secret: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    stolen = tmp_path / "stolen.txt"
    callback = "+hydra.callbacks.evil"
    args = [f"{callback}._target_=shutil.copyfile", f"{callback}.src={secret}"]
    args += [f"{callback}.dst={stolen}", f"run={tmp_path}"]
    assert _main(eval_cli.main, monkeypatch, "sslequi-eval", *args) == 2
    assert "hydra.callbacks.evil._target_" in capsys.readouterr().err
    assert not stolen.exists()


def test_a_hostile_sweep_is_refused_before_anything_is_submitted(
    secret: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    stolen = tmp_path / "stolen.txt"
    shared = _experiment(tmp_path, "shared", CALLBACK.format(src=secret, dst=stolen))
    args = ["-m", "--config-dir", str(shared), "experiment=shared", "launcher=submitit_local"]
    assert _pretrain(monkeypatch, *args, *TINY, "seed=1,2") == 2
    assert "hydra.callbacks.evil" in capsys.readouterr().err
    assert not stolen.exists() and not (tmp_path / "runs").exists()


@pytest.fixture
def composed() -> Callable[..., DictConfig]:
    """The pretrain config as Hydra composes it, ``hydra`` node included."""
    pretrain_cli.register_configs()
    pretrain_cli.register_resolvers()

    def compose_with(*overrides: str) -> DictConfig:
        GlobalHydra.instance().clear()
        config_dir = str(pretrain_cli.configs_dir())
        with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
            return compose("pretrain", overrides=list(overrides), return_hydra_config=True)

    return compose_with


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["launcher=submitit_local"],
        ["launcher=slurm"],
        ["hydra/job_logging=stdout"],
        ["hydra/job_logging=disabled", "hydra/hydra_logging=disabled"],
        ["hydra/launcher=basic", "hydra/sweeper=basic"],
    ],
)
def test_hydra_and_project_defaults_are_admitted(composed, overrides: list[str]) -> None:
    assert untrusted_entries(composed(*overrides)) == []


@pytest.mark.parametrize(
    ("parent", "value", "named"),
    [
        ("hydra.job_logging.handlers.console", {"stream": "ext://antigravity"}, "ext://"),
        ("hydra.job_logging.formatters.simple", {"class": "pkg.Formatter"}, "formatter classes"),
        ("hydra.job_logging", {"filters": {"f": {"()": "shutil.copyfile"}}}, "filters.f.()"),
        ("hydra.hydra_logging.handlers.console", {".": {"x": 1}}, "property blocks"),
        ("hydra.launcher", {"_target_": "shutil.copyfile"}, "not a Hydra plugin"),
        ("hydra.job.env_set", {"LD_PRELOAD": "/tmp/x.so"}, "LD_PRELOAD"),
        ("hydra.job.env_set", {"PYTHONPATH": "/tmp/x"}, "PYTHONPATH"),
        ("hydra.callbacks", {"x": {"_target_": "${experiment}"}}, "x._target_ = 'default'"),
        ("hydra.callbacks", {"x": {"_target_": "sslequi.config.validate"}}, "callbacks.x"),
    ],
)
def test_other_routes_to_code_are_refused(
    composed, parent: str, value: dict[str, object], named: str
) -> None:
    cfg = composed()
    OmegaConf.set_readonly(cfg, False)
    OmegaConf.set_struct(cfg, False)
    OmegaConf.update(cfg, parent, value, merge=True, force_add=True)
    problems = untrusted_entries(cfg)
    assert any(named in p for p in problems), problems


SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


@pytest.mark.parametrize(
    ("hydra_node", "named"),
    [
        (
            {"launcher": {"_target_": SLURM_LAUNCHER, "additional_parameters": {"x": {}}}},
            None,
        ),
        (
            {
                "launcher": {
                    "_target_": SLURM_LAUNCHER,
                    "additional_parameters": {"x": {"_target_": "os.system"}},
                }
            },
            "hydra.launcher.additional_parameters.x._target_",
        ),
        ({"sweeper": {"params": [{"_target_": "os.system"}]}}, "hydra.sweeper.params.0._target_"),
        ({"run": {"node": {"_target_": "shutil.rmtree"}}}, "hydra.run.node._target_"),
    ],
)
def test_nested_targets_are_refused_wherever_they_hide(
    hydra_node: dict[str, object], named: str | None
) -> None:
    """Plugin configs with free-form mappings (submitit's ``additional_parameters``) are
    instantiated recursively: a nested target there would be called."""
    problems = untrusted_entries(OmegaConf.create({"hydra": hydra_node}))
    if named is None:
        assert problems == []
    else:
        assert any(named in p for p in problems), problems


def test_an_unwritable_output_dir_fails_before_hydra_creates_it(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """Issue 16, item 12: a file in the way of the run (or sweep) directory."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    assert _pretrain(monkeypatch, *TINY, f"run_dir={blocker}/run") == 2
    err = capsys.readouterr().err
    assert f"output directory {blocker}/run" in err and "is a file" in err
    assert "Traceback" not in err
    assert _pretrain(monkeypatch, "-m", *TINY, f"output_root={blocker}/runs", "seed=1,2") == 2
    assert "is a file" in capsys.readouterr().err
    # Printing the config needs no directory.
    assert _pretrain(monkeypatch, "--cfg", "job", *TINY, f"run_dir={blocker}/run") == 0


def _sweep(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_MODE="disabled")
    env.pop("SSLEQUI_SWEEP_ID", None)
    env.pop(TRUST_ENV, None)
    return subprocess.run(
        ["sslequi-pretrain", "-m", *TINY, "output_root=runs", *extra],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.parametrize(
    "launcher",
    [[], ["launcher=submitit_local"]],
    ids=["local", "submitit_local"],
)
def test_sweeps_through_hydras_launchers_still_run(tmp_path: Path, launcher: list[str]) -> None:
    result = _sweep(tmp_path, *launcher, "seed=1,2")
    assert result.returncode == 0, result.stderr[-3000:]
    infos = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("run.json")]
    assert len(infos) == 2 and {i["status"] for i in infos} == {"completed"}


def test_python_dash_m_data_lists_its_subcommands(monkeypatch, capsys) -> None:
    """Issue 16, item 16: run as ``__main__``, the module still finds its subcommands."""
    monkeypatch.setattr(sys, "argv", ["sslequi-data", "--help"])
    with warnings.catch_warnings(), pytest.raises(SystemExit) as exit_info:
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: already imported
        runpy.run_module("sslequi.cli.data", run_name="__main__", alter_sys=True)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("check", "preview", "render3d", "show-augs"))


def test_eval_writes_nothing_here_and_takes_a_dataset_override(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """Issue 16, item 16: no ``outputs/`` in the working directory (it may be read-only),
    and the documented ``dataset={root: …}`` override composes."""
    from sslequi.train.run import pretrain

    run_dir = pretrain(pretrain_cli.compose_config([*TINY, f"run_dir={tmp_path / 'run'}"]))
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    args = [f"run={run_dir}", "probes=[knn]", "progress=false", "wandb=false"]
    code = _main(eval_cli.main, monkeypatch, "sslequi-eval", *args, "dataset={root: /elsewhere}")
    assert code == 0, capsys.readouterr().err
    assert list(workdir.iterdir()) == []
    results = json.loads((run_dir / "results.json").read_text())
    assert results


def test_eval_dataset_overrides_compose() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=eval_cli.SCHEMA_NAME, node=eval_cli.eval_schema())
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(eval_cli.eval_configs_dir()), version_base="1.3"):
        plain = eval_cli.to_eval_config(compose(eval_cli.CONFIG_NAME, overrides=["run=r"]))
        given = eval_cli.to_eval_config(
            compose(
                eval_cli.CONFIG_NAME,
                overrides=[
                    "run=r",
                    "dataset={root: /data/3DIEBench, resolution: 128}",
                    "ood_dataset={name: 3diebench_ood, root: /data/OOD}",
                ],
            )
        )
    assert plain.dataset == {} and plain.ood_dataset is None
    assert given.dataset == {"root": "/data/3DIEBench", "resolution": 128}
    assert given.ood_dataset == {"name": "3diebench_ood", "root": "/data/OOD"}


@pytest.mark.parametrize(
    "content", [b"", b"not a torch file", b"PK\x03\x04 truncated zip"], ids=["empty", "junk", "zip"]
)
def test_a_corrupt_feature_cache_is_named(tmp_path: Path, content: bytes) -> None:
    """Issue 16, item 12: an unreadable cache file is one clear error naming it."""
    path = tmp_path / "train-all-x.pt"
    path.write_bytes(content)
    key = FeatureKey("ckpt", "ds", "train", 16, "all", "float32")
    with pytest.raises(FeatureCacheMismatch, match=f"feature cache {path} is unreadable"):
        load_features(path, key)


def test_untrusted_entries_ignore_configs_without_a_hydra_node() -> None:
    assert untrusted_entries(OmegaConf.create({"method": {"_target_": "os.system"}})) == []
