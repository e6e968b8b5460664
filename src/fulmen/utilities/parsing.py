"""Hyperparameter containers and reading an `__init__`'s arguments from its frame.

`LightningModule.save_hyperparameters()` uses these to find what the user's constructor was
called with; it owns the saving itself.
"""

from __future__ import annotations

import inspect
import pickle
from types import FrameType
from typing import Any

__all__ = ["AttributeDict", "collect_init_args", "get_init_args", "is_picklable"]


class AttributeDict(dict[Any, Any]):
    """Hold hyperparameters as a dict whose keys are also attributes.

    Example:
        >>> hparams = AttributeDict(lr=0.1, batch_size=32)
        >>> hparams.lr
        0.1
        >>> hparams.depth = 3
        >>> hparams["depth"]
        3
        >>> print(hparams)
        "batch_size": 32
        "depth":      3
        "lr":         0.1
    """

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError as missing:
            raise AttributeError(
                f"'{type(self).__name__}' object has no attribute '{key}'"
            ) from missing

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        try:
            del self[key]
        except KeyError as missing:
            raise AttributeError(
                f"'{type(self).__name__}' object has no attribute '{key}'"
            ) from missing

    def __repr__(self) -> str:
        if not self:
            return ""
        # One row per key, values aligned in a column, keys sorted so that the text is stable.
        labels = {key: f'"{key}":' for key in sorted(self, key=str)}
        width = max(len(label) for label in labels.values())
        return "\n".join(f"{label:<{width}} {self[key]}" for key, label in labels.items())


def _init_frame_self(frame: FrameType) -> Any:
    """Return the object an `__init__` frame is building, or None when `frame` is no `__init__`."""
    code = frame.f_code
    if code.co_name != "__init__" or code.co_argcount == 0:
        return None
    return frame.f_locals.get(code.co_varnames[0])


def get_init_args(frame: FrameType) -> dict[str, Any]:
    """Return the arguments of the `__init__` running in `frame`, as their current local values.

    `self` and `*args` are left out; the contents of `**kwargs` are merged in.

    Example:
        >>> import inspect
        >>> class Net:
        ...     def __init__(self, width, *extra, depth=2, **options):
        ...         self.args = get_init_args(inspect.currentframe())
        >>> Net(8, "x", act="relu").args
        {'width': 8, 'depth': 2, 'act': 'relu'}
    """
    code = frame.f_code
    local_vars = frame.f_locals
    n_named = code.co_argcount + code.co_kwonlyargcount
    names = list(code.co_varnames[:n_named])
    varargs_name = code.co_varnames[n_named] if code.co_flags & inspect.CO_VARARGS else None
    kwargs_index = n_named + (1 if varargs_name is not None else 0)
    kwargs_name = code.co_varnames[kwargs_index] if code.co_flags & inspect.CO_VARKEYWORDS else None
    # The first positional argument of an `__init__` is the object being built.
    if code.co_name == "__init__" and code.co_argcount > 0:
        names = names[1:]
    args = {name: local_vars[name] for name in names if name in local_vars}
    if kwargs_name is not None:
        args.update(local_vars.get(kwargs_name, {}))
    return args


def collect_init_args(
    frame: FrameType,
    path_args: list[dict[str, Any]],
    inside: bool = False,
    classes: tuple[type, ...] = (),
) -> list[dict[str, Any]]:
    """Append the arguments of each `__init__` in the chain building one object, innermost first.

    Walks out from `frame`: frames before the first `__init__` are skipped unless `inside` is
    True, then every enclosing `__init__` call on the same object (a subclass calling
    `super().__init__`) contributes its arguments. With `classes`, only objects that are instances
    of them count. Later entries come from subclasses, so merge them in order to let those win.

    Example:
        >>> import inspect
        >>> class Base:
        ...     def __init__(self, a, **kwargs):
        ...         self.chain = collect_init_args(inspect.currentframe(), [])
        >>> class Child(Base):
        ...     def __init__(self, b, **kwargs):
        ...         super().__init__(a=1, **kwargs)
        >>> Child(2, c=3).chain
        [{'a': 1, 'c': 3}, {'b': 2, 'c': 3}]
    """
    owner: Any = None
    current: FrameType | None = frame
    while current is not None:
        obj = _init_frame_self(current)
        is_match = obj is not None and (not classes or isinstance(obj, classes))
        if owner is None and is_match:
            owner = obj
        if owner is not None and obj is owner:
            path_args.append(get_init_args(current))
        elif owner is not None or inside:
            break
        current = current.f_back
    return path_args


def is_picklable(obj: object) -> bool:
    """Return whether `obj` survives `pickle.dumps`.

    Example:
        >>> is_picklable(3), is_picklable(lambda: 3)
        (True, False)
    """
    try:
        pickle.dumps(obj)
    except (pickle.PickleError, AttributeError, RuntimeError, TypeError):
        return False
    return True
