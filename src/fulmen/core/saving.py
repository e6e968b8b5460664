"""Load modules and datamodules from checkpoints; read and write `hparams.yaml`."""

from __future__ import annotations

import inspect
import io
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import torch

from fulmen.utilities.checksum import check_and_strip_checksum, check_checkpoint_crcs
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.parsing import AttributeDict
from fulmen.utilities.rank_zero import rank_zero_warn

__all__ = [
    "find_unstorable_hparams",
    "keep_storable_hparams",
    "load_from_checkpoint",
    "load_hparams_from_yaml",
    "save_hparams_to_yaml",
    "unstorable_hparam_message",
]


def load_checkpoint_file(
    path: str | Path | IO[bytes], map_location: Any = None, weights_only: bool | None = None
) -> dict[str, Any]:
    """Read a checkpoint dict with `torch.load`, safely (`weights_only=True`) unless told otherwise.

    Before anything is unpickled, a zip checkpoint (what `torch.save` writes, here or in
    Lightning) is checked against the CRC32 of each entry, which `torch.load` itself ignores; an
    older fulmen checkpoint carrying a sha256 entry is verified against that after loading.
    """
    import fsspec

    safe = True if weights_only is None else weights_only
    try:
        check_checkpoint_crcs(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"Checkpoint file not found: {str(path)!r}.") from None
    except IsADirectoryError:
        raise MisconfigurationException(
            f"The checkpoint {str(path)!r} is a folder, not a checkpoint file. Pass the path of a "
            "`.ckpt` file (a sharded FSDP checkpoint folder is loaded by `FSDPStrategy`)."
        ) from None
    try:
        if isinstance(path, (str, Path)):
            with fsspec.open(str(path), "rb") as stream:
                checkpoint = torch.load(stream, map_location=map_location, weights_only=safe)
        else:
            checkpoint = torch.load(path, map_location=map_location, weights_only=safe)
    except FileNotFoundError:
        raise FileNotFoundError(f"Checkpoint file not found: {str(path)!r}.") from None
    except Exception as err:
        raise _unreadable(path, err) from err
    if not isinstance(checkpoint, dict):
        raise MisconfigurationException(
            f"The checkpoint {str(path)!r} holds a {type(checkpoint).__name__}, not a checkpoint dict."
        )
    return check_and_strip_checksum(checkpoint, path)


def _unreadable(path: object, err: Exception) -> MisconfigurationException:
    """Say why `torch.load` failed on `path`: a refused import, or a file that is no checkpoint."""
    text = str(err)
    # torch's safe unpickler names the global it refused: a class or function the file would
    # import, and possibly call. Any other failure means the bytes are not a readable checkpoint;
    # suggesting `weights_only=False` for those would only expose the user to what they hold.
    refused = re.search(r"GLOBAL ([\w.]+)", text)
    if isinstance(err, pickle.UnpicklingError) and refused is not None:
        return MisconfigurationException(
            f"The checkpoint {str(path)!r} holds objects that safe loading refuses to import "
            f"(`{refused.group(1)}`), so loading it could run code. If you trust this file, load "
            "it with `weights_only=False`."
        )
    # torch wraps the unpickler's own words in paragraphs of advice about `weights_only`.
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    if isinstance(err, EOFError):
        reason = "it is empty or ends early"
    elif detail is not None:
        reason = f"{type(err).__name__}: {detail.group(1).strip()[:200]}"
    else:
        first_line = text.strip().splitlines()[0] if text.strip() else ""
        reason = f"{type(err).__name__}: {first_line[:200]}"
    return MisconfigurationException(
        f"The checkpoint {str(path)!r} could not be read ({reason}). It may be truncated, "
        "damaged or not a checkpoint written by `torch.save`."
    )


