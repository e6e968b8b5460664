"""Automatic optimization gives the same weights as a hand-written PyTorch loop, bit for bit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import fulmen
from tests.helpers.models import QUIET, loader, make_counting_model


def handwritten(
    accumulate: int, clip_val: float | None, clip_algorithm: str, epochs: int
) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    data = loader(32)
    for _ in range(epochs):
        for i, (x, y) in enumerate(data):
            if i % accumulate == 0:
                optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            (loss / accumulate if accumulate > 1 else loss).backward()
            if (i + 1) % accumulate == 0 or i + 1 == len(data):
                if clip_val is not None:
                    if clip_algorithm == "value":
                        torch.nn.utils.clip_grad_value_(model.parameters(), clip_val)
                    else:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_val)
                optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    ("accumulate", "clip_val", "clip_algorithm"),
    [(1, None, "norm"), (3, None, "norm"), (1, 0.05, "norm"), (2, 0.01, "value"), (3, 0.1, "norm")],
)
def test_weights_equal_a_handwritten_loop(
    accumulate: int, clip_val: float | None, clip_algorithm: str, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = make_counting_model(fulmen)()
    trainer = fulmen.Trainer(
        default_root_dir=str(tmp_path),
        max_epochs=2,
        limit_val_batches=0,
        accumulate_grad_batches=accumulate,
        gradient_clip_val=clip_val,
        gradient_clip_algorithm=clip_algorithm,
        **QUIET,
    )
    trainer.fit(model)
    expected = handwritten(accumulate, clip_val, clip_algorithm, epochs=2)
    got = {k.removeprefix("layer."): v for k, v in model.state_dict().items()}
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


def test_lbfgs_reevaluates_the_closure(tmp_path: Path) -> None:
    class LBFGSModel(make_counting_model(fulmen)):  # type: ignore[misc]
        def configure_optimizers(self) -> Any:
            return torch.optim.LBFGS(self.parameters(), lr=0.1, max_iter=4)

    model = LBFGSModel()
    trainer = fulmen.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0, **QUIET)
    trainer.fit(model)
    assert model.counts["train"] > 2  # LBFGS called the closure several times per step
    assert trainer.global_step == 2


def test_training_step_returning_none_skips_the_update(tmp_path: Path) -> None:
    class Skipping(make_counting_model(fulmen)):  # type: ignore[misc]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return None

    model = Skipping()
    before = [p.detach().clone() for p in model.parameters()]
    fulmen.Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=0, **QUIET).fit(model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_training_step_dict_output_reaches_on_train_batch_end() -> None:
    seen: list[Any] = []

    class DictModel(make_counting_model(fulmen)):  # type: ignore[misc]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return {"loss": super().training_step(batch, batch_idx), "extra": 3}

        def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
            seen.append(outputs)

    fulmen.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0, **QUIET).fit(
        DictModel()
    )
    assert [sorted(o) for o in seen] == [["extra", "loss"], ["extra", "loss"]]


def test_non_tensor_loss_is_a_clear_error() -> None:
    class Bad(make_counting_model(fulmen)):  # type: ignore[misc]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return 1.5

    with pytest.raises(
        fulmen.utilities.exceptions.MisconfigurationException, match="training_step` returned float"
    ):
        fulmen.Trainer(max_epochs=1, limit_train_batches=1, **QUIET).fit(Bad())


def test_eval_loops_run_in_eval_mode_without_grad() -> None:
    seen: list[tuple[bool, bool]] = []

    class Probe(make_counting_model(fulmen)):  # type: ignore[misc]
        def validation_step(self, batch: Any, batch_idx: int) -> None:
            seen.append((self.training, torch.is_grad_enabled()))

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            seen.append((self.training, torch.is_grad_enabled()))
            return super().training_step(batch, batch_idx)

    fulmen.Trainer(
        max_epochs=1, limit_train_batches=1, limit_val_batches=1, num_sanity_val_steps=0, **QUIET
    ).fit(Probe())
    assert seen == [(True, True), (False, False)]


def test_frozen_submodule_stays_in_eval_mode_after_validation() -> None:
    model = make_counting_model(fulmen)()
    model.frozen = torch.nn.Dropout()
    model.frozen.eval()
    fulmen.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, **QUIET).fit(model)
    assert model.training and not model.frozen.training
