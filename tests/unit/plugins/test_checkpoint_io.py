"""TorchCheckpointIO (atomic writes, verified loads, background flush, safe removal),
AsyncCheckpointIO, and the sha256 checksums of older checkpoints."""

from __future__ import annotations

import collections
import math
import os
import struct
import sys
import threading
import time
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import Any

import fsspec
import pytest
import torch
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.spec import AbstractFileSystem

from fulmen.plugins.io import AsyncCheckpointIO, CheckpointIO, TorchCheckpointIO
from fulmen.utilities.checksum import (
    CHECKSUM_KEY,
    CheckpointCorruptedError,
    add_checksum,
    check_and_strip_checksum,
    checkpoint_checksum,
    verify_checkpoint_file,
)
from fulmen.utilities.exceptions import MisconfigurationException


def realistic_checkpoint() -> dict[str, Any]:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    model(torch.randn(5, 4))
    # An optimizer's state_dict layout, built by hand: creating an optimizer imports torch._dynamo.
    optimizer_state = {
        "state": {
            i: {"momentum_buffer": torch.randn(p.shape)} for i, p in enumerate(model.parameters())
        },
        "param_groups": [{"lr": 0.1, "momentum": 0.9, "nesterov": False, "params": [0, 1, 2, 3]}],
    }
    shared = torch.arange(12.0).reshape(3, 4)
    return {
        "epoch": 2,
        "global_step": 10,
        "pytorch-lightning_version": "2.6.0",
        "state_dict": model.state_dict(),
        "optimizer_states": [optimizer_state],
        "callbacks": {"ModelCheckpoint{'monitor': None}": {"best_model_score": None, "k": 1.5}},
        "hyper_parameters": {"lr": 0.1, "layers": (4, 3), "name": "näive", "nan": math.nan},
        "misc": {
            "size": torch.Size([2, 3]),
            "dtype": torch.bfloat16,
            "device": torch.device("cpu"),
            "bf16": torch.randn(3).to(torch.bfloat16),
            "bool": torch.tensor([True, False]),
            "empty": torch.zeros(0, 5),
            "scalar": torch.tensor(7),
            "transposed": shared.t(),
            "slice": shared[1:],
            "bytes": b"\x00\x01",
            "set": {3, 1, 2},
            "ordered": collections.OrderedDict(b=1, a=2),
            "complex": 1 + 2j,
            7: "an int key",
        },
    }


def flip_tensor_byte(path: Path) -> None:
    """Change one byte inside the first tensor's data, leaving the zip structure readable."""
    with zipfile.ZipFile(path) as archive:
        name = next(
            n for n in archive.namelist() if "/data/" in n and n.rsplit("/", 1)[1].isdigit()
        )
        info = archive.getinfo(name)
    with open(path, "r+b") as stream:
        stream.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", stream.read(4))
        position = info.header_offset + 30 + name_length + extra_length
        stream.seek(position)
        byte = stream.read(1)[0]
        stream.seek(position)
        stream.write(bytes([byte ^ 0xFF]))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def assert_same(a: Any, b: Any) -> None:
    assert checkpoint_checksum({"v": a}) == checkpoint_checksum({"v": b})


# ---------------------------------------------------------------------------- checksums


def test_checksum_survives_a_torch_save_round_trip(tmp_path: Path) -> None:
    checkpoint = realistic_checkpoint()
    torch.save(add_checksum(checkpoint), tmp_path / "a.ckpt")
    loaded = torch.load(tmp_path / "a.ckpt", weights_only=True)
    assert loaded[CHECKSUM_KEY] == checkpoint_checksum(checkpoint)
    assert check_and_strip_checksum(loaded, "a.ckpt").keys() == checkpoint.keys()


def test_checksum_ignores_dict_order_and_its_own_entry() -> None:
    a = {"x": 1, "y": torch.ones(2)}
    b = {"y": torch.ones(2), "x": 1, CHECKSUM_KEY: "sha256:whatever"}
    assert checkpoint_checksum(a) == checkpoint_checksum(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5])),
        (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0], dtype=torch.float64)),
        (torch.zeros(2, 3), torch.zeros(3, 2)),
        (torch.zeros(6), torch.zeros(2, 3)),
        (1, 1.0),
        (1, True),
        (1, "1"),
        ("ab", b"ab"),
        ([1, 2], (1, 2)),
        ([1, 2], [2, 1]),
        ({"a": 1}, {"a": 2}),
        ({"a": 1}, {"b": 1}),
        ({1: "x"}, {"1": "x"}),
        ({1, 2}, {1, 3}),
        (["a", "bc"], ["ab", "c"]),
        (None, 0),
        (torch.float32, torch.float64),
    ],
)
def test_checksum_tells_apart_values_that_differ(a: Any, b: Any) -> None:
    assert checkpoint_checksum({"v": a}) != checkpoint_checksum({"v": b})


