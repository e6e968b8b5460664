from __future__ import annotations

import warnings

import pytest

from fulmen.utilities.warnings import PossibleUserWarning, disable_possible_user_warnings


def test_possible_user_warning_is_a_user_warning() -> None:
    assert issubclass(PossibleUserWarning, UserWarning)


def test_disable_possible_user_warnings_silences_only_that_category() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        disable_possible_user_warnings()
        warnings.warn("maybe wrong", PossibleUserWarning, stacklevel=1)
        warnings.warn("surely wrong", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["surely wrong"]


def test_disable_possible_user_warnings_can_target_one_module() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        disable_possible_user_warnings(module="some_other_module")
        with pytest.warns(PossibleUserWarning):
            warnings.warn("still shown here", PossibleUserWarning, stacklevel=1)
