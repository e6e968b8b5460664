"""DeviceStatsMonitor with a stub trainer: what it logs, under which keys, at which steps."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from fulmen.callbacks.device_stats_monitor import DeviceStatsMonitor
from fulmen.utilities.exceptions import MisconfigurationException


class RecordingLogger:
    def __init__(self, separator: str = "/") -> None:
        self.group_separator = separator
        self.calls: list[tuple[int | None, dict[str, Any]]] = []

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self.calls.append((step, dict(metrics)))


class StubAccelerator:
    def __init__(self, stats: dict[str, float]) -> None:
        self.stats = stats
        self.devices: list[torch.device] = []

    def get_device_stats(self, device: torch.device) -> dict[str, float]:
        self.devices.append(device)
        return dict(self.stats)


def _trainer(
    device: str = "cpu", every_n: int = 2, loggers: list[Any] | None = None, fn: str = "fit"
) -> SimpleNamespace:
    return SimpleNamespace(
        loggers=[RecordingLogger()] if loggers is None else loggers,
        strategy=SimpleNamespace(root_device=torch.device(device)),
        accelerator=StubAccelerator({"util": 50.0}),
        log_every_n_steps=every_n,
        global_step=0,
        should_stop=False,
        sanity_checking=False,
        state=SimpleNamespace(fn=fn),
    )


def _train(monitor: DeviceStatsMonitor, trainer: Any, batches: int, accumulate: int = 1) -> None:
    for batch_idx in range(batches):
        monitor.on_train_batch_start(trainer, None, None, batch_idx)  # type: ignore[arg-type]
        if (batch_idx + 1) % accumulate == 0:
            trainer.global_step += 1  # the optimizer steps before on_train_batch_end
        monitor.on_train_batch_end(trainer, None, None, None, batch_idx)  # type: ignore[arg-type]


def _logged(trainer: Any, logger: int = 0) -> list[tuple[int | None, list[str]]]:
    return [(step, sorted(metrics)) for step, metrics in trainer.loggers[logger].calls]


START = "DeviceStatsMonitor.on_train_batch_start/util"
END = "DeviceStatsMonitor.on_train_batch_end/util"


def test_setup_without_a_logger_raises() -> None:
    with pytest.raises(MisconfigurationException, match=r"Trainer\(logger=False\)"):
        DeviceStatsMonitor().setup(_trainer(loggers=[]), None, "fit")  # type: ignore[arg-type]
    DeviceStatsMonitor().setup(_trainer(loggers=[]), None, "test")  # type: ignore[arg-type]


@pytest.mark.parametrize(("cpu_stats", "device"), [(True, "cuda"), (None, "cpu")])
def test_setup_without_psutil_raises_when_cpu_stats_are_needed(
    monkeypatch: pytest.MonkeyPatch, cpu_stats: bool | None, device: str
) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "psutil" else find_spec(name, *a),
    )
    monitor = DeviceStatsMonitor(cpu_stats=cpu_stats)
    with pytest.raises(ModuleNotFoundError, match=rf"cpu_stats={cpu_stats}.*pip install psutil"):
        monitor.setup(_trainer(device), None, "fit")  # type: ignore[arg-type]
    DeviceStatsMonitor(cpu_stats=False).setup(_trainer(device), None, "fit")  # type: ignore[arg-type]
    DeviceStatsMonitor(cpu_stats=None).setup(_trainer("cuda"), None, "fit")  # type: ignore[arg-type]


def test_train_batches_are_logged_on_logging_steps_before_and_after() -> None:
    trainer = _trainer(every_n=2)
    _train(DeviceStatsMonitor(), trainer, batches=5)
    # Batch 1 and 3 train steps 2 and 4; both hooks are plotted at the step before the update.
    assert _logged(trainer) == [(1, [START]), (1, [END]), (3, [START]), (3, [END])]
    assert trainer.loggers[0].calls[0][1] == {START: 50.0}
    assert trainer.accelerator.devices == [torch.device("cpu")] * 4


def test_accumulated_batches_share_the_step_they_train() -> None:
    trainer = _trainer(every_n=2)
    _train(DeviceStatsMonitor(), trainer, batches=5, accumulate=2)
    assert _logged(trainer) == [(1, [START]), (1, [END]), (1, [START]), (1, [END])]


def test_each_logger_gets_its_own_group_separator() -> None:
    trainer = _trainer(every_n=1, loggers=[RecordingLogger("/"), RecordingLogger(".")])
    _train(DeviceStatsMonitor(), trainer, batches=1)
    assert _logged(trainer, 1) == [
        (0, ["DeviceStatsMonitor.on_train_batch_start.util"]),
        (0, ["DeviceStatsMonitor.on_train_batch_end.util"]),
    ]


def test_nothing_is_logged_when_log_every_n_steps_is_zero() -> None:
    trainer = _trainer(every_n=0)
    trainer.should_stop = True
    _train(DeviceStatsMonitor(), trainer, batches=3)
    assert _logged(trainer) == []


def test_a_stopping_trainer_logs_off_cadence() -> None:
    trainer = _trainer(every_n=50)
    trainer.should_stop = True
    _train(DeviceStatsMonitor(), trainer, batches=1)
    assert _logged(trainer) == [(0, [START]), (0, [END])]


def test_cpu_stats_false_logs_nothing_on_the_cpu() -> None:
    trainer = _trainer("cpu", every_n=1)
    _train(DeviceStatsMonitor(cpu_stats=False), trainer, batches=2)
    assert _logged(trainer) == []


def test_cpu_stats_false_still_logs_other_devices() -> None:
    trainer = _trainer("cuda", every_n=1)
    _train(DeviceStatsMonitor(cpu_stats=False), trainer, batches=1)
    assert _logged(trainer) == [(0, [START]), (0, [END])]
    assert trainer.accelerator.devices == [torch.device("cuda")] * 2


def test_cpu_stats_true_adds_the_cpu_stats_on_other_devices() -> None:
    pytest.importorskip("psutil")
    trainer = _trainer("cuda", every_n=1)
    _train(DeviceStatsMonitor(cpu_stats=True), trainer, batches=1)
    step, metrics = trainer.loggers[0].calls[0]
    prefix = "DeviceStatsMonitor.on_train_batch_start/"
    assert {prefix + "util", prefix + "cpu_percent", prefix + "cpu_vm_percent"} <= set(metrics)
    assert all(0.0 <= value <= 100.0 for value in metrics.values())


def test_validation_batches_are_counted_across_dataloaders() -> None:
    trainer = _trainer(every_n=2)
    monitor = DeviceStatsMonitor()
    _train(monitor, trainer, batches=2)
    trainer.loggers[0].calls.clear()
    monitor.on_validation_start(trainer, None)  # type: ignore[arg-type]
    for dataloader_idx in (0, 1):
        for batch_idx in range(3):
            monitor.on_validation_batch_start(trainer, None, None, batch_idx, dataloader_idx)  # type: ignore[arg-type]
            monitor.on_validation_batch_end(trainer, None, None, None, batch_idx, dataloader_idx)  # type: ignore[arg-type]
    start = "DeviceStatsMonitor.on_validation_batch_start/util"
    end = "DeviceStatsMonitor.on_validation_batch_end/util"
    # Validation inside fit is plotted at the step of the training batch before it (1, not 2).
    assert _logged(trainer) == [(1, [start]), (1, [end])] * 3


def test_sanity_check_and_test_are_logged_at_the_global_step() -> None:
    trainer = _trainer(every_n=1)
    trainer.sanity_checking = True
    monitor = DeviceStatsMonitor()
    monitor.on_validation_start(trainer, None)  # type: ignore[arg-type]
    monitor.on_validation_batch_start(trainer, None, None, 0)  # type: ignore[arg-type]
    test_trainer = _trainer(every_n=2, fn="test")
    test_trainer.global_step = 7
    monitor.on_test_start(test_trainer, None)  # type: ignore[arg-type]
    for batch_idx in range(4):
        monitor.on_test_batch_start(test_trainer, None, None, batch_idx)  # type: ignore[arg-type]
        monitor.on_test_batch_end(test_trainer, None, None, None, batch_idx)  # type: ignore[arg-type]
    assert _logged(trainer) == [(0, ["DeviceStatsMonitor.on_validation_batch_start/util"])]
    start = "DeviceStatsMonitor.on_test_batch_start/util"
    end = "DeviceStatsMonitor.on_test_batch_end/util"
    assert _logged(test_trainer) == [(7, [start]), (7, [end])] * 2