def test_checksum_covers_tensor_values_not_memory_layout() -> None:
    base = torch.arange(6.0).reshape(2, 3)
    assert_same(base.t(), base.t().contiguous())
    assert_same(base[1:], base[1:].clone())
    assert_same(torch.nn.Parameter(base.clone()), base)


def test_check_and_strip_checksum_names_the_file_on_mismatch() -> None:
    checkpoint = add_checksum({"state_dict": {"w": torch.ones(3)}})
    checkpoint["state_dict"]["w"][1] = 0.0
    with pytest.raises(CheckpointCorruptedError, match=r"'/ckpts/last.ckpt' is corrupted"):
        check_and_strip_checksum(checkpoint, "/ckpts/last.ckpt")
    assert issubclass(CheckpointCorruptedError, MisconfigurationException)


def test_check_and_strip_checksum_rejects_a_malformed_entry() -> None:
    with pytest.raises(CheckpointCorruptedError, match=r"expected a string starting with"):
        check_and_strip_checksum({"epoch": 1, CHECKSUM_KEY: 5}, "a.ckpt")


def test_checkpoints_without_checksum_pass_unchecked() -> None:
    assert check_and_strip_checksum({"epoch": 1}, "lightning.ckpt") == {"epoch": 1}


# ---------------------------------------------------------------------------- TorchCheckpointIO


def test_save_and_load_round_trip_with_the_zip_crcs_as_the_only_checksum(tmp_path: Path) -> None:
    checkpoint = realistic_checkpoint()
    path = tmp_path / "sub" / "a.ckpt"
    io = TorchCheckpointIO()
    io.save_checkpoint(checkpoint, path)
    io.teardown()
    raw = torch.load(path, weights_only=True)
    assert CHECKSUM_KEY not in raw  # the CRCs torch.save computes anyway are enough
    with zipfile.ZipFile(path) as archive:
        entries = archive.infolist()
        assert all(info.CRC == zlib.crc32(archive.read(info)) for info in entries)
    assert all(info.CRC != 0 for info in entries if info.file_size > 0)
    loaded = io.load_checkpoint(path)
    assert checkpoint_checksum(loaded) == checkpoint_checksum(checkpoint)
    assert torch.equal(loaded["state_dict"]["0.weight"], checkpoint["state_dict"]["0.weight"])


@pytest.fixture
def crc32_off() -> Any:
    from torch.utils.serialization import config

    config.save.compute_crc32 = False
    try:
        yield
    finally:
        config.save.compute_crc32 = True


def test_without_torch_crcs_the_file_carries_a_sha256_that_load_checks(
    tmp_path: Path, crc32_off: None
) -> None:
    checkpoint = {"state_dict": {"w": torch.arange(64.0)}, "epoch": 1}
    path = tmp_path / "a.ckpt"
    io = TorchCheckpointIO()
    io.save_checkpoint(checkpoint, path)
    assert CHECKSUM_KEY not in checkpoint  # the caller's dict is left alone
    with zipfile.ZipFile(path) as archive:
        assert {info.CRC for info in archive.infolist()} == {0}
    assert torch.load(path, weights_only=True)[CHECKSUM_KEY] == checkpoint_checksum(checkpoint)
    assert checkpoint_checksum(io.load_checkpoint(path)) == checkpoint_checksum(checkpoint)
    assert verify_checkpoint_file(path)
    flip_tensor_byte(path)
    with pytest.raises(CheckpointCorruptedError, match=rf"{str(path)!r} is corrupted.*checksum"):
        io.load_checkpoint(path)
    assert not verify_checkpoint_file(path)


