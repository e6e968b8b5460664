"""StochasticWeightAveraging: arguments, the epoch schedule and its state, with a fake trainer."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch.optim.swa_utils import SWALR

import fulmen as pl
from fulmen.callbacks.stochastic_weight_avg import StochasticWeightAveraging
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.types import LRSchedulerConfig


class Net(pl.LightningModule):
    def __init__(self, batch_norm: bool = False) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.bn = torch.nn.BatchNorm1d(2) if batch_norm else torch.nn.Identity()


def bn_of(module: Net) -> torch.nn.BatchNorm1d:
    assert isinstance(module.bn, torch.nn.BatchNorm1d)
    return module.bn


def running_mean(module: Net) -> torch.Tensor:
    mean = bn_of(module).running_mean
    assert mean is not None
    return mean


def fake_trainer(module: Net, max_epochs: int | None = 4, schedulers: int = 0) -> SimpleNamespace:
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    configs = [
        LRSchedulerConfig(torch.optim.lr_scheduler.StepLR(optimizer, 1)) for _ in range(schedulers)
    ]
    return SimpleNamespace(
        optimizers=[optimizer],
        lr_scheduler_configs=configs,
        max_epochs=max_epochs,
        max_steps=-1,
        current_epoch=0,
        global_step=0,
        accumulate_grad_batches=1,
        num_training_batches=4,
    )


def set_weight(module: Net, value: float) -> None:
    with torch.no_grad():
        module.layer.weight.fill_(value)


def run_epochs(
    callback: StochasticWeightAveraging, trainer: Any, module: Net, values: list[float]
) -> None:
    """Run one epoch per value: at its start the weights hold the previous value."""
    callback.setup(trainer, module, "fit")
    callback.on_fit_start(trainer, module)
    for epoch, value in enumerate(values):
        trainer.current_epoch = epoch
        callback.on_train_epoch_start(trainer, module)
        set_weight(module, value)
        trainer.global_step += 1
        callback.on_train_batch_end(trainer, module, None, None, 0)
    trainer.current_epoch = len(values)
    callback.on_train_end(trainer, module)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"swa_epoch_start": 0}, r"swa_epoch_start=0\) is invalid: expected an int >= 1"),
        ({"swa_epoch_start": 1.5}, r"swa_epoch_start=1.5\)"),
        ({"swa_epoch_start": "late"}, r"swa_epoch_start='late'\)"),
        ({"swa_epoch_start": True}, r"swa_epoch_start=True\)"),
        ({"swa_lrs": 0.0}, r"swa_lrs=0.0\) is invalid: expected a positive float"),
        ({"swa_lrs": [0.1, -1.0]}, r"swa_lrs=\[0.1, -1.0\]\)"),
        ({"swa_lrs": []}, r"swa_lrs=\[\]\)"),
        ({"swa_lrs": "0.1"}, r"swa_lrs='0.1'\)"),
        ({"annealing_epochs": -1}, r"annealing_epochs=-1\) is invalid: expected an int >= 0"),
        ({"annealing_epochs": 1.5}, r"annealing_epochs=1.5\)"),
        ({"annealing_strategy": "step"}, r"annealing_strategy='step'\) is invalid"),
        ({"avg_fn": 3}, r"avg_fn=3\) is invalid"),
        ({"device": 3.5}, r"device=3.5\) is invalid"),
    ],
)
def test_invalid_arguments_are_refused_with_their_value(kwargs: dict[str, Any], match: str) -> None:
    arguments: dict[str, Any] = {"swa_lrs": 0.1, **kwargs}
    with pytest.raises(MisconfigurationException, match=match):
        StochasticWeightAveraging(**arguments)


def test_valid_arguments_are_accepted() -> None:
    StochasticWeightAveraging(swa_lrs=[0.1, 0.2], swa_epoch_start=0.0, annealing_epochs=0)
    StochasticWeightAveraging(
        swa_lrs=1, swa_epoch_start=1.0, annealing_strategy="linear", device=None
    )


def test_integer_start_counts_epochs_from_one() -> None:
    assert StochasticWeightAveraging(swa_lrs=0.1, swa_epoch_start=1).swa_start == 0
    assert StochasticWeightAveraging(swa_lrs=0.1, swa_epoch_start=5).swa_start == 4


def test_fraction_start_is_resolved_against_max_epochs() -> None:
    module = Net()
    callback = StochasticWeightAveraging(swa_lrs=0.1, swa_epoch_start=0.8)
    trainer = fake_trainer(module, max_epochs=10)
    callback.setup(trainer, module, "fit")  # type: ignore[arg-type]
    callback.on_fit_start(trainer, module)  # type: ignore[arg-type]
    assert (callback.swa_start, callback.swa_end) == (7, 9)


def test_default_avg_fn_is_the_running_mean() -> None:
    averaged = StochasticWeightAveraging.avg_fn(
        torch.tensor(2.0), torch.tensor(5.0), torch.tensor(2)
    )
    assert averaged.item() == 3.0


def test_average_holds_the_weights_at_the_start_of_each_swa_epoch() -> None:
    module = Net()
    callback = StochasticWeightAveraging(swa_lrs=0.05, swa_epoch_start=2)
    trainer = fake_trainer(module, max_epochs=4)
    run_epochs(callback, trainer, module, [1.0, 2.0, 6.0, 100.0])
    # Snapshots at the start of epochs 1, 2, 3 are 1, 2, 6; the last epoch's 100 is dropped.
    assert torch.equal(module.layer.weight, torch.full((1, 2), 3.0))
    assert callback.n_averaged is not None and int(callback.n_averaged) == 3


def test_swalr_replaces_the_scheduler_when_averaging_starts() -> None:
    module = Net()
    callback = StochasticWeightAveraging(swa_lrs=0.05, swa_epoch_start=2, annealing_epochs=1)
    trainer = fake_trainer(module, max_epochs=4, schedulers=1)
    callback.setup(trainer, module, "fit")  # type: ignore[arg-type]
    callback.on_fit_start(trainer, module)  # type: ignore[arg-type]
    callback.on_train_epoch_start(trainer, module)  # type: ignore[arg-type]
    assert isinstance(trainer.lr_scheduler_configs[0].scheduler, torch.optim.lr_scheduler.StepLR)
    trainer.current_epoch = 1
    callback.on_train_epoch_start(trainer, module)  # type: ignore[arg-type]
    (config,) = trainer.lr_scheduler_configs
    assert isinstance(config.scheduler, SWALR)
    assert (config.interval, config.frequency) == ("epoch", 1)
    assert trainer.optimizers[0].param_groups[0]["initial_lr"] == 0.05


def test_swalr_is_added_when_there_is_no_scheduler() -> None:
    module = Net()
    callback = StochasticWeightAveraging(swa_lrs=0.05, swa_epoch_start=1)
    trainer = fake_trainer(module, max_epochs=2)
    callback.setup(trainer, module, "fit")  # type: ignore[arg-type]
    callback.on_fit_start(trainer, module)  # type: ignore[arg-type]
    callback.on_train_epoch_start(trainer, module)  # type: ignore[arg-type]
    assert [type(c.scheduler) for c in trainer.lr_scheduler_configs] == [SWALR]


def test_one_rate_per_param_group_must_match_the_groups() -> None:
    module = Net()
    callback = StochasticWeightAveraging(swa_lrs=[0.1, 0.2], swa_epoch_start=1)
    trainer = fake_trainer(module)
    callback.setup(trainer, module, "fit")  # type: ignore[arg-type]
    callback.on_fit_start(trainer, module)  # type: ignore[arg-type]
    with pytest.raises(MisconfigurationException, match=r"gives 2 rates .* 1 parameter groups"):
        callback.on_train_epoch_start(trainer, module)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"optimizers": []}, "exactly one optimizer; `configure_optimizers` returned 0"),
        (
            {"schedulers": 2},
            "at most one learning-rate scheduler; `configure_optimizers` returned 2",
        ),
        ({"max_epochs": -1}, r"finite `Trainer\(max_epochs=...\)`, got max_epochs=-1"),
    ],
)
def test_fit_start_refuses_setups_swa_cannot_handle(change: dict[str, Any], match: str) -> None:
    module = Net()
    trainer = fake_trainer(
        module, max_epochs=change.get("max_epochs", 4), schedulers=change.get("schedulers", 0)
    )
    if "optimizers" in change:
        trainer.optimizers = change["optimizers"]
    callback = StochasticWeightAveraging(swa_lrs=0.1)
    callback.setup(trainer, module, "fit")  # type: ignore[arg-type]
    with pytest.raises(MisconfigurationException, match=match):
        callback.on_fit_start(trainer, module)  # type: ignore[arg-type]


def test_max_epochs_none_means_the_trainer_default_of_1000() -> None:
    module = Net()
    callback = StochasticWeightAveraging(swa_lrs=0.1, swa_epoch_start=0.5)
    trainer = fake_trainer(module, max_epochs=None)
    callback.setup(trainer, module, "fit")  # type: ignore[arg-type]
    callback.on_fit_start(trainer, module)  # type: ignore[arg-type]
    assert (callback.swa_start, callback.swa_end) == (499, 999)
    trainer.current_epoch = 499
    callback.on_train_epoch_start(trainer, module)  # type: ignore[arg-type]
    assert isinstance(trainer.lr_scheduler_configs[0].scheduler, SWALR)


def test_a_fraction_start_is_unknown_before_fit() -> None:
    with pytest.raises(RuntimeError, match=r"swa_epoch_start=0.8 \(a fraction of max_epochs\)"):
        _ = StochasticWeightAveraging(swa_lrs=0.1).swa_start


def test_batch_norm_model_gets_one_more_epoch_that_ends_on_the_average() -> None:
    module = Net(batch_norm=True)
    callback = StochasticWeightAveraging(swa_lrs=0.05, swa_epoch_start=2)
    trainer = fake_trainer(module, max_epochs=3)
    callback.setup(trainer, module, "fit")  # type: ignore[arg-type]
    callback.on_fit_start(trainer, module)  # type: ignore[arg-type]
    assert trainer.max_epochs == 4
    for epoch, value in enumerate([1.0, 3.0, 50.0]):
        trainer.current_epoch = epoch
        callback.on_train_epoch_start(trainer, module)  # type: ignore[arg-type]
        set_weight(module, value)
        trainer.global_step += 1
    trainer.current_epoch = 3
    running_mean(module).fill_(9.0)
    bn_of(module).momentum = 0.3
    callback.on_train_epoch_start(trainer, module)  # type: ignore[arg-type]
    assert torch.equal(module.layer.weight, torch.full((1, 2), 2.0))  # mean of 1 and 3
    assert torch.equal(running_mean(module), torch.zeros(2))
    assert bn_of(module).momentum is None
    assert trainer.accumulate_grad_batches == 4  # one optimizer step for the whole pass
    set_weight(module, -7.0)  # that step moved the weights ...
    trainer.global_step += 1
    callback.on_train_batch_end(trainer, module, None, None, 3)  # type: ignore[arg-type]
    assert torch.equal(module.layer.weight, torch.full((1, 2), 2.0))  # ... and is undone
    trainer.current_epoch = 4
    callback.on_train_end(trainer, module)  # type: ignore[arg-type]
    assert (trainer.max_epochs, trainer.accumulate_grad_batches, bn_of(module).momentum) == (
        3,
        1,
        0.3,
    )


def test_state_round_trips_through_a_weights_only_load() -> None:
    module = Net()
    callback = StochasticWeightAveraging(swa_lrs=0.05, swa_epoch_start=2, annealing_epochs=2)
    trainer = fake_trainer(module, max_epochs=4)
    callback.setup(trainer, module, "fit")  # type: ignore[arg-type]
    callback.on_fit_start(trainer, module)  # type: ignore[arg-type]
    for epoch, value in enumerate([1.0, 2.0, 3.0]):
        trainer.current_epoch = epoch
        callback.on_train_epoch_start(trainer, module)  # type: ignore[arg-type]
        set_weight(module, value)
    buffer = io.BytesIO()
    torch.save(callback.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state["n_averaged"] == 2 and state["latest_update_epoch"] == 2
    assert set(state) == {
        "n_averaged",
        "latest_update_epoch",
        "scheduler_state",
        "average_model_state",
    }
    assert torch.equal(state["average_model_state"]["layer.weight"], torch.full((1, 2), 1.5))

    resumed_module = Net()
    resumed = StochasticWeightAveraging(swa_lrs=0.05, swa_epoch_start=2, annealing_epochs=2)
    new_trainer = fake_trainer(resumed_module, max_epochs=4, schedulers=1)
    resumed.setup(new_trainer, resumed_module, "fit")  # type: ignore[arg-type]
    resumed.load_state_dict(state)
    set_weight(resumed_module, 3.0)
    new_trainer.current_epoch = 3
    resumed.on_fit_start(new_trainer, resumed_module)  # type: ignore[arg-type]
    # Resumed mid-averaging, SWALR takes the scheduler's place at once, with its saved state.
    (config,) = new_trainer.lr_scheduler_configs
    assert isinstance(config.scheduler, SWALR)
    assert config.scheduler.state_dict()["_step_count"] == state["scheduler_state"]["_step_count"]
    resumed.on_train_epoch_start(new_trainer, resumed_module)  # type: ignore[arg-type]
    new_trainer.current_epoch = 4
    resumed.on_train_end(new_trainer, resumed_module)  # type: ignore[arg-type]
    assert torch.equal(resumed_module.layer.weight, torch.full((1, 2), 2.0))  # mean of 1, 2, 3


def test_checkpoint_scheduler_state_is_kept_from_the_user_scheduler() -> None:
    callback = StochasticWeightAveraging(swa_lrs=0.05)
    checkpoint: dict[str, Any] = {
        "callbacks": {callback.state_key: {"scheduler_state": {"last_epoch": 3}}},
        "lr_schedulers": [{"last_epoch": 3}],
    }
    callback.on_load_checkpoint(None, None, checkpoint)  # type: ignore[arg-type]
    assert checkpoint["lr_schedulers"] == []
    before_swa = {
        "callbacks": {callback.state_key: {"scheduler_state": None}},
        "lr_schedulers": [{}],
    }
    callback.on_load_checkpoint(None, None, before_swa)  # type: ignore[arg-type]
    assert before_swa["lr_schedulers"] == [{}]


def test_late_start_without_saved_scheduler_warns() -> None:
    module = Net()
    callback = StochasticWeightAveraging(swa_lrs=0.05, swa_epoch_start=1)
    trainer = fake_trainer(module, max_epochs=4)
    callback.setup(trainer, module, "fit")  # type: ignore[arg-type]
    callback.on_fit_start(trainer, module)  # type: ignore[arg-type]
    trainer.current_epoch = 2
    with pytest.warns(UserWarning, match="without a saved SWALR state"):
        callback.on_train_epoch_start(trainer, module)  # type: ignore[arg-type]


def test_batch_norm_helpers_reset_and_restore_statistics() -> None:
    module = Net(batch_norm=True)
    batch_norm = bn_of(module)
    assert batch_norm.running_var is not None and batch_norm.num_batches_tracked is not None
    batch_norm.running_var.fill_(4.0)
    batch_norm.num_batches_tracked.fill_(7)
    callback = StochasticWeightAveraging(swa_lrs=0.1)
    assert callback.pl_module_contains_batch_norm(module)
    assert not callback.pl_module_contains_batch_norm(Net())
    callback.reset_batch_norm_and_save_state(module)
    assert batch_norm.running_var.tolist() == [1.0, 1.0]
    assert int(batch_norm.num_batches_tracked) == 0
    assert batch_norm.momentum is None
    callback.reset_momenta()
    assert batch_norm.momentum == 0.1


def test_transfer_weights_copies_parameters_only() -> None:
    source, target = Net(batch_norm=True), Net(batch_norm=True)
    running_mean(source).fill_(5.0)
    StochasticWeightAveraging.transfer_weights(source, target)
    assert torch.equal(source.layer.weight, target.layer.weight)
    assert torch.equal(running_mean(target), torch.zeros(2))
