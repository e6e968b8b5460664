"""The evaluation loops: validation (inside fit and alone), sanity check, test and predict.

Every evaluation runs the model in eval mode under `torch.inference_mode` (or `no_grad` with
`Trainer(inference_mode=False)`) and puts each module back in the mode it was in.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Generator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from fulmen.trainer.call import (
    call_callbacks,
    call_hook,
    call_module,
    call_teardown_hook,
    is_overridden,
)
from fulmen.trainer.data import iterate, with_batch_sampler
from fulmen.trainer.state import RunningStage, TrainerFn

if TYPE_CHECKING:
    from fulmen.trainer.trainer import Trainer

__all__ = ["run_evaluation_entry", "run_predict", "run_sanity_check", "run_validation"]

_NOUN = {
    RunningStage.VALIDATING: "validation",
    RunningStage.SANITY_CHECKING: "validation",
    RunningStage.TESTING: "test",
}
_STEP = {"validation": "validation_step", "test": "test_step"}


@contextmanager
def _eval_context(trainer: Trainer) -> Generator[None]:
    # Tensors made while validating inside fit may feed later training steps, which inference
    # tensors cannot: as in Lightning, fit's validation always runs under no_grad.
    fitting = trainer.state.fn == TrainerFn.FITTING
    ctx = torch.inference_mode() if trainer._inference_mode and not fitting else torch.no_grad()
    with ctx:
        yield


def _capture_modes(trainer: Trainer) -> dict[torch.nn.Module, bool]:
    model = trainer.model
    assert model is not None
    return {m: m.training for m in model.modules()}


def _restore_modes(modes: dict[torch.nn.Module, bool]) -> None:
    # Put back exactly what was there: a frozen submodule in eval mode stays in eval mode.
    for module, training in modes.items():
        module.training = training


def run_sanity_check(trainer: Trainer) -> None:
    from fulmen.utilities.seed import isolate_rng

    data = trainer._data
    assert data is not None
    trainer.state.stage = RunningStage.SANITY_CHECKING
    call_callbacks(trainer, "on_sanity_check_start")
    loaders = data.load_eval("val")
    counts = data.eval_counts("val", loaders)
    steps = trainer.num_sanity_val_steps
    trainer.num_val_batches = counts  # type: ignore[assignment]
    trainer.num_sanity_val_batches = [c if steps == -1 else min(c, steps) for c in counts]  # type: ignore[misc]
    # The sanity check must not change what training sees: random state is put back after it.
    with isolate_rng():
        _run_eval(trainer, RunningStage.SANITY_CHECKING, loaders, trainer.num_sanity_val_batches)
    call_callbacks(trainer, "on_sanity_check_end")
    trainer._results.clear_views()
    trainer.state.stage = RunningStage.TRAINING


def run_validation(trainer: Trainer) -> None:
    """Validation inside fit, at the interval the Trainer was given."""
    data = trainer._data
    assert data is not None
    if data.should_reload_val():
        data.load_eval("val")
    assert data.val_loaders is not None
    trainer.num_val_batches = data.eval_counts("val", data.val_loaders)  # type: ignore[assignment]
    if sum(trainer.num_val_batches) == 0:
        return
    call_module(trainer, "on_validation_model_zero_grad")
    _run_eval(trainer, RunningStage.VALIDATING, data.val_loaders, trainer.num_val_batches)
    trainer.state.last_val_time = time.monotonic()


def run_evaluation_entry(trainer: Trainer, fn: TrainerFn) -> list[dict[str, float]]:
    """`Trainer.validate` / `Trainer.test`: one evaluation epoch, its metrics returned and printed."""
    data = trainer._data
    assert data is not None
    stage = RunningStage.VALIDATING if fn == TrainerFn.VALIDATING else RunningStage.TESTING
    prefix = "val" if stage == RunningStage.VALIDATING else "test"
    trainer.lightning_module.zero_grad()
    loaders = data.load_eval(prefix)
    counts = data.eval_counts(prefix, loaders)
    setattr(trainer, f"num_{prefix}_batches", counts)
    results: list[dict[str, float]] = []
    if sum(counts) > 0:
        results = _run_eval(trainer, stage, loaders, counts)
    call_teardown_hook(trainer, str(fn))
    if getattr(trainer, "_verbose_eval", True) and trainer.is_global_zero and results:
        _print_results(results, "Validate" if stage == RunningStage.VALIDATING else "Test")
    return results


def _run_eval(
    trainer: Trainer, stage: RunningStage, loaders: list[Any], counts: list[int]
) -> list[dict[str, float]]:
    data = trainer._data
    assert data is not None
    noun = _NOUN[stage]
    outer_stage = trainer.state.stage
    trainer.state.stage = stage
    previous_results = trainer._results
    results = trainer._eval_results
    trainer._results = results
    results.reset()
    modes = _capture_modes(trainer)
    step = getattr(trainer.strategy, _STEP[noun])
    module = trainer.lightning_module
    multiple = len(loaders) > 1
    legacy_name = f"{noun}_epoch_end"
    legacy = hasattr(module, legacy_name) and is_overridden(legacy_name, module)
    outputs: list[list[Any]] = [[] for _ in loaders]
    strategy = trainer.strategy
    padded = strategy.world_size > 1
    try:
        call_module(trainer, f"on_{noun}_model_eval")
        with _eval_context(trainer):
            call_hook(trainer, f"on_{noun}_start")
            loaders, counts = _reload_if_dropped(trainer, noun, loaders, counts)
            call_hook(trainer, f"on_{noun}_epoch_start")
            for dl_idx, (loader, count) in enumerate(zip(loaders, counts)):
                results.dataloader_idx = dl_idx if multiple else None
                extra = (dl_idx,) if multiple else ()
                for batch_idx, batch, _ in iterate(loader, count):
                    strategy.mark(noun, trainer.current_epoch, batch_idx)
                    ignore = False
                    if padded:
                        batch, ignore = _drop_padding(loader, batch_idx, batch)
                    batch = data.transfer(batch, dl_idx)
                    results.new_batch(batch)
                    results.ignore_batch = ignore
                    call_hook(trainer, f"on_{noun}_batch_start", batch, batch_idx, *extra)
                    results.current_fx = _STEP[noun]
                    output = step(batch, batch_idx, *extra)
                    results.current_fx = None
                    call_hook(trainer, f"on_{noun}_batch_end", output, batch, batch_idx, *extra)
                    if legacy and output is not None:
                        outputs[dl_idx].append(output)
            results.dataloader_idx = None
            results.new_batch(None)
            results.epoch_end_reached()
            call_hook(trainer, f"on_{noun}_epoch_end")
            if legacy:
                call_module(trainer, legacy_name, outputs[0] if not multiple else outputs)
            logged: dict[str, Tensor] = {}
            if stage != RunningStage.SANITY_CHECKING:
                logged = results.epoch_end(step=trainer.state.batches_that_stepped)
            else:
                results._epoch_end = False
            call_hook(trainer, f"on_{noun}_end")
        call_module(trainer, f"on_{noun}_model_train")
        if not is_overridden(f"on_{noun}_model_train", module):
            _restore_modes(modes)
    finally:
        trainer._results = previous_results
        trainer.state.stage = outer_stage
    return _split_by_dataloader(logged, len(loaders))


def _reload_if_dropped(
    trainer: Trainer, noun: str, loaders: list[Any], counts: list[int]
) -> tuple[list[Any], list[int]]:
    """Load the loaders again if a start hook dropped them (BatchSizeFinder changed the size)."""
    data = trainer._data
    prefix = {"validation": "val", "test": "test"}[noun]
    if data is None or getattr(data, f"{prefix}_loaders") is not None:
        return loaders, counts
    loaders = data.load_eval(prefix)
    counts = data.eval_counts(prefix, loaders)
    if trainer.state.stage != RunningStage.SANITY_CHECKING:
        setattr(trainer, f"num_{prefix}_batches", counts)
    return loaders, counts


def _drop_padding(loader: Any, batch_idx: int, batch: Any) -> tuple[Any, bool]:
    """The batch without the samples DistributedSampler repeated, and whether to ignore it.

    Those samples would be counted twice in the metrics. A batch made only of padding still runs
    (the other ranks' collectives expect it), but nothing it logs is counted.
    """
    from fulmen.trainer.distributed_data import drop_padding, padding_in_batch
    from fulmen.utilities.rank_zero import rank_zero_warn

    length, padding = padding_in_batch(loader, batch_idx)
    if not padding:
        return batch, False
    if padding >= length:
        return batch, True
    trimmed, cut = drop_padding(batch, length, padding)
    if not cut:
        rank_zero_warn(
            "The last evaluation batch holds samples DistributedSampler repeated to even out the "
            f"ranks, but fulmen found no tensor with {length} rows to drop them from, so they "
            "are counted twice. Return tensors (or lists) with the batch as first dimension."
        )
    return trimmed, False


def _split_by_dataloader(logged: dict[str, Tensor], count: int) -> list[dict[str, float]]:
    split: list[dict[str, float]] = [{} for _ in range(count)]
    for key, value in logged.items():
        if "/dataloader_idx_" in key:
            index = int(key.rsplit("_", 1)[1])
            split[index][key] = float(value)
        else:
            for entry in split:
                entry[key] = float(value)
    return split


def _print_results(results: list[dict[str, float]], title: str) -> None:
    width = min(shutil.get_terminal_size((100, 20)).columns, 120)
    columns = [f"DataLoader {i}" for i in range(len(results))]
    names = sorted({k for r in results for k in r})
    if not names:
        return
    first = max(len(f"{title} metric"), *(len(n) for n in names)) + 4
    rule = "─" * width
    lines = [rule, f"{title + ' metric':^{first}}" + "".join(f"{c:^24}" for c in columns), rule]
    for name in names:
        cells = "".join(
            f"{results[i][name]!s:^24}" if name in results[i] else " " * 24
            for i in range(len(results))
        )
        lines.append(f"{name:^{first}}{cells}")
    lines.append(rule)
    print("\n".join(lines))


def run_predict(trainer: Trainer) -> list[Any] | list[list[Any]] | None:
    """`Trainer.predict`: run `predict_step` over every predict loader."""
    data = trainer._data
    assert data is not None
    module = trainer.lightning_module
    module.zero_grad()
    loaders, counts = _predict_loaders(trainer)
    # An epoch-interval prediction writer reads every prediction at epoch end, so keep them.
    keep = getattr(trainer, "_return_predictions", True) or _has_epoch_writer(trainer)
    trainer.state.stage = RunningStage.PREDICTING
    multiple = len(loaders) > 1
    predictions: list[list[Any]] = [[] for _ in loaders]
    trainer.predict_predictions = predictions
    if sum(counts) == 0:
        call_teardown_hook(trainer, "predict")
        return None
    modes = _capture_modes(trainer)
    call_module(trainer, "on_predict_model_eval")
    with _eval_context(trainer):
        call_hook(trainer, "on_predict_start")
        if data.predict_loaders is None:  # dropped by BatchSizeFinder: a new batch size
            loaders, counts = _predict_loaders(trainer)
        call_hook(trainer, "on_predict_epoch_start")
        for dl_idx, (loader, count) in enumerate(zip(loaders, counts)):
            extra = (dl_idx,) if multiple else ()
            for batch_idx, batch, _ in iterate(loader, count):
                trainer.strategy.mark("predict", 0, batch_idx)
                batch = data.transfer(batch, dl_idx)
                call_hook(trainer, "on_predict_batch_start", batch, batch_idx, *extra)
                output = trainer.strategy.predict_step(batch, batch_idx, *extra)
                call_hook(trainer, "on_predict_batch_end", output, batch, batch_idx, *extra)
                if keep:
                    predictions[dl_idx].append(output)
        call_hook(trainer, "on_predict_epoch_end")
        call_hook(trainer, "on_predict_end")
    _restore_modes(modes)
    call_teardown_hook(trainer, "predict")
    if not getattr(trainer, "_return_predictions", True):
        return None
    return predictions if multiple else predictions[0]


def _predict_loaders(trainer: Trainer) -> tuple[list[Any], list[int]]:
    data = trainer._data
    assert data is not None
    loaders = data.load_eval("predict")
    counts = data.eval_counts("predict", loaders)
    if _has_writer(trainer):
        loaders = [_recording_indices(loader) for loader in loaders]
    trainer.predict_batch_indices = [
        getattr(loader.batch_sampler, "seen", []) if isinstance(loader, DataLoader) else []
        for loader in loaders
    ]
    trainer.num_predict_batches = counts  # type: ignore[assignment]
    return loaders, counts


def _has_writer(trainer: Trainer) -> bool:
    from fulmen.callbacks.prediction_writer import BasePredictionWriter

    return any(isinstance(cb, BasePredictionWriter) for cb in trainer.callbacks)


class _RecordingBatchSampler:
    """A batch sampler that remembers the dataset indices of every batch it hands out."""

    def __init__(self, batch_sampler: Any) -> None:
        self.batch_sampler = batch_sampler
        self.seen: list[list[int]] = []

    def __iter__(self) -> Any:
        for indices in self.batch_sampler:
            self.seen.append(list(indices))
            yield indices

    def __len__(self) -> int:
        return len(self.batch_sampler)


def _recording_indices(loader: Any) -> Any:
    """Rebuild a plain map-style DataLoader so prediction writers learn each batch's indices."""
    if type(loader) is not DataLoader or loader.batch_sampler is None:
        return loader
    return with_batch_sampler(loader, _RecordingBatchSampler(loader.batch_sampler))


def _has_epoch_writer(trainer: Trainer) -> bool:
    from fulmen.callbacks.prediction_writer import BasePredictionWriter

    return any(
        isinstance(cb, BasePredictionWriter) and cb.interval.on_epoch for cb in trainer.callbacks
    )