def test_checkpoints_of_older_fulmen_releases_are_still_checked_by_their_sha256(
    tmp_path: Path,
) -> None:
    good, altered = tmp_path / "good.ckpt", tmp_path / "altered.ckpt"
    torch.save(add_checksum({"w": torch.ones(3), "epoch": 1}), good)
    stale = add_checksum({"w": torch.ones(3), "epoch": 1})
    stale["epoch"] = 2  # written with intact CRCs, but not what the checksum was taken of
    torch.save(stale, altered)
    io = TorchCheckpointIO()
    loaded = io.load_checkpoint(good)
    assert loaded.keys() == {"w", "epoch"} and torch.equal(loaded["w"], torch.ones(3))
    with pytest.raises(CheckpointCorruptedError, match=rf"{str(altered)!r} is corrupted"):
        io.load_checkpoint(altered)
    assert (verify_checkpoint_file(good), verify_checkpoint_file(altered)) == (True, False)


def test_legacy_non_zip_files_and_lightning_files_load(tmp_path: Path) -> None:
    legacy, lightning = tmp_path / "legacy.ckpt", tmp_path / "lightning.ckpt"
    torch.save({"epoch": 4}, legacy, _use_new_zipfile_serialization=False)
    torch.save({"epoch": 5, "state_dict": {"w": torch.arange(64.0)}}, lightning)
    io = TorchCheckpointIO()
    assert io.load_checkpoint(legacy) == {"epoch": 4}
    assert io.load_checkpoint(lightning)["epoch"] == 5
    flip_tensor_byte(lightning)  # a Lightning file is a zip with CRCs too: damage shows
    with pytest.raises(CheckpointCorruptedError, match=r"entry '.*/data/0' has CRC32"):
        io.load_checkpoint(lightning)


def test_save_replaces_the_old_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    io = TorchCheckpointIO()
    io.save_checkpoint({"epoch": 1}, tmp_path / "a.ckpt")
    io.save_checkpoint({"epoch": 2}, tmp_path / "a.ckpt")
    assert os.listdir(tmp_path) == ["a.ckpt"]
    assert io.load_checkpoint(tmp_path / "a.ckpt") == {"epoch": 2}


def test_a_failed_save_keeps_the_previous_file_intact(tmp_path: Path) -> None:
    io = TorchCheckpointIO()
    io.save_checkpoint({"w": torch.ones(1000)}, tmp_path / "a.ckpt")
    unpicklable = {"w": torch.zeros(1000), "lock": threading.Lock()}
    with pytest.raises(TypeError, match="lock"):
        io.save_checkpoint(unpicklable, tmp_path / "a.ckpt")
    assert os.listdir(tmp_path) == ["a.ckpt"]
    assert torch.equal(io.load_checkpoint(tmp_path / "a.ckpt")["w"], torch.ones(1000))


def test_saving_over_a_symlink_replaces_the_link_not_its_target(tmp_path: Path) -> None:
    io = TorchCheckpointIO()
    io.save_checkpoint({"epoch": 1}, tmp_path / "epoch=1.ckpt")
    os.symlink("epoch=1.ckpt", tmp_path / "last.ckpt")
    io.save_checkpoint({"epoch": 2}, tmp_path / "last.ckpt")
    assert not os.path.islink(tmp_path / "last.ckpt")
    assert io.load_checkpoint(tmp_path / "epoch=1.ckpt") == {"epoch": 1}
    assert io.load_checkpoint(tmp_path / "last.ckpt") == {"epoch": 2}


def test_load_raises_naming_the_file_when_a_tensor_byte_changed(tmp_path: Path) -> None:
    path = tmp_path / "a.ckpt"
    TorchCheckpointIO().save_checkpoint({"state_dict": {"w": torch.arange(64.0)}}, path)
    flip_tensor_byte(path)
    torch.load(path, weights_only=True)  # torch.load does not notice
    with pytest.raises(CheckpointCorruptedError, match=rf"{str(path)!r} is corrupted"):
        TorchCheckpointIO().load_checkpoint(path)


def test_load_of_a_truncated_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.ckpt"
    TorchCheckpointIO().save_checkpoint({"state_dict": {"w": torch.arange(64.0)}}, path)
    truncate(path)
    with pytest.raises(CheckpointCorruptedError, match=rf"{str(path)!r} is corrupted.*cut short"):
        TorchCheckpointIO().load_checkpoint(path)
    path.write_bytes(b"")
    with pytest.raises(CheckpointCorruptedError, match=rf"{str(path)!r} is corrupted: it is empty"):
        TorchCheckpointIO().load_checkpoint(path)
    path.write_bytes(b"neither a zip nor a pickle")
    with pytest.raises(MisconfigurationException, match=rf"{str(path)!r} could not be read"):
        TorchCheckpointIO().load_checkpoint(path)