def load_from_checkpoint(
    cls: type,
    checkpoint_path: str | Path | IO[bytes],
    map_location: Any = None,
    hparams_file: str | Path | None = None,
    strict: bool | None = None,
    weights_only: bool | None = None,
    **kwargs: Any,
) -> Any:
    """Instantiate `cls` from a checkpoint's hyperparameters (kwargs win) and restore its state."""
    from fulmen.core.datamodule import LightningDataModule
    from fulmen.core.module import LightningModule

    if not isinstance(cls, type):
        raise TypeError("`load_from_checkpoint` is a classmethod: call it on the class.")
    checkpoint = load_checkpoint_file(
        checkpoint_path, map_location=map_location or "cpu", weights_only=weights_only
    )
    is_datamodule = issubclass(cls, LightningDataModule)
    key = cls.CHECKPOINT_HYPER_PARAMS_KEY  # type: ignore[attr-defined]
    hparams: dict[str, Any] = dict(checkpoint.get(key) or {})
    if hparams_file is not None:
        hparams.update(load_hparams_from_yaml(hparams_file))
    hparams.update(kwargs)
    obj = _instantiate(cls, hparams, checkpoint_path)
    if is_datamodule:
        state = checkpoint.get(cls.__qualname__)
        if state is not None:
            obj.load_state_dict(state)
        return obj
    assert isinstance(obj, LightningModule)
    if "state_dict" not in checkpoint:
        raise MisconfigurationException(
            f"The checkpoint {str(checkpoint_path)!r} has no 'state_dict' key (it has "
            f"{sorted(checkpoint)}), so there are no weights to load into {cls.__name__}."
        )
    obj.configure_model()
    obj.on_load_checkpoint(checkpoint)
    use_strict = obj.strict_loading if strict is None else strict
    try:
        result = obj.load_state_dict(checkpoint["state_dict"], strict=use_strict)
    except RuntimeError as err:
        raise RuntimeError(
            f"The weights in {str(checkpoint_path)!r} do not fit {cls.__name__} (was it saved from "
            f"another class?). Pass `strict=False` to load the matching keys only.\n{err}"
        ) from err
    if result.missing_keys:
        rank_zero_warn(
            f"{cls.__name__}.load_from_checkpoint({str(checkpoint_path)!r}, strict=False): the "
            f"checkpoint has no values for {result.missing_keys}; they keep their initial values."
        )
    if result.unexpected_keys:
        rank_zero_warn(
            f"{cls.__name__}.load_from_checkpoint({str(checkpoint_path)!r}, strict=False): "
            f"{cls.__name__} has no place for {result.unexpected_keys}; they were not loaded."
        )
    device = _first_device(checkpoint["state_dict"]) if map_location is None else None
    if device is not None:
        obj.to(device)
    return obj


def _first_device(state_dict: dict[str, Any]) -> torch.device | None:
    for value in state_dict.values():
        if isinstance(value, torch.Tensor):
            return value.device
    return None


def _instantiate(cls: type, hparams: dict[str, Any], checkpoint_path: object) -> Any:
    signature = inspect.signature(cls)
    accepts_kwargs = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    names = set(signature.parameters)
    usable = hparams if accepts_kwargs else {k: v for k, v in hparams.items() if k in names}
    required = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    missing = [
        name
        for name, param in signature.parameters.items()
        if param.kind in required and param.default is param.empty and name not in usable
    ]
    if missing:
        # Typically an argument `save_hyperparameters` left out (ignored, or not safely storable).
        raise TypeError(
            f"{cls.__name__}.load_from_checkpoint({str(checkpoint_path)!r}) cannot build "
            f"{cls.__name__}: its `__init__` needs {missing}, which the checkpoint's "
            f"hyperparameters do not hold. Pass them: `{cls.__name__}.load_from_checkpoint(path, "
            f"{missing[0]}=...)`."
        )
    return cls(**usable)


def find_unstorable_hparams(hparams: Mapping[str, Any]) -> list[str]:
    """Return the names of hyperparameters that a safe load (`weights_only=True`) cannot read.

    Lambdas and open files cannot be saved at all; modules, instances of the user's own classes,
    enums, dataclasses and the like are saved as references to code, which safe loading refuses.

    Example:
        >>> find_unstorable_hparams({"lr": 0.1, "act": lambda x: x, "sizes": (8, 16)})
        ['act']
    """
    from torch import nn

    # A module is never readable safely; serialising one only to learn that can take long.
    modules = [key for key, value in hparams.items() if isinstance(value, nn.Module)]
    rest = {key: value for key, value in hparams.items() if key not in modules}
    if _reads_back_safely(rest):
        return modules
    return modules + [key for key, value in rest.items() if not _reads_back_safely(value)]


