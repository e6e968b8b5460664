from __future__ import annotations

import importlib.util
import logging
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from fulmen.callbacks.model_summary import ModelSummary
from fulmen.callbacks.rich_model_summary import RichModelSummary
from fulmen.demos.boring_classes import BoringModel

HAS_RICH = importlib.util.find_spec("rich") is not None


@pytest.fixture
def fulmen_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    # fulmen's logger prints to stderr itself and does not propagate; let caplog see it too.
    monkeypatch.setattr(logging.getLogger("fulmen"), "propagate", True)
    caplog.set_level(logging.INFO, logger="fulmen")
    return caplog


def _fit_start(callback: ModelSummary, is_global_zero: bool = True) -> None:
    trainer: Any = SimpleNamespace(is_global_zero=is_global_zero)
    callback.on_fit_start(trainer, BoringModel())


def test_logs_the_table_at_fit_start(fulmen_log: pytest.LogCaptureFixture) -> None:
    _fit_start(ModelSummary())
    (message,) = fulmen_log.messages
    lines = message.splitlines()
    assert lines[0] == ""
    assert lines[1] == "  | Name  | Type   | Params | Mode  | FLOPs"
    assert lines[3] == "0 | layer | Linear | 66     | train | 0    "
    assert lines[-1] == "0         Total Flops"


def test_max_depth_zero_and_other_ranks_log_nothing(fulmen_log: pytest.LogCaptureFixture) -> None:
    _fit_start(ModelSummary(max_depth=0))
    _fit_start(ModelSummary(), is_global_zero=False)
    assert fulmen_log.messages == []


def test_subclass_receives_columns_totals_and_kwargs() -> None:
    received: dict[str, Any] = {}

    class Recording(ModelSummary):
        @staticmethod
        def summarize(
            summary_data: list[tuple[str, list[str]]],
            total_parameters: int,
            trainable_parameters: int,
            model_size: float,
            total_training_modes: dict[str, int],
            total_flops: int,
            **summarize_kwargs: Any,
        ) -> None:
            received.update(
                headers=[header for header, _ in summary_data],
                total=total_parameters,
                trainable=trainable_parameters,
                modes=total_training_modes,
                kwargs=summarize_kwargs,
            )

    _fit_start(Recording(max_depth=-1, style="compact"))
    assert received == {
        "headers": [" ", "Name", "Type", "Params", "Mode", "FLOPs"],
        "total": 66,
        "trainable": 66,
        "modes": {"train": 1, "eval": 0},
        "kwargs": {"style": "compact"},
    }


@pytest.mark.skipif(HAS_RICH, reason="checks the message shown when rich is missing")
def test_rich_summary_without_rich_says_how_to_install_it() -> None:
    with pytest.raises(ModuleNotFoundError, match="pip install rich"):
        RichModelSummary()


@pytest.mark.skipif(not HAS_RICH, reason="needs rich")
def test_rich_summary_prints_a_box_table(capsys: pytest.CaptureFixture[str]) -> None:
    callback = RichModelSummary()
    assert isinstance(callback, ModelSummary)
    model = BoringModel()
    model.example_input_array = torch.zeros(2, 32)
    trainer: Any = SimpleNamespace(is_global_zero=True)
    callback.on_fit_start(trainer, model)
    out = capsys.readouterr().out
    assert "│ 0 │ layer │ Linear │     66 │ train │   256 │  [2, 32] │    [2, 2] │" in out
    assert "Total FLOPs: 256" in out