def test_storage_options_are_refused_with_a_type_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"storage_options=\{'a': 1\}"):
        TorchCheckpointIO().save_checkpoint({}, tmp_path / "a.ckpt", storage_options={"a": 1})


def test_remove_deletes_a_file_and_accepts_a_missing_one(tmp_path: Path) -> None:
    io = TorchCheckpointIO()
    io.save_checkpoint({"epoch": 1}, tmp_path / "a.ckpt")
    io.remove_checkpoint(tmp_path / "a.ckpt")
    io.remove_checkpoint(tmp_path / "a.ckpt")
    assert os.listdir(tmp_path) == []


def test_remove_of_a_symlink_keeps_its_target(tmp_path: Path) -> None:
    io = TorchCheckpointIO()
    io.save_checkpoint({"epoch": 1}, tmp_path / "epoch=1.ckpt")
    os.symlink("epoch=1.ckpt", tmp_path / "last.ckpt")
    io.remove_checkpoint(tmp_path / "last.ckpt")
    assert os.listdir(tmp_path) == ["epoch=1.ckpt"]


def test_remove_of_a_folder_checkpoint_leaves_nothing_behind(tmp_path: Path) -> None:
    folder = tmp_path / "sharded.ckpt"
    (folder / "inner").mkdir(parents=True)
    (folder / "inner" / "shard_0.pt").write_bytes(b"x")
    TorchCheckpointIO().remove_checkpoint(folder)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------- background flush


class GatedFsync:
    """Stands in for os.fsync: records each descriptor's file, then waits for `gate`."""

    def __init__(self, fail: bool = False) -> None:
        self.gate = threading.Event()
        self.fail = fail
        self.synced: list[tuple[int, int]] = []  # (st_dev, st_ino) of each synced descriptor
        self.real = os.fsync

    def __call__(self, fd: int) -> None:
        info = os.fstat(fd)
        self.synced.append((info.st_dev, info.st_ino))
        assert self.gate.wait(10), "the test never opened the gate"
        if self.fail:
            raise OSError(5, "Input/output error")
        self.real(fd)


