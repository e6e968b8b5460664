from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fulmen.profilers import PyTorchProfiler
from fulmen.utilities.exceptions import MisconfigurationException


def _step(model: torch.nn.Module) -> None:
    model(torch.randn(4, 8)).sum().backward()


def test_pytorch_profiler_reports_actions_and_operators() -> None:
    profiler = PyTorchProfiler(row_limit=-1)
    profiler.setup(stage="fit")
    model = torch.nn.Linear(8, 2)
    for _ in range(2):
        with profiler.profile("run_training_batch"):
            with profiler.profile("[LightningModule]Model.training_step"):
                _step(model)
    summary = profiler.summary()
    assert summary.startswith("FIT Profiler Report\n")
    for name in (
        "[action]run_training_batch",
        "[action][LightningModule]Model.training_step",
        "[module]torch.nn.modules.linear.Linear",
        "aten::addmm",
    ):
        assert name in summary
    row = next(line for line in summary.splitlines() if "[action]run_training_batch" in line)
    assert row.split()[-1] == "2"


def test_pytorch_profiler_removes_its_module_hooks_when_the_recording_ends() -> None:
    hooks = torch.nn.modules.module._global_forward_hooks
    before = len(hooks)
    profiler = PyTorchProfiler()
    with profiler.profile("step"):
        assert len(hooks) == before + 1
    profiler.summary()
    assert len(hooks) == before


def test_pytorch_profiler_can_leave_module_names_out() -> None:
    profiler = PyTorchProfiler(record_module_names=False, row_limit=-1)
    with profiler.profile("step"):
        _step(torch.nn.Linear(8, 2))
    assert "[module]" not in profiler.summary()


def test_pytorch_profiler_starts_a_new_recording_after_each_report() -> None:
    profiler = PyTorchProfiler(row_limit=-1)
    with profiler.profile("first"):
        _step(torch.nn.Linear(8, 2))
    assert "[action]first" in profiler.summary()
    with profiler.profile("second"):
        _step(torch.nn.Linear(8, 2))
    summary = profiler.summary()
    assert "[action]second" in summary
    assert "[action]first" not in summary


def test_pytorch_profiler_report_is_empty_before_anything_ran() -> None:
    assert PyTorchProfiler().summary() == ""


def test_pytorch_profiler_writes_the_report_and_a_chrome_trace(tmp_path: Path) -> None:
    profiler = PyTorchProfiler(filename="perf")
    profiler.setup(stage="fit", local_rank=None, log_dir=str(tmp_path))
    with profiler.profile("step"):
        _step(torch.nn.Linear(8, 2))
    profiler.describe()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit-perf.pt.trace.json", "fit-perf.txt"]
    assert "[action]step" in (tmp_path / "fit-perf.txt").read_text()
    trace = json.loads((tmp_path / "fit-perf.pt.trace.json").read_text())
    assert any(event.get("name") == "[action]step" for event in trace["traceEvents"])


def test_pytorch_profiler_can_skip_the_chrome_trace(tmp_path: Path) -> None:
    profiler = PyTorchProfiler(dirpath=tmp_path, filename="perf", export_to_chrome=False)
    with profiler.profile("step"):
        pass
    profiler.describe()
    assert [p.name for p in tmp_path.iterdir()] == ["perf.txt"]


def test_pytorch_profiler_sorts_and_groups_by_input_shape() -> None:
    profiler = PyTorchProfiler(sort_by_key="count", group_by_input_shapes=True, row_limit=-1)
    with profiler.profile("step"):
        torch.ones(2, 2) + torch.ones(2, 2)
        torch.ones(3, 3) + torch.ones(3, 3)
    add_rows = [line for line in profiler.summary().splitlines() if " aten::add " in line]
    assert len(add_rows) == 2


def test_pytorch_profiler_advances_a_schedule_after_each_step_action() -> None:
    schedule = torch.profiler.schedule(wait=1, warmup=1, active=1, repeat=1)
    profiler = PyTorchProfiler(schedule=schedule, row_limit=-1)
    for index in range(4):
        with profiler.profile("[LightningModule]Model.training_step"):
            torch.full((2,), float(index)) * 2
    summary = profiler.summary()
    row = next(line for line in summary.splitlines() if "[action]" in line)
    assert row.split()[-1] == "1"


def test_pytorch_profiler_stop_without_start_names_the_action() -> None:
    profiler = PyTorchProfiler()
    with pytest.raises(ValueError, match=r"stop\('predict_step'\): this action was never started"):
        profiler.stop("predict_step")


def test_pytorch_profiler_refuses_to_start_a_running_action() -> None:
    profiler = PyTorchProfiler()
    profiler.start("step")
    with pytest.raises(ValueError, match=r"start\('step'\): this action is already running"):
        profiler.start("step")
    profiler.stop("step")
    profiler.teardown("fit")


def test_pytorch_profiler_rejects_an_unknown_sort_key() -> None:
    with pytest.raises(MisconfigurationException, match="sort_by_key='speed'"):
        PyTorchProfiler(sort_by_key="speed")


def test_pytorch_profiler_rejects_an_argument_torch_profiler_does_not_take() -> None:
    with pytest.raises(MisconfigurationException, match="record_everything"):
        PyTorchProfiler(record_everything=True)


def test_pytorch_profiler_rejects_sort_and_limit_in_table_kwargs() -> None:
    with pytest.raises(MisconfigurationException, match="sort_by_key="):
        PyTorchProfiler(table_kwargs={"sort_by": "count"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_pytorch_profiler_emit_nvtx_needs_cuda() -> None:
    with pytest.raises(MisconfigurationException, match="emit_nvtx=True"):
        PyTorchProfiler(emit_nvtx=True)


@pytest.mark.gpu
def test_pytorch_profiler_records_cuda_kernels() -> None:
    profiler = PyTorchProfiler(row_limit=-1)
    model = torch.nn.Linear(8, 2).cuda()
    with profiler.profile("step"):
        model(torch.randn(4, 8, device="cuda")).sum().backward()
        torch.cuda.synchronize()
    summary = profiler.summary()
    assert "CUDA total" in summary
    assert "[action]step" in summary


@pytest.mark.gpu
def test_pytorch_profiler_emits_nvtx_ranges_on_cuda() -> None:
    profiler = PyTorchProfiler(emit_nvtx=True)
    with profiler.profile("step"):
        torch.ones(2, device="cuda") * 2
    assert profiler.summary() == ""
