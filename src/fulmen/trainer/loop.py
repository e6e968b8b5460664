"""The fit loop: epochs, training batches, automatic optimization and learning-rate schedulers.

The order of the hook calls is the order of the lines; `tests/behaviour/test_hook_order.py`
pins it to Lightning's. Evaluation lives in `eval_loop.py`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from fulmen.trainer import eval_loop
from fulmen.trainer.call import (
    call_callbacks,
    call_hook,
    call_module,
    call_teardown_hook,
    is_overridden,
)
from fulmen.trainer.data import iterate, resume_loader
from fulmen.trainer.state import RunningStage
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_debug, rank_zero_info, rank_zero_warn

if TYPE_CHECKING:
    from fulmen.trainer.trainer import Trainer
    from fulmen.utilities.types import LRSchedulerConfig

__all__ = ["run_fit"]


def run_fit(trainer: Trainer, checkpoint: dict[str, Any] | None = None) -> None:
    state = trainer.state
    data = trainer._data
    assert data is not None
    module = trainer.lightning_module
    call_hook(trainer, "on_fit_start")
    if checkpoint is not None:
        # After on_fit_start, as in Lightning: callbacks may add parameter groups there (e.g.
        # BackboneFinetuning) that the saved optimizer state expects.
        from fulmen.trainer.checkpoint import restore_training_state

        restore_training_state(trainer, checkpoint)
    module.zero_grad()
    if _should_run_sanity_check(trainer):
        eval_loop.run_sanity_check(trainer)
    state.restarting = False
    if data.should_reload_train():
        data.load_train()
    if data.has_val() and data.val_loaders is None:
        trainer.num_val_batches = data.eval_counts("val", data.load_eval("val"))  # type: ignore[assignment]
    trainer._fit_started = True
    trainer._fit_start_time = time.monotonic()
    state.last_val_time = None  # the validation clock starts with training
    call_hook(trainer, "on_train_start")
    while not _fit_done(trainer):
        if data.should_reload_train():
            data.load_train()
        state.stage = RunningStage.TRAINING
        trainer._results = trainer._train_results
        if state.resume_batch_idx == 0:
            state.batches_done_in_epoch = 0
            trainer._results.reset()
            call_hook(trainer, "on_train_epoch_start")
        outputs = run_training_epoch(trainer)
        _end_training_epoch(trainer, outputs)
    state.stage = RunningStage.TRAINING
    call_hook(trainer, "on_train_end")
    call_hook(trainer, "on_fit_end")
    call_teardown_hook(trainer, "fit")


def _end_training_epoch(trainer: Trainer, outputs: list[Any] | None) -> None:
    state = trainer.state
    results = trainer._train_results
    state.epoch_done = True  # checkpoints saved from here on resume at the next epoch
    results.epoch_end_reached()
    # Monitoring callbacks (ModelCheckpoint, EarlyStopping) run after the module so they can see
    # metrics logged in LightningModule.on_train_epoch_end.
    call_callbacks(trainer, "on_train_epoch_end", monitoring=False)
    call_module(trainer, "on_train_epoch_end")
    if outputs is not None:
        call_module(trainer, "training_epoch_end", outputs)
    results.sync_epoch()  # values the module logged just now, before the monitors read them
    call_callbacks(trainer, "on_train_epoch_end", monitoring=True)
    results.epoch_end(step=max(state.batches_that_stepped - 1, 0))
    _step_schedulers(trainer, "epoch", plateau=True)
    state.epoch += 1
    state.batch_idx = 0
    state.batches_done_in_epoch = 0  # a save from here on (even after fit) starts a new epoch
    state.resume_batch_idx = 0
    state.epoch_done = False


def _should_run_sanity_check(trainer: Trainer) -> bool:
    data = trainer._data
    assert data is not None
    return trainer.num_sanity_val_steps != 0 and data.has_val() and not trainer.state.restarting


def _max_epochs(trainer: Trainer) -> int:
    if trainer.max_epochs is None:
        return 1000 if trainer.max_steps == -1 else -1
    return trainer.max_epochs


def _can_stop_early(trainer: Trainer) -> bool:
    state = trainer.state
    # As in Lightning, `min_steps` on its own still finishes the first epoch.
    if trainer.min_epochs is not None:
        min_epochs = trainer.min_epochs
    else:
        min_epochs = 1 if trainer.min_steps is not None else 0
    min_steps = trainer.min_steps or 0
    return state.epoch >= min_epochs and state.global_step >= min_steps


def _fit_done(trainer: Trainer) -> bool:
    state = trainer.state
    if trainer.max_steps != -1 and state.global_step >= trainer.max_steps:
        rank_zero_debug(f"`Trainer.fit` stopped: `max_steps={trainer.max_steps!r}` reached.")
        return True
    max_epochs = _max_epochs(trainer)
    if max_epochs != -1 and state.epoch >= max_epochs:
        rank_zero_debug(f"`Trainer.fit` stopped: `max_epochs={max_epochs!r}` reached.")
        return True
    if state.should_stop:
        if _can_stop_early(trainer):
            rank_zero_debug("`Trainer.fit` stopped: `trainer.should_stop` was set.")
            return True
        rank_zero_info(
            f"Trainer was asked to stop, but `min_epochs={trainer.min_epochs}` or "
            f"`min_steps={trainer.min_steps}` is not reached yet: training goes on."
        )
    if trainer.num_training_batches == 0:
        return True
    return False


def run_training_epoch(trainer: Trainer) -> list[Any] | None:
    """Run the training batches of one epoch; return step outputs if a 1.x epoch-end hook wants them."""
    state = trainer.state
    data = trainer._data
    assert data is not None
    module = trainer.lightning_module
    results = trainer._train_results
    automatic = module.automatic_optimization
    legacy = (
        is_overridden("training_epoch_end", module)
        if hasattr(module, "training_epoch_end")
        else False
    )
    outputs: list[Any] | None = [] if legacy else None
    skip = state.resume_batch_idx
    validation_due, state.resume_validation_due = state.resume_validation_due, False
    if skip and validation_due:
        # The checkpoint was taken after the batch and before the validation it triggered.
        state.batch_idx = skip - 1
        _validate_in_fit(trainer, stepping=True)
    loader, consume = _start_epoch_data(trainer, skip)
    strategy = trainer.strategy
    # Decided once per epoch: asked after every batch.
    has_schedulers = automatic and bool(trainer.lr_scheduler_configs)
    has_val = data.has_val()
    log_every = trainer.log_every_n_steps
    check_every_step, check_when_logging = _loss_checks(trainer)
    for batch_idx, batch, is_last in iterate(loader, trainer.num_training_batches, skip, consume):
        state.batch_idx = batch_idx
        step_before = state.global_step
        strategy.mark("training", state.epoch, batch_idx)
        trainer.is_last_batch = is_last
        batch = data.transfer(batch, 0)
        results.new_batch(batch)
        call_callbacks(trainer, "on_train_batch_start", batch, batch_idx)
        if call_module(trainer, "on_train_batch_start", batch, batch_idx) == -1:
            break
        stepping = automatic and not _should_accumulate(trainer, batch_idx, is_last)
        if automatic:
            output = _run_automatic_batch(trainer, batch, batch_idx, stepping)
        else:
            output = _run_manual_batch(trainer, batch, batch_idx)
            stepping = True
        state.batches_done_in_epoch = batch_idx + 1
        state.total_batches_seen += 1
        # Counted after validation (the logger's x-axis), but already done for checkpoints.
        state.step_pending = stepping or not automatic
        if stepping and has_schedulers:
            _step_schedulers(trainer, "step", plateau=False)
            if is_last:
                _step_schedulers(trainer, "epoch", plateau=False)
        step_output = {"loss": output} if isinstance(output, Tensor) else output
        results.publish_step()
        call_hook(trainer, "on_train_batch_end", step_output, batch, batch_idx)
        if outputs is not None and step_output is not None:
            outputs.append(_detach(step_output))
        should_log = log_every > 0 and (
            (state.batches_that_stepped + 1) % log_every == 0 or state.should_stop
        )
        results.step_end(should_log, step=state.batches_that_stepped)
        if check_every_step or (check_when_logging and should_log):
            check_when_logging = _check_loss_is_finite(trainer, step_output, step_before)
        if has_val and _should_check_val(trainer, batch_idx, is_last):
            _validate_in_fit(trainer, stepping)
        state.step_pending = False
        if stepping or not automatic:
            state.batches_that_stepped += 1
        if strategy.agree_to_stop(trainer.received_sigterm or trainer._interrupt_requested):
            _stop_for_preemption(trainer)
        if trainer.max_steps != -1 and state.global_step >= trainer.max_steps:
            break
        if state.should_stop and _can_stop_early(trainer):
            break
    return outputs


_LOSS_WARNED = ("non-finite loss warned",)  # key in the per-run `trainer._hook_cache`


def _loss_checks(trainer: Trainer) -> tuple[bool, bool]:
    """Whether to check the loss for NaN/inf after every batch, and at the batches that log.

    Reading the loss on the host makes the host wait for the device, which the batches in
    between must never do. The batches that write metrics to a logger (every
    `log_every_n_steps`) read the logged values on the host anyway, so one more number there
    costs a copy, not another stall. Without a logger that writes (`logger=False`, the tuners'
    silent runs) fulmen reads nothing, so it checks nothing. `detect_anomaly=True` is slow by
    design: there the loss is checked after every batch, and a non-finite one ends the run.
    """
    from fulmen.loggers.logger import DummyLogger

    if trainer.detect_anomaly:
        return True, False
    writes_logs = any(not isinstance(logger, DummyLogger) for logger in trainer.loggers)
    warned = _LOSS_WARNED in trainer._hook_cache
    return False, writes_logs and trainer.log_every_n_steps > 0 and not warned


def _check_loss_is_finite(trainer: Trainer, step_output: Any, global_step: int) -> bool:
    """Warn once per run (raise under `detect_anomaly`) if the batch's loss is NaN or infinite.

    Return whether later batches still need checking.
    """
    loss = step_output.get("loss") if isinstance(step_output, dict) else step_output
    if not isinstance(loss, Tensor) or loss.numel() != 1 or loss.is_complex():
        return True
    value = loss.item()
    if math.isfinite(value):
        return True
    where = (
        f"The loss returned by `training_step` is {value} at epoch {trainer.current_epoch}, "
        f"batch_idx {trainer.state.batch_idx} (global_step {global_step})."
    )
    if trainer.detect_anomaly:
        raise RuntimeError(
            f"{where} `Trainer(detect_anomaly=True)` found no NaN in the backward pass, so the "
            "forward pass made it: look for a log, sqrt or division of values at or below 0, or "
            "an overflow. A diverging run may need `Trainer(gradient_clip_val=...)` or a lower "
            "learning rate."
        )
    trainer._hook_cache[_LOSS_WARNED] = True
    every = trainer.log_every_n_steps
    rank_zero_warn(
        f"{where} fulmen reads the loss only when it writes metrics to the loggers (every "
        f"`log_every_n_steps={every}` steps), so it may have become non-finite up to "
        f"{every - 1} batches earlier; training goes on. `Trainer(detect_anomaly=True)` checks "
        "every batch and names the operation that made the first NaN; a diverging run may need "
        "`Trainer(gradient_clip_val=...)` or a lower learning rate. Shown once per run."
    )
    return False


def _validate_in_fit(trainer: Trainer, stepping: bool) -> None:
    from fulmen.utilities.seed import isolate_rng

    # Validation must not change the random numbers training draws next: a run resumed from a
    # checkpoint taken before this validation must continue exactly as the original run did.
    with isolate_rng():
        eval_loop.run_validation(trainer)
    if stepping:
        _step_schedulers(trainer, "step", plateau=True)
    trainer.state.stage = RunningStage.TRAINING
    trainer._results = trainer._train_results
    trainer.state.validated = (trainer.state.epoch, trainer.state.batch_idx)


def _start_epoch_data(trainer: Trainer, skip: int) -> tuple[Any, int]:
    """Record the random state the epoch starts from; on a mid-epoch resume, replay it.

    The shuffle of an epoch is drawn from the random state at its start, so a checkpoint stores
    that state too. Resuming at batch `skip` restores it, lets the sampler draw the same order and
    skip `skip` batches, then restores the state saved with the checkpoint for what follows.
    """
    from fulmen.utilities.seed import _collect_rng_states, _set_rng_states

    data = trainer._data
    assert data is not None
    state = trainer.state
    resume_rng, state.resume_rng = state.resume_rng, None
    epoch_start, state.resume_epoch_start_rng = state.resume_epoch_start_rng, None
    if not skip:
        epoch_start = None
    if epoch_start is not None:
        _set_rng_states(epoch_start["global"])
        _set_loader_generators(data.train_loader, epoch_start.get("loader"))
    elif resume_rng is not None:
        # Resuming at an epoch boundary: continue from the state saved with the checkpoint.
        _set_rng_states(resume_rng)
        resume_rng = None
    from fulmen.trainer.distributed_data import set_sampler_epoch

    set_sampler_epoch(data.train_loader, state.epoch)
    state.epoch_start_rng = {
        "global": _collect_rng_states(),
        "loader": _loader_generator_states(data.train_loader),
    }

    def restore() -> None:
        if resume_rng is not None:
            _set_rng_states(resume_rng)

    if skip >= trainer.num_training_batches:
        restore()  # saved after the epoch's last batch: nothing of this epoch is left to read
        return data.train_loader, 0
    return resume_loader(data.train_loader, skip, restore)


def _loader_generator_states(loader: Any) -> list[Any]:
    """States of the explicit generators a DataLoader or its sampler shuffle with."""
    generators = [
        getattr(loader, "generator", None),
        getattr(getattr(loader, "sampler", None), "generator", None),
    ]
    return [g.get_state() if isinstance(g, torch.Generator) else None for g in generators]


def _set_loader_generators(loader: Any, states: list[Any] | None) -> None:
    if not states:
        return
    generators = [
        getattr(loader, "generator", None),
        getattr(getattr(loader, "sampler", None), "generator", None),
    ]
    for generator, state in zip(generators, states):
        if isinstance(generator, torch.Generator) and state is not None:
            generator.set_state(state)


def _stop_for_preemption(trainer: Trainer) -> None:
    """Save where `ckpt_path="last"` finds it, then end the run through the exception path.

    After SIGTERM (or a SLURM requeue signal) on any rank the run ends with `SIGTERMException`;
    after a Ctrl+C with `KeyboardInterrupt`, which the user's script sees as usual.
    """
    import os

    from fulmen.callbacks.model_checkpoint import ModelCheckpoint
    from fulmen.utilities.exceptions import SIGTERMException

    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath and not trainer.fast_dev_run:
            name = callback.CHECKPOINT_NAME_LAST + callback.FILE_EXTENSION
            path = os.path.join(str(callback.dirpath), name)
            trainer.save_checkpoint(path)
            what = "SIGTERM" if trainer.received_sigterm else "Ctrl+C"
            rank_zero_info(f"Received {what}: saved {path}; resume with `fit(ckpt_path='last')`.")
            break
    env = trainer._requeue
    if env is not None and trainer.is_global_zero:
        env.requeue()  # the requeued job resumes with fit(ckpt_path="last")
        rank_zero_info("SLURM job requeued; it resumes from last.ckpt when it starts again.")
    if not trainer.received_sigterm:
        raise KeyboardInterrupt
    raise SIGTERMException(143)


def _should_accumulate(trainer: Trainer, batch_idx: int, is_last: bool) -> bool:
    return (batch_idx + 1) % trainer.accumulate_grad_batches != 0 and not is_last


def _should_check_val(trainer: Trainer, batch_idx: int, is_last: bool) -> bool:
    data = trainer._data
    assert data is not None
    if not data.has_val():
        return False
    every = trainer.check_val_every_n_epoch
    if every is not None and (trainer.current_epoch + 1) % every != 0:
        return False
    interval = trainer.val_check_interval
    if not isinstance(interval, (int, float)):  # a duration
        # Lightning's rule: only the clock decides (no epoch-end run); the clock starts when
        # training starts and restarts when a validation ends.
        if trainer.should_stop and _can_stop_early(trainer):
            return True
        last = trainer.state.last_val_time
        start = trainer._fit_start_time if last is None else last
        return time.monotonic() - start >= interval.total_seconds()
    if trainer.should_stop and _can_stop_early(trainer):
        return True
    val_check_batch = trainer.val_check_batch
    if val_check_batch == float("inf"):
        return is_last
    current = trainer.state.total_batches_seen - 1 if every is None else batch_idx
    return (current + 1) % int(val_check_batch) == 0


# ---------------------------------------------------------------------- optimization


def _training_step(trainer: Trainer, batch: Any, batch_idx: int) -> Any:
    results = trainer._results
    results.current_fx = "training_step"
    try:
        if trainer._profiling:
            with trainer.profiler.profile(
                f"[Strategy]{type(trainer.strategy).__name__}.training_step"
            ):
                return trainer.strategy.training_step(batch, batch_idx)
        return trainer.strategy.training_step(batch, batch_idx)
    finally:
        results.current_fx = None


def _loss_of(output: Any) -> Tensor | None:
    if output is None:
        return None
    if isinstance(output, Tensor):
        return output
    if isinstance(output, dict):
        if "loss" not in output:
            raise MisconfigurationException(
                "`training_step` returned a dict without a 'loss' key (keys: "
                f"{sorted(output)}). Return the loss tensor, or a dict with a 'loss' key."
            )
        loss = output["loss"]
        if not isinstance(loss, Tensor):
            raise MisconfigurationException(
                f"`training_step` returned {{'loss': {type(loss).__name__}}}: the loss must be a tensor."
            )
        return loss
    raise MisconfigurationException(
        f"`training_step` returned {type(output).__name__}. In automatic optimization it must "
        "return a loss tensor, a dict with a 'loss' key, or None to skip the batch."
    )


def _run_automatic_batch(trainer: Trainer, batch: Any, batch_idx: int, stepping: bool) -> Any:
    module = trainer.lightning_module
    optimizers = trainer.strategy._lightning_optimizers
    output: Any = None
    accumulate = trainer.accumulate_grad_batches
    custom_step = _module_overrides(trainer, "optimizer_step")
    custom_zero_grad = _module_overrides(trainer, "optimizer_zero_grad")

    def closure() -> Tensor | None:
        # Runs inside optimizer.step() so that optimizers such as LBFGS can re-evaluate the loss.
        nonlocal output
        output = _training_step(trainer, batch, batch_idx)
        loss = _loss_of(output)
        # requires_grad first: it is a flag, while reading grad_fn builds a Python object.
        if (
            loss is not None
            and loss.requires_grad is False
            and loss.grad_fn is None
            and module.training
        ):
            raise MisconfigurationException(
                "The loss returned by `training_step` does not require grad: it was computed "
                "under `torch.no_grad()` or from detached tensors, so backward cannot run."
            )
        if not optimizers:
            return loss
        optimizer = optimizers[0].optimizer
        if batch_idx % accumulate == 0 or accumulate == 1:
            call_hook(trainer, "on_before_zero_grad", optimizer)
            if custom_zero_grad:
                call_module(
                    trainer, "optimizer_zero_grad", trainer.current_epoch, batch_idx, optimizers[0]
                )
            else:
                optimizer.zero_grad()
        if loss is None:
            return None
        backward_loss = loss / accumulate if accumulate > 1 else loss
        trainer._run_backward(backward_loss)
        return backward_loss

    if not optimizers:
        closure()
        return output
    if not stepping:
        with trainer.strategy.block_backward_sync():
            closure()
        return output
    if custom_step:
        call_module(
            trainer, "optimizer_step", trainer.current_epoch, batch_idx, optimizers[0], closure
        )
    else:
        # What the default LightningModule.optimizer_step -> LightningOptimizer.step amounts to.
        automatic_optimizer_step(trainer, optimizers[0].optimizer, closure)
    return output


def _module_overrides(trainer: Trainer, name: str) -> bool:
    """Whether the hook must go through `call_module` (overridden, or profiled by name)."""
    key = ("overrides", name)
    found = trainer._hook_cache.get(key)
    if found is None:
        found = is_overridden(name, trainer.lightning_module) or trainer._profiling
        trainer._hook_cache[key] = found
    return bool(found)


def _run_manual_batch(trainer: Trainer, batch: Any, batch_idx: int) -> Any:
    output = _training_step(trainer, batch, batch_idx)
    if output is not None and not isinstance(output, (Tensor, dict)):
        raise MisconfigurationException(
            f"`training_step` returned {type(output).__name__}; with manual optimization it may "
            "return None, a tensor or a dict."
        )
    return output


def automatic_optimizer_step(
    trainer: Trainer, optimizer: Optimizer, closure: Callable[[], Any] | None, **kwargs: Any
) -> Any:
    """`LightningOptimizer.step` in automatic optimization: closure, before-step hooks, clip, step."""
    module = trainer.lightning_module
    clip = trainer._hook_cache.get(("clip",))
    if clip is None:
        # Decided once per run: this runs on every optimizer step.
        clip = trainer.gradient_clip_val is not None or is_overridden(
            "configure_gradient_clipping", module
        )
        trainer._hook_cache[("clip",)] = clip

    def wrapped() -> Any:
        result = closure() if closure is not None else None
        call_hook(trainer, "on_before_optimizer_step", optimizer)
        if clip:
            call_module(
                trainer,
                "configure_gradient_clipping",
                optimizer,
                gradient_clip_val=trainer.gradient_clip_val,
                gradient_clip_algorithm=trainer.gradient_clip_algorithm,
            )
        return result

    out = trainer.strategy.precision_plugin.optimizer_step(optimizer, wrapped, **kwargs)
    trainer.state.global_step += 1
    return out


def _step_schedulers(trainer: Trainer, interval: str, plateau: bool) -> None:
    configs = trainer.lr_scheduler_configs
    if not configs or not trainer.lightning_module.automatic_optimization:
        return
    for config in configs:
        if config.interval != interval or config.reduce_on_plateau != plateau:
            continue
        index = trainer.state.batches_that_stepped if interval == "step" else trainer.current_epoch
        if (index + 1) % config.frequency != 0:
            continue
        metric = _monitor_value(trainer, config) if config.reduce_on_plateau else None
        if config.reduce_on_plateau and metric is None:
            continue
        call_module(trainer, "lr_scheduler_step", config.scheduler, metric)


def _monitor_value(trainer: Trainer, config: LRSchedulerConfig) -> Any:
    metrics = trainer.callback_metrics
    monitor = config.monitor
    if monitor in metrics:
        return metrics[monitor]
    if config.strict:
        raise MisconfigurationException(
            f"ReduceLROnPlateau conditioned on metric {monitor!r}, which is not available. "
            f"Available metrics are: {sorted(metrics)}. Log it with `self.log({monitor!r}, ...)` "
            "or set 'strict': False in the scheduler dict."
        )
    rank_zero_warn(
        f"ReduceLROnPlateau conditioned on metric {monitor!r}, which is not available; the "
        "scheduler is skipped this time ('strict': False)."
    )
    return None


def _detach(output: Any) -> Any:
    from fulmen.utilities.apply_func import apply_to_collection

    return apply_to_collection(output, Tensor, lambda t: t.detach())