def identity(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


def test_save_returns_before_the_flush_which_syncs_the_file_then_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsync = GatedFsync()
    monkeypatch.setattr(os, "fsync", fsync)
    io = TorchCheckpointIO()
    io.save_checkpoint({"w": torch.arange(1000.0)}, tmp_path / "a.ckpt")
    # Renamed into place already: complete and loadable while the flush still waits.
    assert os.listdir(tmp_path) == ["a.ckpt"]
    assert torch.equal(io.load_checkpoint(tmp_path / "a.ckpt")["w"], torch.arange(1000.0))
    fsync.gate.set()
    io.teardown()
    assert fsync.synced == [identity(tmp_path / "a.ckpt"), identity(tmp_path)]


def test_the_next_save_writes_at_once_but_renames_only_after_the_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsync = GatedFsync()
    monkeypatch.setattr(os, "fsync", fsync)
    io = TorchCheckpointIO()
    io.save_checkpoint({"epoch": 1}, tmp_path / "a.ckpt")
    second = run_in_thread(io.save_checkpoint, {"epoch": 2}, tmp_path / "a.ckpt")
    deadline = time.monotonic() + 5
    while len(os.listdir(tmp_path)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # the second file is written while the first one is flushed
    second.join(0.2)
    assert second.is_alive()
    assert sorted(os.listdir(tmp_path))[0] == "a.ckpt"
    assert sorted(os.listdir(tmp_path))[1].startswith("a.ckpt.")
    assert io.load_checkpoint(tmp_path / "a.ckpt") == {"epoch": 1}
    fsync.gate.set()
    second.join(5)
    io.teardown()
    assert os.listdir(tmp_path) == ["a.ckpt"]
    assert io.load_checkpoint(tmp_path / "a.ckpt") == {"epoch": 2}


def test_remove_waits_until_the_newer_checkpoint_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "old.ckpt").write_bytes(b"x")
    fsync = GatedFsync()
    monkeypatch.setattr(os, "fsync", fsync)
    io = TorchCheckpointIO()
    io.save_checkpoint({"epoch": 2}, tmp_path / "new.ckpt")
    remover = run_in_thread(io.remove_checkpoint, tmp_path / "old.ckpt")
    remover.join(0.3)
    assert remover.is_alive()
    assert (tmp_path / "old.ckpt").exists()
    fsync.gate.set()
    remover.join(5)
    assert not remover.is_alive()
    assert os.listdir(tmp_path) == ["new.ckpt"]
    io.teardown()


@pytest.mark.parametrize("next_call", ["save", "remove", "teardown"])
def test_a_failed_flush_is_raised_once_by_the_next_call_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, next_call: str
) -> None:
    (tmp_path / "old.ckpt").write_bytes(b"x")
    fsync = GatedFsync(fail=True)
    fsync.gate.set()
    monkeypatch.setattr(os, "fsync", fsync)
    io = TorchCheckpointIO()
    io.save_checkpoint({"epoch": 1}, tmp_path / "a.ckpt")  # the flush fails after it returns
    calls = {
        "save": lambda: io.save_checkpoint({"epoch": 2}, tmp_path / "b.ckpt"),
        "remove": lambda: io.remove_checkpoint(tmp_path / "old.ckpt"),
        "teardown": io.teardown,
    }
    message = rf"\[Errno 5\] Flushing the checkpoint {str(tmp_path / 'a.ckpt')!r} to disk failed"
    with pytest.raises(OSError, match=message) as info:
        calls[next_call]()
    assert info.value.errno == 5
    assert sorted(os.listdir(tmp_path)) == ["a.ckpt", "old.ckpt"]  # no b.ckpt, no temporary file
    assert (tmp_path / "old.ckpt").read_bytes() == b"x"
    monkeypatch.setattr(os, "fsync", fsync.real)
    io.teardown()  # raised once


def test_a_failed_rename_names_the_checkpoint_and_the_cause_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    io = TorchCheckpointIO()
    io.save_checkpoint({"epoch": 1}, tmp_path / "a.ckpt")
    before = (tmp_path / "a.ckpt").read_bytes()

    def refuse(source: str, target: str) -> None:
        raise PermissionError(13, "Permission denied", source)

    monkeypatch.setattr(os, "replace", refuse)
    message = (
        rf"\[Errno 13\] Could not save the checkpoint {str(tmp_path / 'a.ckpt')!r}: Permission"
    )
    with pytest.raises(PermissionError, match=message):
        io.save_checkpoint({"epoch": 2}, tmp_path / "a.ckpt")
    io.teardown()
    assert os.listdir(tmp_path) == ["a.ckpt"]
    assert (tmp_path / "a.ckpt").read_bytes() == before


def test_a_failed_removal_names_the_checkpoint_and_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.ckpt").write_bytes(b"x")

    def refuse(path: str) -> None:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(os, "remove", refuse)
    message = rf"Could not remove the checkpoint {str(tmp_path / 'a.ckpt')!r}: Permission denied"
    with pytest.raises(PermissionError, match=message):
        TorchCheckpointIO().remove_checkpoint(tmp_path / "a.ckpt")
    assert (tmp_path / "a.ckpt").read_bytes() == b"x"


@pytest.fixture
def memory_root() -> Any:
    root = f"/fulmen-test-{uuid.uuid4().hex}"
    yield root
    fs = MemoryFileSystem()
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_memory_urls_are_written_under_a_temporary_name_then_moved(
    memory_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    moves: list[tuple[str, str]] = []
    original_mv = MemoryFileSystem.mv

    def recording_mv(self: MemoryFileSystem, path1: str, path2: str, **kwargs: Any) -> None:
        moves.append((path1, path2))
        original_mv(self, path1, path2, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, "mv", recording_mv)
    url = f"memory://{memory_root}/run/a.ckpt"
    io = TorchCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}}, url)
    assert len(moves) == 1
    assert moves[0][0].startswith(f"{memory_root}/run/a.ckpt.") and moves[0][0].endswith(".tmp")
    assert moves[0][1] == f"{memory_root}/run/a.ckpt"
    assert MemoryFileSystem().ls(f"{memory_root}/run", detail=False) == [
        f"{memory_root}/run/a.ckpt"
    ]
    assert torch.equal(io.load_checkpoint(url)["state_dict"]["w"], torch.ones(2))
    assert verify_checkpoint_file(url)
    io.remove_checkpoint(url)
    io.remove_checkpoint(url)
    assert not MemoryFileSystem().exists(f"{memory_root}/run/a.ckpt")


