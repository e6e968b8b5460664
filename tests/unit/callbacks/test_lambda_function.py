"""LambdaCallback: functions given by hook name are called with the hook's arguments."""

from __future__ import annotations

from typing import Any

import pytest

from fulmen.callbacks.callback import Callback
from fulmen.callbacks.lambda_function import LambdaCallback

# The keyword arguments Lightning 2.6's LambdaCallback accepts.
LIGHTNING_HOOKS = [
    "setup", "teardown", "on_fit_start", "on_fit_end", "on_sanity_check_start",
    "on_sanity_check_end", "on_train_batch_start", "on_train_batch_end", "on_train_epoch_start",
    "on_train_epoch_end", "on_validation_epoch_start", "on_validation_epoch_end",
    "on_test_epoch_start", "on_test_epoch_end", "on_validation_batch_start",
    "on_validation_batch_end", "on_test_batch_start", "on_test_batch_end", "on_train_start",
    "on_train_end", "on_validation_start", "on_validation_end", "on_test_start", "on_test_end",
    "on_exception", "on_save_checkpoint", "on_load_checkpoint", "on_before_backward",
    "on_after_backward", "on_before_optimizer_step", "on_before_zero_grad", "on_predict_start",
    "on_predict_end", "on_predict_batch_start", "on_predict_batch_end", "on_predict_epoch_start",
    "on_predict_epoch_end",
]  # fmt: skip

MODULE: Any = None  # the hooks under test do not touch the LightningModule
NOT_CALLABLE: Any = 3


def test_given_functions_receive_the_hook_arguments() -> None:
    calls: list[tuple[str, tuple[Any, ...]]] = []
    callback = LambdaCallback(
        setup=lambda *args: calls.append(("setup", args)),
        on_train_batch_end=lambda *args: calls.append(("batch_end", args)),
    )
    trainer: Any = "trainer"
    module: Any = "module"
    callback.setup(trainer, module, "fit")
    callback.on_train_batch_end(trainer, module, {"loss": 1}, "batch", 3)
    assert calls == [
        ("setup", ("trainer", "module", "fit")),
        ("batch_end", ("trainer", "module", {"loss": 1}, "batch", 3)),
    ]


def test_hooks_not_given_stay_no_ops() -> None:
    callback = LambdaCallback(on_fit_start=None)
    callback.on_fit_start(MODULE, MODULE)
    assert "on_fit_start" not in vars(callback)


def test_every_hook_lightning_accepts_is_accepted() -> None:
    callback = LambdaCallback(**{name: print for name in LIGHTNING_HOOKS})
    assert all(getattr(callback, name) is print for name in LIGHTNING_HOOKS)


def test_unknown_hook_names_are_rejected() -> None:
    with pytest.raises(
        TypeError, match=r"LambdaCallback\(on_epoch_end=\.\.\.\) is not a Callback hook"
    ):
        LambdaCallback(on_epoch_end=print)
    with pytest.raises(TypeError, match="not a Callback hook"):
        LambdaCallback(state_dict=dict)


def test_non_callables_are_rejected() -> None:
    with pytest.raises(TypeError, match=r"LambdaCallback\(on_fit_start=3\) is invalid"):
        LambdaCallback(on_fit_start=NOT_CALLABLE)


def test_lambda_callback_is_a_callback() -> None:
    assert isinstance(LambdaCallback(), Callback)
