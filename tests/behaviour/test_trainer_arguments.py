"""Trainer arguments: defaults, bad values raising early with clear messages, removed names."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import fulmen
from fulmen.utilities.exceptions import MisconfigurationException

BAD_VALUES: list[tuple[str, Any, str]] = [
    ("max_epochs", -2, "max_epochs=-2"),
    ("max_epochs", 1.5, "max_epochs=1.5"),
    ("min_epochs", -1, "min_epochs=-1"),
    ("max_steps", -5, "max_steps=-5"),
    ("min_steps", "3", "min_steps='3'"),
    ("limit_train_batches", 1.5, "limit_train_batches=1.5"),
    ("limit_val_batches", -1, "limit_val_batches=-1"),
    ("limit_test_batches", "all", "limit_test_batches='all'"),
    ("limit_predict_batches", True, "limit_predict_batches=True"),
    ("overfit_batches", -1, "overfit_batches=-1"),
    ("val_check_interval", 0.0, "val_check_interval=0.0"),
    ("val_check_interval", "soon", "val_check_interval='soon'"),
    ("check_val_every_n_epoch", 0, "check_val_every_n_epoch=0"),
    ("num_sanity_val_steps", -2, "num_sanity_val_steps=-2"),
    ("log_every_n_steps", -1, "log_every_n_steps=-1"),
    ("accumulate_grad_batches", 0, "accumulate_grad_batches=0"),
    ("gradient_clip_val", -1.0, "gradient_clip_val=-1.0"),
    ("gradient_clip_algorithm", "l2", "gradient_clip_algorithm='l2'"),
    ("deterministic", "sometimes", "deterministic='sometimes'"),
    ("fast_dev_run", -1, "fast_dev_run=-1"),
    ("max_time", "1 hour", "max_time='1 hour'"),
    ("precision", "8-bit", "precision='8-bit'"),
    ("accelerator", "abacus", "accelerator='abacus'"),
    ("strategy", "telepathy", "strategy='telepathy'"),
    ("profiler", "stopwatch", "profiler='stopwatch'"),
    ("devices", 0, "devices=0"),
    ("reload_dataloaders_every_n_epochs", -1, "reload_dataloaders_every_n_epochs=-1"),
    ("inference_mode", "yes", "inference_mode='yes'"),
    ("logger", "tensorboard", "logger='tensorboard'"),
]


@pytest.mark.parametrize(
    ("name", "value", "shown"), BAD_VALUES, ids=[f"{n}={v!r}" for n, v, _ in BAD_VALUES]
)
def test_bad_values_raise_at_construction_naming_argument_and_value(
    name: str, value: Any, shown: str
) -> None:
    with pytest.raises((ValueError, TypeError, MisconfigurationException)) as info:
        fulmen.Trainer(**{name: value})
    assert shown in str(info.value)


def test_signature_matches_lightning_names_and_defaults() -> None:
    pl = pytest.importorskip("pytorch_lightning")
    ours = inspect.signature(fulmen.Trainer.__init__).parameters
    theirs = inspect.signature(pl.Trainer.__init__).parameters
    for name, param in theirs.items():
        assert name in ours, name
        assert ours[name].default == param.default, name


@pytest.mark.parametrize(
    "name", ["gpus", "resume_from_checkpoint", "amp_backend", "track_grad_norm"]
)
def test_removed_arguments_raise_type_error_with_migration_hint(name: str) -> None:
    with pytest.raises(TypeError, match=f"{name}.*Use "):
        fulmen.Trainer(**{name: 1})


def test_unknown_argument_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        fulmen.Trainer(colour="red")


def test_strategy_names_pick_lightnings_strategies() -> None:
    from fulmen.strategies import DDPStrategy, SingleDeviceStrategy

    auto = fulmen.Trainer(accelerator="cpu", devices=2)
    assert isinstance(auto.strategy, DDPStrategy)
    assert (auto.world_size, auto.num_devices, auto.strategy._start_method) == (2, 2, "popen")
    spawn = fulmen.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn")
    assert spawn.strategy._start_method == "spawn"
    nodes = fulmen.Trainer(accelerator="cpu", devices=2, num_nodes=3, strategy="ddp")
    assert nodes.world_size == 6
    assert isinstance(fulmen.Trainer(accelerator="cpu").strategy, SingleDeviceStrategy)
    with pytest.raises(MisconfigurationException, match=r"strategy='deepspeed'\) is not supported"):
        fulmen.Trainer(strategy="deepspeed")
    with pytest.raises(ValueError, match=r"strategy='dp'\) is not a known strategy"):
        fulmen.Trainer(strategy="dp")
    with pytest.raises(ValueError, match="num_nodes=0"):
        fulmen.Trainer(num_nodes=0)


def test_default_trainer_has_lightning_defaults() -> None:
    trainer = fulmen.Trainer()
    assert trainer.max_epochs is None and trainer.max_steps == -1
    assert trainer.num_sanity_val_steps == 2 and trainer.log_every_n_steps == 50
    assert trainer.precision == "32-true"
    names = sorted(type(cb).__name__ for cb in trainer.callbacks)
    assert names == ["ModelCheckpoint", "ModelSummary", "TQDMProgressBar"]
    assert type(trainer.logger).__name__ == "TensorBoardLogger"


def test_barebones_turns_everything_off_and_rejects_conflicts() -> None:
    trainer = fulmen.Trainer(barebones=True)
    assert trainer.callbacks == [] and trainer.loggers == []
    with pytest.raises(ValueError, match="barebones=True, enable_checkpointing=True"):
        fulmen.Trainer(barebones=True, enable_checkpointing=True)


def test_fit_without_training_step_or_optimizer_or_data_is_clear() -> None:
    class NoStep(fulmen.LightningModule):
        pass

    with pytest.raises(MisconfigurationException, match="defines no `training_step"):
        fulmen.Trainer().fit(NoStep())

    class NoOpt(fulmen.LightningModule):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return None

    with pytest.raises(MisconfigurationException, match="configure_optimizers"):
        fulmen.Trainer().fit(NoOpt())

    class NoData(NoOpt):
        def configure_optimizers(self) -> Any:
            return None

    with pytest.raises(MisconfigurationException, match="no train dataloader"):
        fulmen.Trainer().fit(NoData())


def test_a_dataloader_of_the_wrong_type_is_clear() -> None:
    from tests.helpers.models import QUIET, make_counting_model

    model = make_counting_model(fulmen)()
    with pytest.raises(TypeError, match="not a dataloader"):
        fulmen.Trainer(**QUIET, max_epochs=1).fit(model, train_dataloaders=42)
