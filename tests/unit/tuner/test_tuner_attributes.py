"""Where the tuner reads and writes `lr` / `batch_size`: model, hparams, datamodule (Lightning's order)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fulmen.core.datamodule import LightningDataModule
from fulmen.demos.boring_classes import BoringModel
from fulmen.tuner.attributes import get_attribute, has_attribute, set_attribute


def attached(model: BoringModel, datamodule: LightningDataModule | None) -> BoringModel:
    object.__setattr__(model, "_trainer", SimpleNamespace(datamodule=datamodule))
    return model


def test_reading_prefers_the_datamodule_then_its_hparams_over_the_model() -> None:
    model = BoringModel()
    model.batch_size = 1
    model.save_hyperparameters({"batch_size": 2})
    assert get_attribute(model, "batch_size") == 2
    data = LightningDataModule()
    data.batch_size = 3
    assert get_attribute(attached(model, data), "batch_size") == 3
    data.save_hyperparameters({"batch_size": 4})
    assert get_attribute(model, "batch_size") == 4


def test_writing_sets_every_place_that_holds_the_name() -> None:
    model = BoringModel()
    model.batch_size = 1
    model.save_hyperparameters({"batch_size": 2, "lr": 0.1})
    data = LightningDataModule()
    data.batch_size = 3
    set_attribute(attached(model, data), "batch_size", 64)
    assert (model.batch_size, model.hparams.batch_size, data.batch_size) == (64, 64, 64)
    assert model.hparams.lr == 0.1


def test_a_missing_name_is_reported_with_every_place_looked_at() -> None:
    model = BoringModel()
    assert not has_attribute(model, "batch_size")
    with pytest.raises(AttributeError, match="'batch_size'.*hparams.*datamodule"):
        get_attribute(model, "batch_size")
    with pytest.raises(AttributeError, match="'batch_size'.*nothing to set"):
        set_attribute(model, "batch_size", 8)
