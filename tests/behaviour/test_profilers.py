"""Profilers through the public Trainer API: which profiler runs and where its report goes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

import fulmen
from fulmen.profilers import AdvancedProfiler, PassThroughProfiler, PyTorchProfiler, SimpleProfiler
from tests.helpers.models import QUIET, make_counting_model


@pytest.fixture
def fulmen_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    # fulmen's logger does not propagate to the root logger, where caplog listens by default.
    logger = logging.getLogger("fulmen")
    level = logger.level
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(level)


def test_trainer_without_profiler_uses_the_pass_through_profiler() -> None:
    assert isinstance(fulmen.Trainer(**QUIET).profiler, PassThroughProfiler)


@pytest.mark.parametrize(
    ("name", "profiler_class"),
    [("simple", SimpleProfiler), ("advanced", AdvancedProfiler), ("pytorch", PyTorchProfiler)],
)
def test_trainer_builds_a_profiler_from_its_name(name: str, profiler_class: type) -> None:
    assert isinstance(fulmen.Trainer(profiler=name, **QUIET).profiler, profiler_class)


def test_simple_profiler_times_the_hooks_of_a_fit(tmp_path: Path) -> None:
    profiler = SimpleProfiler(dirpath=tmp_path, filename="perf")
    trainer = fulmen.Trainer(max_epochs=2, limit_train_batches=3, profiler=profiler, **QUIET)
    trainer.fit(make_counting_model(fulmen)())
    assert [p.name for p in tmp_path.iterdir()] == ["fit-perf.txt"]
    report = (tmp_path / "fit-perf.txt").read_text()
    assert report.startswith("FIT Profiler Report\n")
    calls = profiler.recorded_calls
    assert calls["[LightningModule]CountingModel.optimizer_step"] == 6
    assert calls["[LightningModule]CountingModel.on_train_epoch_start"] == 2


def test_profiler_report_is_logged_when_no_filename_is_given(
    fulmen_log: pytest.LogCaptureFixture,
) -> None:
    trainer = fulmen.Trainer(max_epochs=1, limit_train_batches=2, profiler="simple", **QUIET)
    trainer.fit(make_counting_model(fulmen)())
    messages = [record.getMessage() for record in fulmen_log.records]
    assert any(message.startswith("FIT Profiler Report") for message in messages)


def test_advanced_and_pytorch_profilers_report_a_fit(tmp_path: Path) -> None:
    for profiler in (
        AdvancedProfiler(dirpath=tmp_path, filename="advanced"),
        PyTorchProfiler(dirpath=tmp_path, filename="torch"),
    ):
        trainer = fulmen.Trainer(max_epochs=1, limit_train_batches=2, profiler=profiler, **QUIET)
        trainer.fit(make_counting_model(fulmen)())
    assert "Profile stats for: " in (tmp_path / "fit-advanced.txt").read_text()
    assert "[action]" in (tmp_path / "fit-torch.txt").read_text()
    assert (tmp_path / "fit-torch.pt.trace.json").exists()
