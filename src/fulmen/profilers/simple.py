"""`SimpleProfiler`: wall-clock time per action, reported as Lightning's table."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from fulmen.profilers.profiler import Profiler

__all__ = ["SimpleProfiler"]

_CELL_WIDTH = 15


def _table(
    header: Sequence[str], sections: Sequence[Sequence[Sequence[str]]], first_width: int
) -> str:
    """Lay out `sections` of rows under `header`, with a ruler around the header and each section.

    The first column is padded to `first_width`, the others to 15; each cell ends in a tab, as in
    Lightning's report.
    """

    def line(cells: Sequence[str]) -> str:
        padded = [cells[0].ljust(first_width), *(cell.ljust(_CELL_WIDTH) for cell in cells[1:])]
        return "".join(f"|  {cell}\t" for cell in padded) + "|"

    header_line = line(header)
    ruler = "-" * (len(header_line.expandtabs()) + 1)
    lines = [ruler, header_line, ruler]
    for rows in sections:
        lines.extend(line(row) for row in rows)
        lines.append(ruler)
    return "\n".join(lines) + "\n"


class SimpleProfiler(Profiler):
    """Time each action with `time.perf_counter`; report count, mean and total per action.

    Only the count and total per action are kept, so memory does not grow with the run.

    Args:
        extended: Also show the number of calls, each action's share of the time since the
            profiler was created, and a "Total" row; rows are sorted by total time. Without it,
            rows show mean and total time, sorted by mean.

    Example:
        >>> profiler = SimpleProfiler(extended=False)
        >>> for _ in range(3):
        ...     with profiler.profile("training_step"):
        ...         pass
        >>> profiler.recorded_calls
        {'training_step': 3}
        >>> print(profiler.summary().splitlines()[0])
        Profiler Report
    """

    def __init__(
        self, dirpath: str | Path | None = None, filename: str | None = None, extended: bool = True
    ) -> None:
        super().__init__(dirpath=dirpath, filename=filename)
        self.extended = extended
        self.current_actions: dict[str, float] = {}
        self.recorded_calls: dict[str, int] = {}
        self.recorded_totals: dict[str, float] = {}
        self.start_time = time.perf_counter()

    def start(self, action_name: str) -> None:
        """Start the clock for `action_name`; it must not be running already."""
        if action_name in self.current_actions:
            raise ValueError(
                f"SimpleProfiler.start({action_name!r}): this action is already running; "
                "stop it before starting it again."
            )
        self.current_actions[action_name] = time.perf_counter()

    def stop(self, action_name: str) -> None:
        """Stop the clock for `action_name` and add the time to its total."""
        end = time.perf_counter()
        begin = self.current_actions.pop(action_name, None)
        if begin is None:
            raise ValueError(
                f"SimpleProfiler.stop({action_name!r}): this action was never started. "
                f"Running actions: {sorted(self.current_actions)}."
            )
        self.recorded_calls[action_name] = self.recorded_calls.get(action_name, 0) + 1
        self.recorded_totals[action_name] = self.recorded_totals.get(action_name, 0.0) + end - begin

    def summary(self) -> str:
        """Return the report table (title only while nothing has been recorded)."""
        title = f"{self._report_title()}\n\n"
        if not self.recorded_calls:
            return title
        stats = [
            (name, total / self.recorded_calls[name], self.recorded_calls[name], total)
            for name, total in self.recorded_totals.items()
        ]
        width = max(len(name) for name in self.recorded_calls)
        if not self.extended:
            stats.sort(key=lambda row: row[1], reverse=True)
            brief = [(name, f"{mean:.5}", f"{total:.5}") for name, mean, _, total in stats]
            return title + _table(("Action", "Mean duration (s)", "Total time (s)"), [brief], width)
        elapsed = time.perf_counter() - self.start_time
        stats.sort(key=lambda row: row[3], reverse=True)
        rows = [
            (name, f"{mean:.5}", str(calls), f"{total:.5}", f"{100 * total / elapsed:.5}")
            for name, mean, calls, total in stats
        ]
        total_row = ("Total", "-", str(sum(self.recorded_calls.values())), f"{elapsed:.5}", "100 %")
        header = ("Action", "Mean duration (s)", "Num calls", "Total time (s)", "Percentage %")
        return title + _table(header, [[total_row], rows], width)
