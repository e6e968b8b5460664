"""`PyTorchProfiler`: `torch.profiler` around the run, with each action as a labelled range."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.autograd.profiler import record_function
from torch.utils.hooks import RemovableHandle

from fulmen.profilers.profiler import Profiler
from fulmen.utilities.exceptions import MisconfigurationException

__all__ = ["PyTorchProfiler"]


class PyTorchProfiler(Profiler):
    """Record operator-level CPU (and CUDA) time with `torch.profiler.profile`.

    Recording starts with the first action and ends when the report is made (`summary()`,
    `describe()` or `teardown()`); the next action starts a new recording. Each action shows up
    as a range named `[action]<name>` and, with `record_module_names`, each module call as
    `[module]<class>`. Everything is kept in memory until the report, so profile short runs, or
    pass a `schedule=torch.profiler.schedule(...)`: the schedule advances after every
    `training_step`, `validation_step`, `test_step` and `predict_step` action.

    Args:
        group_by_input_shapes: Report operators separately per input shape (records shapes).
        emit_nvtx: Emit NVTX ranges for `nsys`/`nvprof` instead of recording (needs CUDA).
        export_to_chrome: Write `<dirpath>/<stage>-<filename>.pt.trace.json` for
            chrome://tracing or Perfetto when the recording ends (needs a `dirpath`).
        row_limit: Rows in the report table (-1 for all).
        sort_by_key: Column to sort the table by; default `device_time_total` when CUDA is
            recorded, else `cpu_time_total`.
        record_module_names: Label each `nn.Module` call with its class.
        table_kwargs: Passed on to `key_averages().table()`.
        profiler_kwargs: Passed on to `torch.profiler.profile` (`activities`, `schedule`,
            `profile_memory`, `with_stack`, ...).

    Example:
        >>> profiler = PyTorchProfiler(row_limit=5)
        >>> with profiler.profile("matmul"):
        ...     _ = torch.ones(8, 8) @ torch.ones(8, 8)
        >>> "[action]matmul" in profiler.summary()
        True
    """

    AVAILABLE_SORT_KEYS = frozenset(
        {
            "count",
            "cpu_time",
            "cpu_time_total",
            "self_cpu_time_total",
            "cpu_memory_usage",
            "self_cpu_memory_usage",
            "cuda_time",
            "cuda_time_total",
            "cuda_memory_usage",
            "self_cuda_memory_usage",
            "device_time",
            "device_time_total",
            "self_device_time_total",
            "device_memory_usage",
            "self_device_memory_usage",
        }
    )
    STEP_FUNCTIONS = ("training_step", "validation_step", "test_step", "predict_step")

    def __init__(
        self,
        dirpath: str | Path | None = None,
        filename: str | None = None,
        group_by_input_shapes: bool = False,
        emit_nvtx: bool = False,
        export_to_chrome: bool = True,
        row_limit: int = 20,
        sort_by_key: str | None = None,
        record_module_names: bool = True,
        table_kwargs: dict[str, Any] | None = None,
        **profiler_kwargs: Any,
    ) -> None:
        if sort_by_key is not None and sort_by_key not in self.AVAILABLE_SORT_KEYS:
            raise MisconfigurationException(
                f"PyTorchProfiler(sort_by_key={sort_by_key!r}) is not a column of the report. "
                f"Choose one of {sorted(self.AVAILABLE_SORT_KEYS)}."
            )
        if emit_nvtx and not torch.cuda.is_available():
            raise MisconfigurationException(
                "PyTorchProfiler(emit_nvtx=True) needs CUDA, which is not available here. "
                "Leave emit_nvtx=False to record with torch.profiler instead."
            )
        if table_kwargs is not None and {"sort_by", "row_limit"} & set(table_kwargs):
            raise MisconfigurationException(
                f"PyTorchProfiler(table_kwargs={table_kwargs!r}) sets `sort_by` or `row_limit`; "
                "pass them as `sort_by_key=` and `row_limit=` instead."
            )
        super().__init__(dirpath=dirpath, filename=filename)
        self._group_by_input_shapes = group_by_input_shapes
        self._emit_nvtx = emit_nvtx
        self._export_to_chrome = export_to_chrome and "on_trace_ready" not in profiler_kwargs
        self._row_limit = row_limit
        self._table_kwargs = table_kwargs or {}
        self._record_module_names = record_module_names
        self._profiler_kwargs = self._check_profiler_kwargs(profiler_kwargs, group_by_input_shapes)
        self._has_schedule = profiler_kwargs.get("schedule") is not None
        records_cuda = torch.profiler.ProfilerActivity.CUDA in self._profiler_kwargs["activities"]
        self._sort_by_key = sort_by_key or (
            "device_time_total" if records_cuda else "cpu_time_total"
        )
        self._recording: Any = None
        self._finished: torch.profiler.profile | None = None
        self._actions: dict[str, record_function] = {}
        self._module_ranges: dict[int, list[record_function]] = {}
        self._hook_handles: list[RemovableHandle] = []

    @staticmethod
    def _check_profiler_kwargs(kwargs: dict[str, Any], record_shapes: bool) -> dict[str, Any]:
        try:
            inspect.signature(torch.profiler.profile).bind(**kwargs)
        except TypeError as error:
            raise MisconfigurationException(
                f"PyTorchProfiler(**{kwargs!r}) passes an argument `torch.profiler.profile` does "
                f"not take ({error})."
            ) from None
        kwargs = dict(kwargs)
        if "activities" not in kwargs:
            kwargs["activities"] = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                kwargs["activities"].append(torch.profiler.ProfilerActivity.CUDA)
        if record_shapes:
            kwargs["record_shapes"] = True
        return kwargs

    def start(self, action_name: str) -> None:
        """Open the range for `action_name`, starting a recording if none is running."""
        if action_name in self._actions:
            raise ValueError(
                f"PyTorchProfiler.start({action_name!r}): this action is already running; "
                "stop it before starting it again."
            )
        if self._recording is None:
            self._start_recording()
        action_range = record_function(f"[action]{action_name}")
        action_range.__enter__()  # type: ignore[no-untyped-call]
        self._actions[action_name] = action_range

    def stop(self, action_name: str) -> None:
        """Close the range for `action_name`; a step action advances the schedule, if any."""
        action_range = self._actions.pop(action_name, None)
        if action_range is None:
            raise ValueError(
                f"PyTorchProfiler.stop({action_name!r}): this action was never started. "
                f"Running actions: {sorted(self._actions)}."
            )
        action_range.__exit__(None, None, None)
        if self._has_schedule and action_name.endswith(self.STEP_FUNCTIONS):
            if isinstance(self._recording, torch.profiler.profile):
                self._recording.step()

    def summary(self) -> str:
        """End the current recording and return its operator table (empty if nothing ran)."""
        self._stop_recording()
        if self._finished is None:
            return ""
        table = self._finished.key_averages(group_by_input_shape=self._group_by_input_shapes).table(
            sort_by=self._sort_by_key, row_limit=self._row_limit, **self._table_kwargs
        )
        return f"{self._report_title()}\n{table}"

    def teardown(self, stage: str | None) -> None:
        """End the current recording, if any."""
        self._stop_recording()

    def _start_recording(self) -> None:
        if self._emit_nvtx:
            self._recording = torch.autograd.profiler.emit_nvtx(  # type: ignore[no-untyped-call]
                record_shapes=self._group_by_input_shapes
            )
        else:
            self._recording = torch.profiler.profile(**self._profiler_kwargs)
        self._recording.__enter__()
        if self._record_module_names:
            self._hook_handles = [
                nn.modules.module.register_module_forward_pre_hook(self._enter_module),
                nn.modules.module.register_module_forward_hook(self._exit_module),
            ]

    def _stop_recording(self) -> None:
        if self._recording is None:
            return
        for handle in self._hook_handles:
            handle.remove()
        self._hook_handles = []
        # A module whose forward raised left its range open; close it before the recording ends.
        for ranges in self._module_ranges.values():
            for module_range in reversed(ranges):
                module_range.__exit__(None, None, None)
        self._module_ranges.clear()
        recording, self._recording = self._recording, None
        recording.__exit__(None, None, None)
        if isinstance(recording, torch.profiler.profile):
            self._finished = recording
            if self._export_to_chrome and self.dirpath is not None:
                os.makedirs(self.dirpath, exist_ok=True)
                stem = self._file_stem() or "trace"
                recording.export_chrome_trace(os.path.join(self.dirpath, f"{stem}.pt.trace.json"))

    def _enter_module(self, module: nn.Module, args: Any) -> None:
        module_range = record_function(f"[module]{type(module).__module__}.{type(module).__name__}")
        module_range.__enter__()  # type: ignore[no-untyped-call]
        self._module_ranges.setdefault(id(module), []).append(module_range)

    def _exit_module(self, module: nn.Module, args: Any, output: Any) -> None:
        ranges = self._module_ranges.get(id(module))
        if ranges:
            ranges.pop().__exit__(None, None, None)
