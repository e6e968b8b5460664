"""SWA, backbone finetuning and weight averaging through `Trainer.fit`, checked against numbers.

Expected values are computed by hand from what the model records during the fit (weights at the
start of each epoch, after each step, during validation). The `compat` tests run the same script
with pytorch_lightning 2.6.6, when it is installed, and compare.
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector
from torch.optim.swa_utils import SWALR
from torch.utils.data import DataLoader, TensorDataset

import fulmen
from fulmen.utilities.exceptions import MisconfigurationException

_FULMEN_MODULES = {
    "StochasticWeightAveraging": "fulmen.callbacks.stochastic_weight_avg",
    "BackboneFinetuning": "fulmen.callbacks.finetuning",
    "WeightAveraging": "fulmen.callbacks.weight_averaging",
    "EMAWeightAveraging": "fulmen.callbacks.weight_averaging",
}


def callback(pl: ModuleType, name: str, **kwargs: Any) -> Any:
    if pl is fulmen:
        return getattr(importlib.import_module(_FULMEN_MODULES[name]), name)(**kwargs)
    return getattr(pl.callbacks, name)(**kwargs)


def make_model(
    pl: ModuleType,
    batch_norm: bool = False,
    scheduler: str | None = None,
    with_val: bool = False,
    shuffle: bool = False,
) -> Any:
    """A backbone (Linear, maybe BatchNorm) and a head that record weights and learning rates."""
    generator = torch.Generator().manual_seed(0)
    x = 0.5 * torch.randn(16, 4, generator=generator)
    y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(16, 1, generator=generator)

    class Model(pl.LightningModule):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.backbone = nn.Sequential(
                nn.Linear(4, 3), nn.BatchNorm1d(3) if batch_norm else nn.Identity()
            )
            self.head = nn.Linear(3, 1)
            self.epoch_start_weights: list[Tensor] = []
            self.step_weights: list[Tensor] = []
            self.val_weights: list[Tensor] = []
            self.lrs: list[list[float]] = []
            self.scheduler_names: list[list[str]] = []
            self.trainable: list[list[bool]] = []
            self.steps_per_epoch: list[int] = []

        def weights(self) -> Tensor:
            return parameters_to_vector(self.parameters()).detach().clone()

        def forward(self, x: Tensor) -> Tensor:
            out: Tensor = self.head(self.backbone(x))
            return out

        def training_step(self, batch: Any, batch_idx: int) -> Tensor:
            self.steps_per_epoch[-1] += 1
            loss = nn.functional.mse_loss(self(batch[0]), batch[1])
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            if batch_idx == 0 and not self.trainer.sanity_checking:
                self.val_weights.append(self.weights())

        def on_train_epoch_start(self) -> None:
            self.epoch_start_weights.append(self.weights())
            self.lrs.append([g["lr"] for g in self.trainer.optimizers[0].param_groups])
            configs = self.trainer.lr_scheduler_configs
            self.scheduler_names.append([type(c.scheduler).__name__ for c in configs])
            self.trainable.append([p.requires_grad for p in self.backbone[0].parameters()])
            self.steps_per_epoch.append(0)

        def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
            self.step_weights.append(self.weights())

        def configure_optimizers(self) -> Any:
            params = [p for p in self.parameters() if p.requires_grad]
            optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.5)
            if scheduler == "step":
                step = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
                return [optimizer], [step]
            if scheduler == "lambda":
                decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.7**epoch)
                return [optimizer], [decay]
            return optimizer

        def train_dataloader(self) -> DataLoader[Any]:
            return DataLoader(TensorDataset(x, y), batch_size=4, shuffle=shuffle)

        if with_val:

            def val_dataloader(self) -> DataLoader[Any]:
                return DataLoader(TensorDataset(x[:8], y[:8]), batch_size=8)

    return Model()


def fit(
    pl: ModuleType,
    model: Any,
    callbacks: list[Any],
    root: Path,
    ckpt_path: str | None = None,
    **trainer_kwargs: Any,
) -> Any:
    options: dict[str, Any] = {
        "max_epochs": 4,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "num_sanity_val_steps": 0,
        "default_root_dir": root,
        **trainer_kwargs,
    }
    trainer = pl.Trainer(callbacks=callbacks, **options)
    if pl is fulmen:
        trainer.fit(model, ckpt_path=ckpt_path)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(model, ckpt_path=ckpt_path)
    return trainer


def mean(tensors: list[Tensor]) -> Tensor:
    total = tensors[0].clone()
    for n, tensor in enumerate(tensors[1:], start=1):
        total += (tensor - total) / (n + 1)  # the running mean, as SWA folds weights in
    return total


def checkpoint_at(root: Path, epoch: int) -> str:
    (path,) = (root / "checkpoints").glob(f"epoch={epoch}-*.ckpt")
    return str(path)


def every_epoch() -> Any:
    return fulmen.callbacks.ModelCheckpoint(every_n_epochs=1, save_top_k=-1)


# ------------------------------------------------------------------------------ SWA


def test_swa_ends_with_the_mean_of_the_weights_at_the_start_of_its_epochs(tmp_path: Path) -> None:
    model = make_model(fulmen)
    swa = callback(fulmen, "StochasticWeightAveraging", swa_lrs=0.05, swa_epoch_start=3)
    trainer = fit(fulmen, model, [swa], tmp_path, max_epochs=5)
    # swa_epoch_start=3 is the 0-based epoch 2: the starts of epochs 2, 3 and 4 are averaged.
    assert torch.equal(model.weights(), mean(model.epoch_start_weights[2:5]))
    assert (trainer.current_epoch, trainer.global_step, trainer.max_epochs) == (5, 20, 5)


def test_swa_swaps_the_scheduler_for_swalr_and_anneals_to_swa_lr(tmp_path: Path) -> None:
    model = make_model(fulmen, scheduler="step")
    swa = callback(
        fulmen, "StochasticWeightAveraging", swa_lrs=0.01, swa_epoch_start=2, annealing_epochs=2
    )
    trainer = fit(fulmen, model, [swa], tmp_path, max_epochs=5)
    assert model.scheduler_names == [["StepLR"]] + [["SWALR"]] * 4
    assert isinstance(trainer.lr_scheduler_configs[0].scheduler, SWALR)
    assert model.lrs[0] == [0.1]
    assert model.lrs[1] == [0.05]  # StepLR halved it; SWALR starts from there ...
    assert model.lrs[3:] == [[pytest.approx(0.01)]] * 2  # ... and reaches swa_lrs in 2 epochs


def test_swa_with_batchnorm_recomputes_statistics_in_one_more_epoch(tmp_path: Path) -> None:
    model = make_model(fulmen, batch_norm=True)
    swa = callback(fulmen, "StochasticWeightAveraging", swa_lrs=0.05, swa_epoch_start=2)
    trainer = fit(fulmen, model, [swa], tmp_path, max_epochs=4)

    # As in Lightning: a fifth epoch of forward passes and a single (undone) optimizer step.
    assert (trainer.current_epoch, trainer.global_step, trainer.max_epochs) == (5, 17, 4)
    assert model.steps_per_epoch == [4, 4, 4, 4, 4]
    average = mean(model.epoch_start_weights[1:4])
    assert torch.equal(model.epoch_start_weights[4], average)
    assert torch.equal(model.weights(), average)

    # The statistics are those of the averaged network over one pass of the training data.
    by_hand = make_model(fulmen, batch_norm=True)
    torch.nn.utils.vector_to_parameters(average, by_hand.parameters())
    batch_norm = by_hand.backbone[1]
    batch_norm.reset_running_stats()
    batch_norm.momentum = None
    with torch.no_grad():
        for x, _ in by_hand.train_dataloader():
            by_hand(x)
    expected = (batch_norm.running_mean, batch_norm.running_var)
    actual = (model.backbone[1].running_mean, model.backbone[1].running_var)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-7)
    assert model.backbone[1].momentum == 0.1


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("resume_epoch", [1, 3])
def test_swa_resumed_from_a_checkpoint_ends_like_an_uninterrupted_fit(
    tmp_path: Path, batch_norm: bool, resume_epoch: int
) -> None:
    def swa() -> Any:
        return callback(
            fulmen, "StochasticWeightAveraging", swa_lrs=0.05, swa_epoch_start=3, annealing_epochs=2
        )

    full = make_model(fulmen, batch_norm=batch_norm, scheduler="lambda")
    fit(
        fulmen,
        full,
        [swa(), every_epoch()],
        tmp_path / "full",
        max_epochs=5,
        enable_checkpointing=True,
    )
    resumed = make_model(fulmen, batch_norm=batch_norm, scheduler="lambda")
    path = checkpoint_at(tmp_path / "full", resume_epoch)
    trainer = fit(fulmen, resumed, [swa()], tmp_path / "resumed", path, max_epochs=5)
    assert torch.equal(resumed.weights(), full.weights())
    assert torch.equal(
        resumed.state_dict()["backbone.0.weight"], full.state_dict()["backbone.0.weight"]
    )
    assert trainer.current_epoch == (6 if batch_norm else 5)


def test_swa_state_in_the_checkpoint_loads_with_weights_only(tmp_path: Path) -> None:
    model = make_model(fulmen)
    swa = callback(fulmen, "StochasticWeightAveraging", swa_lrs=0.05, swa_epoch_start=2)
    fit(fulmen, model, [swa, every_epoch()], tmp_path, enable_checkpointing=True)
    checkpoint = torch.load(checkpoint_at(tmp_path, 2), weights_only=True)
    state = checkpoint["callbacks"]["StochasticWeightAveraging"]
    assert (state["n_averaged"], state["latest_update_epoch"]) == (2, 2)
    assert state["scheduler_state"]["anneal_epochs"] == 10
    assert checkpoint["lr_schedulers"] == [state["scheduler_state"]]
    weights = [w for k, w in state["average_model_state"].items()]
    assert torch.equal(parameters_to_vector(weights), mean(model.epoch_start_weights[1:3]))


# ------------------------------------------------------------------------------ finetuning


def test_backbone_unfreezes_at_its_epoch_with_its_own_learning_rate(tmp_path: Path) -> None:
    model = make_model(fulmen, scheduler="step")
    initial_backbone = model.backbone[0].weight.detach().clone()
    finetuning = callback(fulmen, "BackboneFinetuning", unfreeze_backbone_at_epoch=2)
    fit(fulmen, model, [finetuning], tmp_path, max_epochs=5)
    assert model.trainable == [[False, False]] * 2 + [[True, True]] * 3
    expected_lrs = [
        [0.1],
        [0.05],
        [0.025, 0.025 * 0.1],  # joins at backbone_initial_ratio_lr times the current rate
        [0.0125, 0.025 * 0.1 * 2],  # then doubles every epoch ...
        [0.00625, 0.00625],  # ... but never above the head's rate (should_align)
    ]
    assert model.lrs == [[pytest.approx(lr) for lr in lrs] for lrs in expected_lrs]
    # The frozen backbone did not move in the first two epochs, and trained afterwards.
    start = model.epoch_start_weights
    assert torch.equal(start[2][:12], initial_backbone.flatten())
    assert not torch.equal(start[3][:12], start[2][:12])


def test_backbone_finetuning_names_a_missing_backbone(tmp_path: Path) -> None:
    model = make_model(fulmen)
    model.trunk = model.backbone
    del model.backbone
    finetuning = callback(fulmen, "BackboneFinetuning")
    with pytest.raises(MisconfigurationException, match="Model.backbone is missing"):
        fit(fulmen, model, [finetuning], tmp_path)


@pytest.mark.parametrize("resume_epoch", [0, 2])
def test_backbone_finetuning_resumed_ends_like_an_uninterrupted_fit(
    tmp_path: Path, resume_epoch: int
) -> None:
    def finetuning() -> Any:
        return callback(fulmen, "BackboneFinetuning", unfreeze_backbone_at_epoch=1)

    full = make_model(fulmen, scheduler="step")
    callbacks = [finetuning(), every_epoch()]
    fit(fulmen, full, callbacks, tmp_path / "full", max_epochs=4, enable_checkpointing=True)
    resumed = make_model(fulmen, scheduler="step")
    path = checkpoint_at(tmp_path / "full", resume_epoch)
    fit(fulmen, resumed, [finetuning()], tmp_path / "resumed", path, max_epochs=4)
    assert resumed.trainable[-1] == [True, True]
    assert resumed.lrs == full.lrs[resume_epoch + 1 :]
    assert torch.equal(resumed.weights(), full.weights())


# ------------------------------------------------------------------------------ weight averaging


def test_ema_ends_with_the_hand_computed_ema_of_the_step_weights(tmp_path: Path) -> None:
    model = make_model(fulmen)
    ema = callback(fulmen, "EMAWeightAveraging", decay=0.8)
    fit(fulmen, model, [ema], tmp_path, max_epochs=2)
    expected = model.step_weights[0]
    for weights in model.step_weights[1:]:
        expected = 0.8 * expected + (1 - 0.8) * weights
    assert len(model.step_weights) == 8
    assert torch.equal(model.weights(), expected)


def test_ema_every_n_steps_from_a_start_step(tmp_path: Path) -> None:
    model = make_model(fulmen)
    ema = callback(
        fulmen, "EMAWeightAveraging", decay=0.5, update_every_n_steps=2, update_starting_at_step=3
    )
    fit(fulmen, model, [ema], tmp_path, max_epochs=3)
    expected = model.step_weights[4]  # step indices 4, 6, 8, 10
    for index in (6, 8, 10):
        expected = 0.5 * expected + 0.5 * model.step_weights[index]
    assert torch.equal(model.weights(), expected)


def test_weight_averaging_validates_on_the_average_and_trains_on_its_own_weights(
    tmp_path: Path,
) -> None:
    model = make_model(fulmen, with_val=True)
    averaging = callback(fulmen, "WeightAveraging")
    fit(fulmen, model, [averaging], tmp_path, max_epochs=2, accumulate_grad_batches=2)
    steps = model.step_weights  # one per batch: every other one follows an optimizer step
    assert torch.equal(model.val_weights[0], mean(steps[1:4:2]))
    assert torch.equal(model.val_weights[1], mean(steps[1::2]))
    assert torch.equal(model.epoch_start_weights[1], steps[3])  # training went on unaveraged
    assert torch.equal(model.weights(), mean(steps[1::2]))


def test_weight_averaging_checkpoint_holds_the_average_and_resume_continues_it(
    tmp_path: Path,
) -> None:
    def ema() -> Any:
        return callback(fulmen, "EMAWeightAveraging", decay=0.7)

    full = make_model(fulmen)
    fit(
        fulmen,
        full,
        [ema(), every_epoch()],
        tmp_path / "full",
        max_epochs=3,
        enable_checkpointing=True,
    )
    checkpoint = torch.load(checkpoint_at(tmp_path / "full", 2), weights_only=True)
    assert torch.equal(parameters_to_vector(checkpoint["state_dict"].values()), full.weights())
    assert torch.equal(
        parameters_to_vector(checkpoint["current_model_state"].values()), full.step_weights[-1]
    )
    assert int(checkpoint["averaging_state"]["n_averaged"]) == 12
    assert checkpoint["callbacks"]["EMAWeightAveraging"] == {"latest_update_step": 12}

    resumed = make_model(fulmen)
    path = checkpoint_at(tmp_path / "full", 0)
    fit(fulmen, resumed, [ema()], tmp_path / "resumed", path, max_epochs=3)
    assert torch.equal(resumed.weights(), full.weights())


# ------------------------------------------------------------------------------ against Lightning


def lightning() -> ModuleType:
    module: ModuleType = pytest.importorskip("pytorch_lightning")
    return module


@pytest.mark.compat
@pytest.mark.parametrize(
    "kwargs",
    [
        {"swa_lrs": 0.05, "swa_epoch_start": 3, "annealing_epochs": 2},
        {"swa_lrs": 0.02, "swa_epoch_start": 0.5, "annealing_strategy": "linear", "device": None},
    ],
)
def test_swa_matches_lightning(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    results = []
    for pl in (lightning(), fulmen):
        model = make_model(pl, scheduler="step")
        swa = callback(pl, "StochasticWeightAveraging", **kwargs)
        trainer = fit(pl, model, [swa], tmp_path / pl.__name__, max_epochs=6)
        results.append((model, trainer, swa.state_dict()))
    (theirs, their_trainer, their_state), (ours, our_trainer, our_state) = results
    assert torch.equal(ours.weights(), theirs.weights())
    assert ours.lrs == theirs.lrs and ours.scheduler_names == theirs.scheduler_names
    assert (our_trainer.current_epoch, our_trainer.global_step) == (
        their_trainer.current_epoch,
        their_trainer.global_step,
    )
    assert our_state["scheduler_state"] == their_state["scheduler_state"]
    assert (our_state["n_averaged"], our_state["latest_update_epoch"]) == (
        their_state["n_averaged"],
        their_state["latest_update_epoch"],
    )


@pytest.mark.compat
def test_swa_with_batchnorm_matches_lightnings_average_and_statistics(tmp_path: Path) -> None:
    results = []
    for pl in (lightning(), fulmen):
        model = make_model(pl, batch_norm=True, scheduler="step")
        swa = callback(pl, "StochasticWeightAveraging", swa_lrs=0.05, swa_epoch_start=2)
        trainer = fit(pl, model, [swa], tmp_path / pl.__name__, max_epochs=4)
        results.append((model, trainer, swa.state_dict()))
    (theirs, their_trainer, their_state), (ours, our_trainer, _) = results
    # Lightning ends its BatchNorm epoch with an optimizer step on stale gradients, which moves
    # its weights off the average; fulmen keeps the average. Both hold it in the callback state.
    average = [w for k, w in their_state["average_model_state"].items() if "running" not in k]
    average = [w for w in average if w.is_floating_point()]
    assert torch.equal(ours.weights(), parameters_to_vector(average))
    bn_ours, bn_theirs = ours.backbone[1], theirs.backbone[1]
    assert torch.equal(bn_ours.running_mean, bn_theirs.running_mean)
    assert torch.equal(bn_ours.running_var, bn_theirs.running_var)
    assert (our_trainer.current_epoch, our_trainer.global_step, our_trainer.max_epochs) == (
        their_trainer.current_epoch,
        their_trainer.global_step,
        their_trainer.max_epochs,
    )


@pytest.mark.compat
def test_backbone_finetuning_matches_lightning(tmp_path: Path) -> None:
    results = []
    for pl in (lightning(), fulmen):
        model = make_model(pl, batch_norm=True, scheduler="step")
        finetuning = callback(
            pl, "BackboneFinetuning", unfreeze_backbone_at_epoch=1, lambda_func=lambda e: 1.5
        )
        fit(pl, model, [finetuning], tmp_path / pl.__name__, max_epochs=4)
        results.append((model, finetuning.state_dict()))
    (theirs, their_state), (ours, our_state) = results
    assert torch.equal(ours.weights(), theirs.weights())
    assert ours.lrs == theirs.lrs and ours.trainable == theirs.trainable
    assert our_state == their_state


@pytest.mark.compat
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("EMAWeightAveraging", {"decay": 0.7, "update_every_n_steps": 2}),
        ("EMAWeightAveraging", {"decay": 0.9, "update_starting_at_epoch": 1}),
        ("WeightAveraging", {}),
        ("WeightAveraging", {"use_buffers": False}),
    ],
)
def test_weight_averaging_matches_lightning(
    tmp_path: Path, name: str, kwargs: dict[str, Any]
) -> None:
    results = []
    for pl in (lightning(), fulmen):
        model = make_model(pl, batch_norm=True, with_val=True)
        averaging = callback(pl, name, **kwargs)
        root = tmp_path / pl.__name__
        fit(pl, model, [averaging], root, max_epochs=3, enable_checkpointing=True)
        (path,) = (root / "checkpoints").glob("*.ckpt")
        results.append((model, torch.load(path, weights_only=True)))
    (theirs, their_checkpoint), (ours, our_checkpoint) = results
    assert torch.equal(ours.weights(), theirs.weights())
    assert all(torch.equal(a, b) for a, b in zip(ours.val_weights, theirs.val_weights))
    for key in ("state_dict", "current_model_state", "averaging_state"):
        assert our_checkpoint[key].keys() == their_checkpoint[key].keys()
        for name_, value in their_checkpoint[key].items():
            assert torch.equal(our_checkpoint[key][name_], value), (key, name_)


# ------------------------------------------------------------------------------ on a GPU


@pytest.mark.gpu
def test_averages_stay_on_their_devices_while_the_model_trains_on_a_gpu(tmp_path: Path) -> None:
    model = make_model(fulmen, batch_norm=True)
    swa = callback(fulmen, "StochasticWeightAveraging", swa_lrs=0.05, swa_epoch_start=2)
    fit(fulmen, model, [swa], tmp_path / "swa", accelerator="gpu", devices=1)
    assert swa.n_averaged.device.type == "cpu"  # device="cpu" by default
    starts = [weights.cpu() for weights in model.epoch_start_weights[1:4]]
    assert torch.equal(model.weights().cpu(), mean(starts))

    model = make_model(fulmen)
    ema = callback(fulmen, "EMAWeightAveraging", decay=0.8)
    fit(fulmen, model, [ema], tmp_path / "ema", accelerator="gpu", devices=1)
    assert ema._average_model.n_averaged.device.type == "cuda"  # device=None: next to the model
    expected = model.step_weights[0]
    for weights in model.step_weights[1:]:
        expected = 0.8 * expected + (1 - 0.8) * weights
    torch.testing.assert_close(model.weights(), expected)
