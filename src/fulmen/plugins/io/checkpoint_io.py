"""Where checkpoint dicts are written and read: local disks or any fsspec URL.

- Atomic: a crash (or SIGKILL) during a save or a removal leaves either the old checkpoint or the
  new one, never a part of one. Files are written under a temporary name next to the target
  (`<name>.<8 hex digits>.tmp`) and renamed into place; a folder checkpoint is renamed to
  `<name>.<8 hex digits>.deleting` before it is deleted. `ModelCheckpoint` removes such leftovers
  of a killed run from its folder.
- Verified: `torch.save` stores a CRC32 of every entry of its zip container, which `torch.load`
  ignores; `load_checkpoint` checks them first (`fulmen.utilities.checksum`) and raises
  `CheckpointCorruptedError` naming the file. With torch's `compute_crc32` turned off, a sha256
  of the content is stored in the dict instead, as older fulmen releases did for every file.
- Durable off the critical path: a local file is renamed into place as soon as it is written,
  so the save returns while the data is only in the OS page cache, which survives the death of
  the process but not of the machine. A helper thread then flushes the file and its folder to
  the disk (fsync). Whatever could lose the last durable state waits for that flush first: the
  next save, `remove_checkpoint` (an older checkpoint is never deleted before the newer one is
  on the disk) and `teardown()`, which the strategy calls at the end of every run. A failed
  flush is raised by the next of these calls. So a power loss can damage only the file saved
  last (loading detects that), together with the file it replaced under the same name (such as
  the previous `last.ckpt`); every other checkpoint is intact.

Background writing of whole checkpoints lives in `async_checkpoint_io.py`.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import torch

from fulmen.core.saving import load_checkpoint_file
from fulmen.utilities.checksum import add_checksum
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
    """Save with `torch.save` through fsspec, atomically, flushing to disk in the background.

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
        >>> io.teardown()
    """

    # A class attribute, so subclasses that define __init__ without calling ours still work.
    _pending_flush: _BackgroundFlush | None = None

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        """Write `checkpoint` to `path`, replacing any file there at once."""
        if storage_options is not None:
            raise TypeError(
                f"TorchCheckpointIO.save_checkpoint(storage_options={storage_options!r}) is "
                "invalid: this plugin takes no storage options. Write a custom CheckpointIO to "
                "use them."
            )
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        if not _torch_writes_crcs():
            # No CRCs to check on load: carry a checksum of the content instead.
            checkpoint = add_checksum(checkpoint)
        failure = f"Could not save the checkpoint {os.fspath(path)!r}"
        with _disk_errors_described(failure):
            fs, fs_path = fsspec.core.url_to_fs(os.fspath(path))
            fs.makedirs(fs._parent(fs_path), exist_ok=True)
        if isinstance(fs, LocalFileSystem):
            self._save_local(checkpoint, fs_path, failure)
            return
        self._wait_for_flush()
        with _disk_errors_described(failure):
            _remote_save(fs, checkpoint, fs_path)

    def load_checkpoint(
        self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Read the checkpoint at `path`, after checking it against its CRCs (or checksum)."""
        return load_checkpoint_file(path, map_location=map_location, weights_only=weights_only)

    def remove_checkpoint(self, path: str | Path) -> None:
        """Delete the file or folder at `path`, if any; a symlink is removed, not its target.

        Waits until the last saved checkpoint is on the disk, so that a crash right after the
        removal cannot leave neither the old checkpoint nor the new one.
        """
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        self._wait_for_flush()
        with _disk_errors_described(f"Could not remove the checkpoint {os.fspath(path)!r}"):
            fs, fs_path = fsspec.core.url_to_fs(os.fspath(path))
            try:
                if isinstance(fs, LocalFileSystem):
                    _remove_local(fs_path)
                elif fs.exists(fs_path):
                    fs.rm(fs_path, recursive=True)
            except FileNotFoundError:
                pass  # removed by someone else in the meantime: the goal is reached

    def teardown(self) -> None:
        """Wait until the last saved checkpoint is on the disk; raise if flushing it failed."""
        self._wait_for_flush()

    def _save_local(self, checkpoint: dict[str, Any], path: str, failure: str) -> None:
        # Renaming also replaces a `last.ckpt` symlink itself instead of writing through it into
        # the checkpoint it points to.
        tmp = _temporary_name(path)
        with _disk_errors_described(failure):
            stream = open(tmp, "wb")  # closed by the flush thread
        try:
            with _disk_errors_described(failure):
                torch.save(checkpoint, stream)
                stream.flush()
                if _IS_WINDOWS:
                    # Windows cannot rename an open file: flush and close it first, at full cost.
                    os.fsync(stream.fileno())
                    stream.close()
            # Only now: the previous save's flush overlapped with writing this one.
            self._wait_for_flush()
            with _disk_errors_described(failure):
                os.replace(tmp, path)
        except BaseException:
            _close_quietly(stream)
            _remove_local_quietly(tmp)
            raise
        if not stream.closed:
            self._pending_flush = _BackgroundFlush(stream, path)

    def _wait_for_flush(self) -> None:
        pending = self._pending_flush
        if pending is not None:
            self._pending_flush = None
            pending.wait()


