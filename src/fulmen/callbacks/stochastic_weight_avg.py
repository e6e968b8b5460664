"""Stochastic Weight Averaging: average the weights of the last epochs, then refresh BatchNorm.

From epoch `swa_start` the learning-rate scheduler is swapped for `SWALR` and, at the start of
each epoch up to the last, the weights are folded into an `AveragedModel`. When training ends the
average replaces the weights. A model with BatchNorm layers gets one more epoch: it starts from
the averaged weights with reset statistics, and its forward passes recompute them (the optimizer
step it ends with is undone). This is how Lightning does it, so `current_epoch` and `global_step`
after `fit` match Lightning's. If training stops before its last epoch (early stopping,
`max_steps`), the model keeps its trained weights.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim.swa_utils import SWALR, AveragedModel

from fulmen.callbacks.callback import Callback
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_info, rank_zero_warn
from fulmen.utilities.types import LRSchedulerConfig

if TYPE_CHECKING:
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer
    from fulmen.utilities.types import STEP_OUTPUT

__all__ = ["StochasticWeightAveraging"]

_AVG_FN = Callable[[Tensor, Tensor, Tensor | int], Tensor]


class StochasticWeightAveraging(Callback):
    """Average the weights of the last epochs of training (SWA, Izmailov et al., 2018).

    Args:
        swa_lrs: the SWA learning rate, one for all parameter groups or one per group.
        swa_epoch_start: the epoch, counted from 1, at which averaging starts; a float in [0, 1]
            is a fraction of `max_epochs`.
        annealing_epochs: epochs over which `SWALR` anneals from the current rate to `swa_lrs`.
        annealing_strategy: "cos" or "linear".
        avg_fn: `avg_fn(averaged, current, num_averaged) -> new average`; the mean by default.
        device: where the average lives; None keeps it next to the model.

    Example:
        >>> swa = StochasticWeightAveraging(swa_lrs=0.05, swa_epoch_start=3)
        >>> swa.swa_start  # 0-based: the start of the third epoch
        2
    """

    def __init__(
        self,
        swa_lrs: float | list[float],
        swa_epoch_start: int | float = 0.8,
        annealing_epochs: int = 10,
        annealing_strategy: Literal["cos", "linear"] = "cos",
        avg_fn: _AVG_FN | None = None,
        device: torch.device | str | None = "cpu",
    ) -> None:
        _check_arguments(swa_lrs, swa_epoch_start, annealing_epochs, annealing_strategy, avg_fn)
        if device is not None:
            try:
                device = torch.device(device)
            except (RuntimeError, TypeError) as error:
                raise MisconfigurationException(
                    f"StochasticWeightAveraging(device={device!r}) is invalid: expected None, a "
                    "torch.device or a device string such as 'cpu' or 'cuda:0'."
                ) from error
        self._swa_lrs = swa_lrs
        self._swa_epoch_start = swa_epoch_start
        # The 1-based first epoch; a fraction is resolved against max_epochs in on_fit_start.
        self._first_epoch: int | None = (
            None if isinstance(swa_epoch_start, float) else swa_epoch_start
        )
        self._annealing_epochs = annealing_epochs
        self._annealing_strategy = annealing_strategy
        self._avg_fn = avg_fn or self.avg_fn
        self._device = device
        self._average_model: AveragedModel | None = None
        self._max_epochs: int | None = None  # the user's max_epochs, resolved in on_fit_start
        self._user_max_epochs: int | None = None
        self._contains_batch_norm = False
        self._initialized = False
        self._swa_scheduler: SWALR | None = None
        self._scheduler_state: dict[str, Any] | None = None
        self._loaded_state: dict[str, Any] | None = None
        self._latest_update_epoch = -1
        # Set during the BatchNorm epoch: the user's accumulation and the step last undone.
        self._accumulate_grad_batches: int | None = None
        self._undone_step = 0
        self.momenta: dict[_BatchNorm, float | None] = {}

    @property
    def swa_start(self) -> int:
        """The 0-based epoch whose start takes the first snapshot into the average."""
        if self._first_epoch is None:
            raise RuntimeError(
                f"`swa_start` for swa_epoch_start={self._swa_epoch_start!r} (a fraction of "
                "max_epochs) is known once `Trainer.fit` has started."
            )
        return max(self._first_epoch - 1, 0)

    @property
    def swa_end(self) -> int:
        """The 0-based epoch whose start takes the last snapshot: the last training epoch."""
        if self._max_epochs is None:
            raise RuntimeError("`swa_end` is known once `Trainer.fit` has started.")
        return self._max_epochs - 1

    @property
    def n_averaged(self) -> Tensor | None:
        """How many snapshots the average holds; None before fit."""
        return None if self._average_model is None else self._average_model.n_averaged

    @staticmethod
    def avg_fn(averaged: Tensor, current: Tensor, num_averaged: Tensor | int) -> Tensor:
        """Fold `current` into the running mean `averaged` of `num_averaged` snapshots."""
        return averaged + (current - averaged) / (num_averaged + 1)

    @staticmethod
    def pl_module_contains_batch_norm(pl_module: nn.Module) -> bool:
        """Whether `pl_module` has a BatchNorm layer, whose statistics need a refresh."""
        return any(isinstance(module, _BatchNorm) for module in pl_module.modules())

    @staticmethod
    def transfer_weights(src_pl_module: nn.Module, dst_pl_module: nn.Module) -> None:
        """Copy the parameters (not the buffers) of `src_pl_module` into `dst_pl_module`."""
        for src, dst in zip(src_pl_module.parameters(), dst_pl_module.parameters()):
            dst.detach().copy_(src.detach().to(dst.device))

    def reset_batch_norm_and_save_state(self, pl_module: nn.Module) -> None:
        """Zero the BatchNorm statistics and make them a plain mean over the coming batches."""
        self.momenta = {}
        for module in pl_module.modules():
            if not isinstance(module, _BatchNorm) or module.running_mean is None:
                continue
            assert module.running_var is not None and module.num_batches_tracked is not None
            module.running_mean.zero_()
            module.running_var.fill_(1)
            module.num_batches_tracked.zero_()
            self.momenta[module] = module.momentum
            module.momentum = None  # None: a cumulative average rather than an EMA

    def reset_momenta(self) -> None:
        """Give the BatchNorm layers back their momentum."""
        for module, momentum in self.momenta.items():
            module.momentum = momentum
        self.momenta = {}

    # ------------------------------------------------------------------------------ hooks

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        # Copied here, before the strategy moves the model to its device, to spare device memory.
        self._average_model = _averaged_model(pl_module, trainer, self._device, self._avg_fn)
        self._initialized = False
        self._swa_scheduler = self._scheduler_state = None
        self._latest_update_epoch = -1
        self._accumulate_grad_batches = None
        if self._loaded_state is not None:  # `load_state_dict` ran before this fit began
            self._restore(self._loaded_state)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if len(trainer.optimizers) != 1:
            raise MisconfigurationException(
                "StochasticWeightAveraging works with exactly one optimizer; "
                f"`configure_optimizers` returned {len(trainer.optimizers)}."
            )
        if len(trainer.lr_scheduler_configs) > 1:
            raise MisconfigurationException(
                "StochasticWeightAveraging works with at most one learning-rate scheduler; "
                f"`configure_optimizers` returned {len(trainer.lr_scheduler_configs)}."
            )
        self._user_max_epochs = trainer.max_epochs
        max_epochs = trainer.max_epochs
        if max_epochs is None:  # the trainer's default: 1000 epochs unless max_steps is set
            max_epochs = 1000 if trainer.max_steps == -1 else -1
        if max_epochs == -1:
            raise MisconfigurationException(
                f"StochasticWeightAveraging needs a finite `Trainer(max_epochs=...)`, got "
                f"max_epochs={trainer.max_epochs!r} with max_steps={trainer.max_steps!r}."
            )
        if isinstance(self._swa_epoch_start, float):
            self._first_epoch = int(max_epochs * self._swa_epoch_start)
        self._max_epochs = max_epochs
        self._contains_batch_norm = self.pl_module_contains_batch_norm(pl_module)
        if self._contains_batch_norm:
            # One more epoch, after the last, recomputes the BatchNorm statistics.
            trainer.max_epochs = max_epochs + 1
        if self._scheduler_state is not None:
            # Resuming after averaging began: SWALR takes the scheduler's place again right away,
            # so that it also steps at the end of an epoch resumed in its middle.
            self._start_averaging(trainer, pl_module)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch
        in_swa = self.swa_start <= epoch <= self.swa_end
        if in_swa and not self._initialized:
            self._start_averaging(trainer, pl_module)
        if in_swa and epoch > self._latest_update_epoch:
            assert self._average_model is not None
            self._average_model.update_parameters(pl_module)
            self._latest_update_epoch = epoch
        if epoch == self.swa_end + 1:
            self._start_batch_norm_epoch(trainer, pl_module)

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self._accumulate_grad_batches is not None and trainer.global_step != self._undone_step:
            # The trainer still steps the optimizer in the BatchNorm epoch; undo the step so that
            # the forward passes, the checkpoints and the final model all see the average.
            assert self._average_model is not None
            self.transfer_weights(self._average_model.module, pl_module)
            self._undone_step = trainer.global_step

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._accumulate_grad_batches is not None:  # the BatchNorm epoch ran
            trainer.accumulate_grad_batches = self._accumulate_grad_batches
            self._accumulate_grad_batches = None
            self.reset_momenta()
        elif trainer.current_epoch - 1 == self.swa_end:  # current_epoch counts the last epoch
            assert self._average_model is not None
            self.transfer_weights(self._average_model.module, pl_module)
        if self._contains_batch_norm:
            trainer.max_epochs = self._user_max_epochs

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        state = (checkpoint.get("callbacks") or {}).get(self.state_key) or {}
        if state.get("scheduler_state") is not None:
            # The checkpoint's only scheduler state is SWALR's: it must not be loaded into the
            # scheduler from `configure_optimizers`. SWALR gets it back when averaging resumes.
            checkpoint["lr_schedulers"] = []

    def state_dict(self) -> dict[str, Any]:
        n_averaged = self.n_averaged
        return {
            "n_averaged": 0 if n_averaged is None else int(n_averaged),
            "latest_update_epoch": self._latest_update_epoch,
            "scheduler_state": (
                None if self._swa_scheduler is None else self._swa_scheduler.state_dict()
            ),
            "average_model_state": (
                None if self._average_model is None else self._average_model.module.state_dict()
            ),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded_state = state_dict
        if self._average_model is not None:
            self._restore(state_dict)

    # ------------------------------------------------------------------------------ helpers

    def _restore(self, state: dict[str, Any]) -> None:
        assert self._average_model is not None
        self._loaded_state = None
        self._latest_update_epoch = int(state["latest_update_epoch"])
        self._scheduler_state = state["scheduler_state"]
        if state["average_model_state"] is not None:
            self._average_model.module.load_state_dict(state["average_model_state"])
        self._average_model.n_averaged.fill_(int(state["n_averaged"]))

    def _start_averaging(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Move the average to its device and swap the scheduler for SWALR."""
        assert self._average_model is not None
        self._initialized = True
        self._average_model.to(self._device or pl_module.device)
        optimizer = trainer.optimizers[0]
        groups = optimizer.param_groups
        swa_lrs = self._swa_lrs
        if isinstance(swa_lrs, list):
            if len(swa_lrs) != len(groups):
                raise MisconfigurationException(
                    f"StochasticWeightAveraging(swa_lrs={swa_lrs!r}) gives {len(swa_lrs)} rates "
                    f"but the optimizer has {len(groups)} parameter groups: give one per group, "
                    "or a single float for all."
                )
            lrs = [float(lr) for lr in swa_lrs]
        else:
            lrs = [float(swa_lrs)] * len(groups)
        for lr, group in zip(lrs, groups):
            group["initial_lr"] = lr
        # Lightning builds SWALR with last_epoch set to the epochs of the fit (BatchNorm epoch
        # included) for "cos"; it only shows in the scheduler's state, kept equal here.
        assert self._max_epochs is not None
        epochs = self._max_epochs + int(self._contains_batch_norm)
        scheduler = SWALR(
            optimizer,
            swa_lr=cast(float, lrs),  # SWALR takes one rate or one per group
            anneal_epochs=self._annealing_epochs,
            anneal_strategy=self._annealing_strategy,
            last_epoch=epochs if self._annealing_strategy == "cos" else -1,
        )
        if self._scheduler_state is not None:
            scheduler.load_state_dict(self._scheduler_state)
        elif trainer.current_epoch != self.swa_start:
            rank_zero_warn(
                "StochasticWeightAveraging starts after `swa_start` without a saved SWALR state "
                "(was the checkpoint written by another version?): the learning rate anneals anew."
            )
        self._swa_scheduler = scheduler
        config = LRSchedulerConfig(scheduler)
        configs = trainer.lr_scheduler_configs
        if configs:
            old = configs[0]
            if old.interval != "epoch" or old.frequency != 1:
                rank_zero_warn(
                    "StochasticWeightAveraging steps SWALR once per epoch; the scheduler it "
                    f"replaces stepped with interval={old.interval!r}, frequency={old.frequency}."
                )
            old_name, new_name = type(old.scheduler).__name__, type(scheduler).__name__
            rank_zero_info(f"Swapping scheduler `{old_name}` for `{new_name}`")
            configs[0] = config
        else:
            configs.append(config)

    def _start_batch_norm_epoch(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Load the averaged weights and prepare one pass that only recomputes BatchNorm stats."""
        assert self._average_model is not None
        self.transfer_weights(self._average_model.module, pl_module)
        self.reset_batch_norm_and_save_state(pl_module)
        # One optimizer step for the whole pass, as in Lightning, so global_step grows by one.
        self._accumulate_grad_batches = trainer.accumulate_grad_batches
        self._undone_step = trainer.global_step
        batches = trainer.num_training_batches
        trainer.accumulate_grad_batches = int(batches) if batches != float("inf") else 2**31 - 1


def _check_arguments(
    swa_lrs: Any,
    swa_epoch_start: Any,
    annealing_epochs: Any,
    annealing_strategy: Any,
    avg_fn: Any,
) -> None:
    def is_positive(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0

    start_is_int = isinstance(swa_epoch_start, int) and not isinstance(swa_epoch_start, bool)
    if not (
        (start_is_int and swa_epoch_start >= 1)
        or (isinstance(swa_epoch_start, float) and 0 <= swa_epoch_start <= 1)
    ):
        raise MisconfigurationException(
            f"StochasticWeightAveraging(swa_epoch_start={swa_epoch_start!r}) is invalid: expected "
            "an int >= 1 (the epoch, counted from 1) or a float in [0, 1] (a fraction of "
            "max_epochs)."
        )
    lrs_ok = is_positive(swa_lrs) or (
        isinstance(swa_lrs, list) and bool(swa_lrs) and all(is_positive(lr) for lr in swa_lrs)
    )
    if not lrs_ok:
        raise MisconfigurationException(
            f"StochasticWeightAveraging(swa_lrs={swa_lrs!r}) is invalid: expected a positive "
            "float, or a list of positive floats, one per parameter group."
        )
    if isinstance(annealing_epochs, bool) or not isinstance(annealing_epochs, int):
        raise MisconfigurationException(
            f"StochasticWeightAveraging(annealing_epochs={annealing_epochs!r}) is invalid: "
            "expected an int >= 0."
        )
    if annealing_epochs < 0:
        raise MisconfigurationException(
            f"StochasticWeightAveraging(annealing_epochs={annealing_epochs!r}) is invalid: "
            "expected an int >= 0."
        )
    if annealing_strategy not in ("cos", "linear"):
        raise MisconfigurationException(
            f"StochasticWeightAveraging(annealing_strategy={annealing_strategy!r}) is invalid: "
            "expected 'cos' or 'linear'."
        )
    if avg_fn is not None and not callable(avg_fn):
        raise MisconfigurationException(
            f"StochasticWeightAveraging(avg_fn={avg_fn!r}) is invalid: expected a function "
            "`avg_fn(averaged, current, num_averaged) -> Tensor`."
        )


def _averaged_model(
    pl_module: LightningModule, trainer: Trainer, device: torch.device | None, avg_fn: _AVG_FN
) -> AveragedModel:
    """Wrap a copy of `pl_module` in an `AveragedModel`, leaving the trainer out of the copy."""
    # AveragedModel deep-copies the model it is given, and copying an attached LightningModule
    # would copy its Trainer too. So the copy is made here, with the trainer cut out.
    averaged = AveragedModel(nn.Module(), device=device, avg_fn=avg_fn)
    copied = copy.deepcopy(pl_module, {id(trainer): None})
    averaged.module = copied if device is None else copied.to(device)
    return averaged
