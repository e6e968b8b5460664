from __future__ import annotations

import copy
import inspect
import pickle
from typing import Any

import pytest

from fulmen.utilities.parsing import AttributeDict, collect_init_args, get_init_args, is_picklable


def test_attribute_dict_reads_writes_and_deletes_keys_as_attributes() -> None:
    hparams = AttributeDict(lr=0.1)
    hparams.batch_size = 32
    assert hparams == {"lr": 0.1, "batch_size": 32}
    assert hparams.lr == 0.1
    del hparams.lr
    assert "lr" not in hparams
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = hparams.missing
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        del hparams.missing


def test_attribute_dict_repr_aligns_sorted_keys() -> None:
    hparams = AttributeDict(b=1, a="x", long_key_name=[1, 2])
    assert repr(hparams) == '"a":             x\n"b":             1\n"long_key_name": [1, 2]'
    assert repr(AttributeDict()) == ""


def test_attribute_dict_repr_matches_lightning() -> None:
    parsing = pytest.importorskip("pytorch_lightning.utilities.parsing")
    values = {"lr": 0.001, "name": "resnet", "layers": [1, 2, 3], "nested": {"a": 1}}
    assert repr(AttributeDict(values)) == repr(parsing.AttributeDict(values))


def test_attribute_dict_survives_pickle_and_deepcopy() -> None:
    hparams = AttributeDict(lr=0.1, layers=[1, 2])
    for copied in (pickle.loads(pickle.dumps(hparams)), copy.deepcopy(hparams)):
        assert type(copied) is AttributeDict
        assert copied.layers == [1, 2]


class _Recorder:
    def __init__(self, width: int, *extra: Any, depth: int = 2, **options: Any) -> None:
        width = width * 2  # the value saved is the one the argument holds when read
        self.args = get_init_args(inspect.currentframe())  # type: ignore[arg-type]


def test_get_init_args_skips_self_and_varargs_and_expands_kwargs() -> None:
    recorder = _Recorder(8, "ignored", act="relu")
    assert recorder.args == {"width": 16, "depth": 2, "act": "relu"}


class _Base:
    def __init__(self, a: int, *args: Any, **kwargs: Any) -> None:
        self.chain = collect_init_args(inspect.currentframe(), [])  # type: ignore[arg-type]


class _Child(_Base):
    def __init__(self, b: int, **kwargs: Any) -> None:
        super().__init__(5, "positional", **kwargs)


class _Owner:
    def __init__(self, w: int) -> None:
        self.child = _Child(1, c=3)


def test_collect_init_args_walks_the_init_chain_of_one_object() -> None:
    assert _Child(2, c=3).chain == [{"a": 5, "c": 3}, {"b": 2, "c": 3}]


def test_collect_init_args_stops_at_an_init_building_another_object() -> None:
    assert _Owner(7).child.chain == [{"a": 5, "c": 3}, {"b": 1, "c": 3}]


def test_collect_init_args_skips_helper_frames_before_the_init() -> None:
    class Model:
        def __init__(self, lr: float) -> None:
            self.chain = self._collect()

        def _collect(self) -> list[dict[str, Any]]:
            return collect_init_args(inspect.currentframe(), [])  # type: ignore[arg-type]

    assert Model(0.5).chain == [{"lr": 0.5}]


def test_collect_init_args_with_classes_ignores_other_objects() -> None:
    def not_an_init() -> list[dict[str, Any]]:
        return collect_init_args(inspect.currentframe(), [], classes=(_Base,))  # type: ignore[arg-type]

    assert not_an_init() == []


def test_is_picklable() -> None:
    assert is_picklable({"lr": 0.1})
    assert not is_picklable(lambda: 0)
