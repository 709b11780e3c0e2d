"""Shared study fixtures: one tiny render for every test that only reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sslequi.data.render.generate import RenderConfig, generate


@pytest.fixture(scope="session")
def tiny_render(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``tiny`` preset with 8 objects per class (24 train, 8 val objects), rendered once
    per session; tests read it and write their runs elsewhere."""
    root = tmp_path_factory.mktemp("study") / "render"
    generate(RenderConfig.from_preset("tiny", root, objects_per_class=8, progress=False))
    return root