class NoMoveFileSystem(MemoryFileSystem):  # type: ignore[misc]
    """A filesystem with neither a copy nor a move of its own; records the paths it opens."""

    protocol = "fulmentestnomove"
    cp_file = AbstractFileSystem.cp_file
    mv = AbstractFileSystem.mv
    opened: list[str] = []

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return str(super()._strip_protocol(path.replace(f"{cls.protocol}://", "memory://", 1)))

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        self.opened.append(path)
        return super()._open(path, mode, **kwargs)


class BrokenMoveFileSystem(NoMoveFileSystem):
    """Claims a copy of its own, which then turns out not to be implemented."""

    protocol = "fulmentestbrokenmove"

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        raise NotImplementedError


@pytest.mark.parametrize("filesystem", [NoMoveFileSystem, BrokenMoveFileSystem])
def test_filesystems_without_move_are_written_directly(
    memory_root: str, filesystem: type[NoMoveFileSystem]
) -> None:
    fsspec.register_implementation(filesystem.protocol, filesystem, clobber=True)
    filesystem.opened = []
    url = f"{filesystem.protocol}://{memory_root}/a.ckpt"
    io = TorchCheckpointIO()
    io.save_checkpoint({"epoch": 3}, url)
    assert filesystem().ls(memory_root, detail=False) == [f"{memory_root}/a.ckpt"]
    assert filesystem.opened[-1] == f"{memory_root}/a.ckpt"
    assert len(filesystem.opened) == (1 if filesystem is NoMoveFileSystem else 2)
    assert io.load_checkpoint(url) == {"epoch": 3}


# ---------------------------------------------------------------------------- verify_checkpoint_file


class Unsafe:
    """A class safe loading does not know, so a checkpoint holding it needs weights_only=False."""


def test_verify_checkpoint_file_accepts_intact_files_and_rejects_damaged_ones(
    tmp_path: Path,
) -> None:
    io = TorchCheckpointIO()
    for name in ("good", "flipped", "truncated", "unsafe", "unsafe_truncated"):
        payload: dict[str, Any] = {"state_dict": {"w": torch.arange(64.0)}}
        if name.startswith("unsafe"):
            payload["obj"] = Unsafe()
        io.save_checkpoint(payload, tmp_path / f"{name}.ckpt")
    torch.save({"w": torch.ones(2)}, tmp_path / "lightning.ckpt")
    torch.save([1, 2], tmp_path / "list.ckpt")
    flip_tensor_byte(tmp_path / "flipped.ckpt")
    truncate(tmp_path / "truncated.ckpt")
    truncate(tmp_path / "unsafe_truncated.ckpt")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    verdicts = {
        p.stem: verify_checkpoint_file(p) for p in sorted(tmp_path.iterdir(), key=lambda p: p.name)
    }
    assert verdicts == {
        "flipped": False,
        "good": True,
        "lightning": True,
        "list": False,
        "text": False,
        "truncated": False,
        "unsafe": True,
        "unsafe_truncated": False,
    }
    assert verify_checkpoint_file(tmp_path / "missing.ckpt") is False


# ---------------------------------------------------------------------------- AsyncCheckpointIO


class GatedIO(TorchCheckpointIO):
    """Writes only once `gate` is set; records how many writes ran at the same time."""

    def __init__(self, fail: bool = False) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.fail = fail
        self.active = 0
        self.max_active = 0
        self.written: list[str] = []
        self._lock = threading.Lock()

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        self.started.set()
        try:
            assert self.gate.wait(10), "the test never opened the gate"
            if self.fail:
                raise OSError(28, "No space left on device")
            super().save_checkpoint(checkpoint, path, storage_options)
            self.written.append(Path(path).name)
        finally:
            with self._lock:
                self.active -= 1


