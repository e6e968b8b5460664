"""Read the integers and strings that launchers leave in environment variables."""

from __future__ import annotations

import os

__all__ = ["read_int", "read_optional_int"]


def read_int(name: str, owner: str, default: int | None = None) -> int:
    """Return the environment variable `name` as an int; `owner` names who needs it in errors."""
    value = os.environ.get(name)
    if value is None:
        if default is not None:
            return default
        raise ValueError(
            f"{owner} needs the environment variable {name}, which is not set. Start the script "
            f"with the launcher that sets it, or pass another cluster environment in "
            f"`Trainer(plugins=...)`."
        )
    return _parse_int(name, value, owner)


def read_optional_int(name: str, owner: str) -> int | None:
    """Return the environment variable `name` as an int, or None where it is not set."""
    value = os.environ.get(name)
    return None if value is None else _parse_int(name, value, owner)


def _parse_int(name: str, value: str, owner: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(
            f"{owner} read the environment variable {name}={value!r}, which is not an integer."
        ) from None
