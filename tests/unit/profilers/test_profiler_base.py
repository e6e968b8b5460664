from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fulmen.profilers import PassThroughProfiler, Profiler


class _RecordingProfiler(Profiler):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events: list[str] = []
        self.report = "REPORT"

    def start(self, action_name: str) -> None:
        self.events.append(f"start {action_name}")

    def stop(self, action_name: str) -> None:
        self.events.append(f"stop {action_name}")

    def summary(self) -> str:
        return self.report


@pytest.fixture
def fulmen_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    # tests/conftest.py lets the "fulmen" logger propagate to caplog during tests.
    caplog.set_level(logging.INFO, logger="fulmen")
    yield caplog


def test_profile_starts_and_stops_around_the_block_and_yields_the_name() -> None:
    profiler = _RecordingProfiler()
    with profiler.profile("outer") as name:
        assert name == "outer"
        with profiler.profile("inner"):
            pass
    assert profiler.events == ["start outer", "start inner", "stop inner", "stop outer"]


def test_profile_stops_the_action_when_the_block_raises() -> None:
    profiler = _RecordingProfiler()
    with pytest.raises(RuntimeError), profiler.profile("step"):
        raise RuntimeError("boom")
    assert profiler.events == ["start step", "stop step"]


def test_setup_records_stage_and_rank_and_takes_log_dir_as_default_dirpath(tmp_path: Path) -> None:
    profiler = _RecordingProfiler()
    assert profiler.local_rank == 0
    profiler.setup(stage="fit", local_rank=2, log_dir=str(tmp_path))
    assert (profiler.dirpath, profiler.local_rank) == (str(tmp_path), 2)
    explicit = _RecordingProfiler(dirpath=tmp_path / "mine")
    explicit.setup(stage="fit", log_dir=str(tmp_path))
    assert explicit.dirpath == str(tmp_path / "mine")


def test_describe_appends_the_report_to_stage_filename_txt(tmp_path: Path) -> None:
    profiler = _RecordingProfiler(dirpath=tmp_path / "reports", filename="perf")
    profiler.setup(stage="fit")
    profiler.describe()
    profiler.describe()
    profiler.setup(stage="validate")
    profiler.describe()
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        "fit-perf.txt",
        "validate-perf.txt",
    ]
    assert (tmp_path / "reports" / "fit-perf.txt").read_text() == "REPORTREPORT"


def test_describe_names_the_report_after_the_local_rank_when_given(tmp_path: Path) -> None:
    profiler = _RecordingProfiler(filename="perf")
    profiler.setup(stage="fit", local_rank=1, log_dir=str(tmp_path))
    profiler.describe()
    assert [p.name for p in tmp_path.iterdir()] == ["fit-perf-1.txt"]


def test_describe_logs_the_report_without_a_filename(
    tmp_path: Path, fulmen_log: pytest.LogCaptureFixture
) -> None:
    profiler = _RecordingProfiler(dirpath=tmp_path)
    profiler.describe()
    assert [record.getMessage() for record in fulmen_log.records] == ["REPORT"]
    assert list(tmp_path.iterdir()) == []


def test_describe_logs_the_report_when_there_is_no_folder(
    fulmen_log: pytest.LogCaptureFixture,
) -> None:
    profiler = _RecordingProfiler(filename="perf")
    profiler.describe()
    assert [record.getMessage() for record in fulmen_log.records] == ["REPORT"]


def test_describe_writes_nothing_for_an_empty_report(tmp_path: Path) -> None:
    profiler = _RecordingProfiler(dirpath=tmp_path, filename="perf")
    profiler.report = ""
    profiler.describe()
    assert list(tmp_path.iterdir()) == []


def test_passthrough_profiler_returns_one_shared_context_and_reports_nothing(
    tmp_path: Path,
) -> None:
    profiler = PassThroughProfiler(dirpath=tmp_path, filename="perf")
    context = profiler.profile("a")
    assert profiler.profile("b") is context
    with context, context:
        pass
    profiler.start("never-stopped")
    profiler.stop("never-started")
    assert profiler.summary() == ""
    profiler.setup(stage="fit")
    profiler.describe()
    profiler.teardown("fit")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.compat
def test_profilers_all_matches_lightning() -> None:
    lightning_profilers = pytest.importorskip("pytorch_lightning.profilers")
    import fulmen.profilers

    assert sorted(fulmen.profilers.__all__) == sorted(lightning_profilers.__all__)