def run_in_thread(target: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def test_async_save_returns_before_the_write_and_keeps_the_state_of_the_call(
    tmp_path: Path,
) -> None:
    inner = GatedIO()
    io = AsyncCheckpointIO(inner)
    weights = torch.arange(4.0)
    moments = {"exp_avg": torch.ones(4)}
    io.save_checkpoint({"state_dict": {"w": weights}, "optimizer": moments}, tmp_path / "a.ckpt")
    assert inner.started.wait(5)
    assert not (tmp_path / "a.ckpt").exists()  # the write is still waiting: the call did not
    weights.mul_(0)
    moments["exp_avg"] = torch.zeros(4)
    inner.gate.set()
    io.teardown()
    loaded = io.load_checkpoint(tmp_path / "a.ckpt")
    assert torch.equal(loaded["state_dict"]["w"], torch.arange(4.0))
    assert torch.equal(loaded["optimizer"]["exp_avg"], torch.ones(4))


def test_async_save_keeps_shared_storage_shared(tmp_path: Path) -> None:
    tied = torch.randn(256, 256)
    checkpoint = {"state_dict": {"embed": tied, "head": tied.detach(), "row": tied[3]}}
    TorchCheckpointIO().save_checkpoint(checkpoint, tmp_path / "sync.ckpt")
    io = AsyncCheckpointIO()
    io.save_checkpoint(checkpoint, tmp_path / "async.ckpt")
    io.teardown()
    sync_size = (tmp_path / "sync.ckpt").stat().st_size
    assert abs((tmp_path / "async.ckpt").stat().st_size - sync_size) < 1024
    assert sync_size < 1.5 * tied.numel() * 4
    loaded = io.load_checkpoint(tmp_path / "async.ckpt")
    assert torch.equal(loaded["state_dict"]["row"], tied[3])


def test_async_second_save_waits_for_the_first(tmp_path: Path) -> None:
    inner = GatedIO()
    io = AsyncCheckpointIO(inner)
    io.save_checkpoint({"epoch": 1}, tmp_path / "1.ckpt")
    second = run_in_thread(io.save_checkpoint, {"epoch": 2}, tmp_path / "2.ckpt")
    second.join(0.3)
    assert second.is_alive()  # blocked behind the first write
    inner.gate.set()
    second.join(5)
    assert not second.is_alive()
    io.teardown()
    assert inner.written == ["1.ckpt", "2.ckpt"]
    assert inner.max_active == 1


def test_async_write_error_is_raised_by_the_next_save(tmp_path: Path) -> None:
    inner = GatedIO(fail=True)
    inner.gate.set()
    io = AsyncCheckpointIO(inner)
    io.save_checkpoint({"epoch": 1}, tmp_path / "a.ckpt")
    with pytest.raises(OSError, match="No space left") as info:
        io.save_checkpoint({"epoch": 2}, tmp_path / "b.ckpt")
    if sys.version_info >= (3, 11):
        assert f"{str(tmp_path / 'a.ckpt')!r} failed" in "\n".join(info.value.__notes__)
    io.teardown()  # the error was raised once; the failed call wrote nothing
    assert inner.written == []


def test_async_write_error_is_raised_by_teardown(tmp_path: Path) -> None:
    inner = GatedIO(fail=True)
    inner.gate.set()
    io = AsyncCheckpointIO(inner)
    io.save_checkpoint({"epoch": 1}, tmp_path / "a.ckpt")
    with pytest.raises(OSError, match="No space left"):
        io.teardown()


def test_async_write_error_is_raised_by_a_later_remove_of_another_file(tmp_path: Path) -> None:
    inner = GatedIO(fail=True)
    inner.gate.set()
    io = AsyncCheckpointIO(inner)
    io.save_checkpoint({"epoch": 1}, tmp_path / "a.ckpt")
    deadline = time.monotonic() + 5
    with pytest.raises(OSError, match="No space left"):
        while time.monotonic() < deadline:  # raises once the write has failed
            io.remove_checkpoint(tmp_path / "other.ckpt")
            time.sleep(0.01)


def test_async_teardown_waits_for_the_pending_write(tmp_path: Path) -> None:
    inner = GatedIO()
    io = AsyncCheckpointIO(inner)
    io.save_checkpoint({"epoch": 1}, tmp_path / "a.ckpt")
    threading.Timer(0.2, inner.gate.set).start()
    io.teardown()
    assert (tmp_path / "a.ckpt").exists()
    io.save_checkpoint({"epoch": 2}, tmp_path / "b.ckpt")  # usable again after teardown
    io.teardown()
    assert io.load_checkpoint(tmp_path / "b.ckpt") == {"epoch": 2}


def test_async_remove_waits_for_the_pending_write_of_that_path(tmp_path: Path) -> None:
    inner = GatedIO()
    io = AsyncCheckpointIO(inner)
    io.save_checkpoint({"epoch": 1}, tmp_path / "a.ckpt")
    remover = run_in_thread(io.remove_checkpoint, str(tmp_path / "a.ckpt"))
    remover.join(0.3)
    assert remover.is_alive()
    inner.gate.set()
    remover.join(5)
    assert not remover.is_alive()
    io.teardown()
    assert os.listdir(tmp_path) == []  # removed after the write, not resurrected by it


def test_async_remove_of_another_path_returns_at_once_and_runs_after_the_write(
    tmp_path: Path,
) -> None:
    inner = GatedIO()
    io = AsyncCheckpointIO(inner)
    (tmp_path / "old.ckpt").write_bytes(b"x")
    io.save_checkpoint({"epoch": 1}, tmp_path / "a.ckpt")
    io.remove_checkpoint(tmp_path / "old.ckpt")  # returns although the write is held back
    assert (tmp_path / "old.ckpt").exists()  # the older file outlives the newer one's write
    inner.gate.set()
    io.teardown()
    assert os.listdir(tmp_path) == ["a.ckpt"]


def test_async_failed_write_keeps_the_file_whose_removal_was_queued_behind_it(
    tmp_path: Path,
) -> None:
    inner = GatedIO(fail=True)
    io = AsyncCheckpointIO(inner)
    (tmp_path / "old.ckpt").write_bytes(b"x")
    io.save_checkpoint({"epoch": 1}, tmp_path / "a.ckpt")
    io.remove_checkpoint(tmp_path / "old.ckpt")
    inner.gate.set()
    with pytest.raises(OSError, match="No space left") as info:
        io.teardown()
    if sys.version_info >= (3, 11):
        assert f"{str(tmp_path / 'a.ckpt')!r} failed" in "\n".join(info.value.__notes__)
    assert os.listdir(tmp_path) == ["old.ckpt"]
    assert (tmp_path / "old.ckpt").read_bytes() == b"x"


def test_async_load_waits_for_the_pending_write_of_that_path(tmp_path: Path) -> None:
    inner = GatedIO()
    io = AsyncCheckpointIO(inner)
    io.save_checkpoint({"epoch": 5}, tmp_path / "a.ckpt")
    threading.Timer(0.2, inner.gate.set).start()
    assert io.load_checkpoint(tmp_path / "a.ckpt") == {"epoch": 5}
    io.teardown()


def test_async_checkpoint_io_defaults_to_torch_io_and_rejects_bad_inner_plugins() -> None:
    assert type(AsyncCheckpointIO().checkpoint_io) is TorchCheckpointIO
    with pytest.raises(ValueError, match="one background writer is enough"):
        AsyncCheckpointIO(AsyncCheckpointIO())
    with pytest.raises(TypeError, match=r"checkpoint_io='disk'"):
        AsyncCheckpointIO("disk")  # type: ignore[arg-type]


def test_async_checkpoint_io_is_exported_where_lightning_has_it() -> None:
    import fulmen.plugins
    import fulmen.plugins.io

    assert fulmen.plugins.AsyncCheckpointIO is AsyncCheckpointIO
    assert fulmen.plugins.io.AsyncCheckpointIO is AsyncCheckpointIO
    assert issubclass(AsyncCheckpointIO, CheckpointIO)


@pytest.mark.gpu
def test_async_save_copies_cuda_tensors_to_host_before_returning(tmp_path: Path) -> None:
    inner = GatedIO()
    io = AsyncCheckpointIO(inner)
    weights = torch.arange(1024.0, device="cuda")
    io.save_checkpoint({"state_dict": {"w": weights}}, tmp_path / "a.ckpt")
    weights.zero_()
    inner.gate.set()
    io.teardown()
    loaded = io.load_checkpoint(tmp_path / "a.ckpt")
    assert loaded["state_dict"]["w"].device.type == "cpu"
    assert torch.equal(loaded["state_dict"]["w"], torch.arange(1024.0))
