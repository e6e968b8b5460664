"""The hook order is part of the contract: it must be Lightning 2.x's, call for call.

`golden/hook_order.json` was recorded by running the same recorders (tests/helpers/recording.py)
against pytorch-lightning 2.6.6; `test_hook_order_matches_installed_lightning` re-records it
live whenever Lightning is installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import fulmen
from tests.helpers.recording import make_recorders, trainer_kwargs

GOLDEN = json.loads((Path(__file__).parent / "golden" / "hook_order.json").read_text())


def record(pl: Any, scenario: str, tmp_path: Path) -> list[str]:
    calls: list[str] = []
    model_cls, callback_cls, datamodule_cls = make_recorders(pl, calls)
    callbacks = [callback_cls()]
    if scenario == "fit":
        pl.Trainer(callbacks=callbacks, **trainer_kwargs(tmp_path)).fit(model_cls())
    elif scenario == "fit_dm":
        kwargs = trainer_kwargs(tmp_path, reload_dataloaders_every_n_epochs=1)
        pl.Trainer(callbacks=callbacks, **kwargs).fit(model_cls(), datamodule=datamodule_cls())
    elif scenario == "fit_ckpt":
        kwargs = trainer_kwargs(tmp_path, enable_checkpointing=True)
        pl.Trainer(callbacks=callbacks, **kwargs).fit(model_cls())
    elif scenario == "validate":
        pl.Trainer(callbacks=callbacks, **trainer_kwargs(tmp_path)).validate(
            model_cls(), verbose=False
        )
    elif scenario == "test":
        pl.Trainer(callbacks=callbacks, **trainer_kwargs(tmp_path)).test(model_cls(), verbose=False)
    elif scenario == "predict":
        pl.Trainer(callbacks=callbacks, **trainer_kwargs(tmp_path)).predict(model_cls())
    return calls


@pytest.mark.parametrize("scenario", sorted(GOLDEN))
def test_hook_order_matches_lightning(scenario: str, tmp_path: Path) -> None:
    assert record(fulmen, scenario, tmp_path) == GOLDEN[scenario]


@pytest.mark.compat
@pytest.mark.parametrize("scenario", ["fit", "validate", "predict"])
def test_hook_order_matches_installed_lightning(scenario: str, tmp_path: Path) -> None:
    pl = pytest.importorskip("pytorch_lightning")
    with _quiet():
        expected = record(pl, scenario, tmp_path / "pl")
    assert record(fulmen, scenario, tmp_path / "fulmen") == expected


class _quiet:
    """Silence the oracle's own warnings (they are Lightning's, not ours)."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def test_fit_calls_step_hooks_in_lightning_order(tmp_path: Path) -> None:
    calls = record(fulmen, "fit", tmp_path)
    start = calls.index("Callback.on_train_batch_start")
    assert calls[start:][:12] == [
        "Callback.on_train_batch_start",
        "on_train_batch_start",
        "optimizer_step",
        "training_step",
        "Callback.on_before_zero_grad",
        "on_before_zero_grad",
        "optimizer_zero_grad",
        "Callback.on_before_backward",
        "on_before_backward",
        "backward",
        "Callback.on_after_backward",
        "on_after_backward",
    ]
