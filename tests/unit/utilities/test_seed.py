from __future__ import annotations

import io
import logging
import os
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from fulmen.utilities.seed import (
    _collect_rng_states,
    _set_rng_states,
    isolate_rng,
    pl_worker_init_function,
    reset_seed,
    seed_everything,
)


@pytest.fixture
def fulmen_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    # fulmen's logger prints to stderr itself and does not propagate; let caplog see it too.
    monkeypatch.setattr(logging.getLogger("fulmen"), "propagate", True)
    caplog.set_level(logging.INFO, logger="fulmen")
    return caplog


def _draw() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), torch.rand(1).item()


def test_seed_everything_makes_python_numpy_and_torch_repeat() -> None:
    assert seed_everything(123, verbose=False) == 123
    first = _draw()
    seed_everything(123, verbose=False)
    assert _draw() == first


def test_seed_everything_exports_seed_and_worker_flag() -> None:
    seed_everything(7, workers=True, verbose=False)
    assert os.environ["PL_GLOBAL_SEED"] == "7"
    assert os.environ["PL_SEED_WORKERS"] == "1"
    seed_everything(8, verbose=False)
    assert os.environ["PL_SEED_WORKERS"] == "0"


def test_seed_everything_reads_pl_global_seed_when_no_seed_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "99")
    assert seed_everything(verbose=False) == 99


def test_seed_everything_defaults_to_zero_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="No seed found, seed set to 0"):
        assert seed_everything(verbose=False) == 0


def test_seed_everything_rejects_a_bad_pl_global_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "abc")
    with pytest.raises(ValueError, match="PL_GLOBAL_SEED: 'abc'"):
        seed_everything()


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_everything_rejects_seeds_numpy_cannot_take(seed: int) -> None:
    with pytest.raises(ValueError, match=f"{seed} is not in bounds"):
        seed_everything(seed)


def test_seed_everything_converts_numbers_to_int() -> None:
    assert seed_everything(3.7, verbose=False) == 3  # type: ignore[arg-type]
    assert seed_everything("12", verbose=False) == 12  # type: ignore[arg-type]


def test_seed_everything_logs_the_seed_with_the_rank_under_a_launcher(
    fulmen_log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(key, raising=False)
    seed_everything(5)
    monkeypatch.setenv("RANK", "1")
    seed_everything(6)
    assert fulmen_log.messages == ["Seed set to 5", "[rank: 1] Seed set to 6"]


def test_reset_seed_seeds_again_with_the_stored_seed() -> None:
    reset_seed()  # nothing stored yet: a no-op
    assert "PL_GLOBAL_SEED" not in os.environ
    seed_everything(11, workers=True, verbose=False)
    first = _draw()
    reset_seed()
    assert _draw() == first
    assert os.environ["PL_SEED_WORKERS"] == "1"


def _seeded_draws(initial_seed: int, worker_id: int, rank: int) -> tuple[float, float, float]:
    torch.manual_seed(initial_seed + worker_id)  # what a DataLoader worker starts with
    pl_worker_init_function(worker_id, rank=rank)
    return _draw()


def test_worker_init_function_is_deterministic_and_distinct_per_worker_and_rank() -> None:
    base = _seeded_draws(100, worker_id=0, rank=0)
    assert _seeded_draws(100, worker_id=0, rank=0) == base
    others = [
        _seeded_draws(100, worker_id=1, rank=0),
        _seeded_draws(100, worker_id=0, rank=1),
        _seeded_draws(101, worker_id=0, rank=0),
    ]
    for other in others:
        assert all(a != b for a, b in zip(base, other))


class _RandomNumbers(Dataset[list[float]]):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> list[float]:
        return [random.random(), float(np.random.rand()), torch.rand(1).item()]


def test_worker_init_function_gives_workers_different_numpy_streams() -> None:
    seed_everything(0, verbose=False)
    loader = DataLoader(
        _RandomNumbers(), batch_size=1, num_workers=2, worker_init_fn=pl_worker_init_function
    )
    batches = [batch for batch in loader]
    numpy_values = [float(batch[1]) for batch in batches]
    # Without seeding, forked workers would share NumPy's state and return equal values.
    assert len(set(numpy_values)) == 4
    seed_everything(0, verbose=False)
    again = [batch for batch in loader]
    assert [float(b[1]) for b in again] == numpy_values


def test_isolate_rng_restores_all_generators() -> None:
    seed_everything(1, verbose=False)
    with isolate_rng():
        _draw()
    after = _draw()
    seed_everything(1, verbose=False)
    assert _draw() == after


def test_isolate_rng_restores_after_an_exception() -> None:
    state = torch.get_rng_state()
    with pytest.raises(RuntimeError), isolate_rng(include_cuda=False):
        torch.rand(3)
        raise RuntimeError("boom")
    assert torch.equal(torch.get_rng_state(), state)


def test_collected_states_load_with_weights_only_and_restore_exactly() -> None:
    states = _collect_rng_states()
    assert set(states) == {"torch", "python", "numpy", "torch.cuda"}
    buffer = io.BytesIO()
    torch.save({"rng": states}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["rng"]
    expected = _draw()
    _set_rng_states(loaded)
    assert _draw() == expected


def test_set_rng_states_accepts_lightning_style_numpy_arrays() -> None:
    states = _collect_rng_states(include_cuda=False)
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    states["numpy"] = (name, keys, pos, has_gauss, cached)
    expected = _draw()
    _set_rng_states(states)
    assert _draw() == expected


@pytest.mark.gpu
def test_cuda_generators_are_collected_and_restored() -> None:
    states = _collect_rng_states()
    assert len(states["torch.cuda"]) == torch.cuda.device_count()
    expected = torch.rand(2, device="cuda")
    _set_rng_states(states)
    assert torch.equal(torch.rand(2, device="cuda"), expected)
    with isolate_rng():
        torch.rand(2, device="cuda")
    after = torch.rand(2, device="cuda")
    _set_rng_states(states)
    torch.rand(2, device="cuda")
    assert torch.equal(torch.rand(2, device="cuda"), after)
