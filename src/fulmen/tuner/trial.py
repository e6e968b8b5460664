"""A tuning trial: a few steps of the running fit/validate/test/predict, then the trainer put back.

The learning-rate finder and the batch-size finder run a short stretch of the loop from inside a
callback hook (`on_fit_start`, `on_test_start`, ...), with their own callback and limits, and must
leave the run they interrupted as they found it. `TrainerSnapshot` holds everything such a
stretch can change; `tuning_run` swaps the tuner's settings in and restores the snapshot on the
way out, after an error too. Nothing is written to disk: tensors are copied to CPU memory, so
the device memory that the batch-size finder probes stays free.

This module is the tuner's one seam with the trainer's internals (its data source, progress
state and loop functions); the rest of `fulmen.tuner` goes through the functions here.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from fulmen.trainer.state import RunningStage

if TYPE_CHECKING:
    from fulmen.callbacks.callback import Callback
    from fulmen.trainer.state import TrainerState
    from fulmen.trainer.trainer import Trainer

__all__ = [
    "TrainerSnapshot",
    "dataset_length",
    "loaders_given_directly",
    "loaded_eval_loaders",
    "reload_dataloaders",
    "run_evaluation",
    "run_training",
    "stage_prefix",
    "tuning_run",
]

# The data source's loaders; `None` makes the loops load them again (with a new batch size).
_LOADER_FIELDS = ("train_loader", "val_loaders", "test_loaders", "predict_loaders")

_PREFIX = {
    RunningStage.TRAINING: "train",
    RunningStage.VALIDATING: "val",
    RunningStage.TESTING: "test",
    RunningStage.PREDICTING: "predict",
}


def _cpu_copy(obj: Any) -> Any:
    """A deep copy of `obj` whose tensors are on the CPU."""
    if isinstance(obj, Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        copied = {key: _cpu_copy(value) for key, value in obj.items()}
        return OrderedDict(copied) if isinstance(obj, OrderedDict) else copied
    if isinstance(obj, list):
        return [_cpu_copy(value) for value in obj]
    if type(obj) is tuple:
        return tuple(_cpu_copy(value) for value in obj)
    return copy.deepcopy(obj)


@dataclasses.dataclass
class TrainerSnapshot:
    """Everything a tuning trial can change, copied so that `restore` puts it back exactly.

    The weights, optimizer, scheduler and precision (gradient scaler) states, the progress
    counters, the trainer's own attributes (callbacks, loggers, limits, batch counts...) and the
    data source's loaders. Global random state is left alone, as Lightning does;
    `LearningRateFinder` wraps its run in `isolate_rng` itself.
    """

    model: dict[str, Any]
    optimizers: list[dict[str, Any]]
    schedulers: list[dict[str, Any]]
    precision: dict[str, Any]
    state: TrainerState
    attributes: dict[str, Any]
    data: dict[str, Any]

    @classmethod
    def take(cls, trainer: Trainer) -> TrainerSnapshot:
        """Copy what a trial can change."""
        weights = trainer.strategy.lightning_module_state_dict()
        model = _cpu_copy(weights)
        # The per-module version numbers: loading without them reads like an old checkpoint.
        metadata = getattr(weights, "_metadata", None)
        if metadata is not None:
            model._metadata = copy.deepcopy(metadata)
        data = trainer._data
        return cls(
            model=model,
            optimizers=[_cpu_copy(o.state_dict()) for o in trainer.optimizers],
            schedulers=[_cpu_copy(c.scheduler.state_dict()) for c in trainer.lr_scheduler_configs],
            precision=_cpu_copy(trainer.precision_plugin.state_dict()),
            state=copy.deepcopy(trainer.state),
            attributes=dict(vars(trainer)),
            data={} if data is None else dict(vars(data)),
        )

    def restart(self, trainer: Trainer) -> None:
        """Set the progress counters back and drop the loaders, before the next trial."""
        _restore_fields(trainer.state, self.state)
        reload_dataloaders(trainer)

    def restore(self, trainer: Trainer) -> None:
        """Put back everything that was copied; call once, the snapshot is spent after."""
        # Attribute bindings first: the optimizer and scheduler lists are the original ones again.
        vars(trainer).clear()
        vars(trainer).update(self.attributes)
        if trainer._data is not None:
            vars(trainer._data).clear()
            vars(trainer._data).update(self.data)
        _restore_fields(trainer.state, self.state)
        trainer.strategy.load_model_state_dict(self.model, strict=True)
        trainer.lightning_module.zero_grad(set_to_none=True)
        for optimizer, state in zip(trainer.optimizers, self.optimizers):
            optimizer.load_state_dict(state)
        for config, state in zip(trainer.lr_scheduler_configs, self.schedulers):
            config.scheduler.load_state_dict(state)
        if self.precision:
            trainer.precision_plugin.load_state_dict(self.precision)


def _restore_fields(state: TrainerState, saved: TrainerState) -> None:
    # Field by field: other parts of the trainer hold on to the state object itself.
    for field in dataclasses.fields(saved):
        setattr(state, field.name, copy.deepcopy(getattr(saved, field.name)))


@contextmanager
def tuning_run(
    trainer: Trainer, callbacks: Sequence[Callback], **settings: Any
) -> Iterator[TrainerSnapshot]:
    """Run the block with only `callbacks`, silent loggers and `settings`; then restore all."""
    from fulmen.loggers.logger import DummyLogger

    snapshot = TrainerSnapshot.take(trainer)
    try:
        trainer.callbacks = list(callbacks)
        trainer._hook_cache = {}
        # Silenced rather than removed: code that checks `trainer.logger is not None` still does.
        trainer.loggers = [DummyLogger()] if trainer.loggers else []
        for name, value in settings.items():
            setattr(trainer, name, value)
        yield snapshot
    finally:
        snapshot.restore(trainer)


def reload_dataloaders(trainer: Trainer) -> None:
    """Forget the loaded dataloaders: the loops ask for new ones (with the new batch size)."""
    data = trainer._data
    if data is None:
        return
    for name in _LOADER_FIELDS:
        setattr(data, name, None)


def run_training(trainer: Trainer) -> None:
    """Run fit's training loop from `on_train_start` to `on_train_end`, within the trainer's limits.

    This is `run_fit` without `on_fit_start`, the sanity check and the teardown, as Lightning's
    tuners run `fit_loop.run()`.
    """
    from fulmen.trainer import loop
    from fulmen.trainer.call import call_hook

    data = trainer._data
    assert data is not None
    state = trainer.state
    trainer.lightning_module.zero_grad()
    if data.should_reload_train():
        data.load_train()
    if data.has_val() and data.val_loaders is None:
        trainer.num_val_batches = data.eval_counts("val", data.load_eval("val"))  # type: ignore[assignment]
    trainer._fit_start_time = time.monotonic()
    state.last_val_time = None
    call_hook(trainer, "on_train_start")
    while not loop._fit_done(trainer):
        if data.should_reload_train():
            data.load_train()
        state.stage = RunningStage.TRAINING
        trainer._results = trainer._train_results
        if state.resume_batch_idx == 0:
            state.batches_done_in_epoch = 0
            trainer._results.reset()
            call_hook(trainer, "on_train_epoch_start")
        outputs = loop.run_training_epoch(trainer)
        loop._end_training_epoch(trainer, outputs)
    state.stage = RunningStage.TRAINING
    call_hook(trainer, "on_train_end")


def run_evaluation(trainer: Trainer) -> None:
    """Run one epoch of the running validate/test/predict, within the trainer's limits."""
    from fulmen.trainer import eval_loop

    data = trainer._data
    assert data is not None
    stage = trainer.state.stage
    prefix = _PREFIX[stage]  # type: ignore[index]
    loaders = data.load_eval(prefix)
    counts = data.eval_counts(prefix, loaders)
    if stage == RunningStage.PREDICTING:
        _run_prediction(trainer, loaders, counts)
    else:
        eval_loop._run_eval(trainer, stage, loaders, counts)  # type: ignore[arg-type]


