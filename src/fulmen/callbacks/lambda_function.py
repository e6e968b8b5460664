"""`LambdaCallback`: a callback made of plain functions, one per hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fulmen.callbacks.callback import Callback

__all__ = ["LambdaCallback"]

# Every hook of `Callback`; the state methods are not hooks and cannot be replaced here.
_HOOK_NAMES = frozenset(
    name
    for name, member in vars(Callback).items()
    if callable(member)
    and not name.startswith("_")
    and name not in ("state_dict", "load_state_dict")
)


class LambdaCallback(Callback):
    """Build a callback from functions given by hook name; each gets the hook's arguments.

    Example:
        >>> seen = []
        >>> callback = LambdaCallback(on_train_epoch_end=lambda trainer, pl_module: seen.append(1))
        >>> callback.on_train_epoch_end(None, None)
        >>> seen
        [1]
        >>> LambdaCallback(on_epoch_end=print)
        Traceback (most recent call last):
        ...
        TypeError: LambdaCallback(on_epoch_end=...) is not a Callback hook. Hooks are named like 'on_train_epoch_end'; see fulmen.Callback for the full list.
    """

    def __init__(self, **hooks: Callable[..., Any] | None) -> None:
        for name, function in hooks.items():
            if name not in _HOOK_NAMES:
                raise TypeError(
                    f"LambdaCallback({name}=...) is not a Callback hook. Hooks are named like "
                    "'on_train_epoch_end'; see fulmen.Callback for the full list."
                )
            if function is None:
                continue
            if not callable(function):
                raise TypeError(
                    f"LambdaCallback({name}={function!r}) is invalid: expected a function."
                )
            # An instance attribute shadows the no-op method, so the function is called unbound.
            setattr(self, name, function)