_IS_WINDOWS = os.name == "nt"


def _torch_writes_crcs() -> bool:
    try:
        from torch.utils.serialization import config
    except ImportError:
        return True  # torch releases without the setting always write them
    return bool(config.save.compute_crc32)


@contextmanager
def _disk_errors_described(failure: str) -> Iterator[None]:
    """Raise an OSError from the block as the same kind of OSError, saying `failure` and why."""
    try:
        yield
    except Exception as err:
        cause = _os_error_behind(err)
        if cause is None:
            raise
        raise _described(cause, failure) from err


def _os_error_behind(err: BaseException) -> OSError | None:
    # torch.save meets a failed write with a RuntimeError of its own ("unexpected pos ..."), raised
    # while the OSError is being handled: the OSError is its context.
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _described(err: OSError, action: str) -> OSError:
    """Return `err` as the same kind of OSError, its message saying what failed and why."""
    if err.errno is None:
        return OSError(f"{action}: {err}")
    # OSError(errno, ...) becomes the matching subclass (PermissionError for EACCES, ...).
    return OSError(err.errno, f"{action}: {err.strerror or err}")


def _temporary_name(path: str, suffix: str = "tmp") -> str:
    # Next to the target (a rename is atomic only within one filesystem), never ending in
    # `.ckpt`, so nothing that looks for checkpoints picks up a half-written file.
    return f"{path}.{uuid.uuid4().hex[:8]}.{suffix}"


class _BackgroundFlush:
    """Flush a just-renamed checkpoint file and its folder to the disk in a helper thread."""

    def __init__(self, stream: BinaryIO, path: str) -> None:
        self._path = path
        self._error: OSError | None = None
        # Not a daemon: a script that saves and exits still waits for its file to be on disk.
        self._thread = threading.Thread(
            target=self._flush, args=(stream,), name="fulmen-checkpoint-flush"
        )
        self._thread.start()

    def _flush(self, stream: BinaryIO) -> None:
        try:
            # Through the descriptor that wrote the file: the kernel reports a failed write-back
            # to the descriptors open at the time, not necessarily to one opened later.
            try:
                os.fsync(stream.fileno())
            finally:
                stream.close()
            _fsync_directory(os.path.dirname(self._path))
        except OSError as err:
            self._error = err

    def wait(self) -> None:
        """Wait for the flush to finish; raise its error, if any."""
        self._thread.join()
        if self._error is not None:
            raise _described(
                self._error,
                f"Flushing the checkpoint {self._path!r} to disk failed, so it may be damaged "
                "after a power loss",
            ) from self._error


def _close_quietly(stream: BinaryIO) -> None:
    try:
        stream.close()
    except OSError:
        pass  # the save already failed; its own error is the one to report


def _remove_local_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass  # never written, or the folder refuses: the save's own error is what matters


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
        os.remove(path)
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
