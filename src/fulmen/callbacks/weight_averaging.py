"""Weight averaging during training: an `AveragedModel` follows the weights after optimizer steps.

The averaged weights stand in for the trained ones during validation and replace them when
training ends; checkpoints hold them under `state_dict` (what `load_from_checkpoint` reads) and
the trained weights under `current_model_state`, so a resumed fit continues both.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn

from fulmen.callbacks.callback import Callback
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.rank_zero import rank_zero_info, rank_zero_warn

if TYPE_CHECKING:
    from fulmen.core.module import LightningModule
    from fulmen.trainer.trainer import Trainer
    from fulmen.utilities.types import STEP_OUTPUT

__all__ = ["EMAWeightAveraging", "WeightAveraging"]

_DEVICE = torch.device | str | int | None
_AVERAGED_MODEL_KWARGS = ("avg_fn", "multi_avg_fn")


class WeightAveraging(Callback):
    """Average the weights after optimizer steps; validate with the average and end with it.

    Extra keyword arguments (`avg_fn` or `multi_avg_fn`) go to
    `torch.optim.swa_utils.AveragedModel`; without them the average is the plain mean of every
    update (SWA). Unlike `AveragedModel`, `use_buffers` defaults to True, so BatchNorm statistics
    are averaged too. `device=None` keeps the average next to the model. Override
    `should_update` to choose when to update.

    Example:
        >>> from torch.optim.swa_utils import get_ema_avg_fn
        >>> class EveryOtherStep(WeightAveraging):
        ...     def should_update(self, step_idx=None, epoch_idx=None):
        ...         return step_idx is not None and step_idx % 2 == 0
        >>> callback = EveryOtherStep(avg_fn=get_ema_avg_fn(0.9))
        >>> callback.should_update(step_idx=4), callback.should_update(epoch_idx=0)
        (True, False)
    """

    def __init__(self, device: _DEVICE = None, use_buffers: bool = True, **kwargs: Any) -> None:
        if device is not None:
            try:
                torch.device(device)
            except (RuntimeError, TypeError) as error:
                raise MisconfigurationException(
                    f"{type(self).__name__}(device={device!r}) is invalid: expected None, a "
                    "torch.device, a device string such as 'cpu' or 'cuda:0', or a device index."
                ) from error
        unknown = sorted(set(kwargs) - set(_AVERAGED_MODEL_KWARGS))
        if unknown:
            raise MisconfigurationException(
                f"{type(self).__name__} got unknown keyword arguments {unknown}: only "
                f"{list(_AVERAGED_MODEL_KWARGS)} are passed on to `AveragedModel`."
            )
        for name, value in kwargs.items():
            if value is not None and not callable(value):
                raise MisconfigurationException(
                    f"{type(self).__name__}({name}={value!r}) is invalid: expected a function."
                )
        self._device = device
        self._use_buffers = use_buffers
        self._kwargs = kwargs
        self._average_model: AveragedModel | None = None
        self._latest_update_step = 0  # the global_step of the last step update (checkpointed)
        self._latest_update_epoch = -1
        self._latest_checked_step = 0  # so `should_update` is asked once per optimizer step

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        """Whether to update the average after step `step_idx` or epoch `epoch_idx` (0-based).

        Called after every optimizer step with `step_idx` and after every training epoch with
        `epoch_idx`; the default updates after every step.
        """
        return step_idx is not None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        from fulmen.trainer.call import is_overridden

        if is_overridden("configure_model", pl_module):
            # The copy is taken before the trainer calls configure_model, so call it here to have
            # every layer in the average; it runs outside any sharding strategy.
            rank_zero_warn(
                f"{type(self).__name__} calls `configure_model()` itself to copy the full model "
                "before training; sharded models cannot be averaged."
            )
            pl_module.configure_model()
        self._average_model = _averaged_model(
            pl_module, trainer, self._device, use_buffers=self._use_buffers, **self._kwargs
        )
        # A new fit starts counting afresh; resuming restores the counter in `load_state_dict`.
        self._latest_update_step = self._latest_checked_step = 0
        self._latest_update_epoch = -1

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # The copy was taken in `setup`, before the strategy moved the model to its device.
        if self._average_model is not None and self._device is None:
            self._average_model.to(pl_module.device)

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
    ) -> None:
        step = trainer.global_step
        # With gradient accumulation several batches end on the same optimizer step.
        if self._average_model is None or step <= self._latest_checked_step:
            return
        self._latest_checked_step = step
        if self.should_update(step_idx=step - 1):
            self._average_model.update_parameters(pl_module)
            self._latest_update_step = step

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch
        if self._average_model is None or epoch <= self._latest_update_epoch:
            return
        if self.should_update(epoch_idx=epoch):
            self._average_model.update_parameters(pl_module)
            self._latest_update_epoch = epoch

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._average_model is None:
            return
        if not self._has_average():
            rank_zero_warn(
                f"{type(self).__name__} never updated its average (`should_update` never returned "
                "True), so the model keeps its trained weights."
            )
            return
        _copy_state(self._average_model.module, pl_module)

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._swaps_for_validation(trainer):
            self._swap(pl_module)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._swaps_for_validation(trainer):
            self._swap(pl_module)

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._average_model is None:
            return
        checkpoint["current_model_state"] = checkpoint["state_dict"]
        if self._has_average():
            checkpoint["state_dict"] = dict(self._average_model.module.state_dict())
        checkpoint["averaging_state"] = {
            key: value
            for key, value in self._average_model.state_dict().items()
            if not key.startswith("module.")
        }

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._average_model is None:
            return
        strict = pl_module.strict_loading
        self._average_model.module.load_state_dict(checkpoint["state_dict"], strict=strict)
        if "current_model_state" in checkpoint:
            rank_zero_info(
                "The checkpoint holds `current_model_state`: the model resumes from those weights "
                "and the average from `state_dict`."
            )
            pl_module.load_state_dict(checkpoint["current_model_state"], strict=strict)
            self._average_model.load_state_dict(checkpoint.get("averaging_state", {}), strict=False)
        else:
            rank_zero_warn(
                f"The checkpoint was not written with {type(self).__name__}: both the model and "
                "its average start from its `state_dict`."
            )

    def state_dict(self) -> dict[str, Any]:
        return {"latest_update_step": self._latest_update_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._latest_update_step = int(state_dict["latest_update_step"])
        self._latest_checked_step = self._latest_update_step

    def _has_average(self) -> bool:
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def _swaps_for_validation(self, trainer: Trainer) -> bool:
        # Before the first update the "average" is only the initial copy: validate the model.
        return trainer.state.fn == "fit" and self._has_average()

    def _swap(self, pl_module: LightningModule) -> None:
        assert self._average_model is not None
        for average, current in zip(
            _state_tensors(self._average_model.module), _state_tensors(pl_module)
        ):
            kept = current.detach().clone()
            current.detach().copy_(average.detach())
            average.detach().copy_(kept)


class EMAWeightAveraging(WeightAveraging):
    """Keep an exponential moving average of the weights: `avg = decay * avg + (1 - decay) * w`.

    Updates after every `update_every_n_steps`-th optimizer step (0-based step index divisible by
    it), from step `update_starting_at_step` on when given. With `update_starting_at_epoch`, the
    average is also updated at the end of every epoch from that epoch on.

    Example:
        >>> ema = EMAWeightAveraging(decay=0.99, update_every_n_steps=2, update_starting_at_step=3)
        >>> [step for step in range(8) if ema.should_update(step_idx=step)]
        [4, 6]
    """

    def __init__(
        self,
        device: _DEVICE = None,
        use_buffers: bool = True,
        decay: float = 0.999,
        update_every_n_steps: int = 1,
        update_starting_at_step: int | None = None,
        update_starting_at_epoch: int | None = None,
    ) -> None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay <= 1:
            raise ValueError(
                f"EMAWeightAveraging(decay={decay!r}) is invalid: expected a number in [0, 1]."
            )
        _check_count("update_every_n_steps", update_every_n_steps, minimum=1)
        _check_count("update_starting_at_step", update_starting_at_step, minimum=0)
        _check_count("update_starting_at_epoch", update_starting_at_epoch, minimum=0)
        ema = get_ema_avg_fn(decay)  # type: ignore[no-untyped-call]
        super().__init__(device=device, use_buffers=use_buffers, avg_fn=ema)
        self.decay = decay
        self.update_every_n_steps = update_every_n_steps
        self.update_starting_at_step = update_starting_at_step
        self.update_starting_at_epoch = update_starting_at_epoch

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        """Whether to update after step `step_idx` or at the end of epoch `epoch_idx`."""
        if step_idx is not None:
            started = (
                self.update_starting_at_step is None or step_idx >= self.update_starting_at_step
            )
            return started and step_idx % self.update_every_n_steps == 0
        if epoch_idx is not None:
            start = self.update_starting_at_epoch
            return start is not None and epoch_idx >= start
        return False


def _check_count(name: str, value: int | None, minimum: int) -> None:
    if value is None and name != "update_every_n_steps":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = f"an int >= {minimum}" + ("" if name == "update_every_n_steps" else " or None")
        raise ValueError(f"EMAWeightAveraging({name}={value!r}) is invalid: expected {allowed}.")


def _averaged_model(
    pl_module: LightningModule,
    trainer: Trainer,
    device: _DEVICE,
    use_buffers: bool,
    **kwargs: Callable[..., Any] | None,
) -> AveragedModel:
    """Wrap a copy of `pl_module` in an `AveragedModel`, leaving the trainer out of the copy."""
    # AveragedModel deep-copies the model it is given, and copying an attached LightningModule
    # would copy its Trainer too. So the copy is made here, with the trainer cut out.
    target = torch.device(device) if isinstance(device, str) else device
    averaged = AveragedModel(nn.Module(), device=target, use_buffers=use_buffers, **kwargs)
    copied = copy.deepcopy(pl_module, {id(trainer): None})
    averaged.module = copied if target is None else copied.to(target)
    return averaged


def _state_tensors(module: nn.Module) -> itertools.chain[Tensor]:
    return itertools.chain(module.parameters(), module.buffers())


def _copy_state(source: nn.Module, target: nn.Module) -> None:
    """Copy the parameters and buffers of `source` into `target`, in place."""
    for src, dst in zip(_state_tensors(source), _state_tensors(target)):
        dst.detach().copy_(src.detach())
