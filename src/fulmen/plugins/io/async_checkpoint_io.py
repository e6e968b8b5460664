"""Write checkpoints in a background thread, so training does not wait for the disk.

The caller's thread copies every tensor of the checkpoint to host memory (training may then change
the parameters freely) and hands the copy to a single writer thread. Only one write is in flight:
the next save waits for it. Removing another file while a write is in flight is queued behind the
write on the same thread, so an older checkpoint is never deleted before the newer one is written
(and not at all if that write fails). A failed write or removal is raised by the next call or by
`teardown()`.
"""

from __future__ import annotations

import copy
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from fulmen.plugins.io.checkpoint_io import CheckpointIO, TorchCheckpointIO

__all__ = ["AsyncCheckpointIO"]

_IMMUTABLE = (str, bytes, int, float, complex, bool, type(None), torch.dtype, torch.device)


class AsyncCheckpointIO(CheckpointIO):
    """Save checkpoints through `checkpoint_io` (default `TorchCheckpointIO`) in a background thread.

    Example::

        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
        >>> io = AsyncCheckpointIO()
        >>> weights = torch.zeros(2)
        >>> io.save_checkpoint({"w": weights}, path)
        >>> weights += 1  # training goes on; the file gets the values at the time of the call
        >>> io.teardown()  # wait for the write
        >>> io.load_checkpoint(path)["w"]
        tensor([0., 0.])
    """

    def __init__(self, checkpoint_io: CheckpointIO | None = None) -> None:
        self._checkpoint_io: CheckpointIO | None = None
        if checkpoint_io is not None:
            self.checkpoint_io = checkpoint_io
        self._executor: ThreadPoolExecutor | None = None
        # The last task handed to the writer thread; it finishes after every earlier one.
        self._pending: Future[None] | None = None
        self._pending_paths: set[str] = set()

    @property
    def checkpoint_io(self) -> CheckpointIO:
        """The plugin that does the writing, loading and removing."""
        if self._checkpoint_io is None:
            self._checkpoint_io = TorchCheckpointIO()
        return self._checkpoint_io

    @checkpoint_io.setter
    def checkpoint_io(self, io: CheckpointIO) -> None:
        if isinstance(io, AsyncCheckpointIO):
            raise ValueError(
                "AsyncCheckpointIO(checkpoint_io=AsyncCheckpointIO(...)) is invalid: one "
                "background writer is enough. Pass the inner CheckpointIO instead."
            )
        if not isinstance(io, CheckpointIO):
            raise TypeError(
                f"AsyncCheckpointIO(checkpoint_io={io!r}) is invalid: expected a CheckpointIO."
            )
        self._checkpoint_io = io

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        """Copy `checkpoint` to host memory now and write it to `path` in the background."""
        self._wait()
        snapshot = _snapshot(checkpoint, {}, {})
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fulmen-ckpt")
        self._pending = self._executor.submit(
            self._save_in_background, snapshot, path, storage_options
        )
        self._pending_paths = {_key(path)}

    def load_checkpoint(
        self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Read `path`, after its pending write (if any) has finished."""
        self._wait(path)
        return self.checkpoint_io.load_checkpoint(
            path, map_location=map_location, weights_only=weights_only
        )

    def remove_checkpoint(self, path: str | Path) -> None:
        """Delete `path` once the pending write has finished; a failed write keeps the file.

        A removal of the file being written waits for the write; any other removal is queued
        behind it and this call returns at once.
        """
        pending = self._pending
        if pending is None or pending.done() or _key(path) in self._pending_paths:
            self._wait()
            self.checkpoint_io.remove_checkpoint(path)
            return
        assert self._executor is not None
        self._pending = self._executor.submit(self._remove_after, pending, path)
        self._pending_paths.add(_key(path))

    def teardown(self) -> None:
        """Wait for the pending write, stop the writer thread and raise the write's error if any."""
        try:
            self._wait()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
        self.checkpoint_io.teardown()

    def _save_in_background(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None
    ) -> None:
        try:
            self.checkpoint_io.save_checkpoint(checkpoint, path, storage_options=storage_options)
        except BaseException as error:
            _add_note(error, f"AsyncCheckpointIO: writing the checkpoint {_key(path)!r} failed.")
            raise

    def _remove_after(self, write: Future[None], path: str | Path) -> None:
        # The single writer thread runs tasks in order, so `write` has finished by now.
        failed_write = write.exception()
        if failed_write is not None:
            raise failed_write  # keep the older file: the newer one was not written
        try:
            self.checkpoint_io.remove_checkpoint(path)
        except BaseException as error:
            _add_note(error, f"AsyncCheckpointIO: removing the checkpoint {_key(path)!r} failed.")
            raise

    def _wait(self, path: str | Path | None = None) -> None:
        """Wait for the pending tasks (only if one targets `path`, when given); raise an error."""
        pending = self._pending
        if pending is None:
            return
        if path is not None and _key(path) not in self._pending_paths and not pending.done():
            return
        self._pending = None
        self._pending_paths = set()
        error = pending.exception()
        if error is not None:
            raise error


def _add_note(error: BaseException, note: str) -> None:
    add_note = getattr(error, "add_note", None)  # Python 3.11+
    if add_note is not None:
        add_note(note)


def _key(path: str | Path) -> str:
    text = os.fspath(path)
    return text if "://" in text else os.path.abspath(text)


def _snapshot(value: Any, storages: dict[Any, Any], memo: dict[int, Any]) -> Any:
    """Copy `value`'s containers and tensors, so later changes to the originals do not show."""
    if isinstance(value, torch.Tensor):
        return _snapshot_tensor(value, storages)
    if isinstance(value, _IMMUTABLE):
        return value
    if id(value) in memo:
        # The same container twice (or inside itself) stays one object, as torch.save keeps it.
        return memo[id(value)]
    if isinstance(value, tuple):
        items = [_snapshot(item, storages, memo) for item in value]
        is_named = hasattr(value, "_fields")
        result: Any = type(value)(*items) if is_named else type(value)(items)
    elif isinstance(value, (dict, list)):
        result = copy.copy(value)  # keeps the type: OrderedDict, defaultdict's factory, ...
        memo[id(value)] = result
        keys = result.keys() if isinstance(result, dict) else range(len(result))
        for key in list(keys):
            result[key] = _snapshot(result[key], storages, memo)
    elif isinstance(value, (set, frozenset)):
        result = copy.copy(value)
    else:
        try:
            result = copy.deepcopy(value)
        except Exception:
            # Not copyable (it holds a lock, a file, ...): it is written as it is at write time.
            result = value
    memo[id(value)] = result
    return result


def _snapshot_tensor(tensor: torch.Tensor, storages: dict[Any, Any]) -> torch.Tensor:
    data = tensor.detach()
    is_plain = (
        type(tensor) in (torch.Tensor, torch.nn.Parameter)
        and data.layout == torch.strided
        and not (data.is_quantized or data.is_meta or data.is_conj() or data.is_neg())
    )
    if not is_plain:
        return data.to("cpu", copy=True)
    storage = data.untyped_storage()
    key = (data.device, storage.data_ptr(), storage.nbytes())
    host = storages.get(key)
    if host is None:
        # Copy whole storages, once each: tensors that share memory (tied weights, views) keep
        # sharing it in the copy, so the file is no larger than a direct save would write.
        on_host = data.device.type == "cpu"
        host = storage.clone() if on_host else storage.cpu()  # type: ignore[no-untyped-call]
        storages[key] = host
    copied = torch.empty(0, dtype=data.dtype).set_(
        host, data.storage_offset(), data.size(), data.stride()
    )
    if isinstance(tensor, torch.nn.Parameter):
        return torch.nn.Parameter(copied, requires_grad=tensor.requires_grad)
    return copied
