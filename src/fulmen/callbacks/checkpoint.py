"""The `Checkpoint` base class: the marker the Trainer uses to find checkpointing callbacks."""

from __future__ import annotations

from fulmen.callbacks.callback import Callback

__all__ = ["Checkpoint"]


class Checkpoint(Callback):
    """Base class for callbacks that write checkpoints.

    The Trainer runs `Checkpoint` subclasses after every other callback, so that the state they
    save includes what the other callbacks did in the same hook.

    Example:
        >>> class SaveEveryEpoch(Checkpoint):
        ...     def on_train_epoch_end(self, trainer, pl_module):
        ...         trainer.save_checkpoint(f"epoch{trainer.current_epoch}.ckpt")
        >>> isinstance(SaveEveryEpoch(), Checkpoint)
        True
    """
