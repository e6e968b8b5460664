from __future__ import annotations

import os
from argparse import Namespace
from pathlib import Path

import pytest
import torch
import yaml

from fulmen.loggers import CSVLogger
from fulmen.loggers.logger import DummyExperiment
from fulmen.utilities.rank_zero import rank_zero_only


def _metrics_file(logger: CSVLogger) -> str:
    return Path(logger.log_dir, "metrics.csv").read_text()


def test_csv_logger_paths_follow_save_dir_name_and_version(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    assert logger.save_dir == str(tmp_path)
    assert logger.name == "lightning_logs"
    assert logger.version == 0
    assert logger.root_dir == os.path.join(tmp_path, "lightning_logs")
    assert logger.log_dir == os.path.join(tmp_path, "lightning_logs", "version_0")


def test_csv_logger_versions_increment_from_existing_folders(tmp_path: Path) -> None:
    first = CSVLogger(tmp_path)
    first.log_metrics({"loss": 1.0}, step=0)
    assert CSVLogger(tmp_path).version == 1
    (tmp_path / "lightning_logs" / "version_6").mkdir()
    assert CSVLogger(tmp_path).version == 7


def test_csv_logger_uses_a_string_version_verbatim_and_an_int_as_version_n(tmp_path: Path) -> None:
    assert CSVLogger(tmp_path, version="baseline").log_dir.endswith(
        os.path.join("lightning_logs", "baseline")
    )
    assert CSVLogger(tmp_path, version=3).log_dir.endswith(
        os.path.join("lightning_logs", "version_3")
    )


def test_csv_logger_without_a_name_writes_versions_directly_in_save_dir(tmp_path: Path) -> None:
    for name in ("", None):
        logger = CSVLogger(tmp_path, name=name)
        assert logger.name == ""
        assert logger.log_dir == os.path.join(tmp_path, "version_0")


def test_csv_logger_writes_sorted_columns_and_one_sparse_row_per_call(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"train_loss_step": torch.tensor(0.25), "epoch": 0}, step=1)
    logger.log_metrics({"val_loss": torch.tensor(5.5), "epoch": 0}, step=3)
    logger.log_metrics({"train_loss_epoch": 1.125, "epoch": 0}, step=3)
    logger.finalize("success")
    assert _metrics_file(logger).splitlines() == [
        "epoch,step,train_loss_epoch,train_loss_step,val_loss",
        "0,1,,0.25,",
        "0,3,,,5.5",
        "0,3,1.125,,",
    ]


def test_csv_logger_rewrites_the_file_when_a_new_column_appears(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, flush_logs_every_n_steps=1)
    logger.log_metrics({"loss": 1.0, "epoch": 0}, step=0)
    assert _metrics_file(logger).splitlines() == ["epoch,loss,step", "0,1.0,0"]
    logger.log_metrics({"loss": 0.5, "epoch": 0}, step=1)
    logger.log_metrics({"acc": 0.75, "epoch": 1}, step=2)
    assert _metrics_file(logger).splitlines() == [
        "acc,epoch,loss,step",
        ",0,1.0,0",
        ",0,0.5,1",
        "0.75,1,,2",
    ]


def test_csv_logger_flushes_every_n_steps(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, flush_logs_every_n_steps=3)
    metrics_path = Path(logger.log_dir, "metrics.csv")
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.log_metrics({"loss": 1.0}, step=1)
    assert not metrics_path.exists()
    logger.log_metrics({"loss": 1.0}, step=2)
    assert len(metrics_path.read_text().splitlines()) == 4
    logger.log_metrics({"loss": 1.0}, step=3)
    assert len(metrics_path.read_text().splitlines()) == 4
    logger.save()
    assert len(metrics_path.read_text().splitlines()) == 5


def test_csv_logger_converts_tensors_only_when_writing(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    value = torch.tensor(2.5)
    logger.log_metrics({"loss": value}, step=0)
    assert logger.experiment.metrics[0]["loss"] is value
    logger.save()
    assert _metrics_file(logger).splitlines() == ["loss,step", "2.5,0"]


def test_csv_logger_numbers_rows_without_a_step(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"a": 1})
    logger.log_metrics({"a": 2})
    logger.save()
    assert _metrics_file(logger).splitlines() == ["a,step", "1,0", "2,1"]


def test_csv_logger_prefixes_metric_names_with_a_dash(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, prefix="train")
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.save()
    assert _metrics_file(logger).splitlines()[0] == "step,train-loss"


def test_csv_logger_writes_hparams_yaml(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    logger.log_hyperparams(Namespace(lr=0.01, layers=[32, 16], optim={"name": "adam"}))
    logger.log_hyperparams({"batch_size": 8})
    logger.finalize("success")
    hparams = yaml.safe_load(Path(logger.log_dir, "hparams.yaml").read_text())
    assert hparams == {"lr": 0.01, "layers": [32, 16], "optim": {"name": "adam"}, "batch_size": 8}


def test_csv_logger_skips_hparams_yaml_cannot_hold_with_a_warning(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    logger.log_hyperparams({"lr": 0.01, "loss_fn": torch.nn.MSELoss()})
    with pytest.warns(UserWarning, match="Skipping hyperparameter 'loss_fn'"):
        logger.save()
    assert yaml.safe_load(Path(logger.log_dir, "hparams.yaml").read_text()) == {"lr": 0.01}


def test_csv_logger_writes_no_hparams_yaml_without_hyperparameters(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    logger.log_hyperparams({})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    assert sorted(os.listdir(logger.log_dir)) == ["metrics.csv"]


def test_csv_logger_creates_nothing_until_something_is_logged(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    assert logger.log_dir
    logger.finalize("success")
    assert os.listdir(tmp_path) == []


def test_csv_logger_writes_nothing_on_other_ranks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = CSVLogger(tmp_path)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    assert isinstance(logger.experiment, DummyExperiment)
    assert os.listdir(tmp_path) == []


def test_csv_logger_rejects_a_flush_interval_below_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"flush_logs_every_n_steps=0\) is invalid"):
        CSVLogger(tmp_path, flush_logs_every_n_steps=0)


@pytest.mark.compat
def test_csv_logger_writes_the_same_files_as_lightning(tmp_path: Path) -> None:
    lightning_loggers = pytest.importorskip("pytorch_lightning.loggers")

    def run(logger_class: type, save_dir: Path) -> tuple[str, str, str]:
        logger = logger_class(save_dir, flush_logs_every_n_steps=2)
        logger.log_metrics({"train_loss_step": torch.tensor(0.2846), "epoch": 0}, step=1)
        logger.log_metrics({"val_loss": torch.tensor(5.997), "epoch": 0}, step=3)
        logger.log_metrics({"train_loss_epoch": 1.127, "epoch": 0}, step=3)
        logger.log_metrics({"b": 2, "epoch": 1}, step=4)
        logger.log_metrics({"zz": float("nan"), "flag": True, "epoch": 1}, step=5)
        logger.log_hyperparams(Namespace(lr=0.1, layers=[1, 2], nested={"a": {"b": 1}}))
        logger.finalize("success")
        log_dir = Path(logger.log_dir)
        relative = os.path.relpath(log_dir, save_dir)
        return (
            relative,
            (log_dir / "metrics.csv").read_text(),
            (log_dir / "hparams.yaml").read_text(),
        )

    ours = run(CSVLogger, tmp_path / "fulmen")
    theirs = run(lightning_loggers.CSVLogger, tmp_path / "lightning")
    assert ours == theirs
