"""Whether all processes of a run see the same files under a path."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fulmen.strategies.strategy import Strategy

__all__ = ["is_shared_filesystem"]


def _is_local_path(path: str | Path) -> bool:
    text = str(path)
    return "://" not in text or text.startswith("file://")


def is_shared_filesystem(
    strategy: Strategy, path: str | Path | None = None, timeout: int = 3
) -> bool:
    """Return whether every process of `strategy` sees the same directory at `path` (default: cwd).

    Remote URLs (`s3://...`) count as shared, and so does any path in a single-process run.
    Otherwise global rank zero creates a marker file and the other ranks wait up to `timeout`
    seconds for it to appear. Every rank must call this, since it synchronises them.

    Example:
        >>> from types import SimpleNamespace
        >>> is_shared_filesystem(SimpleNamespace(world_size=1))
        True
    """
    if path is not None and not _is_local_path(path):
        return True
    if getattr(strategy, "world_size", 1) == 1:
        return True
    local_path = Path(Path.cwd() if path is None else path).resolve()
    # A path that differs between ranks cannot name one shared directory.
    rank_zero_path = strategy.broadcast(local_path)
    if not strategy.reduce_boolean_decision(rank_zero_path == local_path, all=True):
        return False
    if not strategy.reduce_boolean_decision(local_path.exists(), all=True):
        raise FileNotFoundError(
            f"is_shared_filesystem(path={str(local_path)!r}): the path does not exist on every rank."
        )
    marker = local_path / ".fulmen_shared_fs_check"
    with contextlib.suppress(OSError):
        marker.unlink()
    strategy.barrier()
    if strategy.is_global_zero:
        marker.touch()
        found = True
    else:
        deadline = time.monotonic() + timeout
        found = marker.exists()
        while not found and time.monotonic() < deadline:
            time.sleep(0.05)
            found = marker.exists()
    strategy.barrier()
    shared = strategy.reduce_boolean_decision(found, all=True)
    strategy.barrier()
    if strategy.is_global_zero:
        with contextlib.suppress(OSError):
            marker.unlink()
    return shared
