from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from fulmen.profilers import SimpleProfiler


class _FakeClock:
    """Stands in for `time.perf_counter` and `time.monotonic`; each action lasts what it is told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _FakeClock:
    fake = _FakeClock()
    monkeypatch.setattr(time, "perf_counter", fake)
    monkeypatch.setattr(time, "monotonic", fake)
    return fake


def _run(profiler: Any, clock: _FakeClock) -> None:
    with profiler.profile("run_training_epoch"):
        for _ in range(3):
            with profiler.profile("[LightningModule]BoringModel.optimizer_step"):
                clock.advance(0.5)
        clock.advance(0.5)
    with profiler.profile("a"):
        clock.advance(0.25)
    clock.advance(1.75)


def test_simple_profiler_records_count_and_total_per_action(clock: _FakeClock) -> None:
    profiler = SimpleProfiler()
    _run(profiler, clock)
    assert profiler.recorded_calls == {
        "[LightningModule]BoringModel.optimizer_step": 3,
        "run_training_epoch": 1,
        "a": 1,
    }
    assert profiler.recorded_totals == {
        "[LightningModule]BoringModel.optimizer_step": 1.5,
        "run_training_epoch": 2.0,
        "a": 0.25,
    }


def test_simple_profiler_measures_real_time() -> None:
    profiler = SimpleProfiler()
    with profiler.profile("sleep"):
        time.sleep(0.02)
    assert 0.02 <= profiler.recorded_totals["sleep"] < 1.0


def test_simple_profiler_extended_report_is_lightnings_table(clock: _FakeClock) -> None:
    profiler = SimpleProfiler()
    profiler.setup(stage="fit")
    _run(profiler, clock)
    width = len("[LightningModule]BoringModel.optimizer_step")

    def row(*cells: str) -> str:
        return (
            "".join(f"|  {cell.ljust(width if i == 0 else 15)}\t" for i, cell in enumerate(cells))
            + "|"
        )

    header = row("Action", "Mean duration (s)", "Num calls", "Total time (s)", "Percentage %")
    ruler = "-" * (len(header.expandtabs()) + 1)
    assert profiler.summary() == "\n".join(
        [
            "FIT Profiler Report",
            "",
            ruler,
            header,
            ruler,
            row("Total", "-", "5", "4.0", "100 %"),
            ruler,
            row("run_training_epoch", "2.0", "1", "2.0", "50.0"),
            row("[LightningModule]BoringModel.optimizer_step", "0.5", "3", "1.5", "37.5"),
            row("a", "0.25", "1", "0.25", "6.25"),
            ruler,
            "",
        ]
    )


def test_simple_profiler_short_report_sorts_by_mean_duration(clock: _FakeClock) -> None:
    profiler = SimpleProfiler(extended=False)
    _run(profiler, clock)
    lines = profiler.summary().splitlines()
    assert lines[:2] == ["Profiler Report", ""]
    assert (
        lines[3]
        == "|  Action                                     \t|  Mean duration (s)\t|  Total time (s) \t|"
    )
    assert [line.split("\t")[0].strip("| ") for line in lines[5:8]] == [
        "run_training_epoch",
        "[LightningModule]BoringModel.optimizer_step",
        "a",
    ]


def test_simple_profiler_report_is_only_the_title_before_anything_ran() -> None:
    assert SimpleProfiler().summary() == "Profiler Report\n\n"


def test_simple_profiler_stop_without_start_names_the_action() -> None:
    profiler = SimpleProfiler()
    with pytest.raises(
        ValueError, match=r"stop\('validation_step'\): this action was never started"
    ):
        profiler.stop("validation_step")


def test_simple_profiler_refuses_to_start_a_running_action() -> None:
    profiler = SimpleProfiler()
    profiler.start("step")
    with pytest.raises(ValueError, match=r"start\('step'\): this action is already running"):
        profiler.start("step")


def test_simple_profiler_writes_the_report_file(tmp_path: Path, clock: _FakeClock) -> None:
    profiler = SimpleProfiler(filename="perf")
    profiler.setup(stage="fit", local_rank=None, log_dir=str(tmp_path))
    _run(profiler, clock)
    profiler.describe()
    report = (tmp_path / "fit-perf.txt").read_text()
    assert report.startswith("FIT Profiler Report\n")
    assert "|  run_training_epoch" in report


@pytest.mark.compat
@pytest.mark.parametrize("extended", [True, False])
def test_simple_profiler_report_matches_lightning(clock: _FakeClock, extended: bool) -> None:
    lightning_profilers = pytest.importorskip("pytorch_lightning.profilers")
    reports = []
    for profiler_class in (SimpleProfiler, lightning_profilers.SimpleProfiler):
        clock.now = 100.0
        profiler = profiler_class(extended=extended)
        profiler.setup(stage="fit", local_rank=None, log_dir=None)
        _run(profiler, clock)
        reports.append(profiler.summary())
    assert reports[0] == reports[1]
