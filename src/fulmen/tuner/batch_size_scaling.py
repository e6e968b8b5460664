"""Find the largest batch size that fits in memory by trying a few steps at each size.

`scale_batch_size` runs inside fit/validate/test/predict (from a `BatchSizeFinder` hook). Each
trial sets the batch size attribute (on the model, its `hparams` or the datamodule), rebuilds the
dataloaders, runs `steps_per_trial` steps and sees whether they ran out of memory:

- "power" doubles the size after each success and stops at the first failure, keeping the last
  size that fitted;
- "binsearch" doubles until the first failure, then bisects between the largest size that fitted
  and the smallest that failed, and finally takes `margin` off for safety.

Growth also stops once the batch size reaches the dataset's length (a larger batch would hold no
more samples) or `max_val`. Weights, optimizer and trainer are put back afterwards; the batch size
attribute keeps the size found, and the loops load their dataloaders again with it.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from fulmen.tuner.attributes import set_attribute
from fulmen.utilities.rank_zero import rank_zero_info, rank_zero_warn

if TYPE_CHECKING:
    from fulmen.trainer.trainer import Trainer
    from fulmen.tuner.trial import TrainerSnapshot

__all__ = [
    "check_scale_batch_size_arguments",
    "garbage_collection_cuda",
    "is_oom_error",
    "scale_batch_size",
]

BATCH_SIZE_MODES = ("power", "binsearch")

# What allocators say when they run out: CUDA, HIP, MPS and XPU ("... out of memory"), cuBLAS and
# cuDNN workspaces, and the CPU allocator on Linux ("can't allocate memory") and Windows.
_OOM_MESSAGES = (
    "out of memory",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_ALLOC_FAILED",
    # cuDNN reports this for batches too large for its kernels; Lightning treats it as OOM too.
    "CUDNN_STATUS_NOT_SUPPORTED",
    "DefaultCPUAllocator: can't allocate memory",
    "not enough memory",
)


def is_oom_error(exception: BaseException) -> bool:
    """Whether `exception` says that an allocation failed for lack of memory.

    Example:
        >>> is_oom_error(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
        True
        >>> is_oom_error(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried ..."))
        True
        >>> is_oom_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
        False
    """
    if isinstance(exception, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    if not isinstance(exception, RuntimeError):
        return False
    message = str(exception)
    return any(text in message for text in _OOM_MESSAGES)


def garbage_collection_cuda() -> None:
    """Free unreferenced tensors and give cached CUDA memory back, so the next trial starts clean."""
    gc.collect()
    try:
        torch.cuda.empty_cache()  # a no-op while CUDA is not initialised
    except RuntimeError as error:
        if not is_oom_error(error):
            raise


def check_scale_batch_size_arguments(
    mode: str,
    steps_per_trial: int,
    init_val: int,
    max_trials: int,
    batch_arg_name: str,
    margin: float,
    max_val: int,
    owner: str,
) -> str:
    """Raise if a batch-size search setting cannot work; return `mode` in lower case."""
    if not isinstance(mode, str) or mode.lower() not in BATCH_SIZE_MODES:
        raise ValueError(f"{owner}(mode={mode!r}) is invalid: expected one of {BATCH_SIZE_MODES}.")
    for name, value in (
        ("steps_per_trial", steps_per_trial),
        ("init_val", init_val),
        ("max_trials", max_trials),
        ("max_val", max_val),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}({name}={value!r}) is invalid: expected an int >= 1.")
    if init_val > max_val:
        raise ValueError(
            f"{owner}(init_val={init_val!r}) is invalid: it is above max_val={max_val!r}."
        )
    if not isinstance(batch_arg_name, str) or not batch_arg_name:
        raise ValueError(
            f"{owner}(batch_arg_name={batch_arg_name!r}) is invalid: expected the name of the "
            "batch size attribute, such as 'batch_size'."
        )
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 1:
        raise ValueError(
            f"{owner}(margin={margin!r}) is invalid: expected a fraction in [0, 1) to take off "
            "the size found in 'binsearch' mode."
        )
    return mode.lower()


def scale_batch_size(
    trainer: Trainer,
    mode: str = "power",
    steps_per_trial: int = 3,
    init_val: int = 2,
    max_trials: int = 25,
    batch_arg_name: str = "batch_size",
    margin: float = 0.05,
    max_val: int = 8192,
) -> int | None:
    """Search the batch size inside the running entry point; return it (None with `fast_dev_run`)."""
    from fulmen.trainer.state import TrainerFn
    from fulmen.tuner.trial import (
        reload_dataloaders,
        run_evaluation,
        run_training,
        stage_prefix,
        tuning_run,
    )

    if trainer.fast_dev_run:
        rank_zero_warn("The batch-size finder does not run with `fast_dev_run`; it is skipped.")
        return None
    prefix = stage_prefix(trainer)
    fitting = trainer.state.fn == TrainerFn.FITTING
    if fitting:
        settings: dict[str, object] = {
            "max_steps": trainer.global_step + steps_per_trial,
            "limit_train_batches": 1.0,
            "limit_val_batches": steps_per_trial,
            "min_epochs": None,
            "min_steps": None,
        }
    else:
        settings = {f"limit_{prefix}_batches": steps_per_trial}
    search = _power_search if mode == "power" else _binsearch
    with tuning_run(trainer, [], **settings) as snapshot:
        trial = _Trial(trainer, snapshot, run_training if fitting else run_evaluation, prefix)
        size = search(trial, init_val, batch_arg_name, max_trials, max_val)
        if mode == "binsearch" and margin > 0:
            reduced = max(1, int(size * (1 - margin)))
            if reduced != size:
                rank_zero_info(f"Taking a margin of {margin:.0%} off batch size {size}: {reduced}.")
                size = reduced
        set_attribute(trainer.lightning_module, batch_arg_name, size)
        garbage_collection_cuda()
    # Restored above are the loaders of the interrupted run, built with the old batch size.
    reload_dataloaders(trainer)
    rank_zero_info(f"The batch-size finder chose batch size {size}.")
    return size


class _Trial:
    """Run the steps of one trial at the current batch size and say whether they fitted."""

    def __init__(
        self,
        trainer: Trainer,
        snapshot: TrainerSnapshot,
        run: Callable[[Trainer], None],
        prefix: str,
    ) -> None:
        self.trainer = trainer
        self.snapshot = snapshot
        self.run = run
        self.prefix = prefix

    def fits(self, size: int, name: str) -> bool:
        set_attribute(self.trainer.lightning_module, name, size)
        self.snapshot.restart(self.trainer)
        try:
            self.run(self.trainer)
        except (RuntimeError, MemoryError) as error:
            if not is_oom_error(error):
                raise
        else:
            # Cached blocks go back to the device; a full garbage collection (slow on a large
            # heap) is only needed after a failure.
            torch.cuda.empty_cache()
            return True
        # Collected here, after the `except` block: its traceback held the trial's tensors.
        garbage_collection_cuda()
        return False

    def can_grow(self, size: int, max_val: int) -> bool:
        from fulmen.tuner.trial import dataset_length

        length = dataset_length(self.trainer, self.prefix)
        if length is not None and size >= length:
            rank_zero_info(
                f"Batch size {size} already holds the whole dataset ({length} samples): "
                "the search stops here."
            )
            return False
        if size >= max_val:
            rank_zero_info(f"Batch size {size} is max_val={max_val}: the search stops here.")
            return False
        return True

    def fits_or_raise_at_one(self, size: int, name: str) -> bool:
        fitted = self.fits(size, name)
        if not fitted and size == 1:
            raise RuntimeError(
                "The batch-size finder ran out of memory at batch size 1: the model does not fit "
                "in memory even with one sample per batch."
            )
        return fitted


def _power_search(trial: _Trial, size: int, name: str, max_trials: int, max_val: int) -> int:
    """Double after each success; at the first failure after one, keep the last size that fitted."""
    last_fitted: int | None = None
    for attempt in range(max_trials):
        if trial.fits_or_raise_at_one(size, name):
            last_fitted = size
            if attempt + 1 == max_trials or not trial.can_grow(size, max_val):
                break
            grown = min(size * 2, max_val)
            rank_zero_info(f"Batch size {size} fits; trying {grown}.")
            size = grown
        elif last_fitted is not None:
            rank_zero_info(f"Batch size {size} ran out of memory; keeping {last_fitted}.")
            return last_fitted
        else:
            rank_zero_info(f"Batch size {size} ran out of memory; trying {size // 2}.")
            size //= 2
    return size


def _binsearch(trial: _Trial, size: int, name: str, max_trials: int, max_val: int) -> int:
    """Double until a failure, then bisect between the largest fit and the smallest failure."""
    fitted = 0  # the largest size known to fit (0: none yet)
    failed: int | None = None  # the smallest size known to run out of memory
    successes = 0
    while True:
        if trial.fits_or_raise_at_one(size, name):
            fitted = size
            successes += 1
            if successes >= max_trials:
                return size
            if failed is None:
                if not trial.can_grow(size, max_val):
                    return size
                following = min(size * 2, max_val)
            else:
                if failed - fitted <= 1 or not trial.can_grow(size, max_val):
                    return size
                following = (fitted + failed) // 2
            rank_zero_info(f"Batch size {size} fits; trying {following}.")
        else:
            failed = size
            if failed - fitted <= 1:
                rank_zero_info(f"Batch size {size} ran out of memory; keeping {fitted}.")
                return fitted
            following = (fitted + failed) // 2
            rank_zero_info(f"Batch size {size} ran out of memory; trying {following}.")
        size = following
