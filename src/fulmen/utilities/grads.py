"""Gradient norms per parameter, named the way Lightning logs them."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["grad_norm"]


def grad_norm(
    module: nn.Module, norm_type: float | int | str, group_separator: str = "/"
) -> dict[str, Tensor]:
    """Return the `norm_type`-norm of each parameter's gradient and of all of them together.

    Keys are `grad_{norm}_norm{group_separator}{parameter name}` and `grad_{norm}_norm_total`,
    where `{norm}` is `norm_type` as a float (`2.0`) or `inf`. Parameters without a gradient are
    left out; with no gradients at all the result is empty. Call it in `on_before_optimizer_step`
    and pass the result to `self.log_dict`.

    Example:
        >>> layer = torch.nn.Linear(2, 1, bias=False)
        >>> layer.weight.grad = torch.tensor([[3.0, 4.0]])
        >>> grad_norm(layer, 2)
        {'grad_2.0_norm/weight': tensor(5.), 'grad_2.0_norm_total': tensor(5.)}
    """
    try:
        norm = float(norm_type)
    except ValueError:
        raise ValueError(
            f"grad_norm(norm_type={norm_type!r}) is invalid: expected a positive number or 'inf'."
        ) from None
    if norm <= 0:
        raise ValueError(
            f"grad_norm(norm_type={norm_type!r}) is invalid: expected a positive number or 'inf'."
        )
    norms = {
        f"grad_{norm}_norm{group_separator}{name}": torch.linalg.vector_norm(
            param.grad.detach(), ord=norm
        )
        for name, param in module.named_parameters()
        if param.grad is not None
    }
    if norms:
        # The norm of the per-parameter norms equals the norm over all gradient entries at once.
        total = torch.linalg.vector_norm(torch.stack(list(norms.values())), ord=norm)
        norms[f"grad_{norm}_norm_total"] = total
    return norms
