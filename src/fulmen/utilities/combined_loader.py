"""Iterate several iterables (usually dataloaders) together, in one of four modes.

The iterables come as a tree: a list, tuple or dict, possibly nested, whose leaves are the
iterables. Batches come back in the same tree shape (except in "sequential" mode, which yields
each leaf's batches on their own, one leaf after the other).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import count, islice
from typing import Any, Literal

__all__ = ["CombinedLoader"]

_Mode = Literal["min_size", "max_size_cycle", "max_size", "sequential"]
_MODES: tuple[str, ...] = ("min_size", "max_size_cycle", "max_size", "sequential")


def _is_container(tree: Any) -> bool:
    # A list of plain numbers or strings is data to iterate, not a collection of iterables.
    if not isinstance(tree, (list, tuple, dict)):
        return False
    children = tree.values() if isinstance(tree, dict) else tree
    return not all(isinstance(child, (int, float, str)) for child in children)


def _flatten(tree: Any) -> list[Any]:
    if not _is_container(tree):
        return [tree]
    children = tree.values() if isinstance(tree, dict) else tree
    return [leaf for child in children for leaf in _flatten(child)]


def _unflatten(like: Any, leaves: Iterator[Any]) -> Any:
    """Rebuild the shape of the tree `like`, taking its leaves from `leaves` in order."""
    if not _is_container(like):
        return next(leaves)
    if isinstance(like, dict):
        return {key: _unflatten(value, leaves) for key, value in like.items()}
    items = [_unflatten(child, leaves) for child in like]
    if isinstance(like, tuple):
        return type(like)(*items) if hasattr(like, "_fields") else tuple(items)
    return items


def _sized_len(iterable: Any) -> int | None:
    try:
        return len(iterable)
    except (TypeError, NotImplementedError):
        return None


class CombinedLoader(Iterable[Any]):
    """Iterate a list, tuple or dict of iterables together, yielding `(batch, batch_idx, dataloader_idx)`.

    Modes:
        - `"min_size"`: stop when the shortest iterable ends.
        - `"max_size_cycle"`: stop when the longest ends; shorter ones start over meanwhile.
        - `"max_size"`: stop when the longest ends; ended ones contribute None.
        - `"sequential"`: one iterable after the other; `dataloader_idx` says which.

    Example:
        >>> loader = CombinedLoader({"a": range(2), "b": range(10, 13)}, "max_size")
        >>> len(loader)
        3
        >>> list(loader)
        [({'a': 0, 'b': 10}, 0, 0), ({'a': 1, 'b': 11}, 1, 0), ({'a': None, 'b': 12}, 2, 0)]
        >>> list(CombinedLoader([range(2), range(1)], "sequential"))
        [(0, 0, 0), (1, 1, 0), (0, 0, 1)]
    """

    def __init__(self, iterables: Any, mode: _Mode = "min_size") -> None:
        if mode not in _MODES:
            raise ValueError(
                f"CombinedLoader(mode={mode!r}) is not supported: choose one of {list(_MODES)}."
            )
        self._iterables = iterables
        self._flattened = _flatten(iterables)
        self._mode: str = mode
        self._limits: list[int | None] | None = None
        self._iterator: Iterator[tuple[Any, int, int]] | None = None

    @property
    def iterables(self) -> Any:
        """The iterables as given, in their original tree shape."""
        return self._iterables

    @property
    def flattened(self) -> list[Any]:
        """The iterables as a flat list, in tree order."""
        return list(self._flattened)

    @flattened.setter
    def flattened(self, flattened: list[Any]) -> None:
        if len(flattened) != len(self._flattened):
            raise ValueError(
                f"CombinedLoader.flattened must keep its length {len(self._flattened)}, got "
                f"{len(flattened)} iterables."
            )
        self._iterables = _unflatten(self._iterables, iter(flattened))
        self._flattened = list(flattened)

    @property
    def limits(self) -> list[int | None] | None:
        """The most batches to take from each iterable (None: no limit)."""
        return self._limits

    @limits.setter
    def limits(self, limits: int | float | list[int | float | None] | None) -> None:
        if limits is None:
            self._limits = None
            return
        values = (
            list(limits) if isinstance(limits, (list, tuple)) else [limits] * len(self._flattened)
        )
        if len(values) != len(self._flattened):
            raise ValueError(
                f"CombinedLoader.limits={limits!r} has {len(values)} entries but there are "
                f"{len(self._flattened)} iterables."
            )
        checked: list[int | None] = []
        for value in values:
            if value is None or value == float("inf"):
                checked.append(None)
            elif isinstance(value, (int, float)) and value >= 0:
                checked.append(int(value))
            else:
                raise ValueError(
                    f"CombinedLoader.limits={limits!r} is invalid: each limit must be an int >= 0, "
                    "float('inf') or None."
                )
        self._limits = checked

    @property
    def sampler(self) -> Any:
        """Each iterable's `sampler` (None where it has none), in the tree shape."""
        return _unflatten(self._iterables, (getattr(it, "sampler", None) for it in self._flattened))

    @property
    def batch_sampler(self) -> Any:
        """Each iterable's `batch_sampler` (None where it has none), in the tree shape."""
        return _unflatten(
            self._iterables, (getattr(it, "batch_sampler", None) for it in self._flattened)
        )

    def _limit(self, index: int) -> int | None:
        return None if self._limits is None else self._limits[index]

    def _start(self, index: int) -> Iterator[Any]:
        return islice(self._flattened[index], self._limit(index))

    def _rebuild(self, batch: list[Any]) -> Any:
        return _unflatten(self._iterables, iter(batch))

    def __iter__(self) -> CombinedLoader:
        self.reset()
        generators = {
            "min_size": self._iter_min_size,
            "max_size_cycle": self._iter_max_size_cycle,
            "max_size": self._iter_max_size,
            "sequential": self._iter_sequential,
        }
        self._iterator = generators[self._mode]()
        return self

    def __next__(self) -> tuple[Any, int, int]:
        if self._iterator is None:
            iter(self)
        assert self._iterator is not None
        return next(self._iterator)

    def _iter_min_size(self) -> Iterator[tuple[Any, int, int]]:
        iterators = [self._start(i) for i in range(len(self._flattened))]
        for batch_idx in count():
            try:
                batch = [next(iterator) for iterator in iterators]
            except StopIteration:
                return
            yield self._rebuild(batch), batch_idx, 0

    def _iter_max_size_cycle(self) -> Iterator[tuple[Any, int, int]]:
        n = len(self._flattened)
        iterators = [self._start(i) for i in range(n)]
        has_ended = [False] * n
        for batch_idx in count():
            batch: list[Any] = [None] * n
            ended = []
            for i, iterator in enumerate(iterators):
                try:
                    batch[i] = next(iterator)
                except StopIteration:
                    ended.append(i)
                    has_ended[i] = True
            if all(has_ended):
                return
            # Restart only now that the longest is known to go on, so that a DataLoader does not
            # start its workers again for a round that never comes.
            for i in ended:
                iterators[i] = self._start(i)
                try:
                    batch[i] = next(iterators[i])
                except StopIteration:
                    return
            yield self._rebuild(batch), batch_idx, 0

    def _iter_max_size(self) -> Iterator[tuple[Any, int, int]]:
        n = len(self._flattened)
        iterators = [self._start(i) for i in range(n)]
        has_ended = [False] * n
        for batch_idx in count():
            batch: list[Any] = [None] * n
            for i, iterator in enumerate(iterators):
                if has_ended[i]:
                    continue
                try:
                    batch[i] = next(iterator)
                except StopIteration:
                    has_ended[i] = True
            if all(has_ended):
                return
            yield self._rebuild(batch), batch_idx, 0

    def _iter_sequential(self) -> Iterator[tuple[Any, int, int]]:
        for dataloader_idx in range(len(self._flattened)):
            for batch_idx, batch in enumerate(self._start(dataloader_idx)):
                yield batch, batch_idx, dataloader_idx

    def __len__(self) -> int:
        """Return the number of batches a full pass yields (raise TypeError if unknowable)."""
        lengths: list[int | None] = []
        for i, iterable in enumerate(self._flattened):
            length, limit = _sized_len(iterable), self._limit(i)
            lengths.append(
                limit if length is None else length if limit is None else min(length, limit)
            )
        known = [length for length in lengths if length is not None]
        if self._mode == "min_size" and known:
            return min(known)
        if len(known) < len(lengths):
            unsized = lengths.index(None)
            raise TypeError(
                f"CombinedLoader(mode={self._mode!r}) has no length: iterable {unsized} "
                f"({type(self._flattened[unsized]).__name__}) defines no `__len__`."
            )
        if self._mode == "sequential":
            return sum(known)
        if self._mode == "max_size_cycle" and min(known) == 0:
            return 0  # an empty iterable cannot be cycled, so no batch is ever complete
        return max(known)

    def reset(self) -> None:
        """Drop the running iteration, releasing the iterators (and any DataLoader workers)."""
        if self._iterator is not None and hasattr(self._iterator, "close"):
            self._iterator.close()
        self._iterator = None

    def _state_dicts(self) -> list[dict[str, Any]]:
        """Return `state_dict()` of each stateful iterable (e.g. torchdata's StatefulDataLoader)."""
        return [it.state_dict() for it in self._flattened if _is_stateful(it)]

    def _load_state_dicts(self, states: list[dict[str, Any]]) -> None:
        """Give each stateful iterable its state from `_state_dicts()`, in the same order."""
        stateful = [it for it in self._flattened if _is_stateful(it)]
        if len(states) != len(stateful):
            raise ValueError(
                f"The checkpoint holds {len(states)} dataloader states but this CombinedLoader has "
                f"{len(stateful)} stateful iterables."
            )
        for iterable, state in zip(stateful, states):
            iterable.load_state_dict(state)


def _is_stateful(obj: Any) -> bool:
    return callable(getattr(obj, "state_dict", None)) and callable(
        getattr(obj, "load_state_dict", None)
    )
