"""Precision settings and torch.compile on the CPU (the CUDA variants are in tests/gpu)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import fulmen
from tests.helpers.models import QUIET, loader


class Recorder(fulmen.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(8, 1)
        self.dtypes: list[torch.dtype] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        out = self.layer(x)
        self.dtypes.append(out.dtype)
        return torch.nn.functional.mse_loss(out.float(), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def _fit(model: fulmen.LightningModule, **kwargs: Any) -> fulmen.Trainer:
    trainer = fulmen.Trainer(max_epochs=3, **QUIET, **kwargs)
    trainer.fit(model, loader(32, batch_size=8))
    return trainer


def test_bf16_mixed_autocasts_steps_on_cpu_and_keeps_float32_weights() -> None:
    model = Recorder()
    before = model.layer.weight.detach().clone()
    trainer = _fit(model, accelerator="cpu", precision="bf16-mixed")
    assert trainer.precision == "bf16-mixed"
    assert set(model.dtypes) == {torch.bfloat16}
    assert model.layer.weight.dtype == torch.float32
    assert not torch.equal(model.layer.weight, before)


def test_true_half_and_double_precision_cast_the_weights() -> None:
    for precision, dtype in (("bf16-true", torch.bfloat16), ("64-true", torch.float64)):
        model = Recorder()
        _fit(model, accelerator="cpu", precision=precision)
        assert model.layer.weight.dtype == dtype and set(model.dtypes) == {dtype}


def test_a_torch_compiled_module_trains_like_the_eager_one() -> None:
    torch.manual_seed(0)
    eager = Recorder()
    torch.manual_seed(0)
    compiled = Recorder()
    compiled.layer = torch.compile(compiled.layer, backend="aot_eager")  # type: ignore[assignment]
    _fit(eager, accelerator="cpu")
    _fit(compiled, accelerator="cpu")
    torch.testing.assert_close(
        compiled.state_dict()["layer._orig_mod.weight"], eager.state_dict()["layer.weight"]
    )


def test_init_module_creates_parameters_in_the_true_precision() -> None:
    for precision, dtype in (
        ("bf16-true", torch.bfloat16),
        ("16-true", torch.float16),
        ("64-true", torch.float64),
        ("32-true", torch.float32),
    ):
        trainer = fulmen.Trainer(accelerator="cpu", precision=precision, **QUIET)
        with trainer.init_module():
            layer = torch.nn.Linear(2, 2)
        assert layer.weight.dtype == dtype, precision
    assert torch.get_default_dtype() == torch.float32  # put back afterwards


def test_learning_rate_monitor_publishes_rates_to_callback_metrics(tmp_path: Any) -> None:
    from fulmen.callbacks import LearningRateMonitor
    from fulmen.loggers import CSVLogger

    trainer = fulmen.Trainer(
        max_epochs=1,
        logger=CSVLogger(str(tmp_path)),
        callbacks=[LearningRateMonitor()],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(Recorder(), loader(32, batch_size=8))
    assert float(trainer.callback_metrics["lr-SGD"]) == pytest.approx(0.05)
