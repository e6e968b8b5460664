"""The Trainer at run time: stopping rules, torch modes, exceptions, data, resume and properties.

Every expected value here was first observed by running the same scenario with
pytorch-lightning 2.6.6 (`import pytorch_lightning as pl`); the `compat` tests re-run the
scenario against the installed Lightning and compare. Where fulmen differs, the test is kept
and marked `xfail(strict=True)` with what fulmen gets wrong.
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import fulmen
from tests.helpers.models import QUIET, loader, make_counting_model
from tests.helpers.recording import make_recorders, trainer_kwargs

compat = pytest.mark.compat


def _oracle() -> ModuleType:
    return pytest.importorskip("pytorch_lightning")


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the oracle's own warnings (they are Lightning's, not ours)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _both(scenario: Callable[..., Any], tmp_path: Path, *args: Any) -> tuple[Any, Any]:
    """Run `scenario(pl, root, *args)` with Lightning, then fulmen; return (lightning, fulmen)."""
    pl = _oracle()
    with _quiet():
        expected = scenario(pl, tmp_path / "lightning", *args)
    return expected, scenario(fulmen, tmp_path / "fulmen", *args)


def _sub(pl: ModuleType, name: str) -> ModuleType:
    return importlib.import_module(f"{pl.__name__}.{name}")


def _value(enum_or_none: Any) -> Any:
    # Lightning's enums print as "RunningStage.TRAINING"; compare their string values.
    return getattr(enum_or_none, "value", enum_or_none)


# ====================================================================== 1. max_time


def _slow_model(pl: ModuleType, pause: float) -> Any:
    class SlowModel(make_counting_model(pl)):  # type: ignore[misc]
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            time.sleep(pause)
            return super().training_step(batch, batch_idx)  # type: ignore[no-any-return]

    return SlowModel()


def _fit_with_max_time(pl: ModuleType, root: Path, max_time: Any) -> dict[str, Any]:
    model = _slow_model(pl, 0.05)  # 8 batches: ~0.4 s per epoch
    trainer = pl.Trainer(
        default_root_dir=root, max_epochs=1000, max_time=max_time, limit_val_batches=1, **QUIET
    )
    start = time.monotonic()
    trainer.fit(model)
    return dict(
        elapsed=time.monotonic() - start,
        status=_value(trainer.state.status),
        should_stop=trainer.should_stop,
        epoch=trainer.current_epoch,
        epochs_started=model.counts["epochs"],
        step=trainer.global_step,
        steps_run=model.counts["train"],
        timer=[type(cb).__name__ for cb in trainer.callbacks],
    )


MAX_TIMES = [
    pytest.param("00:00:00:01", id="str"),
    pytest.param({"seconds": 1}, id="dict"),
    pytest.param(timedelta(seconds=1), id="timedelta"),
]


@pytest.mark.parametrize("max_time", MAX_TIMES)
def test_max_time_stops_training_gracefully(max_time: Any, tmp_path: Path) -> None:
    run = _fit_with_max_time(fulmen, tmp_path, max_time)
    assert run["status"] == "finished"
    assert run["should_stop"] is True
    assert 1.0 <= run["elapsed"] < 20.0  # stopped by the clock, long before 1000 epochs
    assert 1 <= run["epoch"] < 1000
    # The epoch the clock interrupted still counts as done, as in Lightning.
    assert run["epoch"] == run["epochs_started"]
    assert run["step"] == run["steps_run"]
    assert run["timer"] == ["Timer"]


@compat
def test_max_time_stops_like_lightning(tmp_path: Path) -> None:
    expected, actual = _both(_fit_with_max_time, tmp_path, {"seconds": 1})
    for run in (expected, actual):
        del run["elapsed"], run["epoch"], run["epochs_started"], run["step"], run["steps_run"]
    assert actual == expected


# ====================================================================== 2. min_epochs / min_steps


def _fit_with_early_stop_request(
    pl: ModuleType, root: Path, where: str, limits: dict[str, int]
) -> tuple[int, int, bool]:
    class AskToStop(pl.Callback):  # type: ignore[name-defined,misc]
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if where == "batch":
                trainer.should_stop = True

        def on_train_epoch_end(self, trainer: Any, *args: Any) -> None:
            if where == "epoch":
                trainer.should_stop = True

    trainer = pl.Trainer(
        default_root_dir=root,
        max_epochs=10,
        limit_val_batches=0,
        callbacks=[AskToStop()],
        **limits,
        **QUIET,
    )
    trainer.fit(make_counting_model(pl)())  # 8 batches per epoch
    return trainer.current_epoch, trainer.global_step, trainer.should_stop


EARLY_STOP_CASES = [
    pytest.param("batch", {}, (1, 1), id="batch-no-minimum"),
    pytest.param("batch", {"min_epochs": 3}, (3, 24), id="batch-min_epochs"),
    pytest.param(
        "batch",
        {"min_steps": 5},
        (1, 8),
        id="batch-min_steps-in-1st-epoch",
    ),
    pytest.param("batch", {"min_steps": 20}, (3, 20), id="batch-min_steps"),
    pytest.param("batch", {"min_epochs": 2, "min_steps": 3}, (2, 16), id="batch-both"),
    pytest.param("epoch", {}, (1, 8), id="epoch-no-minimum"),
    pytest.param("epoch", {"min_epochs": 3}, (3, 24), id="epoch-min_epochs"),
    pytest.param("epoch", {"min_steps": 5}, (1, 8), id="epoch-min_steps-in-1st-epoch"),
    pytest.param("epoch", {"min_steps": 20}, (3, 20), id="epoch-min_steps"),
]


@pytest.mark.parametrize("where, limits, stopped_at", EARLY_STOP_CASES)
def test_should_stop_waits_for_min_epochs_and_min_steps(
    where: str, limits: dict[str, int], stopped_at: tuple[int, int], tmp_path: Path
) -> None:
    epoch, step, should_stop = _fit_with_early_stop_request(fulmen, tmp_path, where, limits)
    assert (epoch, step) == stopped_at
    assert should_stop is True


@compat
@pytest.mark.parametrize("where, limits, stopped_at", EARLY_STOP_CASES)
def test_should_stop_with_minimums_matches_lightning(
    where: str, limits: dict[str, int], stopped_at: tuple[int, int], tmp_path: Path
) -> None:
    expected, actual = _both(_fit_with_early_stop_request, tmp_path, where, limits)
    assert expected[:2] == stopped_at
    assert actual == expected


# ====================================================================== 3. torch modes


@pytest.fixture
def restore_deterministic(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Both frameworks set this for CUDA determinism; keep it out of the other tests.
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def _torch_modes_seen(pl: ModuleType, root: Path, **flags: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    class Probe(make_counting_model(pl)):  # type: ignore[misc]
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            seen["train"] = (
                torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.is_anomaly_enabled(),
            )
            return super().training_step(batch, batch_idx)  # type: ignore[no-any-return]

        def _note(self, key: str) -> None:
            seen[key] = (torch.is_inference_mode_enabled(), torch.is_grad_enabled())

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self._note(_value(self.trainer.state.stage) + "@" + _value(self.trainer.state.fn))
            super().validation_step(batch, batch_idx)

        def test_step(self, batch: Any, batch_idx: int) -> None:
            self._note("test")
            super().test_step(batch, batch_idx)

        def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
            self._note("predict")
            return super().predict_step(batch, batch_idx)

    model = Probe()
    trainer = pl.Trainer(
        default_root_dir=root,
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        limit_test_batches=1,
        limit_predict_batches=1,
        **flags,
        **QUIET,
    )
    trainer.fit(model)
    seen["after_fit"] = (torch.are_deterministic_algorithms_enabled(), torch.is_anomaly_enabled())
    trainer.validate(model, verbose=False)
    trainer.test(model, verbose=False)
    trainer.predict(model)
    return seen


@pytest.mark.parametrize("deterministic, warn_only", [(True, False), ("warn", True)])
def test_deterministic_enables_torch_deterministic_algorithms(
    deterministic: Any, warn_only: bool, tmp_path: Path, restore_deterministic: None
) -> None:
    torch.use_deterministic_algorithms(False)
    seen = _torch_modes_seen(fulmen, tmp_path, deterministic=deterministic)
    assert seen["train"] == (True, warn_only, False)
    # Lightning leaves the global switch on after fit as well.
    assert seen["after_fit"] == (True, False)


def test_deterministic_false_leaves_torch_alone(
    tmp_path: Path, restore_deterministic: None
) -> None:
    torch.use_deterministic_algorithms(False)
    seen = _torch_modes_seen(fulmen, tmp_path, deterministic=False)
    assert seen["train"] == (False, False, False)


def _training_modes_with(pl: ModuleType, root: Path, flags: dict[str, Any]) -> dict[str, Any]:
    torch.use_deterministic_algorithms(False)
    seen = _torch_modes_seen(pl, root, **flags)
    return {"train": seen["train"], "after_fit": seen["after_fit"]}


@compat
@pytest.mark.parametrize(
    "flags",
    [{"deterministic": True}, {"deterministic": "warn"}, {"detect_anomaly": True}, {}],
    ids=str,
)
def test_deterministic_and_detect_anomaly_match_lightning(
    flags: dict[str, Any], tmp_path: Path, restore_deterministic: None
) -> None:
    expected, actual = _both(_training_modes_with, tmp_path, flags)
    assert actual == expected


def test_detect_anomaly_is_on_only_during_fit(tmp_path: Path) -> None:
    seen = _torch_modes_seen(fulmen, tmp_path, detect_anomaly=True)
    assert seen["train"][2] is True
    assert seen["after_fit"][1] is False


def _nan_model(pl: ModuleType) -> Any:
    class NanBackward(make_counting_model(pl)):  # type: ignore[misc]
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, _ = batch
            return (self(x).sum() * 0 - 1).sqrt()  # NaN forward, NaN gradient

    return NanBackward()


# torch reports where the bad value came from as a UserWarning before raising.
@pytest.mark.filterwarnings("ignore:Error detected in:UserWarning")
def test_detect_anomaly_makes_nan_backward_raise(tmp_path: Path) -> None:
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=0,
        detect_anomaly=True,
        **QUIET,
    )
    with pytest.raises(RuntimeError, match="returned nan values"):
        trainer.fit(_nan_model(fulmen))
    assert trainer.state.status == "interrupted"
    assert torch.is_anomaly_enabled() is False


def _nan_backward_outcome(pl: ModuleType, root: Path, detect_anomaly: bool) -> tuple[str, str]:
    trainer = pl.Trainer(
        default_root_dir=root,
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=0,
        detect_anomaly=detect_anomaly,
        **QUIET,
    )
    try:
        trainer.fit(_nan_model(pl))
    except RuntimeError as error:
        return str(error), _value(trainer.state.status)
    return "", _value(trainer.state.status)


@compat
@pytest.mark.filterwarnings("ignore:Error detected in:UserWarning")
@pytest.mark.parametrize("detect_anomaly", [True, False])
def test_nan_backward_matches_lightning(detect_anomaly: bool, tmp_path: Path) -> None:
    expected, actual = _both(_nan_backward_outcome, tmp_path, detect_anomaly)
    assert actual == expected


def test_without_detect_anomaly_nan_backward_does_not_raise(tmp_path: Path) -> None:
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=0, **QUIET
    )
    trainer.fit(_nan_model(fulmen))
    assert trainer.state.status == "finished"


# (inference mode enabled, grad enabled) per place, observed in Lightning 2.6.6.
INFERENCE_MODE_CASES = [
    pytest.param(
        True,
        {
            "sanity_check@fit": (False, False),
            "validate@fit": (False, False),
            "validate@validate": (True, False),
            "test": (True, False),
            "predict": (True, False),
        },
        id="inference_mode=True",
    ),
    pytest.param(
        False,
        {
            "sanity_check@fit": (False, False),
            "validate@fit": (False, False),
            "validate@validate": (False, False),
            "test": (False, False),
            "predict": (False, False),
        },
        id="inference_mode=False",
    ),
]


def _eval_modes(seen: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in seen.items() if k not in ("train", "after_fit")}


@pytest.mark.parametrize("inference_mode, expected", INFERENCE_MODE_CASES)
def test_inference_mode_chooses_the_evaluation_grad_context(
    inference_mode: bool, expected: dict[str, Any], tmp_path: Path
) -> None:
    seen = _torch_modes_seen(fulmen, tmp_path, inference_mode=inference_mode)
    assert _eval_modes(seen) == expected


def _eval_modes_with(pl: ModuleType, root: Path, inference_mode: bool) -> dict[str, Any]:
    return _eval_modes(_torch_modes_seen(pl, root, inference_mode=inference_mode))


@compat
@pytest.mark.parametrize("inference_mode, expected", INFERENCE_MODE_CASES)
def test_inference_mode_contexts_match_lightning(
    inference_mode: bool, expected: dict[str, Any], tmp_path: Path
) -> None:
    lightning, ours = _both(_eval_modes_with, tmp_path, inference_mode)
    assert lightning == expected
    assert ours == lightning


def test_tensor_made_in_validation_can_be_used_by_training(tmp_path: Path) -> None:
    class CachesInValidation(make_counting_model(fulmen)):  # type: ignore[misc]
        cached: torch.Tensor | None = None

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self.cached = batch[0] * 2
            super().validation_step(batch, batch_idx)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            loss = super().training_step(batch, batch_idx)
            if self.cached is not None:
                loss = loss + self.layer(self.cached).mean()
            return loss  # type: ignore[no-any-return]

    trainer = fulmen.Trainer(
        default_root_dir=tmp_path, max_epochs=2, limit_train_batches=2, limit_val_batches=1, **QUIET
    )
    trainer.fit(CachesInValidation())
    assert trainer.global_step == 4


# ====================================================================== 4. exceptions


class Boom(Exception):
    pass


def _fit_that_raises(pl: ModuleType, root: Path, exception: BaseException) -> dict[str, Any]:
    calls: list[str] = []
    model_cls, callback_cls, datamodule_cls = make_recorders(pl, calls)

    class Failing(model_cls):  # type: ignore[misc,valid-type]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            if batch_idx == 1:
                raise exception
            return super().training_step(batch, batch_idx)

        def on_exception(self, exc: BaseException) -> None:
            calls.append(f"on_exception:{type(exc).__name__}")

    class DataModule(datamodule_cls):  # type: ignore[misc,valid-type]
        def on_exception(self, exc: BaseException) -> None:
            calls.append(f"DataModule.on_exception:{type(exc).__name__}")

    class Witness(pl.Callback):  # type: ignore[name-defined,misc]
        def on_exception(self, trainer: Any, pl_module: Any, exc: BaseException) -> None:
            calls.append(f"Callback.on_exception:{type(exc).__name__}:{exc}")

    trainer = pl.Trainer(callbacks=[callback_cls(), Witness()], **trainer_kwargs(root))
    raised: BaseException | None = None
    try:
        trainer.fit(Failing(), datamodule=DataModule())
    except BaseException as caught:  # noqa: B036 - KeyboardInterrupt is what this test is about
        raised = caught
    last_batch = max(i for i, name in enumerate(calls) if name == "on_train_batch_start")
    return dict(
        raised=raised,
        after=calls[last_batch:],
        all_calls=calls,
        status=_value(trainer.state.status),
        stage=_value(trainer.state.stage),
        interrupted=trainer.interrupted,
    )


def test_exception_in_training_step_is_reraised_unchanged(tmp_path: Path) -> None:
    error = Boom("bad batch 1")
    run = _fit_that_raises(fulmen, tmp_path, error)
    assert run["raised"] is error
    assert type(run["raised"]) is Boom and str(run["raised"]) == "bad batch 1"
    assert run["status"] == "interrupted"
    assert run["stage"] is None


def test_exception_runs_on_exception_hooks_and_skips_the_end_hooks(tmp_path: Path) -> None:
    run = _fit_that_raises(fulmen, tmp_path, Boom("bad batch 1"))
    # Lightning 2.6.6 calls the callbacks, then the datamodule; fulmen also tells the module.
    assert run["after"] == [
        "on_train_batch_start",
        "optimizer_step",
        "Callback.on_exception",
        "Callback.on_exception:Boom:bad batch 1",
        "DataModule.on_exception:Boom",
        "on_exception:Boom",
    ]
    for hook in ("teardown", "on_fit_end", "on_train_end", "on_train_epoch_end"):
        assert hook not in run["all_calls"]


@compat
def test_hooks_after_an_exception_match_lightning(tmp_path: Path) -> None:
    expected, actual = _both(_fit_that_raises, tmp_path, Boom("bad batch 1"))
    # A LightningModule has no `on_exception` hook in Lightning 2.6.6; fulmen calls it too.
    assert [c for c in actual["all_calls"] if c != "on_exception:Boom"] == expected["all_calls"]
    assert (actual["status"], actual["stage"]) == (expected["status"], expected["stage"])
    assert type(actual["raised"]) is type(expected["raised"])
    assert str(actual["raised"]) == str(expected["raised"])


def test_interrupted_is_true_after_any_exception(tmp_path: Path) -> None:
    assert _fit_that_raises(fulmen, tmp_path, Boom("bad batch 1"))["interrupted"] is True


# fulmen reports the interrupt with a warning; that is checked on its own below.
@pytest.mark.filterwarnings("ignore:Detected KeyboardInterrupt")
def test_keyboard_interrupt_sets_interrupted_and_calls_on_exception(tmp_path: Path) -> None:
    run = _fit_that_raises(fulmen, tmp_path, KeyboardInterrupt())
    assert isinstance(run["raised"], (KeyboardInterrupt, SystemExit))
    assert run["interrupted"] is True
    assert run["status"] == "interrupted"
    assert run["after"][2:] == [
        "Callback.on_exception",
        "Callback.on_exception:KeyboardInterrupt:",
        "DataModule.on_exception:KeyboardInterrupt",
        "on_exception:KeyboardInterrupt",
    ]
    for hook in ("teardown", "on_fit_end", "on_train_end"):
        assert hook not in run["all_calls"]


def test_keyboard_interrupt_is_announced_without_a_warning(tmp_path: Path) -> None:
    run = _fit_that_raises(fulmen, tmp_path, KeyboardInterrupt())
    assert isinstance(run["raised"], (KeyboardInterrupt, SystemExit))
    assert "DataModule.on_exception:KeyboardInterrupt" in run["all_calls"]


@pytest.mark.filterwarnings("ignore:Detected KeyboardInterrupt")
def test_keyboard_interrupt_is_reraised_after_the_graceful_shutdown(tmp_path: Path) -> None:
    # Deliberately unlike Lightning 2.6.6 (which calls sys.exit(1)): the user's interrupt and its
    # traceback reach the caller unchanged, after on_exception hooks and logger finalization.
    raised = _fit_that_raises(fulmen, tmp_path, KeyboardInterrupt())["raised"]
    assert isinstance(raised, KeyboardInterrupt)


@compat
def test_keyboard_interrupt_in_lightning_exits_with_status_1(tmp_path: Path) -> None:
    pl = _oracle()
    # Lightning ignores SIGINT from then on; give the test session its handler back.
    handler = signal.getsignal(signal.SIGINT)
    try:
        with _quiet():
            run = _fit_that_raises(pl, tmp_path, KeyboardInterrupt())
    finally:
        signal.signal(signal.SIGINT, handler)
    assert isinstance(run["raised"], SystemExit) and run["raised"].code == 1
    assert run["interrupted"] is True
    assert "DataModule.on_exception:KeyboardInterrupt" in run["all_calls"]
    assert "on_exception:KeyboardInterrupt" not in run["all_calls"]


# ====================================================================== 5. several train loaders


def _numbers(start: int, count: int) -> DataLoader[Any]:
    return DataLoader(TensorDataset(torch.arange(start, start + count).float()), batch_size=4)


def _describe(batch: Any) -> Any:
    if isinstance(batch, dict):
        return {key: _describe(value) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return [_describe(value) for value in batch]
    if batch is None:
        return None
    return [int(v) for v in batch.tolist()]


def _loaders(pl: ModuleType, kind: str) -> Any:
    short, long = _numbers(0, 8), _numbers(100, 16)  # 2 and 4 batches
    if kind == "dict":
        return {"a": short, "b": long}
    if kind == "list":
        return [short, long]
    combined = _sub(pl, "utilities").CombinedLoader
    if kind == "combined":
        return combined({"a": short, "b": long})
    return combined({"a": short, "b": long}, kind)


def _fit_on_several_loaders(pl: ModuleType, root: Path, kind: str) -> dict[str, Any]:
    seen: list[tuple[int, Any]] = []

    class Model(pl.LightningModule):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            seen.append((batch_idx, _describe(batch)))
            return self.layer(torch.ones(1)).sum()

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.0)

    trainer = pl.Trainer(default_root_dir=root, max_epochs=2, limit_val_batches=0, **QUIET)
    trainer.fit(Model(), train_dataloaders=_loaders(pl, kind))
    return dict(
        batches=trainer.num_training_batches, steps=trainer.global_step, first_epoch=seen[:4]
    )


A0, A1 = [0, 1, 2, 3], [4, 5, 6, 7]
B0, B1, B2, B3 = ([100 + 4 * i + j for j in range(4)] for i in range(4))
SEVERAL_LOADERS = [
    pytest.param(
        "dict",
        dict(
            batches=4,
            steps=8,
            first_epoch=[
                (0, {"a": [A0], "b": [B0]}),
                (1, {"a": [A1], "b": [B1]}),
                (2, {"a": [A0], "b": [B2]}),
                (3, {"a": [A1], "b": [B3]}),
            ],
        ),
        id="dict",
    ),
    pytest.param(
        "list",
        dict(
            batches=4,
            steps=8,
            first_epoch=[
                (0, [[A0], [B0]]),
                (1, [[A1], [B1]]),
                (2, [[A0], [B2]]),
                (3, [[A1], [B3]]),
            ],
        ),
        id="list",
    ),
    pytest.param(
        "combined",  # CombinedLoader's own default is "min_size"
        dict(
            batches=2,
            steps=4,
            first_epoch=[
                (0, {"a": [A0], "b": [B0]}),
                (1, {"a": [A1], "b": [B1]}),
                (0, {"a": [A0], "b": [B0]}),
                (1, {"a": [A1], "b": [B1]}),
            ],
        ),
        id="CombinedLoader",
    ),
    pytest.param(
        "max_size_cycle",
        dict(
            batches=4,
            steps=8,
            first_epoch=[
                (0, {"a": [A0], "b": [B0]}),
                (1, {"a": [A1], "b": [B1]}),
                (2, {"a": [A0], "b": [B2]}),
                (3, {"a": [A1], "b": [B3]}),
            ],
        ),
        id="CombinedLoader-max_size_cycle",
    ),
    pytest.param(
        "max_size",
        dict(
            batches=4,
            steps=8,
            first_epoch=[
                (0, {"a": [A0], "b": [B0]}),
                (1, {"a": [A1], "b": [B1]}),
                (2, {"a": None, "b": [B2]}),
                (3, {"a": None, "b": [B3]}),
            ],
        ),
        id="CombinedLoader-max_size",
    ),
]


@pytest.mark.parametrize("kind, expected", SEVERAL_LOADERS)
def test_several_train_loaders_give_training_step_a_combined_batch(
    kind: str, expected: dict[str, Any], tmp_path: Path
) -> None:
    assert _fit_on_several_loaders(fulmen, tmp_path, kind) == expected


@compat
@pytest.mark.parametrize("kind", ["dict", "list", "combined", "max_size_cycle", "max_size"])
def test_several_train_loaders_match_lightning(kind: str, tmp_path: Path) -> None:
    expected, actual = _both(_fit_on_several_loaders, tmp_path, kind)
    assert actual == expected


# ====================================================================== 6. reload dataloaders


def _dataloader_calls(pl: ModuleType, root: Path, settings: dict[str, Any]) -> list[str]:
    calls: list[str] = []

    class Reloading(make_counting_model(pl)):  # type: ignore[misc]
        def _note(self, name: str) -> None:
            sanity = " (sanity)" if self.trainer.sanity_checking else ""
            calls.append(f"{name}@{self.trainer.current_epoch}{sanity}")

        def train_dataloader(self) -> Any:
            self._note("train")
            return super().train_dataloader()

        def val_dataloader(self) -> Any:
            self._note("val")
            return super().val_dataloader()

    trainer = pl.Trainer(
        default_root_dir=root,
        max_epochs=4,
        limit_train_batches=2,
        limit_val_batches=1,
        **{**QUIET, **settings},
    )
    trainer.fit(Reloading())
    return calls


RELOAD_CASES = [
    pytest.param(
        {"reload_dataloaders_every_n_epochs": 2},
        ["val@0 (sanity)", "train@0", "train@2", "val@2"],
        id="every-2",
    ),
    pytest.param(
        {"reload_dataloaders_every_n_epochs": 1},
        ["val@0 (sanity)", "train@0"] + [f"{k}@{e}" for e in (1, 2, 3) for k in ("train", "val")],
        id="every-1",
    ),
    pytest.param(
        {"reload_dataloaders_every_n_epochs": 2, "num_sanity_val_steps": 0},
        ["train@0", "val@0", "train@2", "val@2"],
        id="every-2-no-sanity",
    ),
    pytest.param(
        {"reload_dataloaders_every_n_epochs": 2, "check_val_every_n_epoch": 2},
        ["val@0 (sanity)", "train@0", "val@1", "train@2", "val@3"],
        id="every-2-validating-every-2",
    ),
]


@pytest.mark.parametrize("settings, expected", RELOAD_CASES)
def test_reload_dataloaders_every_n_epochs_calls_the_hooks_as_lightning(
    settings: dict[str, Any], expected: list[str], tmp_path: Path
) -> None:
    assert _dataloader_calls(fulmen, tmp_path, settings) == expected


@compat
@pytest.mark.parametrize("settings, expected", RELOAD_CASES)
def test_reload_dataloaders_matches_lightning(
    settings: dict[str, Any], expected: list[str], tmp_path: Path
) -> None:
    lightning, ours = _both(_dataloader_calls, tmp_path, settings)
    assert lightning == expected
    assert ours == lightning


# ====================================================================== 7. time-based val_check_interval


def _validation_steps(
    pl: ModuleType, root: Path, interval: Any, extra: dict[str, Any]
) -> list[int]:
    at: list[int] = []
    extra = dict(extra)
    pause_first = extra.pop("pause_first_batch", 0.0)

    class Model(make_counting_model(pl)):  # type: ignore[misc]
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            if self.trainer.global_step == 0:
                time.sleep(pause_first)
            return super().training_step(batch, batch_idx)  # type: ignore[no-any-return]

        def on_validation_start(self) -> None:
            if not self.trainer.sanity_checking:
                at.append(self.trainer.global_step)

    trainer = pl.Trainer(
        default_root_dir=root,
        max_epochs=2,
        limit_train_batches=4,
        limit_val_batches=1,
        val_check_interval=interval,
        **{**QUIET, **extra},
    )
    trainer.fit(Model())
    return at


EVERY_STEP = [1, 2, 3, 4, 5, 6, 7, 8]
TIME_INTERVAL_CASES = [
    pytest.param({"seconds": 0}, {}, EVERY_STEP, id="dict-0s"),
    pytest.param("00:00:00:00", {}, EVERY_STEP, id="str-0s"),
    pytest.param(timedelta(0), {}, EVERY_STEP, id="timedelta-0"),
    pytest.param(
        timedelta(seconds=0.2),
        {"pause_first_batch": 0.3},
        [1],
        id="due-after-slow-first-batch",
    ),
    pytest.param(
        {"hours": 1},
        {},
        [],
        id="1h-never-due",
    ),
    pytest.param({"seconds": 0}, {"check_val_every_n_epoch": 2}, [5, 6, 7, 8], id="every-2-epochs"),
]


@pytest.mark.parametrize("interval, extra, expected", TIME_INTERVAL_CASES)
def test_time_based_val_check_interval_validates_as_lightning(
    interval: Any, extra: dict[str, Any], expected: list[int], tmp_path: Path
) -> None:
    assert _validation_steps(fulmen, tmp_path, interval, extra) == expected


@compat
@pytest.mark.parametrize("interval, extra, expected", TIME_INTERVAL_CASES)
def test_time_based_val_check_interval_matches_lightning(
    interval: Any, extra: dict[str, Any], expected: list[int], tmp_path: Path
) -> None:
    lightning, ours = _both(_validation_steps, tmp_path, interval, extra)
    assert lightning == expected
    assert ours == lightning


# ====================================================================== 8. estimated_stepping_batches


def _stepping_batches(pl: ModuleType, root: Path, settings: dict[str, Any]) -> dict[str, Any]:
    class OneCycle(make_counting_model(pl)):  # type: ignore[misc]
        estimate: float = 0

        def configure_optimizers(self) -> Any:
            self.estimate = self.trainer.estimated_stepping_batches
            optimizer = torch.optim.SGD(self.parameters(), lr=0.01)
            total = int(self.estimate)
            self.schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=0.1, total_steps=total
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": self.schedule, "interval": "step"},
            }

    model = OneCycle(n_train=40)  # 10 batches of 4
    trainer = pl.Trainer(default_root_dir=root, limit_val_batches=0, **{**QUIET, **settings})
    trainer.fit(model)
    return dict(
        estimate=model.estimate,
        global_step=trainer.global_step,
        scheduler_steps=model.schedule.last_epoch,
    )


STEPPING_CASES = [
    ({"max_epochs": 1}, 10),
    ({"max_epochs": 3}, 30),
    ({"max_epochs": 3, "max_steps": 5}, 5),
    ({"max_epochs": 2, "limit_train_batches": 3}, 6),
    ({"max_epochs": 2, "limit_train_batches": 0.5}, 10),
    ({"max_epochs": 2, "accumulate_grad_batches": 3}, 8),
    ({"max_epochs": 2, "limit_train_batches": 5, "accumulate_grad_batches": 2}, 6),
    ({"max_epochs": 2, "limit_train_batches": 0.3, "accumulate_grad_batches": 2}, 4),
    ({"max_epochs": 3, "max_steps": 100, "accumulate_grad_batches": 4}, 9),
    ({"max_epochs": -1, "max_steps": 7}, 7),
    ({"max_steps": 7}, 7),
    ({"max_epochs": 2, "overfit_batches": 3}, 6),
    ({"fast_dev_run": 2}, 2),
]


@pytest.mark.parametrize("settings, steps", STEPPING_CASES, ids=str)
def test_estimated_stepping_batches_drives_one_cycle_to_the_end(
    settings: dict[str, Any], steps: int, tmp_path: Path
) -> None:
    # OneCycleLR raises if stepped past `total_steps`, so a full fit proves the estimate holds.
    assert _stepping_batches(fulmen, tmp_path, settings) == dict(
        estimate=steps, global_step=steps, scheduler_steps=steps
    )


@compat
@pytest.mark.parametrize("settings, steps", STEPPING_CASES, ids=str)
def test_estimated_stepping_batches_matches_lightning(
    settings: dict[str, Any], steps: int, tmp_path: Path
) -> None:
    expected, actual = _both(_stepping_batches, tmp_path, settings)
    assert expected["estimate"] == steps
    assert actual == expected


def test_estimated_stepping_batches_is_infinite_without_limits(tmp_path: Path) -> None:
    class StopAtOnce(fulmen.Callback):
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            trainer.should_stop = True

    class Model(make_counting_model(fulmen)):  # type: ignore[misc]
        def configure_optimizers(self) -> Any:
            self.estimate = self.trainer.estimated_stepping_batches
            return super().configure_optimizers()

    model = Model()
    trainer = fulmen.Trainer(
        default_root_dir=tmp_path,
        max_epochs=-1,
        limit_val_batches=0,
        callbacks=[StopAtOnce()],
        **QUIET,
    )
    trainer.fit(model)
    assert model.estimate == float("inf")
    assert trainer.global_step == 1


# ====================================================================== 9. quiet by default

_SUMMARY_LINE = re.compile(
    r"^(\| Name +\| Type +\| Params +\| Mode +\| FLOPs"
    r"|-+"
    r"|0 \| layer \| Linear \| 66 +\| train \| 0"
    r"|[\d.]+ +(Trainable params|Non-trainable params|Total params"
    r"|Total estimated model params size \(MB\)|Modules in train mode|Modules in eval mode"
    r"|Total Flops))$"
)


def test_default_fit_prints_only_the_summary_and_the_progress_bar(tmp_path: Path) -> None:
    script = (
        "import fulmen as pl\n"
        "from fulmen.demos.boring_classes import BoringModel\n"
        "pl.Trainer(default_root_dir='.', max_epochs=1).fit(BoringModel())\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert done.returncode == 0, done.stderr
    stderr_lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    assert stderr_lines, "the model summary table is missing"
    assert [line for line in stderr_lines if not _SUMMARY_LINE.match(line)] == []
    assert stderr_lines[0].startswith("| Name")
    assert "warn" not in (done.stdout + done.stderr).lower()
    # stdout carries the progress bar only.
    bar_updates = [u.strip() for u in re.split(r"[\r\n]", done.stdout) if u.strip()]
    assert bar_updates and all(
        re.match(r"^(Sanity Checking|Training|Epoch 0|Validation)", u) or u.startswith("\x1b")
        for u in bar_updates
    ), bar_updates[:5]
    assert (tmp_path / "lightning_logs" / "version_0" / "checkpoints").is_dir()


# ====================================================================== 10. evaluate after fit


def _evaluate_after_fit(
    pl: ModuleType, root: Path, fn: str, ckpt_path: str | None
) -> dict[str, Any]:
    model = make_counting_model(pl)()
    checkpoint = _sub(pl, "callbacks").ModelCheckpoint(monitor="val_loss", save_last=True)
    trainer = pl.Trainer(
        default_root_dir=root,
        max_epochs=3,
        limit_train_batches=2,
        limit_val_batches=2,
        limit_test_batches=2,
        limit_predict_batches=2,
        callbacks=[checkpoint],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model)
    model.layer.weight.data.fill_(123.0)  # any checkpoint load shows up as a change
    kwargs = {} if ckpt_path is None else {"ckpt_path": ckpt_path}
    if fn == "predict":
        out = trainer.predict(**kwargs)
        result: Any = len(out)
    else:
        out = getattr(trainer, fn)(verbose=False, **kwargs)
        result = sorted(out[0])
    loaded = torch.load(trainer.ckpt_path, weights_only=False)["state_dict"]
    roles = {checkpoint.best_model_path: "best", checkpoint.last_model_path: "last"}
    return dict(
        used=roles.get(trainer.ckpt_path, trainer.ckpt_path),
        best=re.sub(r"epoch=\d+-step=\d+", "epoch=E-step=S", checkpoint.best_model_path),
        last=checkpoint.last_model_path,
        result=result,
        same_module=trainer.lightning_module is model,
        weights_from_ckpt=torch.equal(model.layer.weight, loaded["layer.weight"]),
        fn=_value(trainer.state.fn),
        status=_value(trainer.state.status),
    )


EVALUATE_CASES = [
    (fn, ckpt, used)
    for fn in ("validate", "test", "predict")
    for ckpt, used in ((None, "best"), ("best", "best"), ("last", "last"))
]


@pytest.mark.parametrize("fn, ckpt_path, used", EVALUATE_CASES)
def test_evaluate_without_model_after_fit_uses_the_fitted_model(
    fn: str, ckpt_path: str | None, used: str, tmp_path: Path
) -> None:
    run = _evaluate_after_fit(fulmen, tmp_path, fn, ckpt_path)
    assert run["used"] == used
    assert run["best"] == str(tmp_path / "checkpoints" / "epoch=E-step=S.ckpt")
    assert run["last"] == str(tmp_path / "checkpoints" / "last.ckpt")
    assert run["same_module"] is True
    assert run["weights_from_ckpt"] is True
    assert run["fn"] == fn and run["status"] == "finished"
    assert run["result"] == {"validate": ["val_loss"], "test": ["test_loss"], "predict": 2}[fn]


@compat
@pytest.mark.parametrize("fn, ckpt_path, used", EVALUATE_CASES)
def test_evaluate_after_fit_matches_lightning(
    fn: str, ckpt_path: str | None, used: str, tmp_path: Path
) -> None:
    expected, actual = _both(_evaluate_after_fit, tmp_path, fn, ckpt_path)
    assert expected["used"] == used
    for run, root in ((expected, tmp_path / "lightning"), (actual, tmp_path / "fulmen")):
        run["best"] = os.path.relpath(run["best"], root)
        run["last"] = os.path.relpath(run["last"], root)
    assert actual == expected


# ====================================================================== 11. save_checkpoint + resume


def _resume(pl: ModuleType, root: Path, saved: str) -> dict[str, Any]:
    """Fit 1 epoch saving checkpoints, then resume a new Trainer (max_epochs=2) from one."""
    root.mkdir(parents=True, exist_ok=True)
    calls: list[str] = []
    model_cls, callback_cls, _ = make_recorders(pl, calls)

    class Saver(pl.Callback):  # type: ignore[name-defined,misc]
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if trainer.global_step == 1:
                trainer.save_checkpoint(root / "mid_epoch.ckpt")

        def on_train_epoch_end(self, trainer: Any, *args: Any) -> None:
            trainer.save_checkpoint(root / "epoch_end.ckpt")

    first = pl.Trainer(callbacks=[Saver()], **trainer_kwargs(root))
    first.fit(model_cls())
    first.save_checkpoint(root / "after_fit.ckpt")
    stored = torch.load(root / f"{saved}.ckpt", weights_only=False)
    calls.clear()
    trainer = pl.Trainer(callbacks=[callback_cls()], **trainer_kwargs(root, max_epochs=2))
    trainer.fit(model_cls(), ckpt_path=root / f"{saved}.ckpt")
    return dict(
        stored=(stored["epoch"], stored["global_step"]),
        resumed=(trainer.current_epoch, trainer.global_step),
        ckpt_path=os.path.basename(trainer.ckpt_path),
        calls=calls,
    )


RESUME_START = [
    "configure_callbacks",
    "prepare_data",
    "Callback.setup",
    "setup",
    "configure_model",
    "on_load_checkpoint",
    "Callback.on_load_checkpoint",
    "configure_optimizers",
    "Callback.on_fit_start",
    "on_fit_start",
    "zero_grad",
]


@pytest.mark.parametrize(
    "saved, stored, resumed, batches",
    [
        ("mid_epoch", (0, 1), (2, 4), 3),
        ("epoch_end", (0, 2), (2, 4), 2),
        pytest.param("after_fit", (1, 2), (2, 4), 2),
    ],
)
def test_resume_continues_epoch_and_global_step(
    saved: str, stored: tuple[int, int], resumed: tuple[int, int], batches: int, tmp_path: Path
) -> None:
    run = _resume(fulmen, tmp_path, saved)
    assert run["stored"] == stored
    assert run["resumed"] == resumed
    assert run["ckpt_path"] == f"{saved}.ckpt"
    assert run["calls"].count("training_step") == batches
    assert run["calls"][: len(RESUME_START)] == RESUME_START


def test_resume_mid_epoch_skips_sanity_check_and_epoch_start(tmp_path: Path) -> None:
    calls = _resume(fulmen, tmp_path, "mid_epoch")["calls"]
    assert "Callback.on_sanity_check_start" not in calls
    after_start = calls[len(RESUME_START) :]
    assert after_start[:6] == [
        "train_dataloader",
        "val_dataloader",
        "Callback.on_train_start",
        "on_train_start",
        "on_before_batch_transfer",  # batch 1 of epoch 0: no on_train_epoch_start again
        "transfer_batch_to_device",
    ]
    assert calls.count("on_train_epoch_start") == 1  # only epoch 1's


def test_resume_from_epoch_end_runs_the_sanity_check(tmp_path: Path) -> None:
    calls = _resume(fulmen, tmp_path, "epoch_end")["calls"]
    assert calls[len(RESUME_START) : len(RESUME_START) + 2] == [
        "Callback.on_sanity_check_start",
        "val_dataloader",
    ]


@compat
@pytest.mark.parametrize(
    "saved",
    [
        "mid_epoch",
        pytest.param("epoch_end"),
        pytest.param("after_fit"),
    ],
)
def test_resume_hook_order_matches_lightning(saved: str, tmp_path: Path) -> None:
    expected, actual = _both(_resume, tmp_path, saved)
    assert expected["calls"][: len(RESUME_START)] == RESUME_START
    assert actual == expected


# ====================================================================== 12. properties


def _snapshot(trainer: Any, root: Path) -> dict[str, Any]:
    return dict(
        flags=(
            trainer.sanity_checking,
            trainer.training,
            trainer.validating,
            trainer.testing,
            trainer.predicting,
        ),
        fn=_value(trainer.state.fn),
        stage=_value(trainer.state.stage),
        num_training_batches=trainer.num_training_batches,
        num_val_batches=list(trainer.num_val_batches),
        num_sanity_val_batches=list(trainer.num_sanity_val_batches),
        module=type(trainer.lightning_module).__name__,
        datamodule=type(trainer.datamodule).__name__,
        optimizers=[type(o).__name__ for o in trainer.optimizers],
        schedulers=[
            (type(c.scheduler).__name__, c.interval, c.frequency, c.monitor, c.name)
            for c in trainer.lr_scheduler_configs
        ],
        log_dir=os.path.relpath(trainer.log_dir, root),
        ranks=(trainer.is_global_zero, trainer.world_size, trainer.global_rank),
    )


PROPERTY_HOOKS = [
    "setup(fit)",
    "on_fit_start",
    "on_sanity_check_start",
    "on_validation_start(sanity)",
    "on_train_start",
    "on_train_batch_start",
    "on_validation_start",
    "on_train_epoch_end",
    "on_train_end",
    "on_fit_end",
    "teardown(fit)",
    "on_test_start",
    "on_predict_start",
]


def _properties(pl: ModuleType, root: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    class Probe(pl.Callback):  # type: ignore[name-defined,misc]
        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            seen[f"setup({_value(stage)})"] = _snapshot(trainer, root)

        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            seen["on_fit_start"] = _snapshot(trainer, root)

        def on_sanity_check_start(self, trainer: Any, pl_module: Any) -> None:
            seen["on_sanity_check_start"] = _snapshot(trainer, root)

        def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
            key = (
                "on_validation_start(sanity)" if trainer.sanity_checking else "on_validation_start"
            )
            seen[key] = _snapshot(trainer, root)

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            seen["on_train_start"] = _snapshot(trainer, root)

        def on_train_batch_start(self, trainer: Any, *args: Any) -> None:
            seen["on_train_batch_start"] = _snapshot(trainer, root)

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            seen["on_train_epoch_end"] = _snapshot(trainer, root)

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            seen["on_train_end"] = _snapshot(trainer, root)

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            seen["on_fit_end"] = _snapshot(trainer, root)

        def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
            seen[f"teardown({_value(stage)})"] = _snapshot(trainer, root)

        def on_test_start(self, trainer: Any, pl_module: Any) -> None:
            seen["on_test_start"] = _snapshot(trainer, root)

        def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
            seen["on_predict_start"] = _snapshot(trainer, root)

    class DataModule(pl.LightningDataModule):  # type: ignore[name-defined,misc]
        def train_dataloader(self) -> Any:
            return loader(40)  # 10 batches

        def val_dataloader(self) -> Any:
            return [loader(12, seed=1), loader(20, seed=2)]  # 3 and 5 batches

        def test_dataloader(self) -> Any:
            return loader(8)

        def predict_dataloader(self) -> Any:
            return loader(8)

    class Model(make_counting_model(pl)):  # type: ignore[misc]
        def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
            super().validation_step(batch, batch_idx)

        def configure_optimizers(self) -> Any:
            optimizer = torch.optim.Adam(self.parameters())
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {
                    "scheduler": scheduler,
                    "interval": "step",
                    "frequency": 2,
                    "name": "my_lr",
                },
            }

    callbacks = _sub(pl, "callbacks")
    checkpoint = callbacks.ModelCheckpoint(monitor="val_loss/dataloader_idx_0")
    early_stopping = callbacks.EarlyStopping(monitor="val_loss/dataloader_idx_0", patience=100)
    trainer = pl.Trainer(
        default_root_dir=root,
        max_epochs=1,
        limit_train_batches=5,
        num_sanity_val_steps=4,
        callbacks=[Probe(), early_stopping, checkpoint],
        logger=_sub(pl, "loggers").CSVLogger(root),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    seen["before_fit"] = dict(
        num_training_batches=trainer.num_training_batches,
        num_val_batches=list(trainer.num_val_batches),
        num_sanity_val_batches=list(trainer.num_sanity_val_batches),
        module=trainer.lightning_module,
        datamodule=trainer.datamodule,
        optimizers=list(trainer.optimizers),
        schedulers=list(trainer.lr_scheduler_configs),
        log_dir=os.path.relpath(trainer.log_dir, root),
        ranks=(trainer.is_global_zero, trainer.world_size, trainer.global_rank),
        checkpoint_callback=trainer.checkpoint_callback is checkpoint,
        checkpoint_callbacks=trainer.checkpoint_callbacks == [checkpoint],
        early_stopping_callback=trainer.early_stopping_callback is early_stopping,
        early_stopping_callbacks=trainer.early_stopping_callbacks == [early_stopping],
    )
    datamodule = DataModule()
    trainer.fit(Model(), datamodule=datamodule)
    seen["after_fit"] = dict(
        datamodule=trainer.datamodule is datamodule,
        flags=(trainer.sanity_checking, trainer.training, trainer.validating),
        stage=_value(trainer.state.stage),
    )
    trainer.test(datamodule=datamodule, verbose=False)
    seen["num_test_batches"] = list(trainer.num_test_batches)
    trainer.predict(datamodule=datamodule)
    seen["num_predict_batches"] = list(trainer.num_predict_batches)
    return seen


FIT_COMMON = dict(
    fn="fit",
    module="Model",
    datamodule="DataModule",
    optimizers=["Adam"],
    schedulers=[("StepLR", "step", 2, None, "my_lr")],
    log_dir=os.path.join("lightning_logs", "version_0"),
    ranks=(True, 1, 0),
)
TRAINING = (False, True, False, False, False)
SANITY = (True, False, False, False, False)
VALIDATING = (False, False, True, False, False)
LOADED = dict(num_training_batches=5, num_val_batches=[3, 5], num_sanity_val_batches=[3, 4])
NOT_LOADED = dict(num_training_batches=float("inf"), num_val_batches=[], num_sanity_val_batches=[])
EXPECTED_PROPERTIES: dict[str, dict[str, Any]] = {
    "setup(fit)": dict(
        FIT_COMMON, flags=TRAINING, stage="train", **NOT_LOADED, optimizers=[], schedulers=[]
    ),
    "on_fit_start": dict(FIT_COMMON, flags=TRAINING, stage="train", **NOT_LOADED),
    "on_sanity_check_start": dict(FIT_COMMON, flags=SANITY, stage="sanity_check", **NOT_LOADED),
    "on_validation_start(sanity)": dict(
        FIT_COMMON,
        flags=SANITY,
        stage="sanity_check",
        num_training_batches=float("inf"),
        num_val_batches=[3, 5],
        num_sanity_val_batches=[3, 4],
    ),
    "on_train_start": dict(FIT_COMMON, flags=TRAINING, stage="train", **LOADED),
    "on_train_batch_start": dict(FIT_COMMON, flags=TRAINING, stage="train", **LOADED),
    "on_validation_start": dict(FIT_COMMON, flags=VALIDATING, stage="validate", **LOADED),
    "on_train_epoch_end": dict(FIT_COMMON, flags=TRAINING, stage="train", **LOADED),
    "on_train_end": dict(FIT_COMMON, flags=TRAINING, stage="train", **LOADED),
    "on_fit_end": dict(FIT_COMMON, flags=TRAINING, stage="train", **LOADED),
    "teardown(fit)": dict(FIT_COMMON, flags=TRAINING, stage="train", **LOADED),
    "on_test_start": dict(
        FIT_COMMON, fn="test", flags=(False, False, False, True, False), stage="test", **LOADED
    ),
    "on_predict_start": dict(
        FIT_COMMON,
        fn="predict",
        flags=(False, False, False, False, True),
        stage="predict",
        **LOADED,
    ),
}


@pytest.fixture(scope="module")
def fulmen_properties(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("properties")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return _properties(fulmen, root)
    finally:
        os.chdir(cwd)


def test_properties_before_fit(fulmen_properties: dict[str, Any]) -> None:
    assert fulmen_properties["before_fit"] == dict(
        num_training_batches=float("inf"),
        num_val_batches=[],
        num_sanity_val_batches=[],
        module=None,
        datamodule=None,
        optimizers=[],
        schedulers=[],
        log_dir=os.path.join("lightning_logs", "version_0"),
        ranks=(True, 1, 0),
        checkpoint_callback=True,
        checkpoint_callbacks=True,
        early_stopping_callback=True,
        early_stopping_callbacks=True,
    )


@pytest.mark.parametrize("hook", PROPERTY_HOOKS)
def test_properties_seen_from_hooks(hook: str, fulmen_properties: dict[str, Any]) -> None:
    assert fulmen_properties[hook] == EXPECTED_PROPERTIES[hook]


def test_properties_after_each_entry_point(fulmen_properties: dict[str, Any]) -> None:
    assert fulmen_properties["after_fit"] == dict(
        datamodule=True, flags=(False, False, False), stage=None
    )
    assert fulmen_properties["num_test_batches"] == [2]
    assert fulmen_properties["num_predict_batches"] == [2]


@compat
def test_properties_match_lightning(tmp_path: Path) -> None:
    expected, actual = _both(_properties, tmp_path)
    for hook in PROPERTY_HOOKS:
        assert expected[hook] == EXPECTED_PROPERTIES[hook], hook
    assert actual == expected


def _defaults_without_logger(pl: ModuleType, root: Path) -> dict[str, Any]:
    with_checkpoint = pl.Trainer(logger=False, default_root_dir=root)
    plain = pl.Trainer(logger=False, enable_checkpointing=False, default_root_dir=root)
    return dict(
        log_dir=with_checkpoint.log_dir,
        logger=with_checkpoint.logger,
        loggers=with_checkpoint.loggers,
        default_checkpoint=type(with_checkpoint.checkpoint_callback).__name__,
        early_stopping=with_checkpoint.early_stopping_callback,
        no_checkpoint=(plain.checkpoint_callback, plain.checkpoint_callbacks),
        no_early_stopping=plain.early_stopping_callbacks,
    )


def test_properties_without_logger_or_extra_callbacks(tmp_path: Path) -> None:
    assert _defaults_without_logger(fulmen, tmp_path) == dict(
        log_dir=str(tmp_path),  # no logger: log_dir is default_root_dir
        logger=None,
        loggers=[],
        default_checkpoint="ModelCheckpoint",
        early_stopping=None,
        no_checkpoint=(None, []),
        no_early_stopping=[],
    )


@compat
def test_properties_without_logger_match_lightning(tmp_path: Path) -> None:
    expected, actual = _both(_defaults_without_logger, tmp_path)
    assert actual["log_dir"] == str(tmp_path / "fulmen")
    assert expected["log_dir"] == str(tmp_path / "lightning")
    del actual["log_dir"], expected["log_dir"]
    assert actual == expected