def _run_prediction(trainer: Trainer, loaders: list[Any], counts: list[int]) -> None:
    # Only the steps: a trial's predictions are thrown away, so no writer or hook needs them.
    from fulmen.trainer.data import iterate

    data = trainer._data
    assert data is not None
    grad_off = torch.inference_mode() if trainer._inference_mode else torch.no_grad()
    with grad_off:
        for dataloader_idx, (loader, count) in enumerate(zip(loaders, counts)):
            extra = (dataloader_idx,) if len(loaders) > 1 else ()
            for batch_idx, batch, _ in iterate(loader, count):
                batch = data.transfer(batch, dataloader_idx)
                trainer.strategy.predict_step(batch, batch_idx, *extra)


def stage_prefix(trainer: Trainer) -> str:
    """The dataloader prefix of the running loop: "train", "val", "test" or "predict"."""
    return _PREFIX[trainer.state.stage]  # type: ignore[index]


def loaders_given_directly(trainer: Trainer, prefix: str) -> bool:
    """Whether the `prefix` loaders were passed to fit/validate/... rather than built by a hook."""
    data = trainer._data
    return data is not None and data._given.get(prefix) is not None


def loaded_eval_loaders(trainer: Trainer, prefix: str) -> list[Any]:
    """The `prefix` ("val", "test", "predict") loaders the running loop loaded, if any."""
    data = trainer._data
    return list(getattr(data, f"{prefix}_loaders", None) or [])


def dataset_length(trainer: Trainer, prefix: str) -> int | None:
    """The number of samples behind the loaded `prefix` loader(s); None if unknown.

    For several train loaders, the longest dataset counts (the loaders are cycled to its length).
    """
    data = trainer._data
    if data is None:
        return None
    loaders = [data.train_loader] if prefix == "train" else loaded_eval_loaders(trainer, prefix)
    lengths: list[int] = []
    for loader in loaders:
        combined = getattr(loader, "combined", loader)
        for inner in getattr(combined, "flattened", [combined]):
            try:
                lengths.append(len(inner.dataset))
            except (AttributeError, TypeError, NotImplementedError):
                continue
    return max(lengths) if lengths else None
