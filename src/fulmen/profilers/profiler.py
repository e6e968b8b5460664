"""The `Profiler` base class: time named actions, then report them to a file or the log."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any

from fulmen.utilities.rank_zero import rank_zero_info

__all__ = ["Profiler"]


class _Action(AbstractContextManager[str]):
    """Start an action on entry and stop it on exit; a plain class, cheaper than a generator."""

    __slots__ = ("_profiler", "_name")

    def __init__(self, profiler: Profiler, name: str) -> None:
        self._profiler = profiler
        self._name = name

    def __enter__(self) -> str:
        self._profiler.start(self._name)
        return self._name

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._profiler.stop(self._name)


class Profiler(ABC):
    """Record how long named actions take; the trainer wraps every hook in `profile(name)`.

    Args:
        dirpath: Folder for the report; under a `Trainer`, its `log_dir` when not given.
        filename: Append the report to `<dirpath>/<stage>-<filename>.txt`; without a filename or
            a folder, `describe()` logs the report at INFO level on rank zero instead.

    Example:
        >>> class CountingProfiler(Profiler):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.calls = []
        ...     def start(self, action_name):
        ...         self.calls.append(action_name)
        ...     def stop(self, action_name):
        ...         pass
        ...     def summary(self):
        ...         return f"{len(self.calls)} calls"
        >>> profiler = CountingProfiler()
        >>> with profiler.profile("training_step"):
        ...     pass
        >>> profiler.summary()
        '1 calls'
    """

    def __init__(self, dirpath: str | Path | None = None, filename: str | None = None) -> None:
        self.dirpath = os.fspath(dirpath) if dirpath is not None else None
        self.filename = filename
        self._stage: str | None = None
        self._local_rank: int | None = None

    @abstractmethod
    def start(self, action_name: str) -> None:
        """Start recording `action_name`."""

    @abstractmethod
    def stop(self, action_name: str) -> None:
        """Stop recording `action_name`; raise `ValueError` if it was not started."""

    @abstractmethod
    def summary(self) -> str:
        """Return the report of everything recorded so far."""

    def profile(self, action_name: str) -> AbstractContextManager[Any]:
        """Return a context manager that records `action_name` while its block runs."""
        return _Action(self, action_name)

    @property
    def local_rank(self) -> int:
        """The process's rank on its machine, as given to `setup` (0 until then)."""
        return self._local_rank or 0

    def setup(self, stage: str, local_rank: int | None = None, log_dir: str | None = None) -> None:
        """Prepare for `stage` ("fit", "validate", ...); `log_dir` becomes `dirpath` if unset.

        Pass `local_rank` only when several processes run: each then gets its own report file.
        """
        self._stage = stage
        self._local_rank = local_rank
        self.dirpath = self.dirpath or log_dir

    def teardown(self, stage: str | None) -> None:  # noqa: B027 (a default no-op, as for hooks)
        """Release what `setup` or the recording acquired."""

    def describe(self) -> None:
        """Write the report: appended to the report file if `filename` is set, else to the log."""
        summary = self.summary()
        if not summary:
            return
        path = self._report_path()
        if path is None:
            rank_zero_info(summary)
            return
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "a", encoding="utf-8") as file:
            file.write(summary)

    def _report_title(self) -> str:
        return f"{self._stage.upper()} Profiler Report" if self._stage else "Profiler Report"

    def _file_stem(self, *parts: str) -> str:
        """Return `<stage>-<filename>[-<local_rank>][-<part>...]`, leaving out what is unset."""
        names = [self._stage, self.filename]
        if self._local_rank is not None:
            names.append(str(self._local_rank))
        return "-".join(name for name in (*names, *parts) if name)

    def _report_path(self) -> str | None:
        if not (self.filename and self.dirpath):
            return None
        return os.path.join(self.dirpath, f"{self._file_stem()}.txt")
