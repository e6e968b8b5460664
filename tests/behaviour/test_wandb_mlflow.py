"""WandbLogger, MLFlowLogger and DeviceStatsMonitor through `Trainer.fit`, as a user runs them."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import fulmen
from fulmen.callbacks.device_stats_monitor import DeviceStatsMonitor
from fulmen.loggers import MLFlowLogger, WandbLogger
from fulmen.utilities.exceptions import MisconfigurationException
from tests.helpers.models import make_counting_model
from tests.unit.loggers.test_wandb import _finish_and_read

QUIET: dict[str, Any] = dict(enable_progress_bar=False, enable_model_summary=False)


def _model(pl: Any) -> Any:
    class HparamsModel(make_counting_model(pl)):  # type: ignore[misc]
        def __init__(self, lr: float = 0.05, hidden: int = 8) -> None:
            super().__init__(lr=lr)
            self.save_hyperparameters()

    return HparamsModel()


@pytest.fixture
def wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    module = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    yield module
    if module.run is not None:
        module.finish()


@pytest.fixture
def mlflow(monkeypatch: pytest.MonkeyPatch) -> Any:
    module = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return module


def _fit_with_wandb(pl: Any, logger_class: type, wandb: Any, save_dir: Path) -> dict[str, Any]:
    logger = logger_class(save_dir=save_dir, project="proj")
    trainer = pl.Trainer(max_epochs=2, log_every_n_steps=4, logger=logger, **QUIET)
    trainer.fit(_model(pl))
    checkpoint = os.path.relpath(trainer.checkpoint_callback.best_model_path, save_dir)
    run_id = logger.version
    return {**_finish_and_read(wandb, logger, save_dir), "checkpoint": checkpoint, "id": run_id}


def _rows(history: list[dict[str, Any]]) -> list[tuple[int, list[str]]]:
    return [(row["trainer/global_step"], sorted(row)) for row in history]


def test_wandb_logger_records_a_fit(wandb: Any, tmp_path: Path) -> None:
    run = _fit_with_wandb(fulmen, WandbLogger, wandb, tmp_path)
    train, val = (
        ["epoch", "train_loss", "trainer/global_step"],
        ["epoch", "trainer/global_step", "val_loss"],
    )
    assert _rows(run["history"]) == [
        (3, train),
        (7, train),
        (7, val),
        (11, train),
        (15, train),
        (15, val),
    ]
    assert run["config"] == {"lr": 0.05, "hidden": 8}


def test_wandb_checkpoints_go_under_the_project_and_run_id(wandb: Any, tmp_path: Path) -> None:
    run = _fit_with_wandb(fulmen, WandbLogger, wandb, tmp_path)
    assert run["checkpoint"] == os.path.join(
        "proj", run["id"], "checkpoints", "epoch=1-step=16.ckpt"
    )


@pytest.mark.compat
def test_wandb_logger_records_what_lightning_records(wandb: Any, tmp_path: Path) -> None:
    pl = pytest.importorskip("pytorch_lightning")
    ours = _fit_with_wandb(fulmen, WandbLogger, wandb, tmp_path / "fulmen")
    with warnings.catch_warnings():
        # Lightning's own deprecation notices and tips are not what this test compares.
        warnings.simplefilter("ignore")
        theirs = _fit_with_wandb(pl, pl.loggers.WandbLogger, wandb, tmp_path / "lightning")
    assert _rows(ours["history"]) == _rows(theirs["history"])
    assert ours["config"] == theirs["config"]


def _fit_with_mlflow(pl: Any, logger_class: type, uri: str) -> dict[str, Any]:
    logger = logger_class("exp", tracking_uri=uri, log_model=True)
    trainer = pl.Trainer(max_epochs=2, log_every_n_steps=4, logger=logger, **QUIET)
    trainer.fit(_model(pl))
    client = logger.experiment
    run = client.get_run(logger.run_id)
    history = {
        key: [m.step for m in client.get_metric_history(logger.run_id, key)]
        for key in run.data.metrics
    }
    artifacts = {
        a.path: sorted(b.path for b in client.list_artifacts(logger.run_id, a.path))
        for a in client.list_artifacts(logger.run_id)
    }
    checkpoint_dir = Path(uri[len("file:") :], logger.name, logger.version, "checkpoints")
    return {
        "history": history,
        "params": run.data.params,
        "status": run.info.status,
        "artifacts": artifacts,
        "checkpoints": sorted(os.listdir(checkpoint_dir)),
    }


def test_mlflow_logger_records_a_fit(mlflow: Any, tmp_path: Path) -> None:
    run = _fit_with_mlflow(fulmen, MLFlowLogger, f"file:{tmp_path}/mlruns")
    assert run["history"] == {
        "train_loss": [3, 7, 11, 15],
        "val_loss": [7, 15],
        "epoch": [3, 7, 7, 11, 15, 15],
    }
    assert run["params"] == {"lr": "0.05", "hidden": "8"}
    assert run["status"] == "FINISHED"
    assert run["checkpoints"] == ["epoch=1-step=16.ckpt"]
    assert run["artifacts"] == {
        "epoch=1-step=16": [
            "epoch=1-step=16/aliases.txt",
            "epoch=1-step=16/epoch=1-step=16.ckpt",
            "epoch=1-step=16/metadata.yaml",
        ]
    }


@pytest.mark.compat
def test_mlflow_logger_records_what_lightning_records(mlflow: Any, tmp_path: Path) -> None:
    pl = pytest.importorskip("pytorch_lightning")
    ours = _fit_with_mlflow(fulmen, MLFlowLogger, f"file:{tmp_path}/fulmen")
    with warnings.catch_warnings():
        # Lightning's own deprecation notices and tips are not what this test compares.
        warnings.simplefilter("ignore")
        theirs = _fit_with_mlflow(pl, pl.loggers.MLFlowLogger, f"file:{tmp_path}/lightning")
    assert ours == theirs


class _RecordingLogger:
    """Build, for module `pl`, a logger that keeps every `log_metrics` call."""

    @staticmethod
    def make(pl: Any) -> Any:
        class Recording(pl.loggers.Logger):  # type: ignore[misc,name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.calls: list[tuple[int | None, dict[str, Any]]] = []

            name = "recording"
            version = 0

            def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
                self.calls.append((step, dict(metrics)))

            def log_hyperparams(self, *args: Any, **kwargs: Any) -> None:
                return None

        return Recording()


def _fit_with_device_stats(pl: Any, monitor_class: type) -> list[tuple[int | None, str, list[str]]]:
    logger = _RecordingLogger.make(pl)
    trainer = pl.Trainer(
        max_epochs=1,
        log_every_n_steps=3,
        logger=logger,
        callbacks=[monitor_class()],
        enable_checkpointing=False,
        **QUIET,
    )
    trainer.fit(_model(pl))
    trainer.test(_model(pl))
    calls = []
    for step, metrics in logger.calls:
        hooks = {key.split("/")[0] for key in metrics}
        if len(hooks) == 1 and next(iter(hooks)).startswith("DeviceStatsMonitor."):
            calls.append((step, hooks.pop(), sorted(key.split("/")[1] for key in metrics)))
    return calls


def test_device_stats_monitor_logs_cpu_stats_around_batches_on_logging_steps() -> None:
    pytest.importorskip("psutil")
    calls = _fit_with_device_stats(fulmen, DeviceStatsMonitor)
    assert [(step, hook) for step, hook, _ in calls] == [
        (2, "DeviceStatsMonitor.on_train_batch_start"),
        (2, "DeviceStatsMonitor.on_train_batch_end"),
        (5, "DeviceStatsMonitor.on_train_batch_start"),
        (5, "DeviceStatsMonitor.on_train_batch_end"),
        # 4 validation batches; the 3rd is a logging step, plotted at the last training step.
        (7, "DeviceStatsMonitor.on_validation_batch_start"),
        (7, "DeviceStatsMonitor.on_validation_batch_end"),
        (8, "DeviceStatsMonitor.on_test_batch_start"),
        (8, "DeviceStatsMonitor.on_test_batch_end"),
    ]
    for _, _, stats in calls:
        assert {"cpu_percent", "cpu_vm_percent"} <= set(stats)


def test_device_stats_monitor_needs_a_logger() -> None:
    trainer = fulmen.Trainer(
        max_epochs=1,
        logger=False,
        callbacks=[DeviceStatsMonitor()],
        enable_checkpointing=False,
        **QUIET,
    )
    with pytest.raises(MisconfigurationException, match="logger=False"):
        trainer.fit(_model(fulmen))


@pytest.mark.compat
def test_device_stats_monitor_logs_when_and_where_lightning_does() -> None:
    pytest.importorskip("psutil")
    pl = pytest.importorskip("pytorch_lightning")
    ours = _fit_with_device_stats(fulmen, DeviceStatsMonitor)
    with warnings.catch_warnings():
        # Lightning's own deprecation notices and tips are not what this test compares.
        warnings.simplefilter("ignore")
        theirs = _fit_with_device_stats(pl, pl.callbacks.DeviceStatsMonitor)
    assert [(step, hook) for step, hook, _ in ours] == [(step, hook) for step, hook, _ in theirs]
