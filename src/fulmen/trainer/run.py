"""What every entry point does around its loop: attach, set up, restore, run, tear down.

`run_stage` is the shape fit/validate/test/predict share. The loops themselves live in `loop.py`
(fit) and `eval_loop.py` (validate, test, predict).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fulmen.trainer import arguments as args_
from fulmen.trainer.call import (
    call_callbacks,
    call_datamodule,
    call_module,
    call_setup_hook,
    call_teardown_hook,
)
from fulmen.trainer.state import RunningStage, TrainerFn, TrainerStatus
from fulmen.tuner.tuning import _TunerExitException
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_info, rank_zero_warn

if TYPE_CHECKING:
    from fulmen.core.datamodule import LightningDataModule
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer

__all__ = ["run_stage"]

log = logging.getLogger(__name__)


def run_stage(
    trainer: Trainer,
    model: LightningModule,
    datamodule: LightningDataModule | None,
    fn: TrainerFn,
    ckpt_path: str | Path | None,
    weights_only: bool | None,
) -> Any:
    """Run one entry point: attach, set up, restore `ckpt_path`, run its loop, tear down."""
    launcher = trainer.strategy.launcher
    if launcher is not None and not launcher.launched:
        # Multi-process strategies first start their processes; each then runs this again.
        trainer._lightning_module = model  # spawned workers send their weights back into it
        return launcher.launch(
            run_stage, trainer, model, datamodule, fn, ckpt_path, weights_only, trainer=trainer
        )
    from fulmen.trainer import checkpoint as ckpt
    from fulmen.trainer import eval_loop, loop

    if model._trainer is not None and model._trainer is not trainer:
        model.trainer = None
    trainer.state.fn = fn
    # As in Lightning, the stage is known from the start: `trainer.training` is True in setup.
    trainer.state.stage = {
        TrainerFn.FITTING: RunningStage.TRAINING,
        TrainerFn.VALIDATING: RunningStage.VALIDATING,
        TrainerFn.TESTING: RunningStage.TESTING,
        TrainerFn.PREDICTING: RunningStage.PREDICTING,
    }[fn]
    trainer.state.status = TrainerStatus.RUNNING
    trainer.state.should_stop = False
    trainer.interrupted = False
    trainer._lightning_module = model
    model.trainer = trainer
    trainer.datamodule = datamodule
    if datamodule is not None:
        datamodule.trainer = trainer
    trainer._hook_cache = {}
    trainer._results = trainer._train_results
    trainer._results.reset()
    trainer._results.clear_views()
    trainer.strategy.connect(model)
    stage_name = {
        TrainerFn.FITTING: "fit",
        TrainerFn.VALIDATING: "validate",
        TrainerFn.TESTING: "test",
        TrainerFn.PREDICTING: "predict",
    }[fn]
    _check_legacy_hooks(model, stage_name)
    requested = ckpt_path if ckpt_path is not None else trainer._user_ckpt_path
    trainer._resume_requested = requested is not None
    trainer._resume_from_last = requested == "last"
    trainer._data.check(fn)  # type: ignore[union-attr]
    try:
        attach_configured_callbacks(trainer, model)
        trainer.strategy.setup_environment()
        call_prepare_data(trainer)
        call_setup_hook(trainer, stage_name)
        call_module(trainer, "configure_model")
        trainer.strategy.setup(model)
        checkpoint = ckpt.resolve_and_load(trainer, fn, ckpt_path, weights_only)
        if checkpoint is not None:
            ckpt.restore_model(trainer, checkpoint)
        if fn == TrainerFn.FITTING:
            configure_optimizers(trainer, model)
            log_hyperparams(trainer, model, datamodule)
            with (
                trainer.profiler.profile("run_fit"),
                torch.autograd.set_detect_anomaly(trainer.detect_anomaly),
                _preemption_signals(trainer),
            ):
                trainer.profiler.setup(
                    stage="fit", local_rank=trainer._profiler_rank, log_dir=trainer.log_dir
                )
                loop.run_fit(trainer, checkpoint)
            result = None
        elif fn == TrainerFn.PREDICTING:
            trainer.profiler.setup(
                stage="predict", local_rank=trainer._profiler_rank, log_dir=trainer.log_dir
            )
            result = eval_loop.run_predict(trainer)
        else:
            trainer.profiler.setup(
                stage=str(fn), local_rank=trainer._profiler_rank, log_dir=trainer.log_dir
            )
            result = eval_loop.run_evaluation_entry(trainer, fn)
        teardown(trainer, stage_name)
        trainer.state.status = TrainerStatus.FINISHED
        return result
    except _TunerExitException:
        # A finder callback did its tuning and ended the run: a normal end, not a failure.
        call_teardown_hook(trainer, stage_name)
        teardown(trainer, stage_name)
        trainer.state.status = TrainerStatus.FINISHED
        return None
    except BaseException as exception:
        late: list[BaseException] = []
        # After a DataLoader worker died, torch's SIGCHLD handler raises, and its signal often
        # arrives just after the error the death caused: as `handle_exception` starts, before it
        # holds the signals. Start it again then; what the handler raised is reported below.
        for _ in range(_SHUTDOWN_STARTS):
            try:
                handle_exception(trainer, exception, stage_name, late)
                break
            except BaseException as raised:  # noqa: B036 - the first failure is the one re-raised
                if trainer.state.status == TrainerStatus.INTERRUPTED:
                    raise  # from a hook or the teardown: that failure is theirs to show
                late.append(raised)
        else:
            handle_exception(trainer, exception, stage_name, late)
        name = type(exception).__name__
        for error in late:
            log.warning(
                f"While handling {name}, a signal handler raised {error!r}; the run shut down "
                f"and re-raises the {name}."
            )
        raise
    finally:
        trainer.state.stage = None


_SHUTDOWN_STARTS = 3


def handle_exception(
    trainer: Trainer, exception: BaseException, stage: str, late: list[BaseException]
) -> None:
    """Tell the strategy, callbacks, datamodule and module that the run failed; tear down.

    The caller re-raises `exception` itself, so the user sees their own traceback unchanged.
    What signal handlers raise meanwhile goes to `late`.
    """
    killed: dict[int, int] = {}
    with _signals_held(exception, late):
        try:
            # Set first: it tells the caller that the hooks have started.
            trainer.state.status = TrainerStatus.INTERRUPTED
            trainer.interrupted = True
            if isinstance(exception, KeyboardInterrupt):
                rank_zero_info("Detected KeyboardInterrupt, attempting graceful shutdown ...")
            trainer.strategy.on_exception(exception)
            call_callbacks(trainer, "on_exception", exception)
            if trainer.datamodule is not None:
                trainer.datamodule.on_exception(exception)
            if hasattr(trainer.lightning_module, "on_exception"):
                trainer.lightning_module.on_exception(exception)  # type: ignore[operator]
            for logger in trainer.loggers:
                logger.finalize("failed")
        finally:
            if trainer.state.status == TrainerStatus.INTERRUPTED:
                # Even when an `on_exception` hook fails, no worker process may outlive the run.
                killed = stop_loader_workers(trainer, exception)
                trainer.profiler.teardown(stage)
                trainer.strategy.teardown()
    _report_killed_workers(exception, killed)
    # torch's own report of those deaths says less: drop it.
    late[:] = [error for error in late if not any(str(pid) in str(error) for pid in killed)]


@contextmanager
def _signals_held(exception: BaseException, late: list[BaseException]) -> Generator[None]:
    """While a failed run shuts down, keep signal handlers from raising into the shutdown.

    - torch's SIGCHLD handler raises when a DataLoader worker died, and the death's signal
      often arrives after the error the death caused, while the hooks run or the workers are
      shut down. What it raises goes to `late`. (torch relies on that raise to break a worker
      shutdown that a worker dying *during* it would hang; a worker that died before, the case
      here, left no signal to break one.)
    - After Ctrl+C, another Ctrl+C is ignored: users press it again when the first one seems
      slow, which must not cut the hooks or the loggers' finalization short.

    Both handlers are put back afterwards, when the workers are gone.
    """
    import signal
    import threading

    saved: dict[int, Any] = {}
    try:
        if threading.current_thread() is threading.main_thread():
            child_signal = getattr(signal, "SIGCHLD", None)  # not on Windows
            handler = signal.getsignal(child_signal) if child_signal is not None else None
            if child_signal is not None and callable(handler):
                python_handler = handler

                def collect(signum: int, frame: Any) -> None:
                    try:
                        python_handler(signum, frame)
                    except Exception as raised:
                        late.append(raised)

                saved[child_signal] = signal.signal(child_signal, collect)
            # None: installed outside Python, where it could not be put back.
            interrupt_handler = signal.getsignal(signal.SIGINT)
            if isinstance(exception, KeyboardInterrupt) and interrupt_handler is not None:
                saved[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
        yield
    finally:
        for number, previous in saved.items():
            signal.signal(number, previous)


def stop_loader_workers(trainer: Trainer, exception: BaseException | None = None) -> dict[int, int]:
    """Shut down the DataLoader worker processes of this run, so that none outlives it.

    Return the workers a signal killed (not the shutdown's own SIGTERM): pid and signal number.
    """
    import signal

    killed: dict[int, int] = {}
    for iterator in _loader_iterators(trainer, exception):
        iterator._shutdown_workers()  # joins the workers, so their exit codes are known
        for worker in iterator._workers:
            code = worker.exitcode
            if code is not None and code < 0 and -code != signal.SIGTERM and worker.pid:
                killed[worker.pid] = -code
    return killed


def _loader_iterators(trainer: Trainer, exception: BaseException | None = None) -> list[Any]:
    """The DataLoader iterators whose worker processes would outlive the run.

    Two kinds survive the loops on their own: persistent workers, which their DataLoader keeps
    between epochs, and the workers of an iteration that failed (a worker raised or died): the
    exception's traceback holds that iteration's frames, and with them its iterator, for as long
    as the caller keeps the exception (`pytest.raises`, a notebook's `sys.last_traceback`).
    """
    from torch.utils.data import DataLoader
    from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

    from fulmen.utilities.combined_loader import CombinedLoader

    held: list[Any] = []
    entry = exception.__traceback__ if exception is not None else None
    while entry is not None:
        held.extend(entry.tb_frame.f_locals.values())
        entry = entry.tb_next
    data = trainer._data
    if data is not None:
        held.append(data.train_loader)
        for loaders in (data.val_loaders, data.test_loaders, data.predict_loaders):
            held.extend(loaders or ())
    iterators: dict[int, Any] = {}
    for value in held:
        for item in value.flattened if isinstance(value, CombinedLoader) else [value]:
            iterator = item
            if isinstance(item, DataLoader):
                iterator = item._iterator
                item._iterator = None  # a persistent loader starts new workers next time
            if isinstance(iterator, _MultiProcessingDataLoaderIter):
                iterators[id(iterator)] = iterator
    return list(iterators.values())


def _report_killed_workers(exception: BaseException, killed: dict[int, int]) -> None:
    """Name the workers a signal killed, unless the error already does.

    A worker killed while it hands over a batch makes the main process fail first with an error
    that does not say so (a ConnectionResetError, say).
    """
    import signal

    for pid, number in killed.items():
        if str(pid) in str(exception):
            continue
        name = signal.Signals(number).name
        hint = " (often the out-of-memory killer: try fewer workers or smaller batches)"
        log.warning(
            f"DataLoader worker (pid {pid}) was killed by {name}"
            f"{hint if number == signal.SIGKILL else ''}; the {type(exception).__name__} "
            "comes from its death."
        )


def teardown(trainer: Trainer, stage: str) -> None:
    # After every entry point, as Lightning does: a logger's files are complete and closed when
    # `validate`/`test`/`predict` return too (logging again later reopens them).
    for logger in trainer.loggers:
        logger.finalize("success")
    stop_loader_workers(trainer)
    trainer.profiler.describe()
    trainer.profiler.teardown(stage)
    trainer.strategy.teardown()


def attach_configured_callbacks(trainer: Trainer, model: LightningModule) -> None:
    returned = call_module(trainer, "configure_callbacks")
    if not returned:
        return
    extra = list(returned) if isinstance(returned, (list, tuple)) else [returned]
    types = {type(cb) for cb in extra}
    kept = [cb for cb in trainer.callbacks if type(cb) not in types]
    trainer.callbacks = args_.order_callbacks(kept + extra)
    trainer._hook_cache = {}


def call_prepare_data(trainer: Trainer) -> None:
    module = trainer.lightning_module
    datamodule = trainer.datamodule
    # prepare_data runs once per node (local rank 0), or once in all if the user asks so.
    for obj in (datamodule, module):
        if obj is None:
            continue
        per_node = getattr(obj, "prepare_data_per_node", True)
        if (per_node and trainer.local_rank == 0) or (not per_node and trainer.global_rank == 0):
            if obj is module:
                call_module(trainer, "prepare_data")
            else:
                call_datamodule(trainer, "prepare_data")
    trainer.strategy.barrier("prepare_data")


def configure_optimizers(trainer: Trainer, model: LightningModule) -> None:
    from fulmen.core.optimizer import LightningOptimizer, init_optimizers_and_schedulers

    returned = call_module(trainer, "configure_optimizers")
    optimizers, configs = init_optimizers_and_schedulers(returned, model.automatic_optimization)
    trainer.optimizers = optimizers
    trainer.lr_scheduler_configs = configs
    trainer.strategy.optimizers = optimizers
    trainer.strategy._lightning_optimizers = [
        LightningOptimizer(opt, trainer) for opt in optimizers
    ]


def log_hyperparams(
    trainer: Trainer, model: LightningModule, datamodule: LightningDataModule | None
) -> None:
    if not trainer.loggers or not trainer.enable_autolog_hparams:
        return
    params: dict[str, Any] = {}
    if datamodule is not None and datamodule._log_hyperparams:
        params.update(datamodule.hparams_initial)
    if model._log_hyperparams:
        for key, value in model.hparams_initial.items():
            if key in params and params[key] != value:
                raise MisconfigurationException(
                    f"Hyperparameter {key!r} differs between the LightningModule ({value!r}) "
                    f"and the LightningDataModule ({params[key]!r}); rename one of them."
                )
            params[key] = value
    for logger in trainer.loggers:
        if params:
            logger.log_hyperparams(params)
        logger.log_graph(model)
        logger.save()


# ================================================================== optimization helpers


@contextmanager
def _preemption_signals(trainer: Trainer) -> Generator[None]:
    """While fit runs, SIGTERM, SLURM's SIGUSR1 and a first Ctrl+C only set a flag.

    Saving inside a signal handler could run in the middle of a backward pass. Instead the loop
    finishes the batch, saves `last.ckpt`, and ends the run: with `SIGTERMException` (exit code
    143) after SIGTERM, with `KeyboardInterrupt` (exit by SIGINT, 130 in a shell) after Ctrl+C.
    A second Ctrl+C raises `KeyboardInterrupt` at once, as if fulmen were not there.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from fulmen.plugins.environments import SLURMEnvironment

    signals = [signal.SIGTERM]
    env = getattr(trainer.strategy, "cluster_environment", None)
    if env is None and "SLURM_JOB_ID" in os.environ:
        from fulmen.plugins.environments import detect_cluster_environment

        env = detect_cluster_environment()  # a one-task SLURM job on a single device
    requeue_signal = None
    if isinstance(env, SLURMEnvironment) and env.auto_requeue:
        requeue_signal = env.requeue_signal
    elif "SLURM_JOB_ID" in os.environ and hasattr(signal, "SIGUSR1"):
        requeue_signal = signal.SIGUSR1
    if requeue_signal is not None:
        signals.append(requeue_signal)

    def handler(signum: int, frame: Any) -> None:
        trainer.received_sigterm = True
        if signum == requeue_signal and isinstance(env, SLURMEnvironment):
            trainer._requeue = env  # SLURM's warning before the time limit: save, requeue
        # Processes fulmen started get the signal too, so every rank saves and stops.
        for proc in getattr(trainer.strategy.launcher, "procs", ()):
            if proc.poll() is None:
                proc.send_signal(signum)

    def on_interrupt(signum: int, frame: Any) -> None:
        trainer._interrupt_requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the next one stops at once
        print(
            "\nfulmen: Ctrl+C: stopping after this batch and saving last.ckpt; press Ctrl+C "
            "again to stop at once.",
            file=sys.stderr,
            flush=True,
        )

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    # Only Python's own Ctrl+C handler is replaced: a handler the user (or a notebook) installed
    # keeps its meaning.
    trainer._interrupt_requested = False
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


_LEGACY_STEP_END = ("training_step_end", "validation_step_end", "test_step_end")


def _check_legacy_hooks(model: LightningModule, stage: str) -> None:
    """Warn about Lightning 1.x hooks: `*_step_end` are never called; `*_epoch_end` still are."""
    for name in _LEGACY_STEP_END:
        if callable(getattr(model, name, None)):
            rank_zero_warn(
                f"`{type(model).__name__}.{name}` is a Lightning 1.x hook that is never called "
                f"in fulmen (nor in Lightning 2). Move its code into `{name[:-4]}` or "
                f"`on_{name.split('_')[0].replace('training', 'train')}_batch_end`.",
                category=FutureWarning,
            )
    for name in ("training_epoch_end", "validation_epoch_end", "test_epoch_end"):
        if callable(getattr(model, name, None)):
            modern = {
                "training_epoch_end": "on_train_epoch_end",
                "validation_epoch_end": "on_validation_epoch_end",
                "test_epoch_end": "on_test_epoch_end",
            }[name]
            rank_zero_warn(
                f"`{type(model).__name__}.{name}(outputs)` is a Lightning 1.x hook; fulmen still "
                f"calls it with the step outputs, but the modern form is `{modern}()` with the "
                "outputs you need kept as attributes.",
                category=FutureWarning,
            )
