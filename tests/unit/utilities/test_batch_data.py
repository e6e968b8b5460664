from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from unittest import mock

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from fulmen.utilities import data
from fulmen.utilities.data import extract_batch_size, has_len, suggested_max_num_workers
from fulmen.utilities.exceptions import MisconfigurationException
from fulmen.utilities.warnings import PossibleUserWarning


@dataclass
class _Batch:
    label: str
    x: torch.Tensor


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        (torch.zeros(3, 4), 3),
        (torch.tensor(1.0), 1),
        ([torch.zeros(5, 2), torch.zeros(5)], 5),
        ({"text": ["a", "b"], "x": torch.zeros(2, 8)}, 2),
        ({"outer": {"inner": (torch.zeros(7),)}}, 7),
        (_Batch("a", torch.zeros(6, 1)), 6),
    ],
)
def test_extract_batch_size_finds_the_first_tensor(batch: object, expected: int) -> None:
    assert extract_batch_size(batch) == expected


def test_extract_batch_size_warns_when_tensors_disagree() -> None:
    with pytest.warns(PossibleUserWarning, match="using 3 .* as the batch size"):
        assert extract_batch_size([torch.zeros(3, 4), torch.zeros(5)]) == 3


@pytest.mark.parametrize("batch", [[1, 2], {}, None, "text", 3])
def test_extract_batch_size_raises_without_tensors(batch: object) -> None:
    with pytest.raises(MisconfigurationException, match=r"batch_size=N"):
        extract_batch_size(batch)


class _Stream(IterableDataset[int]):
    def __iter__(self) -> Iterator[int]:
        return iter(range(3))


class _SizedStream(_Stream):
    def __len__(self) -> int:
        return 3


def test_has_len() -> None:
    assert has_len(DataLoader(TensorDataset(torch.zeros(3))))
    assert not has_len(DataLoader(_Stream()))
    assert not has_len(iter([1, 2]))


def test_has_len_warns_about_an_empty_loader() -> None:
    with pytest.warns(UserWarning, match="has length 0"):
        assert has_len(DataLoader(TensorDataset(torch.zeros(0))))


def test_has_len_warns_about_an_iterable_dataset_with_length() -> None:
    with pytest.warns(PossibleUserWarning, match="defines `__len__`"):
        assert has_len(DataLoader(_SizedStream()))


@pytest.mark.parametrize(
    ("cpus", "local_world_size", "expected"),
    [(1, 1, 1), (2, 1, 1), (4, 1, 3), (8, 2, 3), (16, 3, 4), (64, 8, 7), (4, 8, 1)],
)
def test_suggested_max_num_workers_leaves_a_cpu_per_process(
    cpus: int, local_world_size: int, expected: int
) -> None:
    with mock.patch.object(data, "_num_cpus_available", return_value=cpus):
        assert suggested_max_num_workers(local_world_size) == expected


def test_suggested_max_num_workers_rejects_zero_processes() -> None:
    with pytest.raises(ValueError, match="local_world_size=0"):
        suggested_max_num_workers(0)
