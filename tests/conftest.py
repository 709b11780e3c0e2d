"""Suite-wide test settings: torch on one thread.

Tiny models run fastest single-threaded, and several test processes may share the CPU
(oversubscribed OpenMP threads stall each other).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
