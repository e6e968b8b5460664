"""LightningModule's methods and properties, through a user's script."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import torch

import fulmen
from fulmen.utilities.exceptions import MisconfigurationException
from tests.helpers.models import QUIET, make_counting_model

Base = make_counting_model(fulmen)


class WithHparams(Base):  # type: ignore[misc,valid-type]
    def __init__(self, lr: float = 0.05, hidden: int = 4, note: str = "x") -> None:
        super().__init__(lr=lr)
        self.save_hyperparameters()


def test_save_hyperparameters_captures_init_arguments() -> None:
    model = WithHparams(lr=0.2, hidden=7)
    assert dict(model.hparams) == {"lr": 0.2, "hidden": 7, "note": "x"}
    assert model.hparams.hidden == 7


def test_save_hyperparameters_ignore_names_and_dicts() -> None:
    class Ignoring(Base):  # type: ignore[misc,valid-type]
        def __init__(self, lr: float = 0.1, backbone: Any = None) -> None:
            super().__init__(lr=lr)
            self.save_hyperparameters(ignore=["backbone"])

    assert dict(Ignoring(backbone=torch.nn.Linear(1, 1)).hparams) == {"lr": 0.1}

    class FromDict(Base):  # type: ignore[misc,valid-type]
        def __init__(self, config: dict[str, Any]) -> None:
            super().__init__()
            self.save_hyperparameters(config)

    assert dict(FromDict({"a": 1, "b": "two"}).hparams) == {"a": 1, "b": "two"}

    class FromNamespace(Base):  # type: ignore[misc,valid-type]
        def __init__(self, args: argparse.Namespace) -> None:
            super().__init__()
            self.save_hyperparameters(args)

    assert dict(FromNamespace(argparse.Namespace(depth=3)).hparams) == {"depth": 3}


def test_capturing_a_module_in_hparams_warns_with_the_fix() -> None:
    class Capturing(Base):  # type: ignore[misc,valid-type]
        def __init__(self, backbone: torch.nn.Module) -> None:
            super().__init__()
            self.save_hyperparameters()

    with pytest.warns(UserWarning, match=r"ignore=\['backbone'\]"):
        Capturing(torch.nn.Linear(1, 1))


def test_load_from_checkpoint_restores_weights_and_hparams(tmp_path: Path) -> None:
    model = WithHparams(lr=0.3, hidden=5)
    trainer = fulmen.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0, **QUIET)
    trainer.fit(model)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = WithHparams.load_from_checkpoint(path)
    assert dict(loaded.hparams) == {"lr": 0.3, "hidden": 5, "note": "x"}
    assert torch.equal(loaded.layer.weight, model.layer.weight)
    overridden = WithHparams.load_from_checkpoint(path, hidden=9)
    assert overridden.hparams.hidden == 9
    checkpoint = torch.load(path, weights_only=True)
    assert {
        "epoch",
        "global_step",
        "pytorch-lightning_version",
        "state_dict",
        "loops",
        "callbacks",
        "optimizer_states",
        "lr_schedulers",
        "hparams_name",
        "hyper_parameters",
    } <= set(checkpoint)


def test_load_from_checkpoint_of_another_class_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"something.weight": torch.zeros(1)}}, path)
    with pytest.raises(RuntimeError, match="other.ckpt"):
        WithHparams.load_from_checkpoint(path)


def test_properties_read_the_trainer() -> None:
    seen: dict[str, Any] = {}

    class Probe(Base):  # type: ignore[misc,valid-type]
        def on_train_epoch_end(self) -> None:
            seen.update(
                epoch=self.current_epoch,
                step=self.global_step,
                rank=self.global_rank,
                device=self.device,
                dtype=self.dtype,
                logger=self.logger,
            )

    fulmen.Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=0, **QUIET).fit(Probe())
    assert seen == {
        "epoch": 0,
        "step": 3,
        "rank": 0,
        "device": torch.device("cpu"),
        "dtype": torch.float32,
        "logger": None,
    }


def test_trainer_property_raises_when_not_attached() -> None:
    with pytest.raises(RuntimeError, match="not attached"):
        Base().trainer  # noqa: B018


def test_freeze_and_unfreeze() -> None:
    model = Base()
    model.freeze()
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    model.unfreeze()
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_nested_lightning_module_can_log_and_train() -> None:
    class Child(fulmen.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(8, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.log("child_norm", x.norm())
            return self.layer(x)

    class Parent(Base):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.layer = Child()

    trainer = fulmen.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0, **QUIET)
    trainer.fit(Parent())
    assert "child_norm" in trainer.callback_metrics


def test_legacy_epoch_end_hooks_get_outputs_and_warn_once() -> None:
    received: dict[str, Any] = {}

    class Legacy(Base):  # type: ignore[misc,valid-type]
        def training_epoch_end(self, outputs: list[Any]) -> None:
            received["train"] = outputs

        def validation_step(self, batch: Any, batch_idx: int) -> Any:
            super().validation_step(batch, batch_idx)
            return torch.tensor(float(batch_idx))

        def validation_epoch_end(self, outputs: list[Any]) -> None:
            received["val"] = [float(o) for o in outputs]

    with pytest.warns(FutureWarning) as record:
        fulmen.Trainer(
            max_epochs=1,
            limit_train_batches=3,
            limit_val_batches=2,
            num_sanity_val_steps=0,
            **QUIET,
        ).fit(Legacy())
    messages = [str(w.message) for w in record]
    assert sum("training_epoch_end" in m for m in messages) == 1
    assert sum("validation_epoch_end" in m for m in messages) == 1
    assert len(received["train"]) == 3 and all(
        not o["loss"].requires_grad for o in received["train"]
    )
    assert received["val"] == [0.0, 1.0]


def test_legacy_step_end_hooks_warn_that_they_are_not_called() -> None:
    class Legacy(Base):  # type: ignore[misc,valid-type]
        def training_step_end(self, outputs: Any) -> Any:
            raise AssertionError("never called")

    with pytest.warns(FutureWarning, match="never called"):
        fulmen.Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0, **QUIET).fit(
            Legacy()
        )


def test_log_feeds_callback_metrics_with_lightning_names() -> None:
    class Logging(Base):  # type: ignore[misc,valid-type]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            loss = super().training_step(batch, batch_idx)
            self.log("both", float(batch_idx), on_step=True, on_epoch=True, prog_bar=True)
            return loss

    trainer = fulmen.Trainer(max_epochs=1, limit_train_batches=4, limit_val_batches=2, **QUIET)
    trainer.fit(Logging())
    metrics = trainer.callback_metrics
    assert {"both", "both_step", "both_epoch", "train_loss", "val_loss"} <= set(metrics)
    assert float(metrics["both_epoch"]) == pytest.approx(1.5)  # mean of 0, 1, 2, 3
    assert float(metrics["both_step"]) == 3.0
    assert trainer.progress_bar_metrics == {"both_step": 3.0, "both_epoch": 1.5}


def test_log_rejects_non_scalars_and_bad_hooks() -> None:
    class Bad(Base):  # type: ignore[misc,valid-type]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.log("vec", torch.ones(3))

    with pytest.raises(MisconfigurationException, match="shape"):
        fulmen.Trainer(max_epochs=1, limit_train_batches=1, **QUIET).fit(Bad())

    class BadHook(Base):  # type: ignore[misc,valid-type]
        def on_fit_start(self) -> None:
            self.log("x", 1.0)

    with pytest.raises(MisconfigurationException, match="on_fit_start"):
        fulmen.Trainer(max_epochs=1, limit_train_batches=1, **QUIET).fit(BadHook())


def test_print_prints_on_rank_zero(capsys: pytest.CaptureFixture[str]) -> None:
    Base().print("hello")
    assert capsys.readouterr().out == "hello\n"


def test_save_hyperparameters_collects_the_whole_init_chain() -> None:
    class Parent(Base):  # type: ignore[misc,valid-type]
        def __init__(self, width: int, depth: int = 2, **kwargs: Any) -> None:
            super().__init__()
            self.save_hyperparameters()

    class Child(Parent):
        def __init__(self, dropout: float, **kwargs: Any) -> None:
            super().__init__(width=64, **kwargs)

    assert dict(Child(dropout=0.1, depth=3).hparams) == {"width": 64, "depth": 3, "dropout": 0.1}


def test_logging_a_name_with_changed_options_is_a_clear_error() -> None:
    class Changing(Base):  # type: ignore[misc,valid-type]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.log("x", 1.0, prog_bar=batch_idx == 1)
            return super().training_step(batch, batch_idx)

    with pytest.raises(MisconfigurationException, match="prog_bar=False.*then.*prog_bar=True"):
        fulmen.Trainer(max_epochs=1, limit_train_batches=2, **QUIET).fit(Changing())


def test_logging_a_dict_value_points_to_log_dict() -> None:
    class DictLog(Base):  # type: ignore[misc,valid-type]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.log("x", {"a": 1.0})

    with pytest.raises(MisconfigurationException, match="log_dict"):
        fulmen.Trainer(max_epochs=1, limit_train_batches=1, **QUIET).fit(DictLog())


def test_sync_dist_misuse_is_reported() -> None:
    class GroupWithoutSync(Base):  # type: ignore[misc,valid-type]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.log("x", 1.0, sync_dist_group=object())
            return super().training_step(batch, batch_idx)

    with pytest.raises(MisconfigurationException, match="needs `sync_dist=True`"):
        fulmen.Trainer(max_epochs=1, limit_train_batches=1, **QUIET).fit(GroupWithoutSync())
