from __future__ import annotations

import builtins
import threading
from pathlib import Path
from typing import Any

import pytest

from fulmen.utilities.filesystem import is_shared_filesystem


class _SingleProcess:
    world_size = 1


class _ThreadRank:
    """One rank of a fake two-process strategy; the ranks are threads that meet at a barrier."""

    def __init__(self, rank: int, barrier: threading.Barrier, shared: dict[str, Any]) -> None:
        self.world_size = 2
        self.global_rank = rank
        self.is_global_zero = rank == 0
        self._barrier = barrier
        self._shared = shared

    def barrier(self, name: str | None = None) -> None:
        self._barrier.wait()

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        if self.global_rank == src:
            self._shared["broadcast"] = obj
        self._barrier.wait()
        value = self._shared["broadcast"]
        self._barrier.wait()
        return value

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        self._shared[f"vote{self.global_rank}"] = decision
        self._barrier.wait()
        votes = [self._shared["vote0"], self._shared["vote1"]]
        self._barrier.wait()
        return builtins.all(votes) if all else any(votes)


def _run_two_ranks(paths: list[Path]) -> list[bool]:
    barrier = threading.Barrier(2)
    shared: dict[str, Any] = {}
    results: list[Any] = [None, None]

    def run(rank: int) -> None:
        strategy = _ThreadRank(rank, barrier, shared)
        results[rank] = is_shared_filesystem(strategy, paths[rank], timeout=1)  # type: ignore[arg-type]

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return results


def test_single_process_and_remote_paths_count_as_shared(tmp_path: Path) -> None:
    assert is_shared_filesystem(_SingleProcess(), tmp_path)  # type: ignore[arg-type]
    assert is_shared_filesystem(object(), "s3://bucket/run")  # type: ignore[arg-type]


def test_two_ranks_on_one_directory_share_it(tmp_path: Path) -> None:
    assert _run_two_ranks([tmp_path, tmp_path]) == [True, True]
    assert list(tmp_path.iterdir()) == []  # the marker file is cleaned up


def test_two_ranks_on_different_paths_do_not_share(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert _run_two_ranks([tmp_path / "a", tmp_path / "b"]) == [False, False]


def test_a_path_missing_on_a_rank_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist on every rank"):
        is_shared_filesystem(_MissingPathStrategy(), tmp_path / "missing")  # type: ignore[arg-type]


class _MissingPathStrategy:
    world_size = 2
    is_global_zero = True

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        return obj

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        return decision

    def barrier(self, name: str | None = None) -> None:
        pass
