"""A full or read-only disk during a save: a clear error from fit, and no checkpoint lost.

Each test lets a few checkpoints be written, then makes the disk fail while fulmen writes,
renames or removes one: the disk is full (ENOSPC) in the middle of a write, a file cannot be
created or renamed (EACCES), the folder is read-only (chmod; only when not running as root,
for whom permission bits stop nothing), or a remote filesystem (an fsspec memory filesystem
registered under a test protocol) fails its writes. Recovered means: the call raised an OSError
naming the checkpoint and the cause, every file that was there before is byte-identical, and no
temporary file is left behind.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

import fulmen as pl
from fulmen.callbacks import Callback, ModelCheckpoint
from fulmen.demos.boring_classes import BoringModel
from fulmen.plugins.io import checkpoint_io
from tests.faults.conftest import FaultReport, leftover_processes

KIND = "disk error (ENOSPC / EACCES) during save"
CAUSES = {errno.ENOSPC: "No space left on device", errno.EACCES: "Permission denied"}


class FullMemoryFileSystem(MemoryFileSystem):  # type: ignore[misc]
    """A memory filesystem whose writes of files named `prefix...` fail with ENOSPC when `full`."""

    protocol = "fulmenfull"
    full = False
    prefix = ""

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return str(super()._strip_protocol(path.replace(f"{cls.protocol}://", "memory://", 1)))

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        stream = super()._open(path, mode, **kwargs)
        name = self._strip_protocol(path).rsplit("/", 1)[-1]
        if "w" in mode and type(self).full and name.startswith(type(self).prefix):
            stream.write = _failing_write(stream.write, 512)
        return stream


def _failing_write(write: Callable[[bytes], int], budget: int) -> Callable[[bytes], int]:
    left = [budget]

    def limited(data: bytes) -> int:
        if len(data) > left[0]:
            raise OSError(errno.ENOSPC, CAUSES[errno.ENOSPC])
        left[0] -= len(data)
        return write(data)

    return limited


class Disk:
    """One way for the disk to fail, switched on by `fail()` for files named like `target`."""

    def __init__(self, how: str, folder: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.how = how
        self.folder = folder
        self.monkeypatch = monkeypatch
        self.target = ""
        denied = how in ("eacces_open", "eacces_rename", "chmod")
        self.errno = errno.EACCES if denied else errno.ENOSPC

    def fail(self, target: str = "") -> None:
        """From now on, fail writes of files whose name starts with `target` (any, if empty)."""
        self.target = target
        if self.how == "chmod":
            os.chmod(self.folder, stat.S_IRUSR | stat.S_IXUSR)
        elif self.how == "remote":
            FullMemoryFileSystem.full, FullMemoryFileSystem.prefix = True, target
        elif self.how == "eacces_rename":
            real_replace = os.replace

            def replace(source: Any, destination: Any) -> None:
                if self._targets(os.fspath(destination)):
                    raise PermissionError(errno.EACCES, CAUSES[errno.EACCES], os.fspath(source))
                real_replace(source, destination)

            self.monkeypatch.setattr(os, "replace", replace)
        else:
            real_open = open

            def failing_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
                stream = real_open(file, mode, *args, **kwargs)
                if "w" not in mode or not self._targets(os.fspath(file)):
                    return stream
                if self.how == "eacces_open":
                    stream.close()
                    os.remove(file)
                    raise PermissionError(errno.EACCES, CAUSES[errno.EACCES], os.fspath(file))
                stream.write = _failing_write(stream.write, 512)  # type: ignore[method-assign,assignment]
                return stream

            # The module's own name `open` shadows the builtin for checkpoint writes only.
            self.monkeypatch.setattr(checkpoint_io, "open", failing_open, raising=False)

    def heal(self) -> None:
        if self.how == "chmod":
            os.chmod(self.folder, stat.S_IRWXU)
        FullMemoryFileSystem.full = False
        self.monkeypatch.undo()

    def _targets(self, path: str) -> bool:
        return os.path.basename(path).startswith(self.target)


@pytest.fixture
def remote_root() -> Iterator[str]:
    fsspec.register_implementation(
        FullMemoryFileSystem.protocol, FullMemoryFileSystem, clobber=True
    )
    root = f"/fulmen-disk-errors-{os.getpid()}"
    yield root
    FullMemoryFileSystem.full = False
    fs = MemoryFileSystem()
    if fs.exists(root):
        fs.rm(root, recursive=True)


def folder_for(how: str, tmp_path: Path, remote_root: str) -> str:
    if how == "remote":
        return f"{FullMemoryFileSystem.protocol}://{remote_root}/ck"
    return str(tmp_path / "ck")


def snapshot(folder: str) -> dict[str, bytes]:
    fs, path = fsspec.core.url_to_fs(folder)
    if not fs.exists(path):
        return {}
    return {name: fs.cat_file(name) for name in fs.find(path)}


def temporary_files(folder: str) -> list[str]:
    return [name for name in snapshot(folder) if name.endswith((".tmp", ".deleting"))]


class FailDiskAtStep(Callback):
    """Before ModelCheckpoint saves at `step` (callbacks run first), snapshot and break the disk."""

    def __init__(self, disk: Disk, step: int, target: str = "") -> None:
        self.disk, self.step, self.target = disk, step, target
        self.before: dict[str, bytes] | None = None

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if trainer.global_step == self.step:
            trainer.strategy.checkpoint_io.teardown()  # earlier saves are done and on disk
            self.before = snapshot(self.disk.folder)
            self.disk.fail(self.target)


def record_outcome(
    fault_report: FaultReport,
    error: BaseException | None,
    disk: Disk,
    target: str,
    before: dict[str, bytes],
) -> None:
    """Tally one injection and assert that it was recovered from."""
    disk.heal()
    after = snapshot(disk.folder)
    lost = sorted(name for name, data in before.items() if after.get(name) != data)
    leftovers = temporary_files(disk.folder)
    clear = (
        isinstance(error, OSError)
        and error.errno == disk.errno
        and target in str(error)
        and CAUSES[disk.errno] in str(error)
    )
    recovered = clear and not lost and not leftovers
    fault_report.record(
        KIND,
        injections=1,
        recovered=int(recovered),
        files_lost=len(lost),
        processes_left=len(leftover_processes(timeout=0.5)),
    )
    assert clear, f"expected an OSError naming {target!r} and {CAUSES[disk.errno]!r}: {error!r}"
    assert lost == [], f"files changed or lost: {lost}"
    assert leftovers == [], f"temporary files left: {leftovers}"


def make_trainer(folder: str, root: Path, callbacks: list[Callback], **checkpoint: Any) -> Any:
    callback = ModelCheckpoint(dirpath=folder, every_n_train_steps=1, **checkpoint)
    return pl.Trainer(
        default_root_dir=root,
        max_steps=4,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[*callbacks, callback],
    )


HOWS = ["enospc_write", "eacces_open", "eacces_rename", "chmod", "remote"]


def skip_if_pointless(how: str) -> None:
    if how == "chmod" and os.geteuid() == 0:
        pytest.skip("permission bits do not stop root from writing")


@pytest.mark.parametrize("how", HOWS)
def test_a_failed_top_k_save_fails_fit_and_keeps_the_earlier_files(
    how: str,
    tmp_path: Path,
    remote_root: str,
    monkeypatch: pytest.MonkeyPatch,
    fault_report: FaultReport,
) -> None:
    skip_if_pointless(how)
    disk = Disk(how, folder_for(how, tmp_path, remote_root), monkeypatch)
    breaker = FailDiskAtStep(disk, step=3)
    trainer = make_trainer(disk.folder, tmp_path, [breaker], save_top_k=-1)
    with pytest.raises(OSError) as info:
        trainer.fit(BoringModel())
    assert breaker.before is not None and len(breaker.before) == 2  # steps 1 and 2
    record_outcome(fault_report, info.value, disk, "epoch=0-step=3.ckpt", breaker.before)


@pytest.mark.parametrize("how", HOWS)
def test_a_failed_replacement_of_last_keeps_the_previous_last(
    how: str,
    tmp_path: Path,
    remote_root: str,
    monkeypatch: pytest.MonkeyPatch,
    fault_report: FaultReport,
) -> None:
    skip_if_pointless(how)
    disk = Disk(how, folder_for(how, tmp_path, remote_root), monkeypatch)
    breaker = FailDiskAtStep(disk, step=3, target="last")
    trainer = make_trainer(disk.folder, tmp_path, [breaker], save_top_k=-1, save_last=True)
    if how == "chmod":
        breaker.target = ""  # a read-only folder fails the top-k file first
    with pytest.raises(OSError) as info:
        trainer.fit(BoringModel())
    assert breaker.before is not None
    assert sorted(os.path.basename(name) for name in breaker.before) == [
        "epoch=0-step=1.ckpt",
        "epoch=0-step=2.ckpt",
        "last.ckpt",
    ]
    target = "epoch=0-step=3.ckpt" if how == "chmod" else "last.ckpt"
    record_outcome(fault_report, info.value, disk, target, breaker.before)


@pytest.mark.parametrize("how", HOWS)
def test_a_failed_trainer_save_checkpoint_keeps_the_file_it_would_replace(
    how: str,
    tmp_path: Path,
    remote_root: str,
    monkeypatch: pytest.MonkeyPatch,
    fault_report: FaultReport,
) -> None:
    skip_if_pointless(how)
    disk = Disk(how, folder_for(how, tmp_path, remote_root), monkeypatch)
    trainer = make_trainer(disk.folder, tmp_path, [], save_top_k=1)
    trainer.fit(BoringModel())
    manual = disk.folder + "/manual.ckpt"
    trainer.save_checkpoint(manual)
    trainer.strategy.checkpoint_io.teardown()
    before = snapshot(disk.folder)
    disk.fail()
    with pytest.raises(OSError) as info:
        trainer.save_checkpoint(manual)
    record_outcome(fault_report, info.value, disk, "manual.ckpt", before)
    loaded = trainer.strategy.checkpoint_io.load_checkpoint(manual)
    assert loaded["global_step"] == 4


class FailRemovals:
    """Make removing checkpoints named like `target` fail with EACCES, locally or remotely."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch

    def fail(self, target: str) -> None:
        def refused(path: Any) -> bool:
            if os.path.basename(os.fspath(path)).startswith(target):
                raise PermissionError(errno.EACCES, CAUSES[errno.EACCES], os.fspath(path))
            return False

        real_remove, real_rm = os.remove, MemoryFileSystem.rm

        def remove(path: Any, *args: Any, **kwargs: Any) -> None:
            refused(path) or real_remove(path, *args, **kwargs)

        def rm(fs: MemoryFileSystem, path: Any, *args: Any, **kwargs: Any) -> None:
            refused(path) or real_rm(fs, path, *args, **kwargs)

        self.monkeypatch.setattr(os, "remove", remove)
        self.monkeypatch.setattr(MemoryFileSystem, "rm", rm)