def _reads_back_safely(value: object) -> bool:
    buffer = io.BytesIO()
    try:
        torch.save(value, buffer)
        buffer.seek(0)
        torch.load(buffer, weights_only=True)
    except Exception:  # any failure, pickling or unpickling, means "not storable"
        return False
    return True


def unstorable_hparam_message(owner: object, key: str, value: object) -> str:
    """Explain that hyperparameter `key` of `owner` stays out of checkpoints, and what to do."""
    name = type(owner).__name__
    what = (
        "an `nn.Module` (save its weights in the state_dict instead)"
        if isinstance(value, torch.nn.Module)
        else f"a {type(value).__name__}"
    )
    # An instance of a trusted class can be allowed by the user; a function or a file cannot.
    allow = (
        ""
        if callable(value) or isinstance(value, (io.IOBase, torch.nn.Module))
        else f" Or, if you trust {type(value).__qualname__}, keep it in checkpoints with "
        f"`torch.serialization.add_safe_globals([{type(value).__qualname__}])`."
    )
    return (
        f"Hyperparameter {key!r} of {name} is {what}, which a safe load "
        "(`torch.load(weights_only=True)`) cannot read back, so checkpoints leave it out; "
        f"`self.hparams.{key}` still holds it. When loading, pass it again: "
        f"`{name}.load_from_checkpoint(path, {key}=...)`. Leave it out with "
        f"`self.save_hyperparameters(ignore=[{key!r}])` to silence this.{allow}"
    )


def keep_storable_hparams(owner: Any, hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Return `owner`'s hyperparameters without the unstorable ones, for a checkpoint.

    `save_hyperparameters` warned about the ones it saw; values set on `self.hparams` later are
    warned about here, once each.
    """
    unstorable = find_unstorable_hparams(hparams)
    if not unstorable:
        return dict(hparams)
    known: set[str] | None = getattr(owner, "_hparams_unstorable", None)
    if known is None:  # a datamodule whose __init__ did not call super().__init__()
        known = set()
        object.__setattr__(owner, "_hparams_unstorable", known)
    for key in unstorable:
        if key not in known:
            known.add(key)
            rank_zero_warn(unstorable_hparam_message(owner, key, hparams[key]))
    return {key: value for key, value in hparams.items() if key not in unstorable}


def load_hparams_from_yaml(config_yaml: str | Path, use_omegaconf: bool = True) -> dict[str, Any]:
    """Read hyperparameters from a YAML file; a missing file gives an empty dict with a warning."""
    import fsspec
    import yaml

    fs, path = fsspec.core.url_to_fs(str(config_yaml))
    if not fs.exists(path):
        rank_zero_warn(f"Missing hparams file {str(config_yaml)!r}; no hyperparameters were read.")
        return {}
    with fs.open(path, "r") as stream:
        return dict(yaml.safe_load(stream) or {})


def save_hparams_to_yaml(config_yaml: str | Path, hparams: dict[str, Any] | AttributeDict) -> None:
    """Write hyperparameters to YAML, skipping (with a warning) values YAML cannot represent."""
    import fsspec
    import yaml

    fs, path = fsspec.core.url_to_fs(str(config_yaml))
    if not fs.isdir(fs._parent(path)):
        raise RuntimeError(f"Missing folder for the hparams file {str(config_yaml)!r}.")
    safe: dict[str, Any] = {}
    for key, value in dict(hparams).items():
        try:
            yaml.safe_dump({key: value})
        except yaml.YAMLError:
            rank_zero_warn(
                f"Skipping hyperparameter {key!r}: {type(value).__name__} is not YAML-able."
            )
            continue
        safe[key] = value
    with fs.open(path, "w", newline="") as stream:
        yaml.safe_dump(safe, stream)
