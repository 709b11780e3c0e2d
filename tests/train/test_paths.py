"""No run leaves its output root (issue 16 item 15): an explicit ``run_slug``,
``launcher.sweep_id`` or ``$SSLEQUI_SWEEP_ID`` holding ``../`` (or any ``/``) is refused
with the key named, through the Python API and through the Hydra CLI, before anything is
created."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sslequi.cli.pretrain import _slug, _sweep_name
from sslequi.config import ConfigError
from sslequi.train.run import pretrain
from sslequi.train.rundir import check_path_component, run_dir_path, sweep_id

ESCAPES = ["../escaped", "../../escaped", "a/b", "..", ".", "/abs", "a\\b"]


@pytest.mark.parametrize("value", ESCAPES)
def test_path_components_refuse_escapes(value: str) -> None:
    with pytest.raises(ConfigError, match="run_slug=.*not a single folder name"):
        check_path_component(value, "run_slug")
    with pytest.raises(ConfigError, match="launcher.sweep_id"):
        run_dir_path("runs", "exp", "slug", value)
    with pytest.raises(ConfigError, match="run_slug"):
        run_dir_path("runs", "exp", value)
    with pytest.raises(ConfigError, match="experiment"):
        run_dir_path("runs", value, "slug")


def test_ordinary_names_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("method-sie_optim.lr-0.1", "sweep-20261127-a1b2c3", "my run", "a..b"):
        assert check_path_component(value, "run_slug") == value
    monkeypatch.setenv("SSLEQUI_SWEEP_ID", "../up")
    with pytest.raises(ConfigError, match=r"\$SSLEQUI_SWEEP_ID='../up'"):
        sweep_id()
    with pytest.raises(ConfigError, match="launcher.sweep_id"):
        sweep_id("../up")


@pytest.mark.parametrize(
    ("override", "env", "key"),
    [
        ("run_slug=../../escaped", None, "run_slug"),
        ("launcher.sweep_id=../../escaped", None, "launcher.sweep_id"),
        (None, "../../escaped", "$SSLEQUI_SWEEP_ID"),
    ],
)
def test_pretrain_refuses_escaping_names(
    compose_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, override, env, key
) -> None:
    root = tmp_path / "a" / "b" / "runs"
    if env:
        monkeypatch.setenv("SSLEQUI_SWEEP_ID", env)
    overrides = ["run_dir=null", f"output_root={root}"] + ([override] if override else [])
    with pytest.raises(ConfigError, match=rf"{key.replace('$', '[$]')}=.*single folder name"):
        pretrain(compose_cfg(*overrides))
    assert not any(tmp_path.rglob("*.json")) and not (tmp_path / "a").exists()


def test_hydra_resolvers_exit_cleanly(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    with pytest.raises(SystemExit) as code:
        _slug("../x", [])
    assert code.value.code == 2 and "run_slug='../x'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _sweep_name("../x", "single")
    monkeypatch.setenv("SSLEQUI_SWEEP_ID", "a/../../b")
    with pytest.raises(SystemExit):
        _sweep_name(None, "single")
    assert "$SSLEQUI_SWEEP_ID" in capsys.readouterr().err
    assert _slug(None, ["optim.lr=../x"]) == "optim.lr-..-x"  # derived: sanitised


def test_cli_refuses_an_escaping_slug_before_creating_anything(
    subprocess_env, tmp_path: Path
) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    result = subprocess.run(
        [sys.executable, "-m", "sslequi.cli.pretrain", "run_slug=../../../escaped"],
        cwd=work,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "run_slug='../../../escaped' is not a single folder name" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == [
        Path("a"),
        Path("a/b"),
    ]
