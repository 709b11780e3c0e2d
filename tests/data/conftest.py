"""Shared fixtures: tiny rendered 3DIEBench-format roots (16–24 px, seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sslequi.data.check import CACHE_ENV
from sslequi.data.render.generate import RenderConfig, generate


def render_tiny(out: Path, **overrides: object) -> Path:
    settings: dict[str, object] = {
        "objects_per_class": 3,
        "views_per_object": 4,
        "resolution": 24,
        "progress": False,
    }
    settings.update(overrides)
    generate(RenderConfig.from_preset("tiny", out, **settings))
    return out


@pytest.fixture(scope="session")
def scan_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scan_cache")


@pytest.fixture(autouse=True)
def _scan_cache_in_tmp(scan_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The open-time scan caches into a temporary folder, never the user's cache."""
    monkeypatch.setenv(CACHE_ENV, str(scan_cache))


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_tiny(tmp_path_factory.mktemp("render") / "3DIEBench")


@pytest.fixture(scope="session")
def tiny_root_t(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_tiny(tmp_path_factory.mktemp("render_t") / "3DIEBench-T", variant="T")
