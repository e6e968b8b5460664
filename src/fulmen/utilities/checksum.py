"""Checksums that let a checkpoint prove it was read back exactly as it was written.

The checksum is a sha256 over a canonical encoding of the checkpoint dict: each tensor's dtype,
shape and raw bytes, and every plain value (numbers, strings, containers) with a type tag. It is
computed by walking the dict, so a checkpoint is never serialized twice, and it survives the
round trip through `torch.save`/`torch.load`, which keeps every value this encoding looks at.
`TorchCheckpointIO` stores it under `CHECKSUM_KEY` and checks it on load.
"""

from __future__ import annotations

import hashlib
import struct
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from fulmen.utilities.exceptions import MisconfigurationException

__all__ = [
    "CHECKSUM_KEY",
    "CheckpointCorruptedError",
    "add_checksum",
    "checkpoint_checksum",
    "check_and_strip_checksum",
    "verify_checkpoint_file",
]

CHECKSUM_KEY = "fulmen_checksum"
_PREFIX = "sha256:"


class CheckpointCorruptedError(MisconfigurationException):
    """A checkpoint's content does not match the checksum it was saved with."""


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


def verify_checkpoint_file(path: str | Path) -> bool:
    """Return whether the file at `path` (local or fsspec URL) is a complete, intact checkpoint.

    The file must load with `torch.load(weights_only=True)` and match its checksum if it has one.
    A file holding objects that safe loading refuses is not unpickled (that could run code); it
    passes if its zip container is complete and every entry matches its CRC.

    Example::

        >>> import tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> good, bad = os.path.join(folder, "good.ckpt"), os.path.join(folder, "bad.ckpt")
        >>> torch.save(add_checksum({"w": torch.ones(3)}), good)
        >>> with open(good, "rb") as src, open(bad, "wb") as dst:
        ...     _ = dst.write(src.read()[:100])
        >>> verify_checkpoint_file(good), verify_checkpoint_file(bad)
        (True, False)
    """
    import fsspec

    try:
        fs, fs_path = fsspec.core.url_to_fs(str(path))
        with fs.open(fs_path, "rb") as stream:
            checkpoint = torch.load(stream, map_location="cpu", weights_only=True)
    except Exception as err:
        if isinstance(err, FileNotFoundError) or "weights_only" not in str(err):
            return False
        return _zip_is_intact(path)
    if not isinstance(checkpoint, dict):
        return False
    try:
        check_and_strip_checksum(checkpoint, path)
    except CheckpointCorruptedError:
        return False
    return True


def _zip_is_intact(path: str | Path) -> bool:
    import fsspec

    try:
        with fsspec.open(str(path), "rb") as stream, zipfile.ZipFile(stream) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
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
