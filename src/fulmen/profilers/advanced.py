"""`AdvancedProfiler`: a `cProfile` profile per action, reported as `pstats` tables."""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import re
from pathlib import Path

from fulmen.profilers.profiler import Profiler

__all__ = ["AdvancedProfiler"]


class AdvancedProfiler(Profiler):
    """Run `cProfile` inside each action and report the functions that took the most time.

    Only one `cProfile` profiler can be active at a time, so a nested action pauses the action
    around it: an action's report covers its own code, not the nested actions' (they have their
    own reports).

    Args:
        line_count_restriction: How many functions each report lists: an int is a count, a float
            in (0, 1] a fraction of them.
        dump_stats: Also write each action's raw profile to `<dirpath>/<stage>-<filename>-<action>
            .prof` (readable with `pstats` or snakeviz) when the report is made.

    Example:
        >>> profiler = AdvancedProfiler(line_count_restriction=3)
        >>> with profiler.profile("sort"):
        ...     _ = sorted(range(1000), key=lambda v: -v)
        >>> print(profiler.summary().splitlines()[1])
        Profile stats for: sort
    """

    def __init__(
        self,
        dirpath: str | Path | None = None,
        filename: str | None = None,
        line_count_restriction: float = 1.0,
        dump_stats: bool = False,
    ) -> None:
        valid = not isinstance(line_count_restriction, bool) and (
            (isinstance(line_count_restriction, int) and line_count_restriction >= 1)
            or (isinstance(line_count_restriction, float) and 0 < line_count_restriction <= 1)
        )
        if not valid:
            raise ValueError(
                f"AdvancedProfiler(line_count_restriction={line_count_restriction!r}) is invalid: "
                "expected an int >= 1 (a number of lines) or a float in (0, 1] (a fraction)."
            )
        super().__init__(dirpath=dirpath, filename=filename)
        self.line_count_restriction = line_count_restriction
        self.dump_stats = dump_stats
        self.profiled_actions: dict[str, cProfile.Profile] = {}
        self._running: list[str] = []

    def start(self, action_name: str) -> None:
        """Start (or resume) profiling `action_name`, pausing the action it is nested in."""
        if action_name in self._running:
            raise ValueError(
                f"AdvancedProfiler.start({action_name!r}): this action is already running; "
                "stop it before starting it again."
            )
        if self._running:
            self.profiled_actions[self._running[-1]].disable()
        profile = self.profiled_actions.setdefault(action_name, cProfile.Profile())
        self._running.append(action_name)
        profile.enable()

    def stop(self, action_name: str) -> None:
        """Stop profiling `action_name` and resume the action it was nested in."""
        if action_name not in self._running:
            raise ValueError(
                f"AdvancedProfiler.stop({action_name!r}): this action was never started. "
                f"Running actions: {self._running}."
            )
        self.profiled_actions[action_name].disable()
        was_innermost = self._running[-1] == action_name
        self._running.remove(action_name)
        if was_innermost and self._running:
            self.profiled_actions[self._running[-1]].enable()

    def summary(self) -> str:
        """Return each action's functions sorted by cumulative time (and dump them if asked)."""
        reports = [self._report_title()]
        for action_name, profile in self.profiled_actions.items():
            stream = io.StringIO()
            # Reading the stats disables the profile; the innermost running action must go on.
            stats = pstats.Stats(profile, stream=stream)
            if self._running and self._running[-1] == action_name:
                profile.enable()
            if self.dump_stats:
                stats.dump_stats(self._dump_path(action_name))
            stats.strip_dirs().sort_stats("cumulative").print_stats(self.line_count_restriction)
            reports.append(f"Profile stats for: {action_name}\n{stream.getvalue()}")
        return "\n".join(reports)

    def _dump_path(self, action_name: str) -> str:
        if self.dirpath is None:
            raise ValueError(
                "AdvancedProfiler(dump_stats=True) has no folder to write to: pass `dirpath=` "
                "(under a Trainer, its log_dir is used)."
            )
        os.makedirs(self.dirpath, exist_ok=True)
        # Hook names hold characters such as "/" (from monitored metric names) or ":".
        safe_name = re.sub(r"[^\w.\-\[\]]", "_", action_name)
        return os.path.join(self.dirpath, f"{self._file_stem(safe_name)}.prof")

    def teardown(self, stage: str | None) -> None:
        """Stop profiling whatever is still running."""
        for action_name in self._running:
            self.profiled_actions[action_name].disable()
        self._running.clear()
