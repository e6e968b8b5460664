"""Where checkpoint dicts are written and read: local disks or any fsspec URL.

A crash (or SIGKILL) during a save or a removal leaves either the old checkpoint or the new one,
never a part of one: files are written under a temporary name and renamed into place. Every saved
checkpoint carries a checksum of its content (`fulmen.utilities.checksum`) that loading verifies.
Background writing lives in `async_checkpoint_io.py`.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, BinaryIO

import torch

from fulmen.core.saving import load_checkpoint_file
from fulmen.utilities.checksum import add_checksum, check_and_strip_checksum
from fulmen.utilities.exceptions import MisconfigurationException

__all__ = ["CheckpointIO", "TorchCheckpointIO", "XLACheckpointIO"]


class CheckpointIO(ABC):
    """Saves, loads and removes checkpoint files."""

    @abstractmethod
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        """Write `checkpoint` to `path`."""

    @abstractmethod
    def load_checkpoint(
        self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Read the checkpoint at `path`."""

    @abstractmethod
    def remove_checkpoint(self, path: str | Path) -> None:
        """Delete the checkpoint at `path`."""

    def teardown(self) -> None:
        """Finish pending work (for example background writes)."""


class TorchCheckpointIO(CheckpointIO):
    """Save with `torch.save` through fsspec, atomically and with a checksum; load safely.

    Example::

        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
        >>> io = TorchCheckpointIO()
        >>> io.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, path)
        >>> io.load_checkpoint(path)
        {'state_dict': {'w': tensor([1., 1.])}, 'epoch': 3}
        >>> io.remove_checkpoint(path)
        >>> os.path.exists(path)
        False
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        """Write `checkpoint` and its checksum to `path`, replacing any file there at once."""
        if storage_options is not None:
            raise TypeError(
                f"TorchCheckpointIO.save_checkpoint(storage_options={storage_options!r}) is "
                "invalid: this plugin takes no storage options. Write a custom CheckpointIO to "
                "use them."
            )
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        fs, fs_path = fsspec.core.url_to_fs(str(path))
        fs.makedirs(fs._parent(fs_path), exist_ok=True)
        stamped = add_checksum(checkpoint)
        if isinstance(fs, LocalFileSystem):
            _atomic_local_save(stamped, fs_path)
        else:
            _remote_save(fs, stamped, fs_path)

    def load_checkpoint(
        self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Read the checkpoint at `path` and verify its checksum (when it has one)."""
        checkpoint = load_checkpoint_file(
            path, map_location=map_location, weights_only=weights_only
        )
        return check_and_strip_checksum(checkpoint, path)

    def remove_checkpoint(self, path: str | Path) -> None:
        """Delete the file or folder at `path`, if any; a symlink is removed, not its target."""
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        fs, fs_path = fsspec.core.url_to_fs(str(path))
        if isinstance(fs, LocalFileSystem):
            _remove_local(fs_path)
            return
        try:
            if fs.exists(fs_path):
                fs.rm(fs_path, recursive=True)
        except FileNotFoundError:
            pass  # removed by someone else in the meantime: the goal is reached


def _temporary_name(path: str, suffix: str = "tmp") -> str:
    # Next to the target (a rename is atomic only within one filesystem), never ending in
    # `.ckpt`, so nothing that looks for checkpoints picks up a half-written file.
    return f"{path}.{uuid.uuid4().hex[:8]}.{suffix}"


def _atomic_local_save(checkpoint: dict[str, Any], path: str) -> None:
    # A crash mid-write must leave the old file or the new one, never a truncated one: write a
    # temporary file, make it durable, then rename it over the target. Renaming also replaces a
    # `last.ckpt` symlink itself instead of writing through it into the checkpoint it points to.
    tmp = _temporary_name(path)
    try:
        with open(tmp, "wb") as stream, _SyncingWriter(stream) as writer:
            # torch.save only calls write() and flush() on a file object.
            torch.save(checkpoint, writer)  # type: ignore[arg-type]
            writer.sync()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_directory(os.path.dirname(path))


