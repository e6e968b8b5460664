"""LearningRateMonitor against a fake trainer: logged keys, values, steps and cadence."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from fulmen.callbacks.lr_monitor import LearningRateMonitor
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.types import LRSchedulerConfig

MODULE: Any = None  # the hooks under test do not touch the LightningModule


class RecordingLogger:
    def __init__(self) -> None:
        self.calls: list[tuple[int | None, dict[str, Any]]] = []

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.calls.append((step, dict(metrics)))


def make_trainer(optimizers: list[Any], configs: list[Any] | None = None, **overrides: Any) -> Any:
    logger = RecordingLogger()
    trainer = SimpleNamespace(
        loggers=[logger],
        optimizers=optimizers,
        lr_scheduler_configs=configs or [],
        global_step=0,
        log_every_n_steps=1,
        should_stop=False,
        callback_metrics={},
    )
    vars(trainer).update(overrides)
    return trainer


def params() -> list[Any]:
    return list(torch.nn.Linear(2, 1).parameters())


def run(monitor: LearningRateMonitor, trainer: Any, epochs: int = 2, batches: int = 3) -> None:
    """Fit loop stand-in: log hooks, then step the schedulers as the trainer would."""
    monitor.on_train_start(trainer, MODULE)
    for _ in range(epochs):
        monitor.on_train_epoch_start(trainer, MODULE)
        for batch_idx in range(batches):
            monitor.on_train_batch_start(trainer, MODULE, None, batch_idx)
            trainer.global_step += 1
            for optimizer in trainer.optimizers:
                optimizer.step()  # torch warns when a scheduler steps before its optimizer
            for config in trainer.lr_scheduler_configs:
                if config.interval == "step":
                    config.scheduler.step()
        for config in trainer.lr_scheduler_configs:
            if config.interval == "epoch":
                config.scheduler.step()


def logged(trainer: Any) -> list[tuple[int | None, dict[str, Any]]]:
    calls: list[tuple[int | None, dict[str, Any]]] = trainer.loggers[0].calls
    return calls


def test_optimizer_without_scheduler_is_logged_each_step_and_epoch() -> None:
    trainer = make_trainer([torch.optim.Adam(params(), lr=0.1)])
    run(LearningRateMonitor(), trainer)
    assert [step for step, _ in logged(trainer)] == [0, 0, 1, 2, 3, 3, 4, 5]
    assert all(metrics == {"lr-Adam": 0.1} for _, metrics in logged(trainer))


@pytest.mark.parametrize(("interval", "steps"), [("step", [0, 1, 2, 3, 4, 5]), ("epoch", [0, 3])])
def test_logging_interval_chooses_when_to_log(interval: str, steps: list[int]) -> None:
    trainer = make_trainer([torch.optim.Adam(params(), lr=0.1)])
    run(LearningRateMonitor(logging_interval=interval), trainer)
    assert [step for step, _ in logged(trainer)] == steps


def test_epoch_scheduler_is_logged_at_epoch_start_with_its_decayed_value() -> None:
    optimizer = torch.optim.Adam(params(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)
    trainer = make_trainer([optimizer], [LRSchedulerConfig(scheduler, interval="epoch")])
    run(LearningRateMonitor(), trainer)
    assert logged(trainer) == [(0, {"lr-Adam": 0.1}), (3, {"lr-Adam": 0.05})]


def test_step_scheduler_is_logged_before_every_batch() -> None:
    optimizer = torch.optim.Adam(params(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)
    trainer = make_trainer([optimizer], [LRSchedulerConfig(scheduler, interval="step")])
    monitor = LearningRateMonitor()
    run(monitor, trainer, epochs=1)
    assert logged(trainer) == [
        (0, {"lr-Adam": 0.1}),
        (1, {"lr-Adam": 0.05}),
        (2, {"lr-Adam": 0.025}),
    ]
    assert monitor.lrs == {"lr-Adam": [0.1, 0.05, 0.025]}


def test_scheduler_name_replaces_the_default_key() -> None:
    optimizer = torch.optim.SGD(params(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    trainer = make_trainer([optimizer], [LRSchedulerConfig(scheduler, name="my-lr")])
    run(LearningRateMonitor(logging_interval="epoch"), trainer, epochs=1)
    assert logged(trainer) == [(0, {"my-lr": 0.1})]


def test_param_groups_momentum_and_weight_decay_get_their_own_keys() -> None:
    weight, bias = params()
    groups: list[dict[str, Any]] = [{"params": [weight]}, {"params": [bias], "lr": 0.5}]
    optimizer = torch.optim.SGD(
        groups,
        lr=0.1,
        momentum=0.9,
        weight_decay=0.01,
    )
    trainer = make_trainer([optimizer])
    monitor = LearningRateMonitor(
        logging_interval="epoch", log_momentum=True, log_weight_decay=True
    )
    run(monitor, trainer, epochs=1)
    assert logged(trainer) == [
        (
            0,
            {
                "lr-SGD/pg1": 0.1,
                "lr-SGD/pg1-momentum": 0.9,
                "lr-SGD/pg1-weight_decay": 0.01,
                "lr-SGD/pg2": 0.5,
                "lr-SGD/pg2-momentum": 0.9,
                "lr-SGD/pg2-weight_decay": 0.01,
            },
        )
    ]
    assert monitor.last_momentum_values == {"lr-SGD/pg1-momentum": 0.9, "lr-SGD/pg2-momentum": 0.9}


def test_named_param_groups_use_their_names_even_alone() -> None:
    weight, bias = params()
    single = torch.optim.SGD([{"params": [weight, bias], "name": "all"}], lr=0.1)
    trainer = make_trainer([single])
    run(LearningRateMonitor(logging_interval="epoch"), trainer, epochs=1)
    assert logged(trainer) == [(0, {"lr-SGD/all": 0.1})]


def test_adam_momentum_is_its_first_beta() -> None:
    trainer = make_trainer([torch.optim.AdamW(params(), lr=0.1, betas=(0.8, 0.99))])
    run(LearningRateMonitor(logging_interval="epoch", log_momentum=True), trainer, epochs=1)
    assert logged(trainer) == [(0, {"lr-AdamW": 0.1, "lr-AdamW-momentum": 0.8})]


def test_repeated_optimizer_classes_are_numbered_scheduled_ones_first() -> None:
    first, second, third = (torch.optim.Adam(params(), lr=lr) for lr in (0.1, 0.2, 0.3))
    scheduler = torch.optim.lr_scheduler.StepLR(second, 1)
    trainer = make_trainer([first, second, third], [LRSchedulerConfig(scheduler)])
    run(LearningRateMonitor(logging_interval="epoch"), trainer, epochs=1)
    assert logged(trainer) == [(0, {"lr-Adam": 0.2, "lr-Adam-1": 0.1, "lr-Adam-2": 0.3})]


def test_repeated_multi_group_optimizers_number_the_optimizer_part() -> None:
    def make() -> torch.optim.Optimizer:
        weight, bias = params()
        groups: list[dict[str, Any]] = [{"params": [weight]}, {"params": [bias], "lr": 0.5}]
        return torch.optim.SGD(groups, lr=0.1)

    trainer = make_trainer([make(), make()])
    run(LearningRateMonitor(logging_interval="epoch"), trainer, epochs=1)
    assert list(logged(trainer)[0][1]) == [
        "lr-SGD/pg1",
        "lr-SGD/pg2",
        "lr-SGD-1/pg1",
        "lr-SGD-1/pg2",
    ]


def test_step_logging_follows_log_every_n_steps() -> None:
    trainer = make_trainer([torch.optim.Adam(params(), lr=0.1)], log_every_n_steps=2)
    run(LearningRateMonitor(logging_interval="step"), trainer, epochs=2, batches=5)
    assert [step for step, _ in logged(trainer)] == [1, 3, 5, 7, 9]


def test_every_logger_receives_the_values() -> None:
    trainer = make_trainer([torch.optim.Adam(params(), lr=0.1)])
    trainer.loggers.append(RecordingLogger())
    run(LearningRateMonitor(logging_interval="epoch"), trainer, epochs=1)
    assert trainer.loggers[0].calls == trainer.loggers[1].calls == [(0, {"lr-Adam": 0.1})]


def test_monitor_without_logger_fails_at_train_start() -> None:
    trainer = make_trainer([torch.optim.Adam(params())], loggers=[])
    with pytest.raises(MisconfigurationException, match="that has no logger"):
        LearningRateMonitor().on_train_start(trainer, MODULE)


def test_log_momentum_warns_for_optimizers_without_momentum() -> None:
    trainer = make_trainer([torch.optim.Adagrad(params(), lr=0.1)])
    monitor = LearningRateMonitor(logging_interval="epoch", log_momentum=True)
    with pytest.warns(RuntimeWarning, match="no momentum"):
        run(monitor, trainer, epochs=1)
    assert logged(trainer) == [(0, {"lr-Adagrad": 0.1, "lr-Adagrad-momentum": 0})]


def test_duplicate_param_group_names_are_rejected() -> None:
    weight, bias = params()
    optimizer = torch.optim.SGD(
        [{"params": [weight], "name": "a"}, {"params": [bias], "name": "a"}], lr=0.1
    )
    with pytest.raises(MisconfigurationException, match=r"share the keys \['lr-SGD/a'\]"):
        LearningRateMonitor().on_train_start(make_trainer([optimizer]), MODULE)


def test_unknown_logging_interval_is_rejected() -> None:
    with pytest.raises(MisconfigurationException, match="logging_interval='batch'"):
        LearningRateMonitor(logging_interval="batch")
