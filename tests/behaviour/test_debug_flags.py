"""Every debug and limit flag runs exactly the batches Lightning runs (counts checked per loop)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

import fulmen
from tests.helpers.models import QUIET, make_counting_model

# (Trainer arguments, expected counts). 8 train batches and 4 val batches per epoch by default.
CASES: list[tuple[dict[str, Any], dict[str, int]]] = [
    (dict(max_epochs=1), dict(train=8, val=4, sanity=2, epochs=1, val_runs=1, global_step=8)),
    (
        dict(max_epochs=2, limit_train_batches=3),
        dict(train=6, val=8, sanity=2, epochs=2, val_runs=2, global_step=6),
    ),
    (
        dict(max_epochs=1, limit_train_batches=0.5, limit_val_batches=0.5),
        dict(train=4, val=2, sanity=2, val_runs=1, global_step=4),
    ),
    (dict(max_epochs=1, num_sanity_val_steps=0), dict(train=8, val=4, sanity=0, global_step=8)),
    (dict(max_epochs=1, num_sanity_val_steps=-1), dict(train=8, val=4, sanity=4, global_step=8)),
    (
        dict(max_epochs=1, limit_val_batches=0),
        dict(train=8, val=0, sanity=0, val_runs=0, global_step=8),
    ),
    (dict(fast_dev_run=True), dict(train=1, val=1, sanity=0, epochs=1, global_step=1)),
    (dict(fast_dev_run=3), dict(train=3, val=3, sanity=0, epochs=1, global_step=3)),
    (dict(max_steps=10), dict(train=10, epochs=2, global_step=10, val_runs=1)),
    (dict(max_epochs=1, accumulate_grad_batches=3), dict(train=8, global_step=3)),
    (dict(max_epochs=1, val_check_interval=0.5), dict(train=8, val=8, val_runs=2)),
    (dict(max_epochs=1, val_check_interval=3), dict(train=8, val=8, val_runs=2)),
    (dict(max_epochs=4, check_val_every_n_epoch=2), dict(train=32, val_runs=2, epochs=4)),
    (dict(max_epochs=2, overfit_batches=2), dict(train=4, val=4, sanity=2, global_step=4)),
    (
        dict(
            max_epochs=3, check_val_every_n_epoch=None, val_check_interval=5, limit_train_batches=4
        ),
        dict(train=12, val_runs=2),
    ),
]


def run(pl: Any, kwargs: dict[str, Any], tmp_path: Path) -> dict[str, int]:
    model = make_counting_model(pl)()
    trainer = pl.Trainer(default_root_dir=str(tmp_path), **{**QUIET, **kwargs})
    trainer.fit(model)
    counts = dict(model.counts)
    counts["global_step"] = trainer.global_step
    return counts


@pytest.mark.parametrize(("kwargs", "expected"), CASES, ids=[str(c[0]) for c in CASES])
def test_debug_flags_run_exact_batch_counts(
    kwargs: dict[str, Any], expected: dict[str, int], tmp_path: Path
) -> None:
    counts = run(fulmen, kwargs, tmp_path)
    assert {k: counts.get(k, 0) for k in expected} == expected


@pytest.mark.compat
@pytest.mark.parametrize(("kwargs", "expected"), CASES, ids=[str(c[0]) for c in CASES])
def test_debug_flags_match_installed_lightning(
    kwargs: dict[str, Any], expected: dict[str, int], tmp_path: Path
) -> None:
    pl = pytest.importorskip("pytorch_lightning")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = run(pl, kwargs, tmp_path / "pl")
    ours = run(fulmen, kwargs, tmp_path / "fulmen")
    assert ours == theirs


def test_fast_dev_run_writes_no_logs_and_no_checkpoints(tmp_path: Path) -> None:
    model = make_counting_model(fulmen)()
    trainer = fulmen.Trainer(
        default_root_dir=str(tmp_path), fast_dev_run=2, enable_progress_bar=False
    )
    trainer.fit(model)
    assert not list(tmp_path.rglob("*.ckpt"))
    assert not list(tmp_path.rglob("events.out.tfevents*"))


@pytest.mark.parametrize("limit", ["limit_test_batches", "limit_predict_batches"])
def test_limits_apply_to_test_and_predict(limit: str, tmp_path: Path) -> None:
    model = make_counting_model(fulmen)()
    trainer = fulmen.Trainer(default_root_dir=str(tmp_path), **{limit: 2}, **QUIET)
    if limit == "limit_test_batches":
        trainer.test(model, verbose=False)
        assert model.counts["test"] == 2
    else:
        predictions = trainer.predict(model)
        assert model.counts["predict"] == 2 and len(predictions) == 2
