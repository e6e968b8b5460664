"""EarlyStopping fed sequences of metric values through a fake trainer.

Expected stop points, wait counts and best scores were checked against Lightning 2.6.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from fulmen.callbacks.early_stopping import EarlyStopping, EarlyStoppingReason
from fulmen.utilities.exceptions import MisconfigurationException


class FakeStrategy:
    def __init__(self, others_want_to_stop: bool = False) -> None:
        self.others_want_to_stop = others_want_to_stop
        self.calls: list[tuple[bool, bool]] = []

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        self.calls.append((decision, all))
        return decision or self.others_want_to_stop


def fake_trainer(**overrides: Any) -> SimpleNamespace:
    trainer = SimpleNamespace(
        state=SimpleNamespace(fn="fit"),
        sanity_checking=False,
        fast_dev_run=False,
        callback_metrics={},
        should_stop=False,
        current_epoch=0,
        strategy=FakeStrategy(),
        world_size=1,
        global_rank=0,
        val_check_interval=1.0,
        check_val_every_n_epoch=1,
    )
    for name, value in overrides.items():
        setattr(trainer, name, value)
    return trainer


def feed(
    callback: EarlyStopping, values: Sequence[float], **trainer_overrides: Any
) -> SimpleNamespace:
    """Run one check per value, each in its own epoch, until the trainer is told to stop."""
    trainer = fake_trainer(**trainer_overrides)
    callback.setup(trainer, None, "fit")  # type: ignore[arg-type]
    for epoch, value in enumerate(values):
        trainer.current_epoch = epoch
        trainer.callback_metrics = {"val_loss": torch.tensor(value)}
        callback.on_validation_end(trainer, None)  # type: ignore[arg-type]
        callback.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
        if trainer.should_stop:
            break
    return trainer


def test_stops_after_patience_checks_without_improvement() -> None:
    callback = EarlyStopping("val_loss", patience=3)
    trainer = feed(callback, [5, 4, 4.5, 4.2, 4.1, 3])
    assert trainer.should_stop
    assert callback.stopped_epoch == 4
    assert callback.wait_count == 3
    assert float(callback.best_score) == 4.0
    assert callback.stopping_reason is EarlyStoppingReason.PATIENCE_EXHAUSTED
    assert callback.stopping_reason_message == (
        "Monitored metric val_loss did not improve in the last 3 records. Best score: 4.000. "
        "Signaling Trainer to stop."
    )


def test_improvement_resets_the_wait_count() -> None:
    callback = EarlyStopping("val_loss", patience=2)
    trainer = feed(callback, [5, 6, 4, 6, 3, 6])
    assert not trainer.should_stop
    assert callback.wait_count == 1
    assert float(callback.best_score) == 3.0
    assert callback.stopping_reason is EarlyStoppingReason.NOT_STOPPED
    assert callback.stopping_reason_message is None


def test_min_delta_demands_a_large_enough_improvement() -> None:
    callback = EarlyStopping("val_loss", patience=1, min_delta=0.5)
    trainer = feed(callback, [5, 4.6, 4.0])
    assert trainer.should_stop
    assert callback.stopped_epoch == 1
    assert float(callback.best_score) == 5.0
    assert callback.min_delta == -0.5  # stored signed, as Lightning does


def test_max_mode_waits_for_increases() -> None:
    callback = EarlyStopping("val_loss", mode="max", patience=2)
    trainer = feed(callback, [1, 2, 2, 1])
    assert trainer.should_stop
    assert callback.stopped_epoch == 3
    assert float(callback.best_score) == 2.0


def test_patience_zero_stops_at_the_first_non_improvement() -> None:
    callback = EarlyStopping("val_loss", patience=0)
    feed(callback, [5, 6])
    assert callback.stopped_epoch == 1


def test_stopping_threshold_stops_once_reached() -> None:
    callback = EarlyStopping("val_loss", stopping_threshold=2.0)
    trainer = feed(callback, [5, 3, 1.5, 1.0])
    assert trainer.should_stop
    assert callback.stopped_epoch == 2
    assert callback.stopping_reason is EarlyStoppingReason.STOPPING_THRESHOLD
    assert "val_loss = 1.5" in (callback.stopping_reason_message or "")


def test_divergence_threshold_stops_once_crossed() -> None:
    callback = EarlyStopping("val_loss", divergence_threshold=10.0)
    trainer = feed(callback, [5, 11])
    assert trainer.should_stop
    assert callback.stopping_reason is EarlyStoppingReason.DIVERGENCE_THRESHOLD
    assert float(callback.best_score) == 5.0


def test_non_finite_metric_stops_unless_check_finite_is_off() -> None:
    callback = EarlyStopping("val_loss")
    assert feed(callback, [5, math.nan]).should_stop
    assert callback.stopping_reason is EarlyStoppingReason.NON_FINITE_METRIC
    assert "is not finite" in (callback.stopping_reason_message or "")

    callback = EarlyStopping("val_loss", check_finite=False)
    assert not feed(callback, [5, math.nan, 4, 3, 2]).should_stop
    assert float(callback.best_score) == 2.0


def test_any_rank_wanting_to_stop_stops_all() -> None:
    callback = EarlyStopping("val_loss")
    trainer = feed(callback, [5], strategy=FakeStrategy(others_want_to_stop=True))
    assert trainer.should_stop
    assert trainer.strategy.calls == [(False, False)]


def test_should_stop_set_by_someone_else_is_kept() -> None:
    trainer = fake_trainer(should_stop=True, callback_metrics={"val_loss": torch.tensor(1.0)})
    callback = EarlyStopping("val_loss")
    callback.setup(trainer, None, "fit")  # type: ignore[arg-type]
    callback.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    assert trainer.should_stop


def test_strict_missing_monitor_raises_listing_available_metrics() -> None:
    callback = EarlyStopping("val_acc")
    trainer = fake_trainer(callback_metrics={"val_loss": torch.tensor(1.0), "acc": torch.tensor(0)})
    callback.setup(trainer, None, "fit")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match=r"monitor='val_acc'.*available: \['acc', 'val_loss'\]"):
        callback.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]


def test_non_strict_missing_monitor_skips_the_check() -> None:
    callback = EarlyStopping("val_acc", strict=False)
    trainer = fake_trainer()
    callback.setup(trainer, None, "fit")  # type: ignore[arg-type]
    callback.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    assert callback.wait_count == 0
    callback = EarlyStopping("val_acc", strict=False, verbose=True)
    callback.setup(trainer, None, "fit")  # type: ignore[arg-type]
    with pytest.warns(RuntimeWarning, match="val_acc"):
        callback.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [{"sanity_checking": True}, {"fast_dev_run": 1}, {"state": SimpleNamespace(fn="validate")}],
)
def test_no_check_during_sanity_check_fast_dev_run_or_outside_fit(
    overrides: dict[str, Any],
) -> None:
    callback = EarlyStopping("missing_metric_would_raise", patience=0)
    trainer = fake_trainer(**overrides)
    callback.setup(trainer, None, "fit")  # type: ignore[arg-type]
    callback.on_validation_end(trainer, None)  # type: ignore[arg-type]
    callback.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    assert not trainer.should_stop


@pytest.mark.parametrize(
    ("trainer_overrides", "explicit", "checks_on_epoch_end"),
    [
        ({}, None, True),
        ({"val_check_interval": 0.5}, None, False),
        ({"check_val_every_n_epoch": 2}, None, False),
        ({"val_check_interval": 0.5}, True, True),
        ({}, False, False),
    ],
)
def test_where_the_check_runs(
    trainer_overrides: dict[str, Any], explicit: bool | None, checks_on_epoch_end: bool
) -> None:
    callback = EarlyStopping("val_loss", patience=0, check_on_train_epoch_end=explicit)
    trainer = fake_trainer(**trainer_overrides)
    callback.setup(trainer, None, "fit")  # type: ignore[arg-type]
    trainer.callback_metrics = {"val_loss": torch.tensor(1.0)}
    callback.on_validation_end(trainer, None)  # type: ignore[arg-type]
    callback.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    trainer.callback_metrics = {"val_loss": torch.tensor(2.0)}
    first_hook, second_hook = (
        ("on_train_epoch_end", "on_validation_end")
        if checks_on_epoch_end
        else ("on_validation_end", "on_train_epoch_end")
    )
    getattr(callback, second_hook)(trainer, None)
    assert not trainer.should_stop
    getattr(callback, first_hook)(trainer, None)
    assert trainer.should_stop


def test_verbose_logs_improvements_and_the_stop(caplog: pytest.LogCaptureFixture) -> None:
    callback = EarlyStopping("val_loss", patience=1, verbose=True)
    with caplog.at_level(logging.INFO, logger="fulmen"):
        feed(callback, [5, 4, 4])
    assert caplog.messages == [
        "Metric val_loss improved. New best score: 5.000",
        "Metric val_loss improved by 1.000 (min_delta = 0.0). New best score: 4.000",
        "Monitored metric val_loss did not improve in the last 1 records. Best score: 4.000. "
        "Signaling Trainer to stop.",
    ]


def test_verbose_logs_carry_the_rank_when_distributed(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="fulmen"):
        feed(EarlyStopping("val_loss", verbose=True), [5], world_size=2, global_rank=1)
        feed(
            EarlyStopping("val_loss", verbose=True, log_rank_zero_only=True),
            [5],
            world_size=2,
            global_rank=1,
        )
    assert caplog.messages == ["[rank: 1] Metric val_loss improved. New best score: 5.000"]


def test_state_key_and_mode_validation() -> None:
    assert (
        EarlyStopping("val_loss").state_key == "EarlyStopping{'monitor': 'val_loss', 'mode': 'min'}"
    )
    assert (
        EarlyStopping("acc", mode="max").state_key
        == "EarlyStopping{'monitor': 'acc', 'mode': 'max'}"
    )
    with pytest.raises(MisconfigurationException, match=r"mode='avg'\) is invalid"):
        EarlyStopping("val_loss", mode="avg")


def test_state_dict_round_trips_through_a_safe_torch_load(tmp_path: Any) -> None:
    callback = EarlyStopping("val_loss", patience=2)
    feed(callback, [5, 4, 6, 7])
    path = tmp_path / "state.pt"
    torch.save(callback.state_dict(), path)
    state = torch.load(path, weights_only=True)
    assert set(state) == {
        "wait_count", "stopped_epoch", "best_score", "patience", "stopping_reason",
        "stopping_reason_message",
    }  # fmt: skip
    assert state["stopping_reason"] == EarlyStoppingReason.PATIENCE_EXHAUSTED.value

    restored = EarlyStopping("val_loss", patience=5)
    restored.load_state_dict(state)
    assert restored.wait_count == 2
    assert restored.stopped_epoch == 3
    assert float(restored.best_score) == 4.0
    assert restored.patience == 2
    assert restored.stopping_reason is EarlyStoppingReason.PATIENCE_EXHAUSTED
    assert restored.stopping_reason_message == callback.stopping_reason_message


def test_resumed_state_continues_counting() -> None:
    first = EarlyStopping("val_loss", patience=3)
    feed(first, [5, 6, 7])
    resumed = EarlyStopping("val_loss", patience=3)
    resumed.load_state_dict(first.state_dict())
    trainer = feed(resumed, [8])
    assert trainer.should_stop
    assert resumed.wait_count == 3
