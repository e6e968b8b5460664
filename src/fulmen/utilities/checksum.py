"""Prove that a checkpoint file reads back exactly as it was written.

Two checks, both raising `CheckpointCorruptedError` naming the file:

- Zip CRCs (every checkpoint `torch.save` writes): each entry of the zip container carries the
  CRC32 of its bytes, which `torch.load` never looks at. `check_checkpoint_crcs` reads the file
  once and compares; it also notices a file cut short (its zip directory is missing).
- A sha256 entry (`CHECKSUM_KEY`) inside the checkpoint dict: what fulmen wrote before it relied
  on the CRCs, and still writes when `torch.utils.serialization.config.save.compute_crc32` is off
  (torch then stores 0 for every CRC). It covers a canonical encoding of the dict (each tensor's
  dtype, shape and raw bytes, and every plain value with a type tag), computed by walking it.
"""

from __future__ import annotations

import hashlib
import struct
import sys
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Protocol

import torch

from fulmen.utilities.exceptions import MisconfigurationException

__all__ = [
    "CHECKSUM_KEY",
    "CheckpointCorruptedError",
    "add_checksum",
    "checkpoint_checksum",
    "check_and_strip_checksum",
    "check_checkpoint_crcs",
    "verify_checkpoint_file",
]

CHECKSUM_KEY = "fulmen_checksum"
_PREFIX = "sha256:"


class CheckpointCorruptedError(MisconfigurationException):
    """A checkpoint file is cut short, or its content differs from what was saved."""


