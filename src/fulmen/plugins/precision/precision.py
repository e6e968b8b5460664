"""Precision plugins: the dtype the model computes in, and gradient scaling for float16."""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from fulmen.utilities.exceptions import MisconfigurationException

__all__ = ["DoublePrecision", "HalfPrecision", "MixedPrecision", "Precision"]

_NULL = nullcontext()


class Precision:
    """Full float32 precision: the default, which changes nothing."""

    precision: str = "32-true"

    def convert_module(self, module: nn.Module) -> nn.Module:
        """Cast the module's parameters for this precision."""
        return module

    def forward_context(self) -> Any:
        """The context that steps run in (autocast for mixed precision)."""
        return _NULL

    def convert_input(self, data: Any) -> Any:
        return data

    def pre_backward(self, tensor: Tensor) -> Tensor:
        """Scale the loss before backward (mixed float16 only)."""
        return tensor

    def optimizer_step(
        self, optimizer: Optimizer, closure: Callable[[], Any], **kwargs: Any
    ) -> Any:
        """Step `optimizer`, running `closure` inside the step."""
        return optimizer.step(closure=closure, **kwargs)

    def unscale_gradients(self, optimizer: Optimizer) -> None:
        """Bring gradients back to their true scale before clipping (mixed float16 only)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the state returned by `state_dict`."""

    @contextmanager
    def module_init_context(self) -> Generator[None]:
        yield


class DoublePrecision(Precision):
    """float64 everywhere: parameters and inputs are cast to double."""

    precision = "64-true"

    def convert_module(self, module: nn.Module) -> nn.Module:
        return module.double()

    @contextmanager
    def module_init_context(self) -> Generator[None]:
        with _default_dtype(torch.float64):
            yield

    def convert_input(self, data: Any) -> Any:
        from fulmen.utilities.apply_func import apply_to_collection

        return apply_to_collection(
            data, Tensor, lambda t: t.double() if t.is_floating_point() else t
        )


class HalfPrecision(Precision):
    """Parameters and compute in float16 or bfloat16 ("16-true" / "bf16-true")."""

    def __init__(self, precision: str = "16-true") -> None:
        if precision not in ("16-true", "bf16-true"):
            raise MisconfigurationException(
                f"HalfPrecision(precision={precision!r}) is invalid: expected '16-true' or 'bf16-true'."
            )
        self.precision = precision
        self._dtype = torch.bfloat16 if precision == "bf16-true" else torch.float16

    def convert_module(self, module: nn.Module) -> nn.Module:
        return module.to(dtype=self._dtype)

    @contextmanager
    def module_init_context(self) -> Generator[None]:
        with _default_dtype(self._dtype):
            yield

    def convert_input(self, data: Any) -> Any:
        from fulmen.utilities.apply_func import apply_to_collection

        dtype = self._dtype
        return apply_to_collection(
            data, Tensor, lambda t: t.to(dtype) if t.is_floating_point() else t
        )


class MixedPrecision(Precision):
    """Autocast to float16/bfloat16 with float32 weights; float16 also scales the loss."""

    def __init__(
        self, precision: str, device: str, scaler: torch.amp.GradScaler | None = None
    ) -> None:
        if precision not in ("16-mixed", "bf16-mixed"):
            raise MisconfigurationException(
                f"MixedPrecision(precision={precision!r}) is invalid: expected '16-mixed' or "
                "'bf16-mixed'."
            )
        if precision == "16-mixed" and scaler is None and device == "cuda":
            scaler = torch.amp.GradScaler("cuda")
        self.precision = precision
        self.device = device
        self.scaler = scaler
        self._dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16

    def forward_context(self) -> Any:
        return torch.autocast(self.device, dtype=self._dtype)

    def pre_backward(self, tensor: Tensor) -> Tensor:
        return self.scaler.scale(tensor) if self.scaler is not None else tensor

    def optimizer_step(
        self, optimizer: Optimizer, closure: Callable[[], Any], **kwargs: Any
    ) -> Any:
        if self.scaler is None:
            return optimizer.step(closure=closure, **kwargs)
        # GradScaler cannot step with a closure: run it first, then unscale, step and update.
        result = closure()
        self.scaler.step(optimizer, **kwargs)
        self.scaler.update()
        return result

    def unscale_gradients(self, optimizer: Optimizer) -> None:
        if self.scaler is None:
            return
        state = self.scaler._per_optimizer_states[id(optimizer)]
        if state["stage"].name != "UNSCALED":
            self.scaler.unscale_(optimizer)

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.scaler is not None and state_dict:
            self.scaler.load_state_dict(state_dict)


@contextmanager
def _default_dtype(dtype: torch.dtype) -> Generator[None]:
    """Create parameters directly in `dtype` (`Trainer.init_module`), as Lightning does."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
