"""Count the floating point operations of a forward (and backward) pass."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

__all__ = ["measure_flops"]


def measure_flops(
    model: nn.Module,
    forward_fn: Callable[[], Tensor],
    loss_fn: Callable[[Tensor], Tensor] | None = None,
) -> int:
    """Return the FLOPs of `forward_fn()`, plus the backward pass of `loss_fn(output)` if given.

    Build the model and its input on the meta device (`with torch.device("meta"):`) to count
    without allocating memory or computing anything.

    Example:
        >>> import torch
        >>> with torch.device("meta"):
        ...     net = nn.Linear(32, 64)
        ...     x = torch.randn(8, 32)
        >>> measure_flops(net, lambda: net(x))
        32768
    """
    # Imported here: the counter pulls in torch's operator registrations, which a plain
    # `import fulmen` does not need.
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        if loss_fn is None:
            forward_fn()
        else:
            loss_fn(forward_fn()).backward()  # type: ignore[no-untyped-call]
    return counter.get_total_flops()
