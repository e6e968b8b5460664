"""The one place hooks are dispatched (and profiled).

Hooks run on each callback in order, then on the datamodule or the module. To keep the loop's
cost near zero, each hook's list of *overridden* implementations is resolved once per run and
cached: a hook that nobody overrides costs one dict lookup and an empty loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fulmen.callbacks.callback import Callback
from fulmen.core.hooks import CheckpointHooks, DataHooks, ModelHooks

if TYPE_CHECKING:
    from fulmen.trainer.trainer import Trainer

__all__ = [
    "call_callbacks",
    "call_datamodule",
    "call_hook",
    "call_module",
    "call_setup_hook",
    "call_teardown_hook",
    "is_overridden",
]

# Base hooks whose default body does nothing: skipping them changes nothing.
_MODULE_NOOPS = {
    name
    for base in (ModelHooks, DataHooks, CheckpointHooks)
    for name, value in vars(base).items()
    if callable(value) and not name.startswith("_")
} - {
    # These do something by default, so they always run.
    "on_validation_model_zero_grad",
    "on_validation_model_eval",
    "on_validation_model_train",
    "on_test_model_eval",
    "on_test_model_train",
    "on_predict_model_eval",
    "transfer_batch_to_device",
    "on_before_batch_transfer",
    "on_after_batch_transfer",
    "train_dataloader",
    "val_dataloader",
    "test_dataloader",
    "predict_dataloader",
}

_Entry = tuple[str, Callable[..., Any]]


def is_overridden(name: str, instance: object, parent: type | None = None) -> bool:
    """Whether `instance` (or its class) defines `name` differently from `parent`.

    Example:
        >>> class Quiet(Callback):
        ...     def on_fit_start(self, trainer, pl_module): ...
        >>> is_overridden("on_fit_start", Quiet(), Callback), is_overridden("on_fit_end", Quiet(), Callback)
        (True, False)
    """
    if name in getattr(instance, "__dict__", {}):
        return True
    if parent is None:
        from fulmen.core.datamodule import LightningDataModule
        from fulmen.core.module import LightningModule

        for parent in (LightningModule, LightningDataModule, Callback):
            if isinstance(instance, parent):
                break
        else:
            return hasattr(instance, name)
    own = getattr(type(instance), name, None)
    base = getattr(parent, name, None)
    if own is None:
        return False
    return own is not base


def _callback_entries(trainer: Trainer, name: str, monitoring: bool | None) -> list[_Entry]:
    key = ("cb", name, monitoring)
    entries = trainer._hook_cache.get(key)
    if entries is None:
        entries = [
            (f"[Callback]{cb.state_key}.{name}", getattr(cb, name))
            for cb in trainer.callbacks
            if is_overridden(name, cb, Callback)
            and (monitoring is None or _is_monitoring(cb) == monitoring)
        ]
        trainer._hook_cache[key] = entries
    return entries


def call_callbacks(trainer: Trainer, name: str, *args: Any, monitoring: bool | None = None) -> None:
    """Run hook `name` on each callback in order.

    `monitoring=False` runs only callbacks that do not watch metrics, `True` only those that do
    (ModelCheckpoint, EarlyStopping), so the loop can run the module's hook in between.
    """
    module = trainer.lightning_module
    entries = _callback_entries(trainer, name, monitoring)
    if not entries:
        return
    results = trainer._results
    previous = results.current_fx
    results.current_fx = name
    try:
        if trainer._profiling:
            for label, fn in entries:
                with trainer.profiler.profile(label):
                    fn(trainer, module, *args)
        else:
            for _, fn in entries:
                fn(trainer, module, *args)
    finally:
        results.current_fx = previous


def _is_monitoring(callback: Callback) -> bool:
    from fulmen.callbacks.checkpoint import Checkpoint
    from fulmen.callbacks.early_stopping import EarlyStopping

    return isinstance(callback, (Checkpoint, EarlyStopping))


def call_module(trainer: Trainer, name: str, *args: Any, **kwargs: Any) -> Any:
    """Run hook `name` on the LightningModule and return its result."""
    module = trainer.lightning_module
    key = ("lm", name)
    entry = trainer._hook_cache.get(key)
    if entry is None:
        skip = name in _MODULE_NOOPS and not is_overridden(name, module)
        entry = (
            []
            if skip
            else [(f"[LightningModule]{type(module).__name__}.{name}", getattr(module, name))]
        )
        trainer._hook_cache[key] = entry
    if not entry:
        return None
    label, fn = entry[0]
    results = trainer._results
    previous = results.current_fx
    results.current_fx = name
    try:
        if trainer._profiling:
            with trainer.profiler.profile(label):
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)
    finally:
        results.current_fx = previous


def call_datamodule(trainer: Trainer, name: str, *args: Any, **kwargs: Any) -> Any:
    """Run hook `name` on the attached datamodule, if any, and return its result."""
    datamodule = trainer.datamodule
    if datamodule is None:
        return None
    fn = getattr(datamodule, name)
    if trainer._profiling:
        with trainer.profiler.profile(f"[LightningDataModule]{type(datamodule).__name__}.{name}"):
            return fn(*args, **kwargs)
    return fn(*args, **kwargs)


def call_hook(trainer: Trainer, name: str, *args: Any) -> Any:
    """Run hook `name` on each callback in order, then on the module; return the module's result."""
    # Most hooks are overridden by nobody: answer those with one dict lookup.
    wanted = trainer._hook_cache.get(name)
    if wanted is None:
        wanted = bool(_callback_entries(trainer, name, None)) or not (
            name in _MODULE_NOOPS and not is_overridden(name, trainer.lightning_module)
        )
        trainer._hook_cache[name] = wanted
    if not wanted:
        return None
    call_callbacks(trainer, name, *args)
    return call_module(trainer, name, *args)


def call_setup_hook(trainer: Trainer, stage: str) -> None:
    """Run `setup(stage)` on the datamodule, the callbacks, then the module."""
    # Start each logger's run first, as Lightning does: a logger's version (e.g. a W&B run id)
    # is only known then, and ModelCheckpoint reads it in setup to choose its folder.
    if trainer.is_global_zero:
        for logger in trainer.loggers:
            logger.experiment  # noqa: B018
    call_datamodule(trainer, "setup", stage=stage)
    call_callbacks(trainer, "setup", stage)
    call_module(trainer, "setup", stage=stage)


def call_teardown_hook(trainer: Trainer, stage: str) -> None:
    """Run `teardown(stage)` on the datamodule, the callbacks, then the module."""
    call_datamodule(trainer, "teardown", stage=stage)
    call_callbacks(trainer, "teardown", stage)
    call_module(trainer, "teardown", stage=stage)
