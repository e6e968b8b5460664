"""Timer with a fake clock and a fake trainer: measuring, stopping, resuming, parsing durations."""

from __future__ import annotations

import logging
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from fulmen.callbacks.timer import Timer, parse_duration
from fulmen.utilities.exceptions import MisconfigurationException

MODULE: Any = None  # the hooks under test do not touch the LightningModule
TRAINER: Any = None  # nor, for the stage hooks, the trainer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("fulmen.callbacks.timer.monotonic", clock)
    return clock


def make_trainer() -> Any:
    broadcasts: list[bool] = []

    def broadcast(obj: bool, src: int = 0) -> bool:
        broadcasts.append(obj)
        return obj

    return SimpleNamespace(
        should_stop=False, strategy=SimpleNamespace(broadcast=broadcast), broadcasts=broadcasts
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("00:00:00:01", timedelta(seconds=1)),
        ("01:02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        (" 00:12:00:00 ", timedelta(hours=12)),
        (timedelta(minutes=5), timedelta(minutes=5)),
        ({"minutes": 2, "seconds": 3}, timedelta(seconds=123)),
        ({"hours": 1.5}, timedelta(minutes=90)),
        (TRAINER, MODULE),
    ],
)
def test_parse_duration_accepts_strings_timedeltas_and_dicts(value: Any, expected: Any) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "00:12:00",
        "1:00:00:00:00",
        "abc",
        "-1:00:00:00",
        "00:aa:00:00",
        {"foo": 1},
        5,
        timedelta(seconds=-1),
    ],
)
def test_parse_duration_rejects_malformed_values_naming_the_argument(value: Any) -> None:
    with pytest.raises(MisconfigurationException, match=r"^Trainer\(max_time=.*DD:HH:MM:SS"):
        parse_duration(value, owner="Trainer", argument="max_time")


def test_timer_names_itself_in_errors() -> None:
    with pytest.raises(MisconfigurationException, match=r"Timer\(duration='bad'\)"):
        Timer(duration="bad")
    with pytest.raises(MisconfigurationException, match=r"Timer\(interval='batch'\)"):
        Timer(interval="batch")


def test_time_elapsed_and_remaining_follow_the_stage_hooks(clock: Clock) -> None:
    timer = Timer(duration={"seconds": 100})
    assert timer.time_elapsed() == 0 and timer.start_time() is None
    timer.on_train_start(TRAINER, MODULE)
    clock.now += 30
    assert timer.time_elapsed("train") == 30
    assert timer.time_remaining("train") == 70
    timer.on_validation_start(TRAINER, MODULE)
    clock.now += 5
    timer.on_validation_end(TRAINER, MODULE)
    clock.now += 5
    timer.on_train_end(TRAINER, MODULE)
    clock.now += 50
    assert timer.time_elapsed("train") == 40
    assert timer.time_elapsed("validate") == 5
    assert timer.start_time("train") == 1000.0 and timer.end_time("train") == 1040.0
    assert timer.time_elapsed("test") == 0


def test_timer_accepts_stage_enums_and_rejects_unknown_stages() -> None:
    from enum import Enum

    class Stage(str, Enum):
        TRAINING = "train"

    timer = Timer()
    assert timer.time_elapsed(Stage.TRAINING) == 0
    assert timer.time_remaining() is None
    with pytest.raises(ValueError, match="stage='fit'"):
        timer.time_elapsed("fit")


def test_step_interval_stops_after_the_batch_that_spends_the_budget(
    clock: Clock, caplog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.getLogger("fulmen"), "propagate", True)  # let caplog see it
    timer = Timer(duration="00:00:01:00")
    trainer = make_trainer()
    timer.on_train_start(trainer, MODULE)
    clock.now += 59
    timer.on_train_batch_end(trainer, MODULE, None, None, 0)
    assert not trainer.should_stop
    clock.now += 1
    with caplog.at_level(logging.INFO, logger="fulmen"):
        timer.on_train_batch_end(trainer, MODULE, None, None, 1)
    assert trainer.should_stop
    assert trainer.broadcasts == [False, True]
    assert "Time limit of 0:01:00 reached" in caplog.text


def test_epoch_interval_checks_only_at_epoch_end(clock: Clock) -> None:
    timer = Timer(duration=timedelta(seconds=10), interval="epoch", verbose=False)
    trainer = make_trainer()
    timer.on_train_start(trainer, MODULE)
    clock.now += 20
    timer.on_train_batch_end(trainer, MODULE, None, None, 0)
    assert not trainer.should_stop
    timer.on_train_epoch_end(trainer, MODULE)
    assert trainer.should_stop


def test_timer_without_duration_never_stops_or_broadcasts(clock: Clock) -> None:
    timer = Timer()
    trainer = make_trainer()
    timer.on_fit_start(trainer, MODULE)
    timer.on_train_start(trainer, MODULE)
    clock.now += 1e6
    timer.on_train_batch_end(trainer, MODULE, None, None, 0)
    timer.on_train_epoch_end(trainer, MODULE)
    assert not trainer.should_stop and trainer.broadcasts == []


def test_resumed_timer_continues_the_budget(clock: Clock) -> None:
    first = Timer(duration={"seconds": 100})
    first.on_train_start(TRAINER, MODULE)
    clock.now += 60
    state = first.state_dict()
    assert state == {
        "time_elapsed": {
            "train": 60.0,
            "sanity_check": 0.0,
            "validate": 0.0,
            "test": 0.0,
            "predict": 0.0,
        }
    }
    resumed = Timer(duration={"seconds": 100})
    resumed.load_state_dict(state)
    assert resumed.time_elapsed() == 60
    trainer = make_trainer()
    resumed.on_fit_start(trainer, MODULE)
    resumed.on_train_start(trainer, MODULE)
    clock.now += 39
    resumed.on_train_batch_end(trainer, MODULE, None, None, 0)
    assert not trainer.should_stop and resumed.time_remaining() == 1
    clock.now += 1
    resumed.on_train_batch_end(trainer, MODULE, None, None, 1)
    assert trainer.should_stop


def test_resuming_with_a_spent_budget_stops_at_fit_start(clock: Clock) -> None:
    timer = Timer(duration={"seconds": 10}, verbose=False)
    timer.load_state_dict({"time_elapsed": {"train": 12.0}})
    trainer = make_trainer()
    timer.on_fit_start(trainer, MODULE)
    assert trainer.should_stop


def test_a_second_fit_measures_from_its_own_start(clock: Clock) -> None:
    timer = Timer()
    timer.on_train_start(TRAINER, MODULE)
    clock.now += 10
    timer.on_train_end(TRAINER, MODULE)
    clock.now += 100
    timer.on_train_start(TRAINER, MODULE)
    clock.now += 3
    assert timer.time_elapsed() == 3
