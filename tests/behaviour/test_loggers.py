"""Loggers through the public Trainer API: the files a run leaves behind and what is in them."""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import fulmen
from fulmen.loggers import CSVLogger, TensorBoardLogger
from fulmen.loggers.logger import DummyLogger
from tests.helpers.models import make_counting_model

QUIET = dict(enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)


def _model(pl: Any) -> Any:
    class HparamsModel(make_counting_model(pl)):  # type: ignore[misc]
        def __init__(self, lr: float = 0.05, hidden: int = 8) -> None:
            super().__init__(lr=lr)
            self.save_hyperparameters()
            self.example_input_array = torch.zeros(2, 8)

    return HparamsModel()


def _csv_rows(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_default_logger_writes_tensorboard_events_and_hparams(tmp_path: Path) -> None:
    trainer = fulmen.Trainer(default_root_dir=str(tmp_path), max_epochs=1, **QUIET)
    trainer.fit(_model(fulmen))
    assert isinstance(trainer.logger, TensorBoardLogger)
    log_dir = os.path.join(tmp_path, "lightning_logs", "version_0")
    assert trainer.log_dir == trainer.logger.log_dir == log_dir
    assert any(name.startswith("events.out.tfevents.") for name in os.listdir(log_dir))
    assert yaml.safe_load(Path(log_dir, "hparams.yaml").read_text()) == {"lr": 0.05, "hidden": 8}


def test_tensorboard_logger_receives_the_logged_scalars_and_graph(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, log_graph=True)
    trainer = fulmen.Trainer(max_epochs=2, log_every_n_steps=2, logger=logger, **QUIET)
    trainer.fit(_model(fulmen))
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    assert {"train_loss", "val_loss", "epoch", "hp_metric"} <= set(events.Tags()["scalars"])
    assert [event.step for event in events.Scalars("train_loss")] == [1, 3, 5, 7, 9, 11, 13, 15]
    assert events.Tags()["graph"] is True


def test_csv_logger_writes_one_column_per_logged_metric(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    trainer = fulmen.Trainer(max_epochs=2, log_every_n_steps=4, logger=logger, **QUIET)
    trainer.fit(_model(fulmen))
    rows = _csv_rows(os.path.join(logger.log_dir, "metrics.csv"))
    assert list(rows[0]) == ["epoch", "step", "train_loss", "val_loss"]
    assert [(row["step"], bool(row["train_loss"]), bool(row["val_loss"])) for row in rows] == [
        ("3", True, False),
        ("7", True, False),
        ("7", False, True),
        ("11", True, False),
        ("15", True, False),
        ("15", False, True),
    ]
    assert [int(float(row["epoch"])) for row in rows] == [0, 0, 0, 1, 1, 1]


def test_fast_dev_run_replaces_loggers_with_a_dummy_and_writes_no_logs(tmp_path: Path) -> None:
    trainer = fulmen.Trainer(
        default_root_dir=str(tmp_path), fast_dev_run=True, logger=CSVLogger(tmp_path), **QUIET
    )
    trainer.fit(_model(fulmen))
    assert isinstance(trainer.logger, DummyLogger)
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.compat
def test_csv_logger_columns_and_rows_match_lightning(tmp_path: Path) -> None:
    pl = pytest.importorskip("pytorch_lightning")

    def run(module: Any, logger_class: type, save_dir: Path) -> list[dict[str, str]]:
        logger = logger_class(save_dir)
        trainer = module.Trainer(max_epochs=2, log_every_n_steps=4, logger=logger, **QUIET)
        trainer.fit(_model(module))
        rows = _csv_rows(os.path.join(logger.log_dir, "metrics.csv"))
        return [
            {k: str(int(float(v))) if k == "epoch" else v for k, v in row.items()} for row in rows
        ]

    ours = run(fulmen, CSVLogger, tmp_path / "fulmen")
    with warnings.catch_warnings():
        # Lightning's own deprecation notices are not what this test compares.
        warnings.simplefilter("ignore")
        theirs = run(pl, pl.loggers.CSVLogger, tmp_path / "lightning")
    assert [list(row) for row in ours] == [list(row) for row in theirs]
    assert [(row["epoch"], row["step"]) for row in ours] == [
        (row["epoch"], row["step"]) for row in theirs
    ]


@pytest.mark.compat
@pytest.mark.parametrize("entry", ["fit", "validate", "test", "predict"])
def test_loggers_are_finalized_after_every_entry_point_as_lightning_does(
    tmp_path: Path, entry: str
) -> None:
    def statuses(pl: Any, loggers_module: Any) -> list[str]:
        class Recording(loggers_module.CSVLogger):  # type: ignore[misc,name-defined]
            seen: list[str] = []

            def finalize(self, status: str) -> None:
                super().finalize(status)
                self.seen.append(status)

        logger = Recording(str(tmp_path / pl.__name__))
        trainer = pl.Trainer(max_epochs=1, logger=logger, **QUIET)
        getattr(trainer, entry)(make_counting_model(pl)())
        return logger.seen

    lightning = pytest.importorskip("pytorch_lightning")
    from pytorch_lightning import loggers as lightning_loggers

    import fulmen.loggers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's own advice about workers and the like
        expected = statuses(lightning, lightning_loggers)
    assert statuses(fulmen, fulmen.loggers) == expected == ["success"]
