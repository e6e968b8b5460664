"""The warning category for advice that may not apply to the user's setup, and a switch to mute it."""

from __future__ import annotations

import warnings

__all__ = ["PossibleUserWarning", "disable_possible_user_warnings"]


class PossibleUserWarning(UserWarning):
    """Warn about a setting that is often a mistake but may be intended."""


def disable_possible_user_warnings(module: str = "") -> None:
    """Ignore every `PossibleUserWarning`, or only those raised from modules matching `module`.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     disable_possible_user_warnings()
        ...     warnings.warn("tip", PossibleUserWarning)
    """
    warnings.filterwarnings("ignore", category=PossibleUserWarning, module=module)
