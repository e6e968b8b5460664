"""`_LRFinder.suggestion`/`plot`, the sweep schedule, the smoothing callback and argument checks."""

from __future__ import annotations

import math
import sys
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from fulmen.tuner.lr_finder import (
    _LRFinder,
    _LRSweep,
    check_lr_find_arguments,
    determine_lr_attr_name,
    sweep_lr,
)


def central_slopes(values: list[float], positions: list[float]) -> list[float]:
    """d values / d positions, written out: one-sided at the ends, second order inside."""
    slopes = [(values[1] - values[0]) / (positions[1] - positions[0])]
    for i in range(1, len(values) - 1):
        h1, h2 = positions[i] - positions[i - 1], positions[i + 1] - positions[i]
        slopes.append(
            (h1**2 * values[i + 1] - h2**2 * values[i - 1] + (h2**2 - h1**2) * values[i])
            / (h1 * h2 * (h1 + h2))
        )
    slopes.append((values[-1] - values[-2]) / (positions[-1] - positions[-2]))
    return slopes


def finder_with(lrs: list[float], losses: list[float], mode: str = "exponential") -> _LRFinder:
    finder = _LRFinder(mode, lrs[0], lrs[-1], len(lrs))
    finder.results = {"lr": lrs, "loss": losses}
    return finder


def test_suggestion_is_the_steepest_negative_slope_of_a_hand_computation() -> None:
    lrs = [sweep_lr("exponential", 1e-6, 1.0, 30, i) for i in range(30)]
    # A loss that falls slowly, then fast around lr 1e-2, then blows up.
    losses = [2.0 - 1.5 / (1 + (1e-2 / lr) ** 2) + (lr > 0.3) * 50 * lr for lr in lrs]
    finder = finder_with(lrs, losses)
    kept = list(range(10, 29))
    slopes = central_slopes([losses[i] for i in kept], [lrs[i] for i in kept])
    expected = kept[min(range(len(slopes)), key=slopes.__getitem__)]
    assert finder.suggestion() == lrs[expected]
    assert finder._optimal_idx == expected


def test_suggestion_on_linear_points_by_hand() -> None:
    finder = finder_with([0.1, 0.2, 0.3, 0.4, 0.5], [1.0, 0.9, 0.4, 0.35, 3.0], "linear")
    # slopes: (0.9-1)/0.1=-1, (0.4-1)/0.2=-3, (0.35-0.9)/0.2=-2.75, (0.35-0.4)/0.1=-0.5
    assert finder.suggestion(skip_begin=0, skip_end=1) == 0.2
    assert finder.suggestion(skip_begin=2, skip_end=1) == 0.3  # only 0.3 and 0.4 remain


def test_suggestion_drops_non_finite_losses_and_keeps_indices_into_the_results() -> None:
    lrs = [0.1 * i for i in range(1, 9)]
    losses = [5.0, 1.0, math.nan, 0.5, math.inf, 0.45, 0.44, 9.0]
    finder = finder_with(lrs, losses, "linear")
    kept = [1, 3, 5, 6]
    slopes = central_slopes([losses[i] for i in kept], [lrs[i] for i in kept])
    expected = kept[min(range(len(slopes)), key=slopes.__getitem__)]
    assert finder.suggestion(skip_begin=1, skip_end=1) == lrs[expected]


def test_suggestion_with_fewer_than_two_points_warns_and_returns_none() -> None:
    finder = finder_with([1e-3, 1e-2, 1e-1], [1.0, 0.5, 0.2])
    with pytest.warns(UserWarning, match="1 usable point"):
        assert finder.suggestion(skip_begin=1, skip_end=1) is None
    assert finder._optimal_idx is None
    with pytest.warns(UserWarning, match="0 usable point"):
        assert finder.suggestion() is None  # skip_begin=10 leaves nothing


def test_skip_end_zero_keeps_the_last_point() -> None:
    finder = finder_with([0.1, 0.2, 0.3], [1.0, 0.9, 0.1], "linear")
    assert finder.suggestion(skip_begin=0, skip_end=0) == 0.3


def test_sweep_follows_lightnings_schedule() -> None:
    exponential = [sweep_lr("exponential", 1e-4, 1.0, 4, i) for i in range(4)]
    assert exponential == pytest.approx([1e-4, 1e-4 * 1e4**0.5, 1e-4 * 1e4**0.75, 1.0])
    linear = [sweep_lr("linear", 0.0, 1.0, 4, i) for i in range(4)]
    assert linear == pytest.approx([0.0, 0.5, 0.75, 1.0])


