"""`check_checkpoint_crcs`: the zip CRCs torch.save writes, checked since torch.load does not."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from fulmen.plugins.io import TorchCheckpointIO
from fulmen.utilities.checksum import (
    CheckpointCorruptedError,
    check_checkpoint_crcs,
    verify_checkpoint_file,
)


def save(path: Path) -> Path:
    torch.save({"state_dict": {"w": torch.arange(256.0)}, "epoch": 3}, path)
    return path


def flip_byte_of_entry(path: Path, suffix: str, offset: int = 0) -> None:
    """Invert one byte of the zip entry whose name ends with `suffix`."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(suffix))
    with open(path, "r+b") as stream:
        stream.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", stream.read(4))
        position = info.header_offset + 30 + name_length + extra_length + offset
        stream.seek(position)
        byte = stream.read(1)[0]
        stream.seek(position)
        stream.write(bytes([byte ^ 0x01]))


def test_an_intact_checkpoint_passes_and_its_crcs_were_checked(tmp_path: Path) -> None:
    assert check_checkpoint_crcs(save(tmp_path / "a.ckpt")) is True


@pytest.mark.parametrize(("entry", "offset"), [("/data/0", 0), ("/data/0", 1023), ("data.pkl", 5)])
def test_one_changed_bit_anywhere_is_named_by_file_and_entry(
    tmp_path: Path, entry: str, offset: int
) -> None:
    path = save(tmp_path / "a.ckpt")
    flip_byte_of_entry(path, entry, offset)
    with pytest.raises(CheckpointCorruptedError, match=rf"{str(path)!r} is corrupted: .*{entry}"):
        check_checkpoint_crcs(path)
    assert verify_checkpoint_file(path) is False


def test_a_damaged_pickle_is_reported_as_corruption_not_as_an_unpickling_error(
    tmp_path: Path,
) -> None:
    path = save(tmp_path / "a.ckpt")
    flip_byte_of_entry(path, "data.pkl", 2)  # the opcode after PROTO: the pickle is garbage
    with pytest.raises(CheckpointCorruptedError, match="data.pkl' has CRC32"):
        TorchCheckpointIO().load_checkpoint(path)


def test_every_truncation_is_detected(tmp_path: Path) -> None:
    data = save(tmp_path / "full.ckpt").read_bytes()
    cut = tmp_path / "cut.ckpt"
    for length in [4, 30, 100, len(data) // 3, len(data) // 2, len(data) - 200, len(data) - 1]:
        cut.write_bytes(data[:length])
        with pytest.raises(CheckpointCorruptedError, match=rf"{str(cut)!r} is corrupted"):
            check_checkpoint_crcs(cut)


def test_files_without_crcs_pass_unchecked(tmp_path: Path) -> None:
    from torch.utils.serialization import config

    legacy = tmp_path / "legacy.ckpt"
    torch.save({"epoch": 1}, legacy, _use_new_zipfile_serialization=False)
    assert check_checkpoint_crcs(legacy) is False
    config.save.compute_crc32 = False
    try:
        no_crcs = save(tmp_path / "no_crcs.ckpt")
    finally:
        config.save.compute_crc32 = True
    assert check_checkpoint_crcs(no_crcs) is False


def test_an_open_stream_is_checked_and_left_where_it_was(tmp_path: Path) -> None:
    prefix = b"header before the checkpoint"
    buffer = io.BytesIO(prefix + save(tmp_path / "a.ckpt").read_bytes())
    buffer.seek(len(prefix))  # the checkpoint starts where the stream stands
    assert check_checkpoint_crcs(buffer) is True
    assert buffer.tell() == len(prefix)


def test_a_recompressed_checkpoint_is_checked_through_its_decompressed_bytes(
    tmp_path: Path,
) -> None:
    original = save(tmp_path / "a.ckpt")
    recompressed = tmp_path / "deflated.ckpt"
    with zipfile.ZipFile(original) as src, zipfile.ZipFile(recompressed, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    assert check_checkpoint_crcs(recompressed) is True
    assert TorchCheckpointIO().load_checkpoint(recompressed)["epoch"] == 3
    with zipfile.ZipFile(recompressed) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("/data/0"))
    data = bytearray(recompressed.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 10] ^= 0xFF  # inside the deflate stream
    recompressed.write_bytes(bytes(data))
    with pytest.raises(CheckpointCorruptedError, match="data/0' does not decompress"):
        check_checkpoint_crcs(recompressed)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        check_checkpoint_crcs(tmp_path / "missing.ckpt")
