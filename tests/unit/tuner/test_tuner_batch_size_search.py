"""The batch-size searches with a fake trial (no Trainer): the sizes tried and the size chosen."""

from __future__ import annotations

import pytest
import torch

from fulmen.tuner.batch_size_scaling import (
    _binsearch,
    _power_search,
    check_scale_batch_size_arguments,
    is_oom_error,
)


class FakeTrial:
    """Fits every batch size up to `limit`; the dataset holds `length` samples."""

    def __init__(self, limit: int, length: int | None = None) -> None:
        self.limit = limit
        self.length = length
        self.tried: list[int] = []

    def fits_or_raise_at_one(self, size: int, name: str) -> bool:
        self.tried.append(size)
        if size > self.limit and size == 1:
            raise RuntimeError("out of memory at batch size 1")
        return size <= self.limit

    def can_grow(self, size: int, max_val: int) -> bool:
        if self.length is not None and size >= self.length:
            return False
        return size < max_val


def power(limit: int, init: int = 2, trials: int = 25, max_val: int = 8192, length=None):
    trial = FakeTrial(limit, length)
    return _power_search(trial, init, "batch_size", trials, max_val), trial.tried  # type: ignore[arg-type]


def binsearch(limit: int, init: int = 2, trials: int = 25, max_val: int = 8192, length=None):
    trial = FakeTrial(limit, length)
    return _binsearch(trial, init, "batch_size", trials, max_val), trial.tried  # type: ignore[arg-type]


def test_power_doubles_until_oom_and_keeps_the_last_size_that_fitted() -> None:
    assert power(20) == (16, [2, 4, 8, 16, 32])


def test_power_halves_from_a_failing_start_then_grows_again_like_lightning() -> None:
    assert power(3, init=8) == (2, [8, 4, 2, 4])


def test_power_stops_at_max_trials_with_the_last_success() -> None:
    assert power(1000, trials=3) == (8, [2, 4, 8])


def test_power_caps_at_max_val_tries_it_and_keeps_the_last_fit_if_it_fails() -> None:
    assert power(1000, max_val=12) == (12, [2, 4, 8, 12])
    assert power(10, max_val=12) == (8, [2, 4, 8, 12])


def test_power_stops_growing_once_the_batch_holds_the_dataset() -> None:
    assert power(1000, length=10) == (16, [2, 4, 8, 16])


def test_binsearch_bisects_between_largest_fit_and_smallest_failure() -> None:
    assert binsearch(20) == (20, [2, 4, 8, 16, 32, 24, 20, 22, 21])


def test_binsearch_finds_one_when_only_one_fits_and_tests_it() -> None:
    assert binsearch(1, init=2) == (1, [2, 1])


def test_binsearch_counts_only_successful_trials_against_max_trials() -> None:
    assert binsearch(20, trials=5) == (20, [2, 4, 8, 16, 32, 24, 20])


def test_searches_raise_when_even_batch_size_one_runs_out_of_memory() -> None:
    with pytest.raises(RuntimeError, match="batch size 1"):
        power(0, init=1)
    with pytest.raises(RuntimeError, match="batch size 1"):
        binsearch(0, init=4)


@pytest.mark.parametrize(
    "error",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
        RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB"),
        RuntimeError("CUDA error: out of memory"),
        RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if ..."),
        RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
        ),
        RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 8 bytes."),
        RuntimeError("MPS backend out of memory (MPS allocated: 1.00 GB)"),
        MemoryError(),
    ],
)
def test_is_oom_error_recognises_allocation_failures(error: BaseException) -> None:
    assert is_oom_error(error)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x8 and 3x1)"),
        ValueError("out of memory"),  # only runtime errors come from allocators
        KeyError("memory"),
    ],
)
def test_is_oom_error_leaves_other_errors_alone(error: BaseException) -> None:
    assert not is_oom_error(error)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "linear"}, "mode='linear'"),
        ({"steps_per_trial": 0}, "steps_per_trial=0"),
        ({"init_val": 2.5}, "init_val=2.5"),
        ({"max_trials": True}, "max_trials=True"),
        ({"margin": 1.0}, "margin=1.0"),
        ({"max_val": 0}, "max_val=0"),
        ({"init_val": 64, "max_val": 32}, "init_val=64.*max_val=32"),
        ({"batch_arg_name": ""}, "batch_arg_name=''"),
    ],
)
def test_bad_search_arguments_raise_naming_the_value(kwargs: dict, message: str) -> None:
    arguments = dict(
        mode="power",
        steps_per_trial=3,
        init_val=2,
        max_trials=25,
        batch_arg_name="batch_size",
        margin=0.05,
        max_val=8192,
    )
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=rf"BatchSizeFinder\({message}"):
        check_scale_batch_size_arguments(**arguments, owner="BatchSizeFinder")


def test_mode_is_case_insensitive() -> None:
    mode = check_scale_batch_size_arguments("BinSearch", 3, 2, 25, "bs", 0.0, 8192, "Tuner")
    assert mode == "binsearch"