class _Sink(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...


def checkpoint_checksum(checkpoint: Mapping[str, Any]) -> str:
    """Return the checksum of a checkpoint dict, leaving out its own checksum entry.

    Example::

        >>> a = checkpoint_checksum({"w": torch.ones(2), "epoch": 3})
        >>> a == checkpoint_checksum({"epoch": 3, "w": torch.ones(2)})
        True
        >>> a == checkpoint_checksum({"w": torch.tensor([1.0, 2.0]), "epoch": 3})
        False
    """
    digest = hashlib.sha256()
    content = {k: v for k, v in checkpoint.items() if k != CHECKSUM_KEY}
    _encode(content, digest, set())
    return _PREFIX + digest.hexdigest()


def add_checksum(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """Return a shallow copy of `checkpoint` that carries its checksum under `CHECKSUM_KEY`.

    Example::

        >>> add_checksum({"epoch": 1})[CHECKSUM_KEY].startswith("sha256:")
        True
    """
    return {**checkpoint, CHECKSUM_KEY: checkpoint_checksum(checkpoint)}


def check_and_strip_checksum(checkpoint: dict[str, Any], path: Any) -> dict[str, Any]:
    """Verify and remove the checksum entry of a loaded checkpoint; raise if the content differs.

    A checkpoint without the entry (written by Lightning or an older fulmen) passes unchecked.
    The dict is returned without the entry, so checking twice is harmless.

    Example::

        >>> saved = add_checksum({"epoch": 1})
        >>> check_and_strip_checksum(saved, "a.ckpt")
        {'epoch': 1}
        >>> bad = add_checksum({"epoch": 1}); bad["epoch"] = 2
        >>> check_and_strip_checksum(bad, "a.ckpt")
        Traceback (most recent call last):
        ...
        fulmen.utilities.checksum.CheckpointCorruptedError: The checkpoint 'a.ckpt' is corrupted: ...
    """
    expected = checkpoint.pop(CHECKSUM_KEY, None)
    if expected is None:
        return checkpoint
    if not isinstance(expected, str) or not expected.startswith(_PREFIX):
        raise CheckpointCorruptedError(
            f"The checkpoint {str(path)!r} is corrupted: its {CHECKSUM_KEY!r} entry is "
            f"{expected!r}, expected a string starting with {_PREFIX!r}."
        )
    actual = checkpoint_checksum(checkpoint)
    if actual != expected:
        raise CheckpointCorruptedError(
            f"The checkpoint {str(path)!r} is corrupted: its content has checksum {actual}, but "
            f"it was saved with {expected}. Use another checkpoint (for example an older one)."
        )
    return checkpoint


def check_checkpoint_crcs(file: str | Path | IO[bytes]) -> bool:
    """Raise `CheckpointCorruptedError` if the checkpoint file is cut short or fails a zip CRC.

    `file` is a path (local or fsspec URL) or an open, seekable binary stream, which is left at
    the position it had. Return whether any CRC was checked: False for a file in torch's legacy
    (non-zip) format, or saved with `compute_crc32` off; such files pass unchecked here.

    Example::

        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "a.ckpt")
        >>> torch.save({"w": torch.ones(3)}, path)
        >>> check_checkpoint_crcs(path)
        True
        >>> with open(path, "rb") as src:
        ...     data = src.read()
        >>> with open(path, "wb") as dst:
        ...     _ = dst.write(data[: len(data) // 2])
        >>> check_checkpoint_crcs(path)
        Traceback (most recent call last):
        ...
        fulmen.utilities.checksum.CheckpointCorruptedError: The checkpoint '...a.ckpt' is corrupted: ...
    """
    return _check_file(file).crcs_checked


def verify_checkpoint_file(path: str | Path) -> bool:
    """Return whether the file at `path` (local or fsspec URL) is a complete, intact checkpoint.

    A zip checkpoint (what `torch.save` writes) must pass its CRCs and hold a dict; its tensors
    are not loaded and nothing is unpickled. Other files (legacy format, CRCs off, a sha256
    entry) must load with `torch.load(weights_only=True)` and match their checksum if they have
    one; a file holding objects that safe loading refuses is not unpickled (that could run code)
    and passes if its zip container is complete.

    Example::

        >>> import tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> good, bad = os.path.join(folder, "good.ckpt"), os.path.join(folder, "bad.ckpt")
        >>> torch.save({"w": torch.ones(3)}, good)
        >>> with open(good, "rb") as src, open(bad, "wb") as dst:
        ...     _ = dst.write(src.read()[:100])
        >>> verify_checkpoint_file(good), verify_checkpoint_file(bad)
        (True, False)
    """
    import fsspec

    try:
        container = _check_file(path)
    except (CheckpointCorruptedError, OSError):
        return False
    if container.crcs_checked and container.holds_plain_dict and not container.has_checksum_entry:
        return True
    try:
        fs, fs_path = fsspec.core.url_to_fs(str(path))
        with fs.open(fs_path, "rb") as stream:
            checkpoint = torch.load(stream, map_location="cpu", weights_only=True)
    except Exception as err:
        # Refused by safe loading: the zip container was checked above, and that is all we can
        # check without running the file's code.
        return container.is_zip and "weights_only" in str(err)
    if not isinstance(checkpoint, dict):
        return False
    try:
        check_and_strip_checksum(checkpoint, path)
    except CheckpointCorruptedError:
        return False
    return True


class _Container:
    """What reading a checkpoint file's zip container found out."""

    def __init__(self, is_zip: bool, crcs_checked: bool, pickle: bytes = b"") -> None:
        self.is_zip = is_zip
        self.crcs_checked = crcs_checked
        # The key in the pickle's bytes: a string (almost) never appears in them otherwise, and a
        # false alarm only means the slower full check.
        self.has_checksum_entry = CHECKSUM_KEY.encode() in pickle
        self.holds_plain_dict = _pickles_a_dict(pickle)


_ZIP_MAGIC = b"PK\x03\x04"
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, then the name and extra field lengths
_CHUNK = 1 << 20


def _check_file(file: str | Path | IO[bytes]) -> _Container:
    if not isinstance(file, (str, Path)):
        if not file.seekable():
            return _Container(is_zip=False, crcs_checked=False)
        start = file.tell()
        try:
            return _check_stream(file, getattr(file, "name", file))
        finally:
            file.seek(start)
    import fsspec

    fs, fs_path = fsspec.core.url_to_fs(str(file))
    try:
        stream = fs.open(fs_path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"Checkpoint file not found: {str(file)!r}.") from None
    with stream:
        return _check_stream(stream, file)


def _check_stream(stream: IO[bytes], path: Any) -> _Container:
    start = stream.tell()
    magic = stream.read(len(_ZIP_MAGIC))
    if magic != _ZIP_MAGIC:
        if not magic:
            raise CheckpointCorruptedError(
                f"The checkpoint {str(path)!r} is corrupted: it is empty."
            )
        return _Container(is_zip=False, crcs_checked=False)
    try:
        stream.seek(start)
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, EOFError, ValueError) as err:
        raise CheckpointCorruptedError(
            f"The checkpoint {str(path)!r} is corrupted: its zip directory is unreadable ({err}), "
            "so the file was probably cut short while it was written. Use another checkpoint "
            "(for example an older one)."
        ) from err
    crcs_checked = False
    pickle = b""
    # In file order, so the file is read front to back exactly once.
    for info in sorted(archive.infolist(), key=lambda entry: entry.header_offset):
        is_pickle = info.filename.endswith("/data.pkl")
        if info.CRC == 0 and not is_pickle:
            # torch stores 0 when compute_crc32 is off (and an empty entry's CRC is 0 anyway).
            continue
        crc, kept = _entry_crc(archive, stream, info, path, keep=is_pickle)
        if info.CRC != 0 and crc != info.CRC:
            raise CheckpointCorruptedError(
                f"The checkpoint {str(path)!r} is corrupted: its entry {info.filename!r} has "
                f"CRC32 {crc:08x}, but it was saved with {info.CRC:08x}. Use another checkpoint "
                "(for example an older one)."
            )
        crcs_checked = crcs_checked or info.CRC != 0
        if is_pickle:
            pickle = kept
    return _Container(is_zip=True, crcs_checked=crcs_checked, pickle=pickle)


def _entry_crc(
    archive: zipfile.ZipFile,
    stream: IO[bytes],
    info: zipfile.ZipInfo,
    path: Any,
    keep: bool,
) -> tuple[int, bytes]:
    """Return the CRC32 of one entry's bytes, and the bytes themselves if `keep`."""
    crc, kept = 0, bytearray()
    if info.compress_type != zipfile.ZIP_STORED:
        # torch never compresses; some archivers do when they rewrite a file.
        try:
            with archive.open(info) as member:
                while chunk := member.read(_CHUNK):
                    crc = zlib.crc32(chunk, crc)
                    if keep:
                        kept += chunk
        except (zipfile.BadZipFile, EOFError, zlib.error) as err:
            raise CheckpointCorruptedError(
                f"The checkpoint {str(path)!r} is corrupted: its entry {info.filename!r} does not "
                f"decompress to what was saved ({err})."
            ) from err
        return crc, bytes(kept)
    # zipfile reports offsets within the stream, even when the zip starts after other data.
    stream.seek(info.header_offset)
    header = stream.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size:
        raise _cut_short(path, info)
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    if signature != _ZIP_MAGIC:
        raise CheckpointCorruptedError(
            f"The checkpoint {str(path)!r} is corrupted: the header of its entry "
            f"{info.filename!r} is damaged."
        )
    stream.seek(name_length + extra_length, 1)
    left = info.compress_size
    while left > 0:
        chunk = stream.read(min(left, _CHUNK))
        if not chunk:
            raise _cut_short(path, info)
        crc = zlib.crc32(chunk, crc)
        if keep:
            kept += chunk
        left -= len(chunk)
    return crc, bytes(kept)


def _cut_short(path: Any, info: zipfile.ZipInfo) -> CheckpointCorruptedError:
    return CheckpointCorruptedError(
        f"The checkpoint {str(path)!r} is corrupted: its entry {info.filename!r} is cut short."
    )


def _pickles_a_dict(pickle: bytes) -> bool:
    """Whether a pickle starts by building a plain dict (what every checkpoint is)."""
    import pickletools

    try:
        for opcode, _, _ in pickletools.genops(pickle):
            if opcode.name not in ("PROTO", "FRAME"):
                return opcode.name == "EMPTY_DICT"
    except (ValueError, IndexError):
        pass  # not a pickle at all: not a dict we can vouch for
    return False


def _encode(value: Any, sink: _Sink, active: set[int]) -> None:
    # Every value starts with a one-byte tag and every variable-length part carries its length,
    # so two different checkpoints can never produce the same byte stream.
    if value is None:
        sink.update(b"N")
    elif isinstance(value, bool):
        sink.update(b"T" if value else b"F")
    elif isinstance(value, int):
        _encode_bytes(b"i", str(value).encode(), sink)
    elif isinstance(value, float):
        sink.update(b"f" + struct.pack("<d", value))
    elif isinstance(value, complex):
        sink.update(b"c" + struct.pack("<dd", value.real, value.imag))
    elif isinstance(value, str):
        _encode_bytes(b"s", value.encode("utf-8", "surrogatepass"), sink)
    elif isinstance(value, (bytes, bytearray)):
        _encode_bytes(b"b", bytes(value), sink)
    elif isinstance(value, torch.Tensor):
        _encode_tensor(value, sink)
    elif isinstance(value, (torch.dtype, torch.device)):
        _encode_bytes(b"D" if isinstance(value, torch.dtype) else b"v", str(value).encode(), sink)
    elif isinstance(value, (Mapping, list, tuple, set, frozenset)):
        if id(value) in active:
            # A container inside itself: torch.save keeps the cycle, so mark where it closes.
            sink.update(b"@")
            return
        active.add(id(value))
        _encode_container(value, sink, active)
        active.discard(id(value))
    elif _is_numpy(value):
        _encode_numpy(value, sink)
    else:
        # Arbitrary objects have no canonical byte form; their type is still covered.
        cls = type(value)
        _encode_bytes(b"o", f"{cls.__module__}.{cls.__qualname__}".encode(), sink)


def _encode_container(value: Any, sink: _Sink, active: set[int]) -> None:
    if isinstance(value, Mapping):
        # Sorted by the encoded key, so the checksum does not depend on insertion order.
        items = sorted(((_encode_small(k, active), v) for k, v in value.items()), key=_first)
        sink.update(b"d" + struct.pack("<Q", len(items)))
        for key_bytes, item in items:
            sink.update(key_bytes)
            _encode(item, sink, active)
    elif isinstance(value, (set, frozenset)):
        members = sorted(_encode_small(member, active) for member in value)
        sink.update(b"S" + struct.pack("<Q", len(members)))
        for member_bytes in members:
            sink.update(member_bytes)
    else:
        sink.update((b"l" if isinstance(value, list) else b"t") + struct.pack("<Q", len(value)))
        for item in value:
            _encode(item, sink, active)


def _first(pair: tuple[bytes, Any]) -> bytes:
    return pair[0]


class _Buffer:
    def __init__(self) -> None:
        self.data = bytearray()

    def update(self, data: bytes | memoryview, /) -> None:
        self.data += data


def _encode_small(value: Any, active: set[int]) -> bytes:
    # Dict keys and set members are hashable, hence small: encode them whole to sort them.
    buffer = _Buffer()
    _encode(value, buffer, active)
    return bytes(buffer.data)


def _encode_bytes(tag: bytes, data: bytes, sink: _Sink) -> None:
    sink.update(tag + struct.pack("<Q", len(data)))
    sink.update(data)


def _encode_tensor(tensor: torch.Tensor, sink: _Sink) -> None:
    _encode_bytes(b"x", str(tensor.dtype).encode(), sink)
    sink.update(struct.pack("<Q", tensor.dim()) + struct.pack(f"<{tensor.dim()}q", *tensor.shape))
    data = tensor.detach()
    if data.is_meta:
        return
    if data.layout != torch.strided:
        data = data.to_dense()
    if data.is_quantized:
        data = data.int_repr()
    # Hash one tensor at a time: a GPU tensor is copied to the host alone, never the whole dict.
    data = data.resolve_conj().resolve_neg().cpu().contiguous().reshape(-1)
    raw = data.view(torch.uint8).numpy()
    sink.update(struct.pack("<Q", raw.nbytes))
    sink.update(raw.data)


def _is_numpy(value: Any) -> bool:
    # numpy is imported by torch anyway; only look for it, never import it here.
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, (numpy.ndarray, numpy.generic))


def _encode_numpy(value: Any, sink: _Sink) -> None:
    import numpy

    array = numpy.asarray(value)
    _encode_bytes(
        b"n" if isinstance(value, numpy.ndarray) else b"g", array.dtype.str.encode(), sink
    )
    sink.update(struct.pack("<Q", array.ndim) + struct.pack(f"<{array.ndim}q", *array.shape))
    if array.dtype.hasobject:
        for item in array.reshape(-1).tolist():
            _encode(item, sink, set())
        return
    _encode_bytes(b"", array.tobytes(), sink)  # tobytes() is C order for any memory layout
