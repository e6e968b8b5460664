from __future__ import annotations

import pytest

from fulmen.utilities.enums import GradClipAlgorithmType, LightningEnum


def test_member_equals_its_value_in_any_case() -> None:
    assert GradClipAlgorithmType.NORM == "norm"
    assert GradClipAlgorithmType.NORM == "NORM"
    assert GradClipAlgorithmType.NORM != "value"
    assert GradClipAlgorithmType.NORM != GradClipAlgorithmType.VALUE
    assert GradClipAlgorithmType.NORM != 3


def test_member_works_as_a_dict_key_for_its_value() -> None:
    assert {"value": 1}[GradClipAlgorithmType.VALUE] == 1
    assert GradClipAlgorithmType.VALUE in {"value"}


def test_from_str_matches_keys_by_default_and_values_on_request() -> None:
    assert GradClipAlgorithmType.from_str("norm") is GradClipAlgorithmType.NORM
    assert GradClipAlgorithmType.from_str("Value", source="value") is GradClipAlgorithmType.VALUE
    assert GradClipAlgorithmType.from_str("NORM", source="any") is GradClipAlgorithmType.NORM


def test_from_str_lists_the_allowed_names_when_nothing_matches() -> None:
    with pytest.raises(ValueError, match=r"expected one of \['VALUE', 'NORM'\], but got clip"):
        GradClipAlgorithmType.from_str("clip")
    with pytest.raises(ValueError, match=r"\['VALUE', 'NORM', 'value', 'norm'\]"):
        GradClipAlgorithmType.from_str("clip", source="any")
    with pytest.raises(ValueError, match="source='keys'"):
        GradClipAlgorithmType.from_str("norm", source="keys")  # type: ignore[arg-type]


def test_subclass_is_a_str() -> None:
    class Stage(LightningEnum):
        TRAIN = "train"

    assert isinstance(Stage.TRAIN, str)
    assert Stage.TRAIN.value.upper() == "TRAIN"
    assert [m.value for m in GradClipAlgorithmType] == ["value", "norm"]
