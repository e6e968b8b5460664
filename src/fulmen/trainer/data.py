"""Dataloaders: where they come from, how many batches each loop runs, and moving batches.

Loaders come from the arguments of fit/validate/test/predict, else from the datamodule, else
from the LightningModule's `*_dataloader` hooks. The `limit_*_batches`, `overfit_batches` and
`fast_dev_run` settings become one number of batches per loader here, and nowhere else.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from torch import Tensor
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
)

from fulmen.trainer.call import call_datamodule, call_module, is_overridden
from fulmen.trainer.state import TrainerFn
from fulmen.utilities.apply_func import move_data_to_device
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_warn

if TYPE_CHECKING:
    from fulmen.core.datamodule import LightningDataModule
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer

_TRANSFER_HOOKS = (
    "on_before_batch_transfer",
    "transfer_batch_to_device",
    "on_after_batch_transfer",
)


class DataSource:
    """The dataloaders of one run and the number of batches each loop takes from them."""

    def __init__(
        self,
        trainer: Trainer,
        module: LightningModule,
        datamodule: LightningDataModule | None,
        train: Any = None,
        val: Any = None,
        test: Any = None,
        predict: Any = None,
    ) -> None:
        self.trainer = trainer
        self.module = module
        self.datamodule = datamodule
        self._given = {"train": train, "val": val, "test": test, "predict": predict}
        self.train_loader: Any = None
        self.val_loaders: list[Any] | None = None
        self.test_loaders: list[Any] | None = None
        self.predict_loaders: list[Any] | None = None
        self._has_val: bool | None = None
        self._train_loaded_epoch = -1
        self._val_loaded_epoch = -1
        self._custom_transfer = any(is_overridden(h, module) for h in _TRANSFER_HOOKS) or (
            datamodule is not None and any(is_overridden(h, datamodule) for h in _TRANSFER_HOOKS)
        )

    # ------------------------------------------------------------------ sources

    def _has_source(self, prefix: str) -> bool:
        if self._given[prefix] is not None:
            return True
        hook = f"{prefix}_dataloader"
        if self.datamodule is not None and is_overridden(hook, self.datamodule):
            return True
        return is_overridden(hook, self.module)

    def _request(self, prefix: str) -> Any:
        """Return the loader(s) for `prefix`, checked to be iterables of batches."""
        given = self._given[prefix]
        if given is not None:
            return given  # checked by `check` before the run started
        hook = f"{prefix}_dataloader"
        if self.datamodule is not None and is_overridden(hook, self.datamodule):
            loaders = call_datamodule(self.trainer, hook)
            check_loaders(f"`{type(self.datamodule).__name__}.{hook}()` returned", loaders)
        else:
            loaders = call_module(self.trainer, hook)
            check_loaders(f"`{type(self.module).__name__}.{hook}()` returned", loaders)
        return loaders

    def _check_given(self, fn: TrainerFn) -> None:
        for prefix, given in self._given.items():
            if given is not None:
                argument = "train_dataloaders" if prefix == "train" else "dataloaders"
                if fn == TrainerFn.FITTING and prefix == "val":
                    argument = "val_dataloaders"
                check_loaders(f"Trainer.{fn}({argument}=...) got", given)

    def check(self, fn: TrainerFn) -> None:
        """Raise before any hook runs if the run cannot work."""
        module = self.module
        name = type(module).__name__
        self._check_given(fn)
        if fn == TrainerFn.FITTING:
            if not is_overridden("training_step", module):
                raise MisconfigurationException(
                    f"{name} defines no `training_step()`. `Trainer.fit` needs `training_step()`, "
                    "`configure_optimizers()` and a train dataloader."
                )
            if not is_overridden("configure_optimizers", module):
                raise MisconfigurationException(
                    f"{name} defines no `configure_optimizers()`. `Trainer.fit` needs "
                    "`training_step()`, `configure_optimizers()` and a train dataloader."
                )
            if not self._has_source("train"):
                raise MisconfigurationException(
                    "`Trainer.fit` found no train dataloader: pass `train_dataloaders=`, a "
                    f"datamodule, or define `train_dataloader()` in {name}."
                )
            if self._has_source("val") and not is_overridden("validation_step", module):
                rank_zero_warn(
                    f"A validation dataloader was given but {name} defines no "
                    "`validation_step()`, so validation is skipped. Define `validation_step()` "
                    "or drop the validation dataloader."
                )
            if not module.automatic_optimization:
                clip = self.trainer.gradient_clip_val
                if clip:
                    raise MisconfigurationException(
                        f"Trainer(gradient_clip_val={clip!r}) does not apply to manual "
                        f"optimization ({name}.automatic_optimization is False): call "
                        "`self.clip_gradients(optimizer, gradient_clip_val=...)` in `training_step`."
                    )
                accumulate = self.trainer.accumulate_grad_batches
                if accumulate != 1:
                    raise MisconfigurationException(
                        f"Trainer(accumulate_grad_batches={accumulate!r}) does not apply to manual "
                        f"optimization ({name}.automatic_optimization is False): step the "
                        "optimizers every N batches yourself."
                    )
        else:
            prefix = {
                TrainerFn.VALIDATING: "val",
                TrainerFn.TESTING: "test",
                TrainerFn.PREDICTING: "predict",
            }[fn]
            step = {"val": "validation_step", "test": "test_step", "predict": "predict_step"}[
                prefix
            ]
            if prefix != "predict" and not is_overridden(step, module):
                raise MisconfigurationException(
                    f"{name} defines no `{step}()`, which `Trainer.{fn}` needs."
                )
            if not self._has_source(prefix):
                raise MisconfigurationException(
                    f"`Trainer.{fn}` found no dataloader: pass `dataloaders=`, a datamodule, or "
                    f"define `{prefix}_dataloader()` in {name}."
                )

    def has_val(self) -> bool:
        # Asked after every training batch: decided once per run.
        if self._has_val is None:
            self._has_val = (
                self._has_source("val")
                and is_overridden("validation_step", self.module)
                and self.trainer.limit_val_batches != 0
            )
        return self._has_val

    # ------------------------------------------------------------------ loading

    def load_train(self) -> None:
        trainer = self.trainer
        loader = _combine_train(self._request("train"))
        _seed_workers(loader, trainer.global_rank)
        if trainer.overfit_batches:
            loader = _without_shuffle(loader, "overfit_batches")
        loader = self._distribute(loader, "train")
        self.train_loader = loader
        self._train_loaded_epoch = trainer.current_epoch
        limit = trainer.limit_train_batches
        trainer.num_training_batches = _count_batches(
            "train_dataloader", "limit_train_batches", loader, limit
        )
        trainer.val_check_batch = _val_check_batch(trainer)

    def load_eval(self, prefix: str) -> list[Any]:
        trainer = self.trainer
        if prefix == "val" and trainer.overfit_batches:
            if self.train_loader is None:
                self.load_train()
            loaders = [self.train_loader]
        else:
            loaders = _as_list(self._request(prefix))
        for loader in loaders:
            _seed_workers(loader, trainer.global_rank)
        if not (prefix == "val" and trainer.overfit_batches):
            loaders = [self._distribute(loader, prefix) for loader in loaders]
        setattr(self, f"{prefix}_loaders", loaders)
        every = trainer.check_val_every_n_epoch
        validates_now = every is None or (trainer.current_epoch + 1) % every == 0
        # A sanity-check load counts as this epoch's reload only if this epoch validates.
        if prefix == "val" and (validates_now or not trainer.sanity_checking):
            self._val_loaded_epoch = trainer.current_epoch
        return loaders

    def _distribute(self, loader: Any, mode: str) -> Any:
        trainer = self.trainer
        kwargs = trainer.strategy.distributed_sampler_kwargs
        if not trainer.use_distributed_sampler or not kwargs or kwargs["num_replicas"] < 2:
            return loader
        from fulmen.trainer.distributed_data import distribute_loader

        return distribute_loader(loader, mode, kwargs["num_replicas"], kwargs["rank"])

    def eval_counts(self, prefix: str, loaders: list[Any]) -> list[int]:
        trainer = self.trainer
        limit = {
            "val": trainer.limit_val_batches,
            "test": trainer.limit_test_batches,
            "predict": trainer.limit_predict_batches,
        }[prefix]
        counts = []
        for loader in loaders:
            count = _count_batches(f"{prefix}_dataloader", f"limit_{prefix}_batches", loader, limit)
            counts.append(count)
        return counts  # type: ignore[return-value]

    def should_reload_train(self) -> bool:
        n = self.trainer.reload_dataloaders_every_n_epochs
        return self.train_loader is None or (
            n > 0 and self.trainer.current_epoch - self._train_loaded_epoch >= n
        )

    def should_reload_val(self) -> bool:
        n = self.trainer.reload_dataloaders_every_n_epochs
        return self.val_loaders is None or (
            n > 0 and self.trainer.current_epoch - self._val_loaded_epoch >= n
        )

    # ------------------------------------------------------------------ batches

    def transfer(self, batch: Any, dataloader_idx: int = 0) -> Any:
        """Move a batch to the device through the transfer hooks (or directly when not overridden)."""
        trainer = self.trainer
        device = trainer.strategy.root_device
        if not self._custom_transfer:
            if not (device.type == "cpu" and _flat_on_cpu(batch)):
                batch = move_data_to_device(batch, device)
        else:
            owner_dm = self.datamodule is not None and any(
                is_overridden(h, self.datamodule) for h in _TRANSFER_HOOKS
            )
            if owner_dm:
                dm = self.datamodule
                assert dm is not None
                batch = dm.on_before_batch_transfer(batch, dataloader_idx)
                batch = dm.transfer_batch_to_device(batch, device, dataloader_idx)
                batch = dm.on_after_batch_transfer(batch, dataloader_idx)
            else:
                batch = call_module(trainer, "on_before_batch_transfer", batch, dataloader_idx)
                batch = call_module(
                    trainer, "transfer_batch_to_device", batch, device, dataloader_idx
                )
                batch = call_module(trainer, "on_after_batch_transfer", batch, dataloader_idx)
        return trainer.precision_plugin.convert_input(batch)


def _flat_on_cpu(batch: Any) -> bool:
    """Whether `batch` is a tensor, or a flat list/tuple of tensors, already on the CPU.

    The common batch of a CPU run: walking it to move nothing would cost more than the check.
    """
    # `is_cpu` is a flag; `tensor.device` builds a torch.device object on every read.
    if isinstance(batch, Tensor):
        return batch.is_cpu
    if type(batch) in (list, tuple):
        for tensor in batch:
            if not (isinstance(tensor, Tensor) and tensor.is_cpu):
                return False
        return True
    return False


def iterate(
    loader: Any, limit: int | float, start: int = 0, consume: int = 0
) -> Iterator[tuple[int, Any, bool]]:
    """Yield (batch_idx, batch, is_last) for batches `start` .. `limit - 1` of `loader`.

    `loader` already begins at batch `start` (see `resume_loader`), except for `consume` batches
    that must be read and dropped because the loader cannot skip them. When the number of batches
    is known, each batch is fetched right before it is used, so a checkpoint taken between two
    batches has consumed no random numbers for the next one.
    """
    if limit == 0 or start >= limit:
        return
    iterator = iter(loader)
    for _ in range(consume):
        if next(iterator, _END) is _END:
            return
    if limit != float("inf"):
        last = int(limit) - 1
        for index in range(start, last + 1):
            batch = next(iterator, _END)
            if batch is _END:
                return
            yield index, batch, index == last
        return
    # Unknown length: look one batch ahead to know which batch is the last.
    current = next(iterator, _END)
    index = start
    while current is not _END:
        upcoming = next(iterator, _END)
        yield index, current, upcoming is _END
        current = upcoming
        index += 1


_END = object()


class _SkipBatchSampler:
    """Yield the batches of `inner` after the first `skip`, without loading the skipped samples.

    `on_skipped` runs once the skipped index lists have been drawn: the resumed run puts its
    random state back there, so the sampler's shuffle used the epoch's starting state.
    """

    def __init__(self, inner: Any, skip: int, on_skipped: Callable[[], None]) -> None:
        self.inner = inner
        self.skip = skip
        self.on_skipped = on_skipped

    def __iter__(self) -> Iterator[Any]:
        iterator = iter(self.inner)
        for _ in range(self.skip):
            if next(iterator, _END) is _END:
                break
        self.on_skipped()
        yield from iterator

    def __len__(self) -> int:
        return max(len(self.inner) - self.skip, 0)


def resume_loader(loader: Any, skip: int, on_skipped: Callable[[], None]) -> tuple[Any, int]:
    """Return a loader that starts at batch `skip`, and how many batches must still be consumed.

    A plain map-style DataLoader is rebuilt around a batch sampler that skips index lists, so the
    dataset is not read for skipped batches. Other iterables are read and the batches dropped.
    """
    if skip == 0:
        on_skipped()
        return loader, 0
    if type(loader) is not DataLoader or isinstance(loader.dataset, IterableDataset):
        return _ConsumeThenCall(loader, skip, on_skipped), skip
    sampler = _SkipBatchSampler(loader.batch_sampler, skip, on_skipped)
    return with_batch_sampler(loader, sampler), 0


def with_batch_sampler(loader: DataLoader[Any], batch_sampler: Any) -> DataLoader[Any]:
    """The same DataLoader (workers, collate, pinning, generator...) over another batch sampler."""
    kwargs: dict[str, Any] = dict(
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
        generator=loader.generator,
        persistent_workers=loader.persistent_workers,
        pin_memory_device=loader.pin_memory_device,
    )
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
    return DataLoader(loader.dataset, batch_sampler=batch_sampler, **kwargs)


class _ConsumeThenCall:
    """Iterate `loader`; call `on_skipped` once `skip` batches have been read."""

    def __init__(self, loader: Any, skip: int, on_skipped: Callable[[], None]) -> None:
        self.loader = loader
        self.skip = skip
        self.on_skipped = on_skipped

    def __iter__(self) -> Iterator[Any]:
        for index, batch in enumerate(self.loader):
            if index == self.skip:
                self.on_skipped()
            yield batch


def _combine_train(loader: Any) -> Any:
    if isinstance(loader, (Mapping, list, tuple)):
        from fulmen.utilities.combined_loader import CombinedLoader

        return _TrainCombined(CombinedLoader(loader, mode="max_size_cycle"))
    from fulmen.utilities.combined_loader import CombinedLoader

    if isinstance(loader, CombinedLoader):
        return _TrainCombined(loader)
    return loader


class _TrainCombined:
    """A CombinedLoader as training consumes it: only the batch of each (batch, idx, dl_idx)."""

    def __init__(self, combined: Any) -> None:
        self.combined = combined

    def __iter__(self) -> Iterator[Any]:
        for item in self.combined:
            yield item[0]

    def __len__(self) -> int:
        return len(self.combined)


def _as_list(loaders: Any) -> list[Any]:
    if isinstance(loaders, (list, tuple)):
        return list(loaders)
    if isinstance(loaders, Mapping):
        return list(loaders.values())
    from fulmen.utilities.combined_loader import CombinedLoader

    if isinstance(loaders, CombinedLoader):
        return list(loaders.flattened)
    return [loaders]


def _seed_workers(loader: Any, rank: int) -> None:
    """With `seed_everything(workers=True)`, give each worker a seed derived from the base seed."""
    if (
        os.environ.get("PL_SEED_WORKERS") == "1"
        and isinstance(loader, DataLoader)
        and loader.num_workers > 0
        and loader.worker_init_fn is None
    ):
        from fulmen.utilities.seed import pl_worker_init_function

        loader.worker_init_fn = functools.partial(pl_worker_init_function, rank=rank)


def check_loaders(source: str, loaders: Any) -> None:
    """Raise unless `loaders` is a dataloader (any iterable of batches) or a list/dict of them.

    `source` names where they came from, as the message's start: "Trainer.fit(train_dataloaders
    =...) got", "`MyModel.train_dataloader()` returned". The check reads no batch.

    Example:
        >>> check_loaders("the test gave", {"a": [1, 2], "b": 3})
        Traceback (most recent call last):
        ...
        TypeError: the test gave {'a': [1, 2], 'b': 3}, which is not a dataloader: its item ['b'] is 3 (int). Pass a torch DataLoader (or any iterable of batches), or a list or dict of them.
    """
    problem = _not_a_loader(loaders, "", top=True)
    if problem is not None:
        raise TypeError(
            f"{source} {loaders!r}, which is not a dataloader{problem}. Pass a torch DataLoader "
            "(or any iterable of batches), or a list or dict of them."
        )


def _not_a_loader(value: Any, where: str, top: bool = False) -> str | None:
    """Say what is wrong with `value` as a loader (or collection of them); None if nothing."""
    if isinstance(value, (DataLoader, _TrainCombined)):
        return None
    if isinstance(value, Mapping) or (top and isinstance(value, (list, tuple))):
        # A dict is iterable, but its keys are no batches: it can only hold loaders.
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        for key, item in items:
            problem = _not_a_loader(item, f"{where}[{key!r}]")
            if problem is not None:
                return problem
        return None
    if value is None or not isinstance(value, Iterable) or isinstance(value, (str, bytes)):
        if not where:
            return ""
        return f": its item {where} is {value!r} ({type(value).__name__})"
    return None


def _has_len(loader: Any) -> bool:
    try:
        return len(loader) >= 0
    except (TypeError, NotImplementedError):
        return False


def _count_batches(hook: str, limit_name: str, loader: Any, limit: int | float) -> int | float:
    length: int | float = len(loader) if _has_len(loader) else float("inf")
    if (
        isinstance(loader, DataLoader)
        and isinstance(loader.dataset, IterableDataset)
        and not _has_len(loader.dataset)
    ):
        length = float("inf")
    if isinstance(limit, int):
        return min(length, limit)
    if limit == 1.0:
        return length
    if length == float("inf"):
        if limit == 0.0:
            return 0
        raise MisconfigurationException(
            f"Trainer({limit_name}={limit!r}) is a fraction, but `{hook}` has no length. Pass an "
            "int number of batches instead."
        )
    count = int(length * limit)
    if limit > 0 and count == 0:
        raise MisconfigurationException(
            f"Trainer({limit_name}={limit!r}) keeps {limit} of the {int(length)} batches of "
            f"`{hook}`, which is less than one. Increase `{limit_name}` or pass an int."
        )
    return count


def _val_check_batch(trainer: Trainer) -> int | float:
    interval = trainer.val_check_interval
    n = trainer.num_training_batches
    if isinstance(interval, bool) or not isinstance(interval, (int, float)):
        return float("inf")  # time-based validation: decided by the clock
    if isinstance(interval, int):
        if trainer.check_val_every_n_epoch is not None and interval > n:
            raise ValueError(
                f"Trainer(val_check_interval={interval!r}) is more than the {n} training batches "
                "of an epoch. Validate at most once per epoch, or set "
                "`check_val_every_n_epoch=None` to count batches across epochs."
            )
        return interval
    if n == float("inf"):
        if interval != 1.0:
            raise MisconfigurationException(
                f"Trainer(val_check_interval={interval}) is a fraction of an epoch, but the train "
                "dataloader has no length. Pass an int number of batches."
            )
        return float("inf")
    return max(1, int(n * interval))


def _without_shuffle(loader: Any, reason: str) -> Any:
    if not isinstance(loader, DataLoader) or not isinstance(loader.sampler, RandomSampler):
        return loader
    rank_zero_warn(
        f"`{reason}` uses the same batches every epoch, so the train dataloader's shuffling is "
        "turned off. Pass `shuffle=False` to silence this."
    )
    if type(loader) is not DataLoader or loader.batch_size is None:
        return loader
    sequential = SequentialSampler(loader.dataset)  # type: ignore[arg-type]
    return with_batch_sampler(loader, BatchSampler(sequential, loader.batch_size, loader.drop_last))


def estimated_stepping_batches(trainer: Trainer) -> int | float:
    data = trainer._data
    if data is None:
        raise MisconfigurationException(
            "`trainer.estimated_stepping_batches` is known only during `fit` (e.g. in "
            "`configure_optimizers`)."
        )
    if data.train_loader is None:
        data.load_train()
    batches = trainer.num_training_batches
    if batches == float("inf"):
        return trainer.max_steps if trainer.max_steps != -1 else float("inf")
    max_epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else None
    per_epoch = math.ceil(batches / trainer.accumulate_grad_batches)
    total: int | float = per_epoch * max(max_epochs, 1) if max_epochs is not None else float("inf")
    if trainer.max_steps != -1:
        total = min(total, trainer.max_steps)
    return total
