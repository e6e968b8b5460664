"""CUDA: single device, mixed precision and 2-GPU DDP (skipped without CUDA; `scripts/gpu-check`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import fulmen
from tests.helpers.models import QUIET, loader

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).resolve().parents[2]


class Net(fulmen.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(8, 1)
        self.seen: list[tuple[str, torch.dtype]] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        out = self.layer(x)
        self.seen.append((x.device.type, out.dtype))
        return torch.nn.functional.mse_loss(out.float(), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def test_single_cuda_device_moves_model_and_batches() -> None:
    model = Net()
    trainer = fulmen.Trainer(accelerator="gpu", devices=1, max_epochs=1, **QUIET)
    trainer.fit(model, loader(32, batch_size=8))
    assert model.device.type == "cuda"
    assert {s[0] for s in model.seen} == {"cuda"}


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_mixed_precision_on_cuda(tmp_path: Path, precision: str) -> None:
    model = Net()
    trainer = fulmen.Trainer(
        accelerator="gpu", devices=1, max_epochs=2, precision=precision, **QUIET
    )
    trainer.fit(model, loader(32, batch_size=8))
    dtype = torch.float16 if precision == "16-mixed" else torch.bfloat16
    assert {s[1] for s in model.seen} == {dtype}
    assert model.layer.weight.dtype == torch.float32
    trainer.save_checkpoint(tmp_path / "mixed.ckpt")
    checkpoint = torch.load(tmp_path / "mixed.ckpt", weights_only=True)
    if precision == "16-mixed":
        assert checkpoint["MixedPrecision"]["scale"] > 0  # the GradScaler's state is saved


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_ddp_on_two_gpus(tmp_path: Path) -> None:
    script = ROOT / "tests" / "distributed" / "ddp_script.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FULMEN_TEST_ACCELERATOR": "gpu"}
    result = subprocess.run(
        [sys.executable, str(script), "fit", "ddp", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list(tmp_path.glob("rank*.json"))) == 2
