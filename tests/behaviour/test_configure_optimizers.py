"""Every return format of `configure_optimizers`, schedulers, and manual optimization."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import fulmen
from fulmen.utilities.exceptions import MisconfigurationException
from tests.helpers.models import QUIET, make_counting_model

Base = make_counting_model(fulmen)


def fit(model: Any, **kwargs: Any) -> fulmen.Trainer:
    trainer = fulmen.Trainer(
        **{**QUIET, "max_epochs": 2, "limit_train_batches": 4, "limit_val_batches": 2, **kwargs}
    )
    trainer.fit(model)
    return trainer


def with_optimizers(returned: Any) -> Any:
    class Model(Base):  # type: ignore[misc,valid-type]
        def configure_optimizers(self) -> Any:
            return returned(self)

    return Model()


def sgd(model: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.1)


@pytest.mark.parametrize(
    ("name", "factory", "schedulers"),
    [
        ("optimizer", lambda m: sgd(m), 0),
        ("list", lambda m: [sgd(m)], 0),
        ("tuple", lambda m: (sgd(m),), 0),
        ("two lists", lambda m: ([o := sgd(m)], [torch.optim.lr_scheduler.StepLR(o, 1)]), 1),
        (
            "dict",
            lambda m: {
                "optimizer": (o := sgd(m)),
                "lr_scheduler": torch.optim.lr_scheduler.StepLR(o, 1),
            },
            1,
        ),
        (
            "dict with scheduler dict",
            lambda m: {
                "optimizer": (o := sgd(m)),
                "lr_scheduler": {
                    "scheduler": torch.optim.lr_scheduler.StepLR(o, 1),
                    "interval": "step",
                },
            },
            1,
        ),
    ],
)
def test_configure_optimizers_return_formats(name: str, factory: Any, schedulers: int) -> None:
    trainer = fit(with_optimizers(factory))
    assert len(trainer.optimizers) == 1 and len(trainer.lr_scheduler_configs) == schedulers
    assert trainer.global_step == 8


def test_epoch_scheduler_steps_once_per_epoch_and_step_scheduler_every_step() -> None:
    def factory(m: Any) -> Any:
        o = torch.optim.SGD(m.parameters(), lr=1.0)
        return [o], [torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5)]

    trainer = fit(with_optimizers(factory))
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.25)

    def step_factory(m: Any) -> Any:
        o = torch.optim.SGD(m.parameters(), lr=1.0)
        return {
            "optimizer": o,
            "lr_scheduler": {
                "scheduler": torch.optim.lr_scheduler.StepLR(o, 1, gamma=0.5),
                "interval": "step",
                "frequency": 2,
            },
        }

    trainer = fit(with_optimizers(step_factory))
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.5**4)


def test_reduce_lr_on_plateau_steps_on_the_monitored_metric() -> None:
    def factory(m: Any) -> Any:
        o = torch.optim.SGD(m.parameters(), lr=1.0)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=0, factor=0.5, threshold=1e9)
        return {"optimizer": o, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}

    trainer = fit(with_optimizers(factory), max_epochs=3)
    # threshold=1e9 makes every epoch "no improvement": the LR halves after each of 3 epochs.
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.5**3)


def test_plateau_scheduler_without_monitor_is_a_clear_error() -> None:
    def factory(m: Any) -> Any:
        o = torch.optim.SGD(m.parameters(), lr=1.0)
        return [o], [torch.optim.lr_scheduler.ReduceLROnPlateau(o)]

    with pytest.raises(MisconfigurationException, match="monitor"):
        fit(with_optimizers(factory))


def test_plateau_monitor_missing_names_available_metrics() -> None:
    def factory(m: Any) -> Any:
        o = torch.optim.SGD(m.parameters(), lr=1.0)
        return {
            "optimizer": o,
            "lr_scheduler": {
                "scheduler": torch.optim.lr_scheduler.ReduceLROnPlateau(o),
                "monitor": "nope",
            },
        }

    with pytest.raises(MisconfigurationException, match="'nope'.*val_loss"):
        fit(with_optimizers(factory))


def test_two_optimizers_need_manual_optimization() -> None:
    with pytest.raises(MisconfigurationException, match="manual optimization"):
        fit(with_optimizers(lambda m: [sgd(m), sgd(m)]))


def test_none_from_configure_optimizers_warns_and_trains_nothing() -> None:
    model = with_optimizers(lambda m: None)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.warns(UserWarning, match="without an optimizer"):
        fit(model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


class GAN(Base):  # type: ignore[misc,valid-type]
    """Two optimizers stepped by hand, as in Lightning's GAN example."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.other = torch.nn.Linear(8, 1)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        first, second = self.optimizers()
        x, y = batch
        for opt, layer in ((first, self.layer), (second, self.other)):
            self.toggle_optimizer(opt)
            loss = torch.nn.functional.mse_loss(layer(x), y)
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
            self.untoggle_optimizer(opt)
        sched = self.lr_schedulers()
        sched.step()

    def configure_optimizers(self) -> Any:
        a = torch.optim.SGD(self.layer.parameters(), lr=0.1)
        b = torch.optim.SGD(self.other.parameters(), lr=0.1)
        return [a, b], [torch.optim.lr_scheduler.StepLR(a, 1, gamma=0.9)]


def test_manual_optimization_counts_every_optimizer_step() -> None:
    model = GAN()
    before = model.other.weight.detach().clone()
    trainer = fit(model, max_epochs=1)
    assert trainer.global_step == 8  # 4 batches x 2 optimizers, as Lightning counts
    assert not torch.equal(before, model.other.weight)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.9**4)


def test_manual_optimization_rejects_accumulation_and_clipping() -> None:
    with pytest.raises(MisconfigurationException, match="manual"):
        fit(GAN(), accumulate_grad_batches=2)
    with pytest.raises(MisconfigurationException, match="clip_gradients"):
        fit(GAN(), gradient_clip_val=1.0)
