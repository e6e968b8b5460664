"""Bad data and hyperparameters: refused or set aside early, with a message that says what to do.

- A dataloader that is no iterable of batches (an int, a string, a dict of ints, a list holding
  None), passed to fit/validate/test/predict, or returned by a `*_dataloader()` hook of the
  LightningModule or the LightningDataModule: a TypeError naming where it came from and the value,
  before any training step (a loader passed as an argument: before any hook runs at all).
- `self.log` of an epoch-averaged value when the batch size cannot be read from the batch (as in
  Lightning, a MisconfigurationException telling to pass `batch_size`), or a `batch_size` that is
  no count of samples: the error names the metric.
- `save_hyperparameters` of values that a safe load cannot read back (a lambda, an open file, a
  module, an instance of the user's class, an enum): a warning at `save_hyperparameters` naming
  each, `self.hparams` keeps them, the checkpoint leaves them out and loads with
  `weights_only=True`, and `load_from_checkpoint` without them says which to pass.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

import fulmen
from fulmen.callbacks import Callback
from fulmen.demos.boring_classes import BoringDataModule, BoringModel
from fulmen.utilities.exceptions import MisconfigurationException
from tests.faults.conftest import FaultReport

QUIET: dict[str, Any] = {
    "max_steps": 2,
    "limit_val_batches": 1,
    "logger": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "enable_checkpointing": False,
}


class Recording(Callback):
    """Records every hook that ran and every step taken."""

    def __init__(self) -> None:
        self.hooks: list[str] = []
        self.steps = 0

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.hooks.append("setup")

    def on_train_batch_start(self, *args: Any) -> None:
        self.steps += 1


# ------------------------------------------------------------------ dataloaders

NOT_LOADERS: dict[str, Any] = {
    "int": 42,
    "str": "data.csv",
    "object": object(),
    "dict-of-ints": {"a": 1, "b": 2},
    "list-of-ints": [1, 2],
    "list-with-None": [None],
    "nested-dict": {"train": {"x": 3}},
}
ENTRY_POINTS = {
    "fit": "train_dataloaders",
    "validate": "dataloaders",
    "test": "dataloaders",
    "predict": "dataloaders",
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("case", list(NOT_LOADERS))
def test_a_dataloader_argument_that_is_not_one_is_refused_before_any_hook(
    case: str, entry: str, fault_report: FaultReport
) -> None:
    value = NOT_LOADERS[case]
    recording = Recording()
    trainer = fulmen.Trainer(**QUIET, callbacks=[recording])
    argument = ENTRY_POINTS[entry]
    with pytest.raises(TypeError) as info:
        getattr(trainer, entry)(BoringModel(), **{argument: value})
    message = str(info.value)
    clear = f"Trainer.{entry}({argument}=...)" in message and repr(value) in message
    early = recording.hooks == [] and recording.steps == 0
    fault_report.record("bad data / hyperparameters", injections=1, recovered=int(clear and early))
    assert clear, message
    assert early


def test_a_bad_val_dataloader_passed_to_fit_is_named_as_such() -> None:
    with pytest.raises(TypeError, match=r"Trainer\.fit\(val_dataloaders=\.\.\.\) got 7"):
        fulmen.Trainer(**QUIET).fit(BoringModel(), val_dataloaders=7)


@pytest.mark.parametrize("owner", ["module", "datamodule"])
@pytest.mark.parametrize("hook", ["train_dataloader", "val_dataloader"])
@pytest.mark.parametrize("case", ["int", "dict-of-ints", "list-with-None"])
def test_a_dataloader_hook_returning_something_else_is_refused_before_training(
    case: str, hook: str, owner: str, fault_report: FaultReport
) -> None:
    value = NOT_LOADERS[case]
    recording = Recording()

    def returns_value(self: Any) -> Any:
        return value

    # Without a sanity check, validation comes only after training steps.
    trainer = fulmen.Trainer(**QUIET, callbacks=[recording], num_sanity_val_steps=2)
    if owner == "module":
        name = "UserModel"
        model = type(name, (BoringModel,), {hook: returns_value})()
        datamodule = None
    else:
        name = "UserData"
        model = BoringModel()
        datamodule = type(name, (BoringDataModule,), {hook: returns_value})()
    with pytest.raises(TypeError) as info:
        trainer.fit(model, datamodule=datamodule)
    message = str(info.value)
    clear = f"`{name}.{hook}()` returned {value!r}" in message and "not a dataloader" in message
    fault_report.record(
        "bad data / hyperparameters", injections=1, recovered=int(clear and recording.steps == 0)
    )
    assert clear, message
    assert recording.steps == 0


class Batches:
    """An iterable of batches that is no DataLoader."""

    def __init__(self, count: int) -> None:
        self.batches = [torch.randn(4, 32) for _ in range(count)]

    def __iter__(self) -> Any:
        return iter(self.batches)


def test_any_iterable_of_batches_and_dicts_and_lists_of_them_are_accepted() -> None:
    trainer = fulmen.Trainer(**QUIET)
    trainer.fit(BoringModel(), train_dataloaders=Batches(3), val_dataloaders={"a": Batches(1)})
    assert trainer.global_step == 2
    predictions = trainer.predict(BoringModel(), dataloaders=[Batches(1), Batches(2)])
    assert predictions is not None and [len(p) for p in predictions] == [1, 2]


# ------------------------------------------------------------------ batch size


class TextBatches(BoringModel):
    """Batches of strings: no tensor, so no batch size to read."""

    def __init__(self, log_in: str, **log_options: Any) -> None:
        super().__init__()
        self.log_in = log_in
        self.log_options = log_options

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(["one", "two", "three", "four"], batch_size=2)  # type: ignore[arg-type]

    def val_dataloader(self) -> DataLoader[Any]:
        return DataLoader(["five", "six"], batch_size=2)  # type: ignore[arg-type]

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        if self.log_in == "training_step":
            self.log("text_metric", 1.0, on_epoch=True, **self.log_options)
        return self.layer(torch.ones(1, 32)).sum()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        if self.log_in == "validation_step":
            self.log("text_metric", 2.0, **self.log_options)


@pytest.mark.parametrize("log_in", ["training_step", "validation_step"])
def test_logging_without_a_batch_size_it_cannot_infer_asks_for_one_naming_the_metric(
    log_in: str, fault_report: FaultReport
) -> None:
    with pytest.raises(MisconfigurationException) as info:
        fulmen.Trainer(**QUIET).fit(TextBatches(log_in))
    message = str(info.value)
    clear = "'text_metric'" in message and "batch_size=" in message
    fault_report.record("bad data / hyperparameters", injections=1, recovered=int(clear))
    assert clear, message


def test_logging_with_an_explicit_batch_size_needs_no_inference() -> None:
    trainer = fulmen.Trainer(**QUIET)
    trainer.fit(TextBatches("training_step", batch_size=2))
    assert trainer.callback_metrics["text_metric"].item() == 1.0


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, "4", True, torch.tensor([2, 2])])
def test_a_batch_size_that_is_not_a_count_of_samples_is_refused_naming_the_metric(
    batch_size: Any, fault_report: FaultReport
) -> None:
    with pytest.raises(MisconfigurationException) as info:
        fulmen.Trainer(**QUIET).fit(TextBatches("training_step", batch_size=batch_size))
    message = str(info.value)
    clear = "'text_metric'" in message and f"batch_size={batch_size!r}" in message
    fault_report.record("bad data / hyperparameters", injections=1, recovered=int(clear))
    assert clear, message


# ------------------------------------------------------------------ hyperparameters


class Colour(enum.Enum):
    RED = 1


class UserConfig:
    def __init__(self) -> None:
        self.depth = 3


class WithThing(BoringModel):
    def __init__(self, thing: Any, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()


def unstorable_values(tmp_path: Path) -> dict[str, Any]:
    return {
        "lambda": lambda x: x + 1,
        "open-file": open(tmp_path / "notes.txt", "w"),  # noqa: SIM115 (closed by the test)
        "module": torch.nn.Linear(2, 2),
        "user-class": UserConfig(),
        "enum": Colour.RED,
    }


@pytest.mark.parametrize("case", ["lambda", "open-file", "module", "user-class", "enum"])
def test_an_unstorable_hyperparameter_is_kept_out_of_checkpoints_with_a_warning(
    case: str, tmp_path: Path, fault_report: FaultReport
) -> None:
    values = unstorable_values(tmp_path)
    value = values[case]
    try:
        with pytest.warns(UserWarning, match=r"Hyperparameter 'thing' of WithThing") as record:
            model = WithThing(value)
        warned = [str(w.message) for w in record if "'thing'" in str(w.message)]
        assert len(warned) == 1
        assert "load_from_checkpoint(path, thing=...)" in warned[0]
        assert "ignore=['thing']" in warned[0]
        assert model.hparams.thing is value and model.hparams.lr == 0.1

        trainer = fulmen.Trainer(**QUIET, default_root_dir=tmp_path)
        trainer.fit(model)
        path = tmp_path / "model.ckpt"
        trainer.save_checkpoint(
            path
        )  # warned once already: no second warning (warnings are errors)
        saved = torch.load(path, weights_only=True)
        assert saved["hyper_parameters"] == {"lr": 0.1}

        with pytest.raises(
            TypeError, match=r"needs \['thing'\].*load_from_checkpoint\(path, thing="
        ):
            WithThing.load_from_checkpoint(path)
        with pytest.warns(UserWarning, match=r"Hyperparameter 'thing'"):  # built anew: said anew
            loaded = WithThing.load_from_checkpoint(path, thing=value)
        assert torch.equal(loaded.layer.weight, model.layer.weight)
        fault_report.record("bad data / hyperparameters", injections=1, recovered=1)
    finally:
        values["open-file"].close()


def test_an_unstorable_value_set_on_hparams_later_is_dropped_at_the_save_with_a_warning(
    tmp_path: Path,
) -> None:
    model = WithThing(thing=3)
    trainer = fulmen.Trainer(**QUIET)
    trainer.fit(model)
    model.hparams.callback = lambda: None
    with pytest.warns(UserWarning, match=r"Hyperparameter 'callback' of WithThing is a function"):
        trainer.save_checkpoint(tmp_path / "a.ckpt")
    trainer.save_checkpoint(tmp_path / "b.ckpt")  # said once: no second warning
    for name in ("a.ckpt", "b.ckpt"):
        assert torch.load(tmp_path / name, weights_only=True)["hyper_parameters"] == {
            "thing": 3,
            "lr": 0.1,
        }


def test_an_allowlisted_class_stays_in_checkpoints(tmp_path: Path) -> None:
    with torch.serialization.safe_globals([UserConfig]):
        model = WithThing(UserConfig())  # no warning: warnings are errors in this suite
        trainer = fulmen.Trainer(**QUIET)
        trainer.fit(model)
        trainer.save_checkpoint(tmp_path / "model.ckpt")
        loaded = WithThing.load_from_checkpoint(tmp_path / "model.ckpt")
    assert loaded.hparams.thing.depth == 3
    assert "UserConfig" not in str(torch.serialization.get_safe_globals())


def test_datamodule_hyperparameters_follow_the_same_rule(tmp_path: Path) -> None:
    class Data(BoringDataModule):
        def __init__(self, transform: Any = None, size: int = 64) -> None:
            super().__init__()
            self.save_hyperparameters()

    with pytest.warns(UserWarning, match=r"Hyperparameter 'transform' of Data is a function"):
        datamodule = Data(transform=lambda x: x)
    trainer = fulmen.Trainer(**QUIET)
    trainer.fit(BoringModel(), datamodule=datamodule)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    saved = torch.load(tmp_path / "model.ckpt", weights_only=True)
    assert saved["datamodule_hyper_parameters"] == {"size": 64}
