"""Griffe extension for the API reference: read fulmen's `Example:` docstring sections as examples.

fulmen's docstrings introduce their doctests with `Example:` (or `Example::`), while griffe's
Google-style parser only knows `Examples:` and would otherwise render the doctest as plain text.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE_HEADER = re.compile(r"^(\s*)Example::?\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename `Example:` section headers to `Examples:` as each object is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE_HEADER.sub(r"\1Examples:", obj.docstring.value)
