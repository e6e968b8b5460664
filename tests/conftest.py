"""Shared fixtures: every test runs in its own working directory, with seeded RNGs."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Files a Trainer writes by default (lightning_logs/, checkpoints) land in the test's folder.
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    for key in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS"):
        os.environ.pop(key, None)
    # fulmen's logger does not propagate (it prints by itself); in tests let caplog see it.
    monkeypatch.setattr(logging.getLogger("fulmen"), "propagate", True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
