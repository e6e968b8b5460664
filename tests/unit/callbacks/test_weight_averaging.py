"""WeightAveraging and EMAWeightAveraging driven by a fake trainer, hook by hook."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

import fulmen as pl
from fulmen.callbacks.weight_averaging import EMAWeightAveraging, WeightAveraging
from fulmen.utilities.exceptions import MisconfigurationException


class Net(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.bn = torch.nn.BatchNorm1d(2)


def running_mean(module: Net) -> torch.Tensor:
    mean = module.bn.running_mean
    assert mean is not None
    return mean


def fake_trainer(fn: str = "fit") -> SimpleNamespace:
    return SimpleNamespace(global_step=0, current_epoch=0, state=SimpleNamespace(fn=fn))


def set_weight(module: Net, value: float) -> None:
    with torch.no_grad():
        module.layer.weight.fill_(value)


def step(callback: WeightAveraging, trainer: SimpleNamespace, module: Net, value: float) -> None:
    """One optimizer step that leaves every weight at `value`."""
    set_weight(module, value)
    trainer.global_step += 1
    callback.on_train_batch_end(trainer, module, None, None, 0)  # type: ignore[arg-type]


def started(callback: WeightAveraging, module: Net | None = None) -> tuple[Any, Net]:
    module = module or Net()
    trainer = fake_trainer()
    callback.setup(trainer, module, "fit")  # type: ignore[arg-type]
    callback.on_fit_start(trainer, module)  # type: ignore[arg-type]
    return trainer, module


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"momentum": 0.9}, r"unknown keyword arguments \['momentum'\]"),
        ({"avg_fn": 3}, r"avg_fn=3\) is invalid"),
        ({"device": "gpu-please"}, r"device='gpu-please'\) is invalid"),
    ],
)
def test_weight_averaging_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(MisconfigurationException, match=match):
        WeightAveraging(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"decay": 1.5}, r"decay=1.5\) is invalid: expected a number in \[0, 1\]"),
        ({"decay": -0.1}, r"decay=-0.1\)"),
        ({"update_every_n_steps": 0}, r"update_every_n_steps=0\) is invalid: expected an int >= 1"),
        ({"update_starting_at_step": -1}, r"update_starting_at_step=-1\)"),
        ({"update_starting_at_epoch": 1.5}, r"update_starting_at_epoch=1.5\)"),
    ],
)
def test_ema_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EMAWeightAveraging(**kwargs)


def test_default_should_update_after_every_step_and_no_epoch() -> None:
    callback = WeightAveraging()
    assert callback.should_update(step_idx=0) is True
    assert callback.should_update(epoch_idx=0) is False


# The schedules below are what pytorch_lightning 2.6.6 calls `should_update` true for.
@pytest.mark.parametrize(
    ("kwargs", "steps", "epochs"),
    [
        ({}, list(range(12)), []),
        ({"update_every_n_steps": 2}, [0, 2, 4, 6, 8, 10], []),
        ({"update_starting_at_step": 5}, [5, 6, 7, 8, 9, 10, 11], []),
        ({"update_starting_at_step": 5, "update_every_n_steps": 3}, [6, 9], []),
        ({"update_starting_at_epoch": 1}, list(range(12)), [1, 2]),
        ({"update_starting_at_epoch": 1, "update_starting_at_step": 2}, list(range(2, 12)), [1, 2]),
    ],
)
def test_ema_should_update_follows_lightning_schedule(
    kwargs: dict[str, Any], steps: list[int], epochs: list[int]
) -> None:
    ema = EMAWeightAveraging(**kwargs)
    assert [s for s in range(12) if ema.should_update(step_idx=s)] == steps
    assert [e for e in range(3) if ema.should_update(epoch_idx=e)] == epochs


def test_average_is_the_mean_of_the_weights_after_each_step() -> None:
    callback = WeightAveraging()
    trainer, module = started(callback)
    for value in (1.0, 2.0, 6.0):
        step(callback, trainer, module, value)
    callback.on_train_end(trainer, module)  # type: ignore[arg-type]
    assert torch.equal(module.layer.weight, torch.full((1, 2), 3.0))


def test_ema_average_follows_decay() -> None:
    callback = EMAWeightAveraging(decay=0.5)
    trainer, module = started(callback)
    for value in (4.0, 0.0, 2.0):
        step(callback, trainer, module, value)
    callback.on_train_end(trainer, module)  # type: ignore[arg-type]
    # first update copies: 4; then 0.5 * 4 + 0.5 * 0 = 2; then 0.5 * 2 + 0.5 * 2 = 2
    assert torch.equal(module.layer.weight, torch.full((1, 2), 2.0))


def test_batches_without_an_optimizer_step_do_not_update() -> None:
    callback = WeightAveraging()
    trainer, module = started(callback)
    asked: list[int | None] = []
    original = callback.should_update

    def spy(step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        asked.append(step_idx)
        return original(step_idx=step_idx, epoch_idx=epoch_idx)

    callback.should_update = spy  # type: ignore[method-assign]
    step(callback, trainer, module, 1.0)
    callback.on_train_batch_end(trainer, module, None, None, 1)  # type: ignore[arg-type]
    step(callback, trainer, module, 3.0)
    assert asked == [0, 1]
    assert callback._average_model is not None
    assert int(callback._average_model.n_averaged) == 2


def test_epoch_end_updates_when_should_update_says_so() -> None:
    class PerEpoch(WeightAveraging):
        def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
            return epoch_idx is not None

    callback = PerEpoch()
    trainer, module = started(callback)
    step(callback, trainer, module, 5.0)  # a step, not averaged
    set_weight(module, 2.0)
    callback.on_train_epoch_end(trainer, module)  # type: ignore[arg-type]
    callback.on_train_epoch_end(trainer, module)  # same epoch again: no second update
    trainer.current_epoch = 1
    set_weight(module, 4.0)
    callback.on_train_epoch_end(trainer, module)  # type: ignore[arg-type]
    callback.on_train_end(trainer, module)  # type: ignore[arg-type]
    assert torch.equal(module.layer.weight, torch.full((1, 2), 3.0))


def test_validation_sees_the_average_and_training_resumes_with_its_weights() -> None:
    callback = WeightAveraging()
    trainer, module = started(callback)
    step(callback, trainer, module, 2.0)
    step(callback, trainer, module, 4.0)
    callback.on_validation_epoch_start(trainer, module)  # type: ignore[arg-type]
    assert torch.equal(module.layer.weight, torch.full((1, 2), 3.0))
    callback.on_validation_epoch_end(trainer, module)  # type: ignore[arg-type]
    assert torch.equal(module.layer.weight, torch.full((1, 2), 4.0))


def test_average_also_covers_batchnorm_statistics_by_default() -> None:
    callback = WeightAveraging()
    trainer, module = started(callback)
    for value in (1.0, 3.0):
        running_mean(module).fill_(value)
        step(callback, trainer, module, value)
    callback.on_train_end(trainer, module)  # type: ignore[arg-type]
    assert torch.equal(running_mean(module), torch.full((2,), 2.0))


def test_without_buffers_the_statistics_are_the_latest() -> None:
    callback = WeightAveraging(use_buffers=False)
    trainer, module = started(callback)
    for value in (1.0, 3.0):
        running_mean(module).fill_(value)
        step(callback, trainer, module, value)
    callback.on_train_end(trainer, module)  # type: ignore[arg-type]
    assert torch.equal(module.layer.weight, torch.full((1, 2), 2.0))
    assert torch.equal(running_mean(module), torch.full((2,), 3.0))


def test_before_any_update_validation_and_the_end_keep_the_trained_weights() -> None:
    callback = EMAWeightAveraging(update_starting_at_step=100)
    trainer, module = started(callback)
    step(callback, trainer, module, 7.0)
    callback.on_validation_epoch_start(trainer, module)  # type: ignore[arg-type]
    assert torch.equal(module.layer.weight, torch.full((1, 2), 7.0))
    callback.on_validation_epoch_end(trainer, module)  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="never updated its average"):
        callback.on_train_end(trainer, module)  # type: ignore[arg-type]
    assert torch.equal(module.layer.weight, torch.full((1, 2), 7.0))


def test_validation_outside_fit_is_left_alone() -> None:
    callback = WeightAveraging()
    trainer, module = started(callback)
    step(callback, trainer, module, 2.0)
    step(callback, trainer, module, 4.0)
    trainer.state.fn = "validate"
    callback.on_validation_epoch_start(trainer, module)  # type: ignore[arg-type]
    assert torch.equal(module.layer.weight, torch.full((1, 2), 4.0))


def test_checkpoint_holds_average_as_state_dict_and_current_weights_aside() -> None:
    callback = WeightAveraging()
    trainer, module = started(callback)
    step(callback, trainer, module, 2.0)
    step(callback, trainer, module, 4.0)
    checkpoint: dict[str, Any] = {"state_dict": module.state_dict()}
    callback.on_save_checkpoint(trainer, module, checkpoint)  # type: ignore[arg-type]
    assert torch.equal(checkpoint["state_dict"]["layer.weight"], torch.full((1, 2), 3.0))
    assert torch.equal(checkpoint["current_model_state"]["layer.weight"], torch.full((1, 2), 4.0))
    assert set(checkpoint["averaging_state"]) == {"n_averaged"}
    assert int(checkpoint["averaging_state"]["n_averaged"]) == 2
    assert callback.state_dict() == {"latest_update_step": 2}

    resumed = WeightAveraging()
    new_trainer, new_module = started(resumed)
    new_module.load_state_dict(checkpoint["state_dict"])  # what the trainer restores first
    resumed.on_load_checkpoint(new_trainer, new_module, checkpoint)  # type: ignore[arg-type]
    resumed.load_state_dict(callback.state_dict())
    assert torch.equal(new_module.layer.weight, torch.full((1, 2), 4.0))
    new_trainer.global_step = 2
    step(resumed, new_trainer, new_module, 6.0)
    resumed.on_train_end(new_trainer, new_module)  # type: ignore[arg-type]
    assert torch.equal(new_module.layer.weight, torch.full((1, 2), 4.0))  # mean of 2, 4, 6


def test_plain_checkpoint_starts_model_and_average_from_state_dict() -> None:
    callback = WeightAveraging()
    trainer, module = started(callback)
    set_weight(module, 5.0)
    checkpoint = {"state_dict": module.state_dict()}
    with pytest.warns(UserWarning, match="not written with WeightAveraging"):
        callback.on_load_checkpoint(trainer, module, checkpoint)  # type: ignore[arg-type]
    assert callback._average_model is not None
    average = callback._average_model.module
    assert isinstance(average, Net)
    assert torch.equal(average.layer.weight, torch.full((1, 2), 5.0))


def test_setup_copies_layers_built_in_configure_model() -> None:
    class Lazy(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer: torch.nn.Module | None = None

        def configure_model(self) -> None:
            if self.layer is None:
                self.layer = torch.nn.Linear(2, 1)

    module = Lazy()
    callback = WeightAveraging()
    with pytest.warns(UserWarning, match="calls `configure_model\\(\\)` itself"):
        callback.setup(fake_trainer(), module, "fit")  # type: ignore[arg-type]
    assert callback._average_model is not None
    assert isinstance(callback._average_model.module.layer, torch.nn.Linear)


def test_average_lives_on_the_requested_device_and_leaves_the_trainer_out() -> None:
    module = Net()
    trainer = fake_trainer()
    module.__dict__["attached_to"] = trainer  # the copy must not drag the trainer along
    callback = WeightAveraging(device="cpu", avg_fn=lambda average, current, n: current)
    callback.setup(trainer, module, "fit")  # type: ignore[arg-type]
    assert callback._average_model is not None
    assert callback._average_model.module.attached_to is None
    assert callback._average_model.module.layer.weight.device == torch.device("cpu")


def test_setup_outside_fit_builds_nothing() -> None:
    callback = WeightAveraging()
    callback.setup(fake_trainer("validate"), Net(), "validate")  # type: ignore[arg-type]
    assert callback._average_model is None