@pytest.mark.parametrize("how", ["local", "remote"])
def test_a_failed_removal_of_an_old_top_k_file_fails_fit_and_keeps_both_files(
    how: str,
    tmp_path: Path,
    remote_root: str,
    monkeypatch: pytest.MonkeyPatch,
    fault_report: FaultReport,
) -> None:
    disk = Disk("eacces_open", folder_for(how, tmp_path, remote_root), monkeypatch)
    removals = FailRemovals(monkeypatch)

    class FailRemovalAtStep(FailDiskAtStep):
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if trainer.global_step == 3:
                trainer.strategy.checkpoint_io.teardown()
                self.before = snapshot(disk.folder)
                removals.fail("epoch=0-step=2")

    breaker = FailRemovalAtStep(disk, step=3)
    trainer = make_trainer(disk.folder, tmp_path, [breaker], save_top_k=1)
    with pytest.raises(OSError) as info:
        trainer.fit(BoringModel())
    assert breaker.before is not None
    assert [os.path.basename(name) for name in breaker.before] == ["epoch=0-step=2.ckpt"]
    assert "Could not remove the checkpoint" in str(info.value)
    record_outcome(fault_report, info.value, disk, "epoch=0-step=2.ckpt", breaker.before)
    newest = disk.folder + "/epoch=0-step=3.ckpt"
    assert trainer.strategy.checkpoint_io.load_checkpoint(newest)["global_step"] == 3
