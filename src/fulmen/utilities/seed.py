"""Seed every random number generator a run uses, and save or restore their states.

Seeded: Python's `random`, NumPy's global generator (when NumPy is installed) and torch (CPU and
every CUDA device). `PL_GLOBAL_SEED` and `PL_SEED_WORKERS` carry the choice to child processes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from fulmen.utilities.rank_zero import rank_zero_only, rank_zero_warn

__all__ = [
    "isolate_rng",
    "pl_worker_init_function",
    "reset_seed",
    "seed_everything",
]

log = logging.getLogger(__name__)

max_seed_value = 2**32 - 1
min_seed_value = 0


def _rank_or_none() -> int | None:
    # A rank is known only under a launcher; a plain single process prints no rank prefix.
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    return None


def seed_everything(seed: int | None = None, workers: bool = False, verbose: bool = True) -> int:
    """Seed Python, NumPy and torch with `seed` and return it.

    Args:
        seed: the seed; None reads `PL_GLOBAL_SEED`, or uses 0 (with a warning) when that is unset.
        workers: let the Trainer seed each dataloader worker differently but reproducibly
            (see `pl_worker_init_function`).
        verbose: log the seed at INFO level.

    Example:
        >>> seed_everything(42, verbose=False)
        42
        >>> a = torch.rand(1); _ = seed_everything(42, verbose=False); bool(torch.rand(1) == a)
        True
    """
    if seed is None:
        env_seed = os.environ.get("PL_GLOBAL_SEED")
        if env_seed is None:
            seed = 0
            rank_zero_warn(f"No seed found, seed set to {seed}")
        else:
            try:
                seed = int(env_seed)
            except ValueError:
                raise ValueError(
                    f"Invalid seed specified via PL_GLOBAL_SEED: {env_seed!r}. Set it to an integer "
                    f"from {min_seed_value} to {max_seed_value}."
                ) from None
    elif not isinstance(seed, int):
        seed = int(seed)

    if not min_seed_value <= seed <= max_seed_value:
        raise ValueError(
            f"seed_everything(seed={seed!r}): {seed} is not in bounds, numpy accepts from "
            f"{min_seed_value} to {max_seed_value}."
        )

    if verbose:
        rank = _rank_or_none()
        prefix = f"[rank: {rank}] " if rank is not None else ""
        log.info(f"{prefix}Seed set to {seed}")

    os.environ["PL_GLOBAL_SEED"] = str(seed)
    random.seed(seed)
    _seed_numpy(seed)
    torch.manual_seed(seed)
    os.environ["PL_SEED_WORKERS"] = f"{int(workers)}"
    return seed


def reset_seed() -> None:
    """Seed again with the seed `seed_everything` stored in `PL_GLOBAL_SEED`; no-op when unset.

    Spawned processes call this so that they start from the same state as the main process.

    Example:
        >>> _ = seed_everything(7, verbose=False); a = torch.rand(1)
        >>> reset_seed(); bool(torch.rand(1) == a)
        True
    """
    seed = os.environ.get("PL_GLOBAL_SEED")
    if seed is None:
        return
    workers = os.environ.get("PL_SEED_WORKERS", "0")
    seed_everything(int(seed), workers=bool(int(workers)), verbose=False)


def _derive_seeds(base_seed: int, worker_id: int, rank: int) -> list[int]:
    # A cryptographic hash spreads (seed, worker, rank) triples that differ by one apart, so that
    # neighbouring workers and ranks draw unrelated streams.
    digest = hashlib.blake2b(f"{base_seed}/{worker_id}/{rank}".encode(), digest_size=24).digest()
    return [int.from_bytes(digest[i : i + 8], "little") for i in range(0, 24, 8)]


def pl_worker_init_function(worker_id: int, rank: int | None = None) -> None:
    """Seed torch, Python and NumPy in a dataloader worker from the base seed, worker id and rank.

    Pass as `DataLoader(worker_init_fn=...)`; the Trainer does so after
    `seed_everything(workers=True)`. Inside a worker, torch's initial seed is the loader's base
    seed plus `worker_id`, so the base seed is recovered by subtracting it.

    Example:
        >>> _ = torch.manual_seed(10); pl_worker_init_function(0, rank=0); a = torch.rand(1)
        >>> _ = torch.manual_seed(10); pl_worker_init_function(0, rank=0); bool(torch.rand(1) == a)
        True
    """
    global_rank = rank if rank is not None else rank_zero_only.rank  # type: ignore[attr-defined]
    base_seed = torch.initial_seed() - worker_id
    log.debug(
        f"Seeding the random number generators of rank {global_rank}, worker {worker_id} "
        f"from base seed {base_seed}"
    )
    torch_seed, python_seed, numpy_seed = _derive_seeds(base_seed, worker_id, global_rank)
    torch.manual_seed(torch_seed)
    random.seed(python_seed)
    _seed_numpy([numpy_seed & 0xFFFFFFFF, numpy_seed >> 32])


def _seed_numpy(seed: int | list[int]) -> None:
    try:
        import numpy as np
    except ImportError:
        return
    np.random.seed(seed)


def _collect_rng_states(include_cuda: bool = True) -> dict[str, Any]:
    """Return the state of every global generator, as tensors and plain Python values.

    The result holds only tensors, lists, tuples, ints, floats, strings and None, so that a
    checkpoint holding it loads with `torch.load(weights_only=True)`.

    Example:
        >>> sorted(_collect_rng_states(include_cuda=False))
        ['numpy', 'python', 'torch']
    """
    version, internal, gauss = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": (version, tuple(internal), gauss),
    }
    try:
        import numpy as np
    except ImportError:
        pass
    else:
        name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
        states["numpy"] = (
            str(name),
            [int(k) for k in keys],
            int(pos),
            int(has_gauss),
            float(cached),
        )
    if include_cuda:
        states["torch.cuda"] = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return states


def _set_rng_states(rng_state_dict: dict[str, Any]) -> None:
    """Restore generator states from `_collect_rng_states` (or from a Lightning checkpoint).

    Example:
        >>> states = _collect_rng_states(); a = torch.rand(1)
        >>> _set_rng_states(states); bool(torch.rand(1) == a)
        True
    """
    torch.set_rng_state(rng_state_dict["torch"])
    cuda_states = rng_state_dict.get("torch.cuda")
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    if "numpy" in rng_state_dict:
        try:
            import numpy as np
        except ImportError:
            pass
        else:
            name, keys, pos, has_gauss, cached = rng_state_dict["numpy"]
            np.random.set_state(
                (name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached))
            )
    if "python" in rng_state_dict:
        version, internal, gauss = rng_state_dict["python"]
        random.setstate((version, tuple(internal), gauss))


@contextmanager
def isolate_rng(include_cuda: bool = True) -> Iterator[None]:
    """Restore every global generator's state on leaving the block, even after an exception.

    Args:
        include_cuda: also save and restore the CUDA generators (this initialises CUDA).

    Example:
        >>> _ = torch.manual_seed(1)
        >>> with isolate_rng():
        ...     _ = torch.rand(1)
        >>> a = torch.rand(1); _ = torch.manual_seed(1); bool(torch.rand(1) == a)
        True
    """
    states = _collect_rng_states(include_cuda)
    try:
        yield
    finally:
        _set_rng_states(states)
