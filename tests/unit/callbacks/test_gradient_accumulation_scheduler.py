"""GradientAccumulationScheduler: validation of the schedule and what it sets on the trainer."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from fulmen.callbacks.gradient_accumulation_scheduler import GradientAccumulationScheduler
from fulmen.utilities.exceptions import MisconfigurationException


def make_trainer(**overrides: Any) -> Any:
    return SimpleNamespace(**{"accumulate_grad_batches": 1, "current_epoch": 0, **overrides})


AUTOMATIC: Any = SimpleNamespace(automatic_optimization=True)
MANUAL: Any = SimpleNamespace(automatic_optimization=False)


def test_factor_of_each_epoch_is_the_last_scheduled_at_or_before_it() -> None:
    scheduler = GradientAccumulationScheduler({5: 4, 1: 2})
    assert [scheduler.get_accumulate_grad_batches(e) for e in range(7)] == [1, 2, 2, 2, 2, 4, 4]
    assert scheduler.scheduling == {0: 1, 1: 2, 5: 4}
    assert scheduler.epochs == [0, 1, 5]
    assert scheduler.going_to_accumulate_grad_batches()


def test_schedule_of_ones_does_not_accumulate() -> None:
    assert not GradientAccumulationScheduler({0: 1}).going_to_accumulate_grad_batches()


@pytest.mark.parametrize(
    ("scheduling", "message"),
    [
        ({}, "non-empty dict"),
        ([1], "non-empty dict"),
        ({-1: 2}, r"epochs \[-1\] are not ints >= 0"),
        ({"a": 1}, r"epochs \['a'\]"),
        ({0.5: 2}, r"epochs \[0.5\]"),
        ({True: 2}, r"epochs \[True\]"),
        ({0: 0}, r"factors \[0\] are not ints >= 1"),
        ({0: 1.5}, r"factors \[1.5\]"),
    ],
)
def test_invalid_schedules_are_rejected(scheduling: Any, message: str) -> None:
    with pytest.raises(MisconfigurationException, match=message):
        GradientAccumulationScheduler(scheduling)


def test_factor_is_set_on_the_trainer_at_each_epoch_start_and_restored_at_the_end() -> None:
    scheduler = GradientAccumulationScheduler({1: 2, 3: 4})
    trainer = make_trainer()
    scheduler.on_train_start(trainer, AUTOMATIC)
    seen = []
    for epoch in range(4):
        trainer.current_epoch = epoch
        scheduler.on_train_epoch_start(trainer, AUTOMATIC)
        seen.append(trainer.accumulate_grad_batches)
    assert seen == [1, 2, 2, 4]
    scheduler.on_train_end(trainer, AUTOMATIC)
    assert trainer.accumulate_grad_batches == 1
    scheduler.on_train_start(trainer, AUTOMATIC)  # a second fit is allowed


def test_factor_is_restored_when_fit_fails() -> None:
    scheduler = GradientAccumulationScheduler({0: 3})
    trainer = make_trainer()
    scheduler.on_train_start(trainer, AUTOMATIC)
    scheduler.on_train_epoch_start(trainer, AUTOMATIC)
    scheduler.on_exception(trainer, AUTOMATIC, RuntimeError())
    assert trainer.accumulate_grad_batches == 1


def test_trainer_accumulation_and_scheduler_together_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"Trainer\(accumulate_grad_batches=2\)"):
        GradientAccumulationScheduler({0: 2}).on_train_start(
            make_trainer(accumulate_grad_batches=2), AUTOMATIC
        )


def test_manual_optimization_is_rejected() -> None:
    with pytest.raises(RuntimeError, match="needs automatic optimization"):
        GradientAccumulationScheduler({0: 2}).on_train_start(make_trainer(), MANUAL)