# macOS and Windows have no fdatasync; fsync does the same and a little more.
_fdatasync = getattr(os, "fdatasync", os.fsync)


class _SyncingWriter:
    """Write to a file while a helper thread pushes what is already written to the disk.

    One fsync after a large write waits for all of it at once. Syncing every `_SYNC_EVERY`
    bytes in the background as soon as they are written overlaps that wait with serialization,
    so `sync()` at the end only waits for the tail.
    """

    _SYNC_EVERY = 16 << 20

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._unsynced = 0
        self._thread: threading.Thread | None = None
        self._error: OSError | None = None

    def __enter__(self) -> _SyncingWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Never leave the helper syncing a file that is about to be closed.
        if self._thread is not None:
            self._thread.join()

    def write(self, data: bytes | memoryview) -> int:
        written = self._stream.write(data)
        self._unsynced += written
        if self._unsynced >= self._SYNC_EVERY and not self._syncing():
            self._stream.flush()
            self._unsynced = 0
            fileno = self._stream.fileno()
            self._thread = threading.Thread(target=self._sync_in_background, args=(fileno,))
            self._thread.start()
        return written

    def flush(self) -> None:
        self._stream.flush()

    def sync(self) -> None:
        """Wait until every byte written is on the disk; raise the helper's error, if any."""
        self._stream.flush()
        if self._thread is not None:
            self._thread.join()
        # The kernel reports a failed write-back once per open file: if the helper saw it, the
        # fsync below would succeed, so the helper's error must be raised here.
        if self._error is not None:
            raise self._error
        os.fsync(self._stream.fileno())

    def _syncing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _sync_in_background(self, fileno: int) -> None:
        try:
            _fdatasync(fileno)
        except OSError as err:
            self._error = err


def _fsync_directory(directory: str) -> None:
    # The rename itself is durable only once the directory entry is on disk (POSIX only: Windows
    # cannot open a directory).
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_local(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        try:
            os.remove(path)
        except FileNotFoundError:
            return
    elif os.path.isdir(path):
        # A folder checkpoint disappears in one rename, so a crash mid-delete cannot leave a
        # partial folder under the checkpoint's name.
        doomed = _temporary_name(path, "deleting")
        os.replace(path, doomed)
        shutil.rmtree(doomed)
    else:
        return
    _fsync_directory(os.path.dirname(path))


def _remote_save(fs: Any, checkpoint: dict[str, Any], path: str) -> None:
    if not _can_move(fs):
        _write(fs, checkpoint, path)
        return
    tmp = _temporary_name(path)
    try:
        _write(fs, checkpoint, tmp)
        fs.mv(tmp, path)
    except NotImplementedError:
        # The filesystem advertises a move it cannot do: write in place after all.
        _write(fs, checkpoint, path)
        _remove_quietly(fs, tmp)
    except BaseException:
        _remove_quietly(fs, tmp)
        raise


def _remove_quietly(fs: Any, path: str) -> None:
    try:
        if fs.exists(path):
            fs.rm(path)
    except OSError:
        pass  # a leftover temporary file is harmless; the save's own outcome is what matters


def _write(fs: Any, checkpoint: dict[str, Any], path: str) -> None:
    with fs.open(path, "wb") as stream:
        torch.save(checkpoint, stream)


def _can_move(fs: Any) -> bool:
    # fsspec's generic `mv` is copy-then-delete; it only works (and, on object stores, publishes
    # the whole object at once) when the filesystem implements a copy or a move of its own.
    from fsspec.spec import AbstractFileSystem

    for name in ("mv", "cp_file"):
        method = getattr(fs, name, None)
        if getattr(method, "__func__", method) is not getattr(AbstractFileSystem, name):
            return True
    return False


class XLACheckpointIO(TorchCheckpointIO):
    """XLA/TPU checkpoint IO: not supported."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise MisconfigurationException("XLACheckpointIO (TPU) is not supported by fulmen.")
