"""Load modules and datamodules from checkpoints; read and write `hparams.yaml`."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import IO, Any

import torch

from fulmen.utilities.checksum import check_and_strip_checksum
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.parsing import AttributeDict
from fulmen.utilities.rank_zero import rank_zero_warn

__all__ = ["load_from_checkpoint", "load_hparams_from_yaml", "save_hparams_to_yaml"]


def load_checkpoint_file(
    path: str | Path | IO[bytes], map_location: Any = None, weights_only: bool | None = None
) -> dict[str, Any]:
    """Read a checkpoint dict with `torch.load`, safely (`weights_only=True`) unless told otherwise.

    A checkpoint saved with a checksum (every fulmen checkpoint) is verified against it.
    """
    import fsspec

    safe = True if weights_only is None else weights_only
    try:
        if isinstance(path, (str, Path)):
            with fsspec.open(str(path), "rb") as stream:
                checkpoint = torch.load(stream, map_location=map_location, weights_only=safe)
        else:
            checkpoint = torch.load(path, map_location=map_location, weights_only=safe)
    except FileNotFoundError:
        raise FileNotFoundError(f"Checkpoint file not found: {str(path)!r}.") from None
    except Exception as err:
        if safe and "weights_only" in str(err):
            raise MisconfigurationException(
                f"The checkpoint {str(path)!r} holds objects that safe loading refuses to import "
                f"({type(err).__name__}). If you trust this file, load it with "
                "`weights_only=False`."
            ) from err
        raise MisconfigurationException(
            f"The checkpoint {str(path)!r} could not be read: {type(err).__name__}: {err}. "
            "It may be truncated or not a checkpoint."
        ) from err
    if not isinstance(checkpoint, dict):
        raise MisconfigurationException(
            f"The checkpoint {str(path)!r} holds a {type(checkpoint).__name__}, not a checkpoint dict."
        )
    return check_and_strip_checksum(checkpoint, path)


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
    obj = _instantiate(cls, hparams)
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
        obj.load_state_dict(checkpoint["state_dict"], strict=use_strict)
    except RuntimeError as err:
        raise RuntimeError(
            f"The weights in {str(checkpoint_path)!r} do not fit {cls.__name__} (was it saved from "
            f"another class?). Pass `strict=False` to load the matching keys only.\n{err}"
        ) from err
    device = _first_device(checkpoint["state_dict"]) if map_location is None else None
    if device is not None:
        obj.to(device)
    return obj


def _first_device(state_dict: dict[str, Any]) -> torch.device | None:
    for value in state_dict.values():
        if isinstance(value, torch.Tensor):
            return value.device
    return None


def _instantiate(cls: type, hparams: dict[str, Any]) -> Any:
    signature = inspect.signature(cls)
    accepts_kwargs = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    names = set(signature.parameters)
    usable = hparams if accepts_kwargs else {k: v for k, v in hparams.items() if k in names}
    return cls(**usable)


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
