"""String enums that compare equal to their values, case-insensitively (Lightning's `LightningEnum`)."""

from __future__ import annotations

from enum import Enum
from typing import Literal, TypeVar

__all__ = ["LightningEnum", "GradClipAlgorithmType"]

_E = TypeVar("_E", bound="LightningEnum")


class LightningEnum(str, Enum):
    """Build a string enum whose members equal their value in any letter case.

    Example:
        >>> class Color(LightningEnum):
        ...     RED = "red"
        >>> Color.RED == "RED", Color.from_str("Red")
        (True, <Color.RED: 'red'>)
    """

    @classmethod
    def from_str(cls: type[_E], value: str, source: Literal["key", "value", "any"] = "key") -> _E:
        """Return the member whose name (`source="key"`), value or either matches `value`."""
        if source not in ("key", "value", "any"):
            raise ValueError(f"source={source!r} is invalid: expected 'key', 'value' or 'any'.")
        wanted = value.lower()
        for member in cls:
            candidates = {
                "key": (member.name,),
                "value": (member.value,),
                "any": (member.name, member.value),
            }[source]
            if any(candidate.lower() == wanted for candidate in candidates):
                return member
        allowed = [m.name for m in cls] if source != "value" else []
        allowed += [m.value for m in cls] if source != "key" else []
        raise ValueError(f"Invalid match: expected one of {allowed}, but got {value}.")

    def __eq__(self, other: object) -> bool:
        other = other.value if isinstance(other, Enum) else other
        return isinstance(other, str) and self.value.lower() == other.lower()

    def __hash__(self) -> int:
        # Members are looked up in dicts keyed by plain strings, so hash like the value.
        return hash(self.value.lower())


class GradClipAlgorithmType(LightningEnum):
    """How `gradient_clip_val` is applied: clip each value, or rescale to a maximum norm.

    Example:
        >>> GradClipAlgorithmType("norm") == "NORM"
        True
    """

    VALUE = "value"
    NORM = "norm"
