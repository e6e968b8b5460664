from __future__ import annotations

import pstats
from pathlib import Path

import pytest

from fulmen.profilers import AdvancedProfiler


def _outer_work() -> int:
    return sum(i * i for i in range(2000))


def _inner_work() -> list[int]:
    return sorted(range(2000), key=lambda v: -v)


def _functions(profiler: AdvancedProfiler, action: str) -> set[str]:
    stats = pstats.Stats(profiler.profiled_actions[action])
    return {function for _, _, function in stats.stats}  # type: ignore[attr-defined]


def test_advanced_profiler_reports_the_functions_called_in_each_action() -> None:
    profiler = AdvancedProfiler()
    with profiler.profile("outer"):
        _outer_work()
    summary = profiler.summary()
    assert summary.startswith("Profiler Report\nProfile stats for: outer\n")
    assert "_outer_work" in summary
    assert "Ordered by: cumulative time" in summary


def test_advanced_profiler_gives_nested_actions_their_own_profile() -> None:
    profiler = AdvancedProfiler()
    with profiler.profile("outer"):
        _outer_work()
        with profiler.profile("inner"):
            _inner_work()
        _outer_work()
    assert "_inner_work" in _functions(profiler, "inner")
    assert "_outer_work" not in _functions(profiler, "inner")
    outer = _functions(profiler, "outer")
    assert "_outer_work" in outer
    assert "_inner_work" not in outer
    calls = pstats.Stats(profiler.profiled_actions["outer"]).stats  # type: ignore[attr-defined]
    assert sum(entry[1] for key, entry in calls.items() if key[2] == "_outer_work") == 2


def test_advanced_profiler_accumulates_repeated_calls_of_an_action() -> None:
    profiler = AdvancedProfiler()
    for _ in range(3):
        with profiler.profile("step"):
            _outer_work()
    calls = pstats.Stats(profiler.profiled_actions["step"]).stats  # type: ignore[attr-defined]
    assert sum(entry[1] for key, entry in calls.items() if key[2] == "_outer_work") == 3


def test_advanced_profiler_limits_the_listed_functions() -> None:
    profiler = AdvancedProfiler(line_count_restriction=2)
    with profiler.profile("step"):
        _outer_work()
    assert "due to restriction <2>" in profiler.summary()


@pytest.mark.parametrize("restriction", [0, -1, 1.5, 0.0, True, "all"])
def test_advanced_profiler_rejects_invalid_line_count_restriction(restriction: object) -> None:
    with pytest.raises(ValueError, match="line_count_restriction="):
        AdvancedProfiler(line_count_restriction=restriction)  # type: ignore[arg-type]


def test_advanced_profiler_stop_without_start_names_the_action() -> None:
    profiler = AdvancedProfiler()
    with pytest.raises(ValueError, match=r"stop\('test_step'\): this action was never started"):
        profiler.stop("test_step")


def test_advanced_profiler_refuses_to_start_a_running_action() -> None:
    profiler = AdvancedProfiler()
    profiler.start("step")
    try:
        with pytest.raises(ValueError, match=r"start\('step'\): this action is already running"):
            profiler.start("step")
    finally:
        profiler.teardown("fit")


def test_advanced_profiler_keeps_profiling_an_action_while_reporting_it() -> None:
    profiler = AdvancedProfiler()
    with profiler.profile("run_fit"):
        profiler.summary()
        _outer_work()
    assert "_outer_work" in _functions(profiler, "run_fit")


def test_advanced_profiler_writes_the_report_file_and_dumps_stats(tmp_path: Path) -> None:
    profiler = AdvancedProfiler(filename="perf", dump_stats=True)
    profiler.setup(stage="fit", local_rank=None, log_dir=str(tmp_path))
    with profiler.profile("[Callback]ModelCheckpoint{'monitor': 'val/loss'}.on_train_end"):
        _outer_work()
    profiler.describe()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "fit-perf-[Callback]ModelCheckpoint__monitor____val_loss__.on_train_end.prof",
        "fit-perf.txt",
    ]
    assert "_outer_work" in (tmp_path / "fit-perf.txt").read_text()
    dumped = pstats.Stats(str(tmp_path / names[0]))
    assert any(function == "_outer_work" for _, _, function in dumped.stats)  # type: ignore[attr-defined]


def test_advanced_profiler_dump_stats_needs_a_folder() -> None:
    profiler = AdvancedProfiler(dump_stats=True)
    with profiler.profile("step"):
        pass
    with pytest.raises(ValueError, match="dump_stats=True.*dirpath="):
        profiler.summary()
