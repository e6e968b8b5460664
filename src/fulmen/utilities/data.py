"""Questions about batches and dataloaders: a batch's size, a loader's length, worker counts."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_warn
from fulmen.utilities.warnings import PossibleUserWarning

__all__ = ["extract_batch_size", "has_iterable_dataset", "has_len", "suggested_max_num_workers"]


def _batch_sizes(batch: Any) -> Iterator[int]:
    if isinstance(batch, Tensor):
        yield 1 if batch.ndim == 0 else batch.size(0)
    elif isinstance(batch, (str, bytes)):
        return
    elif isinstance(batch, Mapping):
        for value in batch.values():
            yield from _batch_sizes(value)
    elif isinstance(batch, Sequence):
        for value in batch:
            yield from _batch_sizes(value)
    elif dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        for field in dataclasses.fields(batch):
            yield from _batch_sizes(getattr(batch, field.name))


def extract_batch_size(batch: Any) -> int:
    """Return the first dimension of the first tensor in `batch` (a 0-d tensor counts as 1).

    Looks inside dicts, lists, tuples and dataclasses. Warns when the tensors disagree, and raises
    `MisconfigurationException` when there is no tensor at all.

    Example:
        >>> import torch
        >>> extract_batch_size({"image": torch.zeros(8, 3, 4, 4), "label": torch.zeros(8)})
        8
    """
    sizes = _batch_sizes(batch)
    batch_size = next(sizes, None)
    if batch_size is None:
        raise MisconfigurationException(
            f"Could not find a tensor in a batch of type {type(batch).__name__}, so its batch size "
            "is unknown. Pass it explicitly with `self.log(..., batch_size=N)`."
        )
    if any(size != batch_size for size in sizes):
        rank_zero_warn(
            f"The batch holds tensors whose first dimensions differ; using {batch_size} (from the "
            "first tensor) as the batch size. Pass `self.log(..., batch_size=N)` to set it explicitly.",
            category=PossibleUserWarning,
        )
    return batch_size


def has_iterable_dataset(dataloader: object) -> bool:
    """Return whether `dataloader` is a DataLoader over an `IterableDataset`.

    Example:
        >>> has_iterable_dataset(DataLoader(range(3)))
        False
    """
    return isinstance(dataloader, DataLoader) and isinstance(dataloader.dataset, IterableDataset)


def has_len(dataloader: object) -> bool:
    """Return whether `len(dataloader)` works; warn when it is 0 or may be wrong.

    Example:
        >>> has_len(DataLoader(range(3))), has_len(iter(range(3)))
        (True, False)
    """
    try:
        length = len(dataloader)  # type: ignore[arg-type]
    except (TypeError, NotImplementedError):
        return False
    if length == 0:
        rank_zero_warn(
            f"`{type(dataloader).__name__}` has length 0, so it yields no batches. "
            "Check the dataset and the sampler if this is not intended."
        )
    if has_iterable_dataset(dataloader):
        rank_zero_warn(
            "The `IterableDataset` defines `__len__`. With num_workers > 1 this length is only "
            "right if each worker yields a distinct share of the data.",
            category=PossibleUserWarning,
        )
    return True


def _num_cpus_available() -> int:
    # The affinity mask is what this process may use (containers, taskset); cpu_count() is the box.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def suggested_max_num_workers(local_world_size: int) -> int:
    """Return how many DataLoader workers each of `local_world_size` processes on a machine should use.

    Leaves one CPU per process for the training loop itself, and suggests at least 1.

    Example:
        >>> suggested_max_num_workers(1) >= 1
        True
    """
    if local_world_size < 1:
        raise ValueError(
            f"suggested_max_num_workers(local_world_size={local_world_size!r}) is invalid: "
            "expected the number of processes on this machine, >= 1."
        )
    return max(1, _num_cpus_available() // local_world_size - 1)
