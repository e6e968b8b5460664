"""What the file loggers share: picking `version_<N>`, prefixing names, writing `hparams.yaml`."""

from __future__ import annotations

import os
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from torch import Tensor

from fulmen.utilities.rank_zero import rank_zero_warn

__all__ = [
    "add_prefix",
    "convert_params",
    "flatten_dict",
    "next_version",
    "append_to_file",
    "replace_file",
    "save_hparams_to_yaml",
    "version_dir_name",
]

V = TypeVar("V")


def next_version(root_dir: str | Path) -> int:
    """Return one more than the highest `version_<N>` folder in `root_dir`, or 0 if there is none.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "version_0").mkdir(); (root / "version_3").mkdir(); (root / "version_x").mkdir()
        >>> next_version(root)
        4
    """
    if not os.path.isdir(root_dir):
        return 0
    versions = []
    for entry in os.scandir(root_dir):
        number = entry.name[len("version_") :]
        if entry.is_dir() and entry.name.startswith("version_") and number.isdigit():
            versions.append(int(number))
    return max(versions) + 1 if versions else 0


def version_dir_name(version: int | str) -> str:
    """Return the folder name for `version`: `version_<N>` for an int, the string itself otherwise.

    Example:
        >>> version_dir_name(2), version_dir_name("baseline")
        ('version_2', 'baseline')
    """
    return version if isinstance(version, str) else f"version_{version}"


def add_prefix(metrics: Mapping[str, V], prefix: str, separator: str) -> Mapping[str, V]:
    """Return `metrics` with every name written as `<prefix><separator><name>` if `prefix` is set.

    Example:
        >>> add_prefix({"loss": 1.0}, "train", "-")
        {'train-loss': 1.0}
    """
    if not prefix:
        return metrics
    return {f"{prefix}{separator}{name}": value for name, value in metrics.items()}


def convert_params(params: Mapping[str, Any] | Namespace | None) -> dict[str, Any]:
    """Return `params` as a plain dict (an `argparse.Namespace` becomes its attributes).

    Example:
        >>> convert_params(Namespace(lr=0.1))
        {'lr': 0.1}
    """
    if params is None:
        return {}
    if isinstance(params, Namespace):
        return dict(vars(params))
    return dict(params)


def flatten_dict(params: Mapping[Any, Any], delimiter: str = "/") -> dict[str, Any]:
    """Return nested mappings and namespaces as one level, joining the keys with `delimiter`.

    Example:
        >>> flatten_dict({"optim": {"lr": 0.1, "betas": [0.9, 0.99]}, "layers": 2})
        {'optim/lr': 0.1, 'optim/betas': [0.9, 0.99], 'layers': 2}
    """
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Namespace):
            value = vars(value)
        if isinstance(value, Mapping):
            for inner_key, inner_value in flatten_dict(value, delimiter).items():
                flat[f"{key}{delimiter}{inner_key}"] = inner_value
        else:
            flat[str(key)] = value
    return flat


def _to_plain(value: Any) -> Any:
    # Only plain data goes into hparams.yaml, so that `yaml.safe_load` can read it back anywhere.
    if isinstance(value, Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, Namespace):
        value = vars(value)
    if isinstance(value, Mapping):
        return {key: _to_plain(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(inner) for inner in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def save_hparams_to_yaml(path: str | Path, hparams: Mapping[str, Any] | Namespace) -> None:
    """Write `hparams` to the YAML file `path`, skipping (with a warning) what YAML cannot hold.

    Tensors become numbers or lists, tuples become lists and paths become strings; anything else
    that `yaml.safe_dump` rejects is left out.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "hparams.yaml"
        >>> save_hparams_to_yaml(path, {"lr": 0.1, "layers": (64, 32)})
        >>> print(path.read_text().strip())
        layers:
        - 64
        - 32
        lr: 0.1
    """
    import yaml

    plain: dict[str, Any] = {}
    for key, value in convert_params(hparams).items():
        value = _to_plain(value)
        try:
            yaml.safe_dump(value)
        except yaml.YAMLError:
            rank_zero_warn(
                f"Skipping hyperparameter {key!r} (a {type(value).__name__}) in {str(path)!r}: "
                "it cannot be written as plain YAML. Log a number, string, list or dict instead."
            )
            continue
        plain[key] = value
    replace_file(path, yaml.safe_dump(plain))


def replace_file(path: str | Path, text: str) -> None:
    """Write `text` to `path` so that a reader (or a crash) sees the old content or the new one.

    A process killed halfway through rewriting a log file would otherwise leave it truncated.
    The temporary name starts with a dot and carries the process id, so two writers never share
    it and nothing listing the folder's logs mistakes it for one.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "notes.txt"
        >>> replace_file(path, "first")
        >>> replace_file(path, "second")
        >>> path.read_text(), sorted(p.name for p in path.parent.iterdir())
        ('second', ['notes.txt'])
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def append_to_file(path: str | Path, text: str) -> None:
    """Append `text` to `path` in one system call, so a crash never leaves half of it.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "rows.csv"
        >>> append_to_file(path, "a,b\\n")
        >>> append_to_file(path, "1,2\\n")
        >>> path.read_text()
        'a,b\\n1,2\\n'
    """
    data = text.encode("utf-8")
    descriptor = os.open(os.fspath(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        # A single write() to a regular file completes or does not happen when the process is
        # killed; Python's buffered files may split the rows over several.
        written = os.write(descriptor, data)
        while written < len(data):  # only a full disk writes less; finish or raise its error
            written += os.write(descriptor, data[written:])
    finally:
        os.close(descriptor)
