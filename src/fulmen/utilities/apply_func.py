"""Apply a function to every tensor inside a nested batch (lists, tuples, dicts, dataclasses)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["apply_to_collection", "move_data_to_device"]


def apply_to_collection(
    data: Any, dtype: type | tuple[type, ...], function: Callable[..., Any]
) -> Any:
    """Return `data` with `function` applied to every element of type `dtype`, keeping the shape.

    Example:
        >>> apply_to_collection({"a": [1, 2], "b": (3, "x")}, int, lambda v: v * 10)
        {'a': [10, 20], 'b': (30, 'x')}
    """
    if isinstance(data, dtype):
        return function(data)
    if isinstance(data, Mapping):
        return type(data)(  # type: ignore[call-arg]
            {k: apply_to_collection(v, dtype, function) for k, v in data.items()}
        )
    if isinstance(data, tuple) and hasattr(data, "_fields"):  # namedtuple
        return type(data)(*(apply_to_collection(v, dtype, function) for v in data))
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        values = [apply_to_collection(v, dtype, function) for v in data]
        return values if isinstance(data, list) else type(data)(values)  # type: ignore[call-arg]
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        changes = {
            f.name: apply_to_collection(getattr(data, f.name), dtype, function)
            for f in dataclasses.fields(data)
            if f.init
        }
        return dataclasses.replace(data, **changes)
    return data


def move_data_to_device(batch: Any, device: torch.device | str | int) -> Any:
    """Move every tensor (and anything with a `.to()` method) in `batch` to `device`.

    Example:
        >>> move_data_to_device({"x": torch.zeros(1)}, "cpu")["x"].device
        device(type='cpu')
    """
    device = torch.device(device) if not isinstance(device, torch.device) else device

    def move(tensor: Tensor) -> Tensor:
        # Copies to the GPU overlap with compute only when the host memory is pinned.
        non_blocking = device.type == "cuda" and tensor.device.type == "cpu" and tensor.is_pinned()
        return tensor.to(device, non_blocking=non_blocking)

    return apply_to_collection(batch, Tensor, move)
