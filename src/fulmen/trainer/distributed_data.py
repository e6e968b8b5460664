"""Give each process its own shard of the data (`Trainer(use_distributed_sampler=True)`).

Training uses `DistributedSampler`, keeping the loader's shuffle setting. Validation and test use
a sampler that pads like `DistributedSampler` (so every rank runs the same number of batches and
collectives pair up) but remembers which samples are padding: the evaluation loop drops them
from the batch, so metrics over N processes equal the single-process ones. Prediction uses no
padding at all, as in Lightning.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from torch import Tensor
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

from fulmen.utilities.rank_zero import rank_zero_warn

__all__ = ["distribute_loader", "padding_in_batch", "drop_padding", "set_sampler_epoch"]


class EvalDistributedSampler(DistributedSampler[Any]):
    """`DistributedSampler` without shuffling that knows how many of its samples are padding.

    Padding samples sit at the end of a rank's share (at most one per rank when the dataset is
    larger than the number of ranks).
    """

    def __init__(self, dataset: Any, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        real = len(range(rank, len(dataset), num_replicas))
        self.num_padding = self.num_samples - real


class UnrepeatedDistributedSampler(Sampler[int]):
    """Rank r gets samples r, r + N, r + 2N, ...: no sample twice, shares may differ by one."""

    def __init__(self, dataset: Any, num_replicas: int, rank: int) -> None:
        self.indices = range(rank, len(dataset), num_replicas)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class _ShardedSampler(Sampler[int]):
    """Shard a user's own sampler: each epoch, rank r takes every N-th index it yields."""

    def __init__(self, inner: Sampler[int], num_replicas: int, rank: int) -> None:
        self.inner = inner
        self.num_replicas = num_replicas
        self.rank = rank

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        indices = list(self.inner)
        total = math.ceil(len(indices) / self.num_replicas) * self.num_replicas
        indices += indices[: total - len(indices)]  # pad so every rank runs as many batches
        return iter(indices[self.rank : total : self.num_replicas])

    def __len__(self) -> int:
        return math.ceil(len(self.inner) / self.num_replicas)  # type: ignore[arg-type]


def distribute_loader(loader: Any, mode: str, num_replicas: int, rank: int) -> Any:
    """Return `loader` over this rank's shard (`mode` is "train", "val", "test" or "predict")."""
    if not isinstance(loader, DataLoader) or isinstance(loader.dataset, IterableDataset):
        return loader  # iterables and iterable datasets shard themselves
    sampler = loader.sampler
    if isinstance(sampler, DistributedSampler) or isinstance(
        getattr(loader.batch_sampler, "sampler", None), DistributedSampler
    ):
        return loader  # the user sharded it already
    if type(loader) is not DataLoader:
        rank_zero_warn(
            f"The {mode} dataloader is a {type(loader).__name__} (a DataLoader subclass), which "
            "fulmen cannot rebuild with a DistributedSampler: every process reads all of it. "
            "Give it a DistributedSampler yourself, or pass `use_distributed_sampler=False`."
        )
        return loader
    if loader.batch_size is None:
        rank_zero_warn(
            f"The {mode} dataloader has a custom `batch_sampler`, which fulmen cannot shard: "
            "every process reads all of it. Shard it yourself, or pass "
            "`use_distributed_sampler=False`."
        )
        return loader
    new: Sampler[int]
    dataset = loader.dataset
    if mode == "train":
        if isinstance(sampler, (RandomSampler, SequentialSampler)):
            new = DistributedSampler(
                dataset,  # type: ignore[arg-type]
                num_replicas=num_replicas,
                rank=rank,
                shuffle=isinstance(sampler, RandomSampler),
                seed=int(os.environ.get("PL_GLOBAL_SEED", 0)),
            )
        else:
            new = _ShardedSampler(sampler, num_replicas, rank)  # type: ignore[arg-type]
    elif mode == "predict":
        new = UnrepeatedDistributedSampler(dataset, num_replicas, rank)
    else:
        new = EvalDistributedSampler(dataset, num_replicas, rank)
    from fulmen.trainer.data import with_batch_sampler

    return with_batch_sampler(loader, BatchSampler(new, loader.batch_size, loader.drop_last))


def set_sampler_epoch(loader: Any, epoch: int) -> None:
    """Tell the loader's sampler(s) the epoch, so shuffles differ between epochs (as Lightning)."""
    for sampler in (
        getattr(loader, "sampler", None),
        getattr(getattr(loader, "batch_sampler", None), "sampler", None),
    ):
        if sampler is not None and callable(getattr(sampler, "set_epoch", None)):
            sampler.set_epoch(epoch)


def padding_in_batch(loader: Any, batch_idx: int) -> tuple[int, int]:
    """(batch length, padding samples in it) for a batch of an evaluation loader; (0, 0) if none."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    sampler = getattr(batch_sampler, "sampler", None)
    if not isinstance(sampler, EvalDistributedSampler) or not sampler.num_padding:
        return 0, 0
    size = batch_sampler.batch_size  # type: ignore[union-attr]
    total = sampler.num_samples
    start, end = batch_idx * size, min((batch_idx + 1) * size, total)
    first_pad = total - sampler.num_padding
    return end - start, max(0, end - max(start, first_pad))


def drop_padding(batch: Any, length: int, padding: int) -> tuple[Any, bool]:
    """Drop the last `padding` samples of a collated batch; False if nothing could be cut."""
    keep = length - padding
    found = False

    def cut(value: Any) -> Any:
        nonlocal found
        if isinstance(value, Tensor):
            if value.dim() > 0 and value.shape[0] == length:
                found = True
                return value[:keep]
            return value
        if isinstance(value, Mapping):
            return type(value)({k: cut(v) for k, v in value.items()})  # type: ignore[call-arg]
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return type(value)(*(cut(v) for v in value))
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
            if len(value) == length and all(
                not isinstance(v, (Tensor, Mapping, list, tuple)) for v in value
            ):
                found = True  # a collated list of strings or other plain values
                return type(value)(value[:keep])  # type: ignore[call-arg]
            return type(value)(cut(v) for v in value)  # type: ignore[call-arg]
        return value

    result = cut(batch)
    return (result, True) if found else (batch, False)
