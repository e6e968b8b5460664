"""Run or print only on global rank zero, so that N processes do not say the same thing N times."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

__all__ = [
    "rank_zero_debug",
    "rank_zero_deprecation",
    "rank_zero_info",
    "rank_zero_only",
    "rank_zero_warn",
    "LightningDeprecationWarning",
]

log = logging.getLogger("fulmen")
T = TypeVar("T")


class LightningDeprecationWarning(DeprecationWarning):
    """A fulmen API is deprecated."""


def _rank_from_env() -> int:
    # Set before the process group exists (torchrun, SLURM, fulmen's launcher), so this is right
    # even while the strategy is still being set up.
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    return 0


def rank_zero_only(fn: Callable[..., T]) -> Callable[..., T | None]:
    """Wrap `fn` so that it runs on global rank zero only and returns None elsewhere.

    Example:
        >>> @rank_zero_only
        ... def hello():
        ...     return "hi"
        >>> hello()
        'hi'
    """

    @wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> T | None:
        if rank_zero_only.rank == 0:  # type: ignore[attr-defined]
            return fn(*args, **kwargs)
        return None

    return wrapped


rank_zero_only.rank = _rank_from_env()  # type: ignore[attr-defined]


@rank_zero_only
def rank_zero_info(*args: Any, stacklevel: int = 4, **kwargs: Any) -> None:
    """Log at INFO level on rank zero."""
    log.info(*args, stacklevel=stacklevel, **kwargs)


@rank_zero_only
def rank_zero_debug(*args: Any, stacklevel: int = 4, **kwargs: Any) -> None:
    """Log at DEBUG level on rank zero."""
    log.debug(*args, stacklevel=stacklevel, **kwargs)


@rank_zero_only
def rank_zero_warn(
    message: str | Warning,
    category: type[Warning] = UserWarning,
    stacklevel: int = 4,
    **kwargs: Any,
) -> None:
    """Emit a warning on rank zero. Python's filter shows each message once per call site."""
    warnings.warn(message, category=category, stacklevel=stacklevel, **kwargs)


def rank_zero_deprecation(message: str | Warning, stacklevel: int = 5, **kwargs: Any) -> None:
    """Emit a `LightningDeprecationWarning` on rank zero."""
    rank_zero_warn(message, category=LightningDeprecationWarning, stacklevel=stacklevel, **kwargs)
