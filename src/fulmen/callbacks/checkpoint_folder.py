"""What a `ModelCheckpoint` finds in its folder when a run starts again after being killed.

A run killed in the middle of a save leaves a temporary file; one killed after writing a top-k
file but before its next `last.ckpt` leaves a checkpoint that the state it resumes from does not
list. Both are cleaned up here, and only files that provably belong to this callback: the exact
temporary-name pattern, or a checkpoint holding this callback's state for this folder.
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any

import torch

from fulmen.utilities.rank_zero import rank_zero_warn

if TYPE_CHECKING:
    from fulmen.callbacks.model_checkpoint import ModelCheckpoint
    from fulmen.trainer.trainer import Trainer

__all__ = [
    "TEMPLATE_FIELD",
    "filesystem",
    "is_local",
    "name_pattern",
    "remove_leftovers",
    "run_died_before_its_first_last",
    "unlisted_own_files",
]

log = logging.getLogger(__name__)
# A template field: `{name}` or `{name:format_spec}`; names may hold `/`, `.` and `-`.
TEMPLATE_FIELD = re.compile(r"\{([^{}:]+)(:[^{}]*)?\}")
# What `_temporary_name` in plugins/io/checkpoint_io.py appends while it writes or deletes a file.
_LEFTOVER_SUFFIX = r"\.[0-9a-f]{8}\.(tmp|deleting)$"


def is_local(path: str) -> bool:
    """Whether `path` is on the local filesystem (no URL scheme, or `file://`)."""
    return "://" not in path or path.startswith("file://")


def filesystem(path: str) -> Any:
    """The fsspec filesystem of `path`."""
    # fsspec costs ~40 ms to import; only runs that actually touch checkpoint files pay for it.
    from fsspec.core import url_to_fs

    return url_to_fs(path)[0]


def remove_leftovers(callback: ModelCheckpoint) -> None:
    """Delete the temporary files and folders that killed saves and removals left behind."""
    assert callback.dirpath is not None
    fs = filesystem(callback.dirpath)
    pattern = re.compile(".+" + re.escape(callback.FILE_EXTENSION) + _LEFTOVER_SUFFIX)
    for path in _folder_entries(callback, fs, withdirs=True):
        if not pattern.match(path.rsplit("/", 1)[-1]):
            continue
        try:
            fs.rm(path, recursive=True)
        except FileNotFoundError:
            continue  # inside a leftover folder removed a moment ago
        except OSError as err:
            rank_zero_warn(f"ModelCheckpoint could not remove the leftover {path!r}: {err}")
            continue
        log.debug(f"Removed the leftover of an interrupted checkpoint write: {path}")


def unlisted_own_files(callback: ModelCheckpoint, trainer: Trainer, fs: Any) -> list[str]:
    """The checkpoints this callback wrote in its folder that its restored state does not list."""
    if callback.save_top_k in (-1, 0):
        return []  # with -1 nothing is ever deleted; with 0 only `last` is written
    last_name = name_pattern(callback, callback.CHECKPOINT_NAME_LAST)
    resumed_from_last = last_name.match(os.path.basename(str(trainer.ckpt_path or "")))
    if not (resumed_from_last or run_died_before_its_first_last(callback, trainer)):
        # Only a resume from `last` continues a run that may have died after writing more
        # files. Resuming from an older checkpoint on purpose must not delete later ones.
        return []
    strip = fs._strip_protocol
    listed = (*callback.best_k_models, callback.best_model_path, callback.last_model_path)
    kept = {strip(path) for path in (*listed, trainer.ckpt_path or "") if path}
    template = callback.filename or "{epoch}" + callback.CHECKPOINT_JOIN_CHAR + "{step}"
    own_name = name_pattern(callback, template)
    assert callback.dirpath is not None
    folder = strip(callback.dirpath)
    unlisted = []
    for entry in _folder_entries(callback, fs, withdirs=False):
        name = entry[len(folder) :].lstrip("/")
        if entry in kept or last_name.match(name) or not own_name.match(name):
            continue
        # Spelled like the paths this callback saves to, which keep the URL's protocol.
        path = callback.dirpath.rstrip("/") + "/" + name
        if _was_written_here(callback, fs, path):
            unlisted.append(path)
    return unlisted


def run_died_before_its_first_last(callback: ModelCheckpoint, trainer: Trainer) -> bool:
    """`fit(ckpt_path="last")` found no `last` checkpoint although this callback saves one.

    With `save_last`, every top-k save is followed by a `last` save, so top-k files of this
    callback without a `last` beside them are what a run killed between the two left.
    """
    return bool(
        getattr(trainer, "_resume_from_last", False)
        and trainer.ckpt_path is None
        and callback.save_last
    )


def name_pattern(callback: ModelCheckpoint, template: str) -> re.Pattern[str]:
    """Match the names `format_checkpoint_name` renders from `template`, any metric values."""
    parts, end = [], 0
    for field in TEMPLATE_FIELD.finditer(template):
        parts.append(re.escape(template[end : field.start()]))
        if callback.auto_insert_metric_name:
            parts.append(re.escape(field.group(1) + callback.CHECKPOINT_EQUALS_CHAR))
        parts.append(".+?")
        end = field.end()
    parts.append(re.escape(template[end:]))
    version = re.escape(callback.CHECKPOINT_JOIN_CHAR) + r"v\d+"
    return re.compile(f"^{''.join(parts)}({version})?{re.escape(callback.FILE_EXTENSION)}$")


def _was_written_here(callback: ModelCheckpoint, fs: Any, path: str) -> bool:
    """Whether the checkpoint at `path` holds this callback's state for this folder."""
    try:
        if is_local(callback.dirpath or ""):
            # Memory-mapped: only the pickle is read, not the tensors.
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        else:
            with fs.open(path, "rb") as stream:
                checkpoint = torch.load(stream, map_location="cpu", weights_only=True)
    except Exception:
        return False  # unreadable, so not provably ours: leave it alone
    callbacks = checkpoint.get("callbacks") if isinstance(checkpoint, dict) else None
    state = callbacks.get(callback.state_key) if isinstance(callbacks, dict) else None
    return isinstance(state, dict) and state.get("dirpath") == callback.dirpath


def _folder_entries(callback: ModelCheckpoint, fs: Any, withdirs: bool) -> list[str]:
    """List `dirpath` as deep as file names reach (a `/` in a metric name makes a subfolder)."""
    assert callback.dirpath is not None
    if not fs.isdir(callback.dirpath):
        return []
    depth = 1 + max((callback.filename or "").count("/"), callback.CHECKPOINT_NAME_LAST.count("/"))
    folder = fs._strip_protocol(callback.dirpath)
    entries = fs.find(callback.dirpath, maxdepth=depth, withdirs=withdirs, detail=False)
    return sorted(entry for entry in entries if entry != folder)