def test_plot_without_matplotlib_raises_import_error_naming_the_plot_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    finder = finder_with([1e-3, 1e-1, 1.0], [1.0, 0.5, 2.0])
    with pytest.raises(ImportError, match=r"pip install 'fulmen\[plot\]'"):
        finder.plot(suggest=True)


def fake_trainer(global_step: int = 0) -> Any:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.5)
    return SimpleNamespace(
        global_step=global_step,
        accumulate_grad_batches=1,
        is_last_batch=False,
        optimizers=[optimizer],
        should_stop=False,
        strategy=SimpleNamespace(broadcast=lambda value, src=0: value),
    )


def run_sweep(
    raw_losses: list[float | None], threshold: float | None = 4.0
) -> tuple[_LRSweep, Any]:
    trainer = fake_trainer()
    sweep = _LRSweep("exponential", 1e-3, 1.0, len(raw_losses), threshold, 0, False)
    for index, raw in enumerate(raw_losses):
        sweep.on_train_batch_start(trainer, None, None, index)
        assert trainer.optimizers[0].param_groups[0]["lr"] == sweep.lrs[-1]
        trainer.global_step += 1
        outputs = None if raw is None else {"loss": torch.tensor(raw)}
        sweep.on_train_batch_end(trainer, None, outputs, None, index)
        if trainer.should_stop:
            break
    return sweep, trainer


def test_sweep_smooths_the_loss_with_lightnings_bias_correction() -> None:
    sweep, trainer = run_sweep([2.0, 1.0, 1.5])
    average, expected = 0.0, []
    for step, raw in enumerate([2.0, 1.0, 1.5], start=1):
        average = 0.98 * average + 0.02 * raw
        expected.append(average / (1 - 0.98 ** (step + 1)))
    assert sweep.losses == pytest.approx(expected)
    assert sweep.lrs == pytest.approx([1e-3, 1e-3 * 1e3 ** (2 / 3), 1.0])
    assert not trainer.should_stop


def test_sweep_stops_once_the_smoothed_loss_passes_the_threshold_and_records_nan_for_skips() -> (
    None
):
    sweep, trainer = run_sweep([1.0, None, 1.0, 400.0, 1.0])
    assert trainer.should_stop
    assert len(sweep.lrs) == len(sweep.losses) == 4
    assert math.isnan(sweep.losses[1])
    assert sweep.losses[3] > 4.0 * min(sweep.losses[0], sweep.losses[2])
    never, _ = run_sweep([1.0, 1.0, 400.0, 1.0], threshold=None)
    assert len(never.losses) == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "cosine"}, "mode='cosine'"),
        ({"num_training": 0}, "num_training_steps=0"),
        ({"num_training": 2.0}, "num_training_steps=2.0"),
        ({"min_lr": 0.0}, "min_lr=0.0"),
        ({"min_lr": -1.0, "mode": "linear"}, "min_lr=-1.0"),
        ({"max_lr": 1e-9}, "max_lr=1e-09"),
        ({"early_stop_threshold": 0}, "early_stop_threshold=0"),
    ],
)
def test_bad_range_test_arguments_raise_naming_the_value(kwargs: dict, message: str) -> None:
    arguments: dict[str, Any] = dict(
        min_lr=1e-8, max_lr=1.0, num_training=100, mode="exponential", early_stop_threshold=4.0
    )
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=rf"LearningRateFinder\({message}\)"):
        check_lr_find_arguments(**arguments, owner="LearningRateFinder")


def test_linear_mode_may_start_at_zero() -> None:
    assert check_lr_find_arguments(0.0, 1.0, 10, "Linear", None, "Tuner.lr_find") == "linear"


def test_learning_rate_attribute_is_found_in_lightnings_order() -> None:
    from fulmen.demos.boring_classes import BoringModel

    model = BoringModel()
    model.save_hyperparameters({"learning_rate": 0.1})
    assert determine_lr_attr_name(model) == "learning_rate"
    model.lr = 0.2
    assert determine_lr_attr_name(model) == "lr"
    with pytest.raises(AttributeError, match="attr_name='step_size'"):
        determine_lr_attr_name(model, "step_size")
