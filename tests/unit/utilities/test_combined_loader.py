from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from fulmen.utilities.combined_loader import CombinedLoader

A, B = range(3), range(10, 15)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("min_size", [([0, 10], 0, 0), ([1, 11], 1, 0), ([2, 12], 2, 0)]),
        (
            "max_size_cycle",
            [([0, 10], 0, 0), ([1, 11], 1, 0), ([2, 12], 2, 0), ([0, 13], 3, 0), ([1, 14], 4, 0)],
        ),
        (
            "max_size",
            [
                ([0, 10], 0, 0),
                ([1, 11], 1, 0),
                ([2, 12], 2, 0),
                ([None, 13], 3, 0),
                ([None, 14], 4, 0),
            ],
        ),
        (
            "sequential",
            [
                (0, 0, 0),
                (1, 1, 0),
                (2, 2, 0),
                (10, 0, 1),
                (11, 1, 1),
                (12, 2, 1),
                (13, 3, 1),
                (14, 4, 1),
            ],
        ),
    ],
)
def test_modes_yield_batch_batch_idx_and_dataloader_idx(mode: Any, expected: list[Any]) -> None:
    loader = CombinedLoader([A, B], mode)
    assert list(loader) == expected
    assert len(loader) == len(expected)


def test_default_mode_is_min_size() -> None:
    assert len(CombinedLoader([A, B])) == 3


def test_dict_and_nested_trees_keep_their_shape() -> None:
    loader = CombinedLoader({"x": {"a": A, "b": [B, A]}}, "max_size")
    batches = list(loader)
    assert batches[0] == ({"x": {"a": 0, "b": [10, 0]}}, 0, 0)
    assert batches[-1] == ({"x": {"a": None, "b": [14, None]}}, 4, 0)
    assert loader.flattened == [A, B, A]
    assert list(CombinedLoader((A, B), "min_size"))[0] == ((0, 10), 0, 0)


def test_list_of_numbers_is_one_iterable_not_a_collection() -> None:
    loader = CombinedLoader([[0, 1], [2, 3, 4]], "max_size")
    assert loader.flattened == [[0, 1], [2, 3, 4]]
    assert list(loader) == [([0, 2], 0, 0), ([1, 3], 1, 0), ([None, 4], 2, 0)]
    assert list(CombinedLoader(A)) == [(0, 0, 0), (1, 1, 0), (2, 2, 0)]


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="mode='longest'"):
        CombinedLoader([A], "longest")  # type: ignore[arg-type]


def test_iter_restarts_and_next_continues() -> None:
    loader = CombinedLoader([A, B])
    iterator = iter(loader)
    assert next(iterator) == ([0, 10], 0, 0)
    assert next(loader) == ([1, 11], 1, 0)
    assert next(iter(loader)) == ([0, 10], 0, 0)
    assert list(loader) == list(loader)


def test_limits_cap_each_iterable() -> None:
    loader = CombinedLoader([A, B], "sequential")
    loader.limits = [1, 2]
    assert list(loader) == [(0, 0, 0), (10, 0, 1), (11, 1, 1)]
    assert len(loader) == 3
    loader.limits = 2
    assert loader.limits == [2, 2]
    loader.limits = [None, float("inf")]
    assert loader.limits == [None, None]
    cycle = CombinedLoader([A, B], "max_size_cycle")
    cycle.limits = [2, 4]
    assert [batch for batch, _, _ in cycle] == [[0, 10], [1, 11], [0, 12], [1, 13]]


def test_limits_must_match_the_iterables() -> None:
    loader = CombinedLoader([A, B])
    with pytest.raises(ValueError, match="has 1 entries but there are 2 iterables"):
        loader.limits = [1]
    with pytest.raises(ValueError, match="int >= 0"):
        loader.limits = [-1, 1]


def test_setting_flattened_rebuilds_the_tree() -> None:
    loader = CombinedLoader({"a": A, "b": B}, "max_size")
    loader.flattened = [range(2), range(1)]
    assert loader.iterables == {"a": range(2), "b": range(1)}
    assert list(loader) == [({"a": 0, "b": 0}, 0, 0), ({"a": 1, "b": None}, 1, 0)]
    with pytest.raises(ValueError, match="keep its length 2"):
        loader.flattened = [A]


class _Unsized:
    def __iter__(self) -> Iterator[int]:
        return iter(range(4))


def test_length_of_unsized_iterables() -> None:
    assert len(CombinedLoader([_Unsized(), range(2)], "min_size")) == 2
    cycle = CombinedLoader([_Unsized(), range(2)], "max_size_cycle")
    with pytest.raises(TypeError, match="iterable 0 \\(_Unsized\\) defines no `__len__`"):
        len(cycle)
    assert [batch for batch, _, _ in cycle] == [[0, 0], [1, 1], [2, 0], [3, 1]]
    limited = CombinedLoader([_Unsized()], "sequential")
    limited.limits = [3]
    assert len(limited) == 3


def test_empty_iterables() -> None:
    assert list(CombinedLoader([A, []], "sequential")) == [(0, 0, 0), (1, 1, 0), (2, 2, 0)]
    cycle = CombinedLoader([A, []], "max_size_cycle")
    assert list(cycle) == []
    assert len(cycle) == 0
    assert len(CombinedLoader([], "max_size_cycle")) == 0


def test_dataloaders_expose_their_samplers_in_the_tree_shape() -> None:
    loaders = {
        "a": DataLoader(TensorDataset(torch.arange(4)), batch_size=2),
        "b": DataLoader(TensorDataset(torch.arange(6)), batch_size=3),
    }
    combined = CombinedLoader(loaders, "max_size_cycle")
    assert combined.sampler == {"a": loaders["a"].sampler, "b": loaders["b"].sampler}
    assert combined.batch_sampler["b"] is loaders["b"].batch_sampler
    batches = [batch for batch, _, _ in combined]
    assert torch.equal(batches[0]["a"][0], torch.tensor([0, 1]))
    assert len(batches) == 2


def test_reset_drops_the_running_iteration() -> None:
    loader = CombinedLoader(A)
    iter(loader)
    next(loader)
    loader.reset()
    assert next(loader) == (0, 0, 0)


class _StatefulLoader:
    def __init__(self) -> None:
        self.position = 0

    def __iter__(self) -> Iterator[int]:
        while self.position < 5:
            self.position += 1
            yield self.position

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.position = state["position"]


def test_state_dicts_round_trip_through_stateful_iterables() -> None:
    loader = CombinedLoader({"plain": range(5), "stateful": _StatefulLoader()}, "min_size")
    iterator = iter(loader)
    next(iterator)
    next(iterator)
    states = loader._state_dicts()
    assert states == [{"position": 2}]
    fresh = CombinedLoader({"plain": range(5), "stateful": _StatefulLoader()}, "min_size")
    fresh._load_state_dicts(states)
    assert [batch["stateful"] for batch, _, _ in fresh] == [3, 4, 5]
    with pytest.raises(ValueError, match="holds 2 dataloader states"):
        fresh._load_state_dicts([{}, {}])


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_matches_lightning() -> None:
    utilities = pytest.importorskip("pytorch_lightning.utilities")
    for mode in ("min_size", "max_size_cycle", "max_size", "sequential"):
        for iterables in ([A, B], {"a": A, "b": B}, (range(4), range(2), range(3))):
            theirs = utilities.CombinedLoader(iterables, mode)
            expected = list(iter(theirs))
            ours = CombinedLoader(iterables, mode)
            assert list(ours) == expected
            assert len(ours) == len(theirs)
